#!/usr/bin/env python3
"""Quick checks of a toy-world prior with the judge, in PyTorch (a diagnostic for training; the
shipped measurement is `splatdream evaluate-prior`).

    # the judge on VAE reconstructions of 256 held-out renders (is the VAE the bottleneck?)
    python3 tools/toyworld/check_prior.py --recon --vae-checkpoint /work/toyprior/vae.pt
    python3 tools/toyworld/check_prior.py --recon --model assets/toyworld
    # diffusers samples (DDIM 30 steps), front view, every category × the first N colours
    python3 tools/toyworld/check_prior.py --samples 2 --cfg 7.5 --model assets/toyworld --grid /tmp/g.png

Prints accuracies (category, colour, both). Versions: tools/requirements-sd.txt.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from train_judge import Judge, load  # noqa: E402
from world import CATEGORIES, COLOURS  # noqa: E402


def load_judge(path):
    from safetensors.torch import load_file

    j = Judge()
    sd = {}
    for k, v in load_file(path).items():
        # file layout conv{i}.{weight,bias} (crates/eval/src/judge.rs) → nn.ModuleList convs.{i}
        sd[f"convs.{k[4]}.{k.split('.')[1]}" if k.startswith("conv") else k] = v
    j.load_state_dict(sd)
    return j.eval()


def save_grid(x, path, nrow):
    from PIL import Image

    a = (x.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    n, h, w, _ = a.shape
    rows = (n + nrow - 1) // nrow
    g = np.full((rows * h, nrow * w, 3), 255, np.uint8)
    for i in range(n):
        g[(i // nrow) * h : (i // nrow + 1) * h, (i % nrow) * w : (i % nrow + 1) * w] = a[i]
    Image.fromarray(g).save(path)


def report(name, judge, images, cat, col):
    with torch.no_grad():
        a, b = judge(images)
    c, o = a.argmax(1) == cat, b.argmax(1) == col
    print(f"{name}: category {c.float().mean():.3f}, colour {o.float().mean():.3f}, both {(c & o).float().mean():.3f} ({len(cat)} images)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="/work/toydata")
    ap.add_argument("--judge", default=os.path.join(HERE, "..", "..", "assets", "toyworld", "judge", "judge.safetensors"))
    ap.add_argument("--model", help="a diffusers folder (assets/toyworld)")
    ap.add_argument("--vae-checkpoint", help="train_prior.py's vae.pt instead of --model's VAE")
    ap.add_argument("--recon", action="store_true")
    ap.add_argument("--samples", type=int, default=0, help="colours per category to sample")
    ap.add_argument("--cfg", type=float, default=7.5)
    ap.add_argument("--grid", default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    judge = load_judge(args.judge)
    if args.recon:
        from diffusers import AutoencoderKL

        if args.vae_checkpoint:
            from train_prior import VAE_CONFIG

            vae = AutoencoderKL(**VAE_CONFIG)
            vae.load_state_dict(torch.load(args.vae_checkpoint, weights_only=False)["model"])
        else:
            vae = AutoencoderKL.from_pretrained(os.path.join(args.model, "vae")).float()
        vae.eval()
        x, cat, col = load(args.data, "judge_test")
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:256]
        x, cat, col = x[idx], cat[idx], col[idx]
        with torch.no_grad():
            r = (vae.decode(vae.encode(x * 2 - 1).latent_dist.mean).sample.clamp(-1, 1) + 1) / 2
        psnr = float(10 * torch.log10(1.0 / ((r - x) ** 2).mean()))
        print(f"VAE reconstruction PSNR {psnr:.2f} dB")
        report("renders", judge, x, cat, col)
        report("VAE reconstructions", judge, r, cat, col)
        if args.grid:
            save_grid(torch.cat([x[:16], r[:16]]), args.grid, 16)
    if args.samples:
        from diffusers import DDIMScheduler, StableDiffusionPipeline

        pipe = StableDiffusionPipeline.from_pretrained(args.model, torch_dtype=torch.float32, safety_checker=None)
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        prompts, cat, col = [], [], []
        for ci, c in enumerate(CATEGORIES):
            for oi, o in enumerate(list(COLOURS)[: args.samples]):
                prompts.append(f"a {o} {c}, front view")
                cat.append(ci)
                col.append(oi)
        out = pipe(prompts, num_inference_steps=30, guidance_scale=args.cfg, negative_prompt=[""] * len(prompts),
                   generator=torch.Generator().manual_seed(0), output_type="pt", height=64, width=64).images
        report(f"samples (CFG {args.cfg})", judge, out, torch.tensor(cat), torch.tensor(col))
        if args.grid:
            save_grid(out, args.grid, 4 * args.samples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
