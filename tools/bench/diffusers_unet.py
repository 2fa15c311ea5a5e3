"""Time the diffusers SD 2.1 U-Net the way `splatdream bench unet` times ours.

Forward, and forward + gradient with respect to the input latents (the score-distillation
path), median of --repeats after one warm-up, on the same workload: batch B, latents
[B, 4, L, L], 77-token text embeddings, per-sample timesteps. Random weights from the real
SD 2.1-base config by default (as splatdream's bench), or --model for a real folder.

    python tools/bench/diffusers_unet.py --batch 8 --latent 64 --dtype f16 --json
    cargo run --release -p splatdream -- bench unet --batch 8 --latent 64 --dtype f16 --json

Requires torch with CUDA (or CPU for a smoke run) and diffusers (tools/requirements-sd.txt).
Attention uses PyTorch SDPA (diffusers' default AttnProcessor2_0).
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel

ROOT = Path(__file__).resolve().parents[2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--latent", type=int, default=64)
    ap.add_argument("--dtype", choices=["f32", "f16"], default="f32")
    ap.add_argument("--model", help="diffusers folder (its unet/ is used)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if a.dtype == "f16" else torch.float32
    if a.model:
        unet = UNet2DConditionModel.from_pretrained(a.model, subfolder="unet", torch_dtype=dtype)
        source = a.model
    else:
        cfg = json.loads((ROOT / "assets/sd21/base-unet-config.json").read_text())
        unet = UNet2DConditionModel.from_config(cfg).to(dtype)
        source = "SD 2.1-base architecture (random weights)"
    unet = unet.to(dev).eval().requires_grad_(False)
    g = torch.Generator(device="cpu").manual_seed(1)
    b, s = a.batch, a.latent
    lat = torch.randn(b, 4, s, s, generator=g).to(dev, dtype)
    ctx = torch.randn(b, 77, unet.config.cross_attention_dim, generator=g).to(dev, dtype)
    t = torch.tensor([999 - (i * 97) % 1000 for i in range(b)], device=dev)

    def sync():
        if dev == "cuda":
            torch.cuda.synchronize()

    fwd, grad = [], []
    for rep in range(a.repeats + 1):
        sync()
        t0 = time.perf_counter()
        with torch.no_grad():
            out = unet(lat, t, encoder_hidden_states=ctx).sample
        sync()
        t1 = time.perf_counter()
        x = lat.clone().requires_grad_(True)
        out = unet(x, t, encoder_hidden_states=ctx).sample
        (gx,) = torch.autograd.grad(out.float().sum(), x)
        sync()
        t2 = time.perf_counter()
        assert torch.isfinite(gx).all()
        if rep > 0:
            fwd.append((t1 - t0) * 1e3)
            grad.append((t2 - t1) * 1e3)
    res = {
        "suite": "unet",
        "impl": "diffusers",
        "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
        "model": source,
        "dtype": a.dtype,
        "batch": b,
        "latent": s,
        "repeats": a.repeats,
        "forward_ms": statistics.median(fwd),
        "forward_input_grad_ms": statistics.median(grad),
        "peak_mem_gb": torch.cuda.max_memory_allocated() / 2**30 if dev == "cuda" else None,
    }
    if a.json:
        print(json.dumps(res))
    else:
        print(f"diffusers unet on {res['device']}: {source}, {a.dtype}, batch {b}, latent {s}x{s}")
        print(f"forward              {res['forward_ms']:10.1f} ms (median of {a.repeats})")
        print(f"forward + input grad {res['forward_input_grad_ms']:10.1f} ms (median of {a.repeats})")


if __name__ == "__main__":
    main()
