#!/usr/bin/env python3
"""Reference cases for `splatdream sample`'s whole text-to-image loop (issue 27, item 5).

For each committed tiny model of ``tests/cases/sd`` (``tiny-eps``: epsilon-prediction with
SD 2.1-base's ``PNDMScheduler`` config; ``tiny-v``: v-prediction with SD 2.1's
``DDIMScheduler`` config) this runs diffusers' ``StableDiffusionPipeline`` with a
``DDIMScheduler`` built from the folder's own scheduler config (what ``sample`` does: DDIM,
eta = 0), 3 steps, classifier-free guidance 7.5 with the empty negative prompt, from fixed
initial latents, and writes ``<name>_pipeline.safetensors``::

    init_latents [1,4,8,6] f32         the starting noise (the pipeline's ``latents=``)
    timesteps    [3] i64               the DDIM timesteps diffusers used
    latents      [1,4,8,6]             the latents after the last step (f32 + ``_f64``)
    image        [1,3,64,48] in [0,1]  the decoded image, as ``output_type="pt"`` (f32 + ``_f64``)

metadata: ``prompt``, ``negative_prompt``, ``steps``, ``guidance_scale``, ``height``, ``width``.
The references run with the whole pipeline in float64; the script also runs it in float32 and
prints how far that lands from float64, next to the tolerance the Rust test uses.

Run from the repository root (CPU, seconds)::

    pip install -r tools/requirements-sd.txt
    python tools/gen_pipeline_cases.py --out tests/cases/sd

Pinned versions: ``tools/requirements-sd.txt``. Output is deterministic (fixed seed, CPU, one
thread).
"""

from __future__ import annotations

import argparse
import os

import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline
from safetensors.torch import save_file

PROMPT = "a photo of a corgi"
NEGATIVE = ""
STEPS = 3
CFG = 7.5
HEIGHT, WIDTH = 64, 48
MODELS = {"tiny-eps": None, "tiny-v": "fp16"}


def run(folder: str, variant, dtype: torch.dtype, init: torch.Tensor):
    pipe = StableDiffusionPipeline.from_pretrained(
        folder,
        variant=variant,
        torch_dtype=dtype,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    seen = []

    def keep(p, i, t, kw):
        seen.append(int(t))
        return kw

    kwargs = dict(
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        num_inference_steps=STEPS,
        guidance_scale=CFG,
        height=HEIGHT,
        width=WIDTH,
        eta=0.0,
        latents=init.to(dtype),
        callback_on_step_end=keep,
    )
    with torch.no_grad():
        latents = pipe(output_type="latent", **kwargs).images
        seen.clear()
        image = pipe(output_type="pt", **kwargs).images
    return latents, image, seen


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="the tests/cases/sd folder (holds tiny-eps, tiny-v)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for name, variant in MODELS.items():
        folder = os.path.join(args.out, name)
        g = torch.Generator().manual_seed(27)
        init = torch.randn((1, 4, HEIGHT // 8, WIDTH // 8), generator=g, dtype=torch.float32)
        lat64, img64, ts = run(folder, variant, torch.float64, init)
        lat32, img32, _ = run(folder, variant, torch.float32, init)
        for what, a, b in (("latents", lat32, lat64), ("image", img32, img64)):
            mx = b.abs().max().item()
            err = (a.double() - b).abs().max().item()
            print(f"{name}: {what}: max|ref| {mx:.4g}, float32 vs float64 {err:.3g} "
                  f"(tolerance 1e-4*max+1e-5 = {1e-4 * mx + 1e-5:.3g})")
        tensors = {
            "init_latents": init.contiguous(),
            "timesteps": torch.tensor(ts, dtype=torch.int64),
            "latents": lat64.float().contiguous(),
            "latents_f64": lat64.contiguous(),
            "image": img64.float().contiguous(),
            "image_f64": img64.contiguous(),
        }
        meta = {
            "prompt": PROMPT,
            "negative_prompt": NEGATIVE,
            "steps": str(STEPS),
            "guidance_scale": str(CFG),
            "height": str(HEIGHT),
            "width": str(WIDTH),
            "generator": "tools/gen_pipeline_cases.py",
        }
        path = os.path.join(args.out, f"{name}_pipeline.safetensors")
        save_file(tensors, path, metadata=meta)
        print(f"wrote {path}: timesteps {ts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
