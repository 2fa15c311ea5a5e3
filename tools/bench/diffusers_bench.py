"""Time diffusers/PyTorch on the workloads of `splatdream bench unet` and `bench vae`, writing
the same JSON document (schema splatdream-bench/1, same case ids) for
`splatdream bench --compare`.

unet: forward (no grad), and forward + gradient to the input latents (the score-distillation
path): batch B of [B, 4, L, L] latents, 77-token random text embeddings, timesteps
999 − 97i mod 1000. vae: encoder forward (the posterior mean), and forward + gradient to the
input image, batch B of [B, 3, R, R] images in [−1, 1]. Random weights from the real SD 2.1
configs by default (like splatdream's bench), or --model for a diffusers folder (e.g.
tests/cases/sd/tiny-eps). Warm-up runs, then timed runs; every timer stops after
`torch.cuda.synchronize()`. Attention uses PyTorch SDPA (diffusers' default AttnProcessor2_0).

    python tools/bench/diffusers_bench.py --dtype f16 --json --out diffusers.json
    splatdream bench all --suites unet,vae --dtype f16 --out ours.json
    splatdream bench --compare ours.json diffusers.json

CPU smoke run with the tiny model (what runs without CUDA):

    python tools/bench/diffusers_bench.py --small --model tests/cases/sd/tiny-eps --repeats 1

Requires torch (CUDA for real numbers) and diffusers (tools/requirements-sd.txt).
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchjson  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

# diffusers' AutoencoderKL config of SD 2.1 / 2.1-base (same as splatdream's SD21_VAE_CONFIG).
SD21_VAE = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 768,
    "scaling_factor": 0.18215,
}


def timed(a, sync, runs):
    """Run each callable of `runs` once per repetition, in order; return per callable the timed
    samples (ms) after `a.warmup` warm-up repetitions."""
    samples = [[] for _ in runs]
    for rep in range(a.warmup + a.repeats):
        for i, run in enumerate(runs):
            sync()
            t0 = time.perf_counter()
            run()
            sync()
            if rep >= a.warmup:
                samples[i].append((time.perf_counter() - t0) * 1e3)
    return samples


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suites", default="unet,vae")
    ap.add_argument("--batch", type=int, help="unet default 8, vae 4 (--small 1)")
    ap.add_argument("--latent", type=int, help="unet latent side (default 64; --small 8)")
    ap.add_argument("--resolution", type=int, help="vae image side (default 512; --small 32)")
    ap.add_argument("--dtype", choices=["f32", "f16"], default="f32")
    ap.add_argument("--model", help="diffusers folder (its unet/ and vae/ are used)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int)
    ap.add_argument("--small", action="store_true", help="splatdream's --small sizes")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()
    suites = a.suites.split(",")
    unknown = set(suites) - {"unet", "vae"}
    if unknown:
        ap.error(f"--suites: unknown {sorted(unknown)}; this script has unet, vae")
    repeats = a.repeats if a.repeats is not None else (2 if a.small else 5)
    if repeats < 1 or a.warmup < 0:
        ap.error("--repeats must be ≥ 1 and --warmup ≥ 0")
    a.repeats = repeats
    pick = lambda v, normal, small: v if v is not None else (small if a.small else normal)  # noqa: E731

    import torch
    import diffusers
    from diffusers import AutoencoderKL, UNet2DConditionModel

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if a.dtype == "f16" else torch.float32

    def sync():
        if dev == "cuda":
            torch.cuda.synchronize()

    g = torch.Generator(device="cpu").manual_seed(1)
    started = benchjson.now()
    results = []
    if "unet" in suites:
        if a.model:
            unet = UNet2DConditionModel.from_pretrained(a.model, subfolder="unet", torch_dtype=dtype)
            source = a.model
        else:
            cfg = json.loads((ROOT / "assets/sd21/base/unet/config.json").read_text())
            unet = UNet2DConditionModel.from_config(cfg).to(dtype)
            source = "SD 2.1-base architecture (random weights)"
        unet = unet.to(dev).eval().requires_grad_(False)
        b, s = pick(a.batch, 8, 1), pick(a.latent, 64, 8)
        lat = torch.randn(b, unet.config.in_channels, s, s, generator=g).to(dev, dtype)
        ctx = torch.randn(b, 77, unet.config.cross_attention_dim, generator=g).to(dev, dtype)
        t = torch.tensor([999 - (i * 97) % 1000 for i in range(b)], device=dev)
        peak = benchjson.Peak(torch, dev)

        def fwd():
            with torch.no_grad():
                out = unet(lat, t, encoder_hidden_states=ctx).sample
            out[0, 0, 0, 0].item()

        def grad():
            x = lat.clone().requires_grad_(True)
            out = unet(x, t, encoder_hidden_states=ctx).sample
            (gx,) = torch.autograd.grad(out.float().sum(), x)
            assert torch.isfinite(gx[0]).all()

        f, gr = timed(a, sync, [fwd, grad])
        params = dict(model=source, dtype=a.dtype, batch=b, latent=s, text_tokens=77)
        p = peak.bytes()
        for name, samples in (("fwd", f), ("fwd+grad", gr)):
            r = benchjson.case("unet", f"unet/{name}/b={b}/{s}x{s}/{a.dtype}", params, a.warmup, samples, p)
            r["samples_per_s"] = b / r["median_ms"] * 1e3
            results.append(r)
        del unet
    if "vae" in suites:
        if a.model:
            vae = AutoencoderKL.from_pretrained(a.model, subfolder="vae", torch_dtype=dtype)
            source = a.model
        else:
            vae = AutoencoderKL.from_config(SD21_VAE).to(dtype)
            source = "SD 2.1 VAE architecture (random weights)"
        vae = vae.to(dev).eval().requires_grad_(False)
        b, res = pick(a.batch, 4, 1), pick(a.resolution, 512, 32)
        img = (torch.randn(b, 3, res, res, generator=g) * 0.5).clamp(-1, 1).to(dev, dtype)
        peak = benchjson.Peak(torch, dev)

        def enc():
            with torch.no_grad():
                z = vae.encode(img).latent_dist.mean
            z[0, 0, 0, 0].item()

        def enc_grad():
            x = img.clone().requires_grad_(True)
            z = vae.encode(x).latent_dist.mean
            (gx,) = torch.autograd.grad(z.float().sum(), x)
            assert torch.isfinite(gx[0]).all()

        f, gr = timed(a, sync, [enc, enc_grad])
        params = dict(model=source, dtype=a.dtype, batch=b, resolution=res)
        p = peak.bytes()
        for name, samples in (("enc-fwd", f), ("enc-fwd+grad", gr)):
            r = benchjson.case("vae", f"vae/{name}/b={b}/{res}x{res}/{a.dtype}", params, a.warmup, samples, p)
            r["samples_per_s"] = b / r["median_ms"] * 1e3
            results.append(r)
    doc = benchjson.document(
        results, implementation=f"diffusers {diffusers.__version__}, torch {torch.__version__}",
        started_at=started, **benchjson.torch_device_fields(torch, dev))
    benchjson.write(doc, a.out, a.json)


if __name__ == "__main__":
    main()
