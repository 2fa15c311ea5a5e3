#!/usr/bin/env python3
"""Reference cases for the fit losses and optimizer, computed with PyTorch (float64).

Writes tests/cases/train/*.safetensors, read by crates/optim/tests/train_reference.rs (extra cases from
$SPLATDREAM_TRAIN_CASES). Two kinds, told apart by the `kind` metadata key:

- "loss": images `in.render`, `in.target` [C,H,W,3]; `out.l1`, `out.ssim`, `out.psnr` [C]
  per image; `out.loss` [1] = (1-λ)·mean L1 + λ·(1 − mean SSIM) with λ in metadata
  `ssim_lambda`; `grad.render` = d loss / d render.
  SSIM is the 3DGS `utils/loss_utils.py` definition (11×11 Gaussian window, σ = 1.5,
  zero-padded depthwise conv2d, C1 = 0.01², C2 = 0.03²), written out here independently.
- "adam": `in.param` [N,C], `in.grads` [T,N,C] for T steps, learning rates per step
  `in.lrs` [T]; `out.param` after T steps of torch.optim.Adam(betas=(0.9, 0.999), eps=1e-15)
  with the learning rate set before each step.

Run: python3 tools/gen_train_cases.py  (torch, safetensors; see tools/requirements.txt)
"""
import math
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "cases", "train")
torch.set_default_dtype(torch.float64)


def gaussian_window(size=11, sigma=1.5):
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim_per_image(a, b):
    # a, b: [C, 3, H, W]
    w = gaussian_window().expand(3, 1, 11, 11).contiguous()
    conv = lambda x: F.conv2d(x, w, padding=5, groups=3)
    mu1, mu2 = conv(a), conv(b)
    s11 = conv(a * a) - mu1 ** 2
    s22 = conv(b * b) - mu2 ** 2
    s12 = conv(a * b) - mu1 * mu2
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 ** 2 + mu2 ** 2 + c1) * (s11 + s22 + c2))
    return m.flatten(1).mean(1)


def loss_case(name, c, h, w, lam, seed, smooth):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(c, h, w, 3, generator=g)
    if smooth:
        # A smooth photo-like target and a render that is a noisy, shifted version of it.
        yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
        base = torch.stack([0.5 + 0.4 * torch.sin(6 * xx + k) * torch.cos(4 * yy) for k in range(3)], -1)
        target = base.expand(c, h, w, 3).clone() + 0.02 * target
    render = (target + 0.15 * torch.randn(c, h, w, 3, generator=g)).clamp(-0.1, 1.1)
    render.requires_grad_(True)
    a = render.permute(0, 3, 1, 2)
    b = target.permute(0, 3, 1, 2)
    l1 = (render - target).abs().flatten(1).mean(1)
    ssim = ssim_per_image(a, b)
    loss = (1 - lam) * l1.mean() + lam * (1 - ssim.mean())
    loss.backward()
    mse = ((render.detach().clamp(0, 1) - target) ** 2).flatten(1).mean(1)
    psnr = -10 * torch.log10(mse)
    t = {
        "in.render": render.detach(),
        "in.target": target,
        "out.l1": l1.detach(),
        "out.ssim": ssim.detach(),
        "out.psnr": psnr,
        "out.loss": loss.detach().reshape(1),
        "grad.render": render.grad,
    }
    save_file({k: v.contiguous() for k, v in t.items()}, os.path.join(OUT, f"{name}.safetensors"),
              metadata={"kind": "loss", "ssim_lambda": repr(lam)})


def adam_case(name, n, ch, steps, seed):
    g = torch.Generator().manual_seed(seed)
    p0 = torch.randn(n, ch, generator=g)
    grads = torch.randn(steps, n, ch, generator=g) * torch.logspace(-6, 0, n).reshape(1, n, 1)
    grads[1, 0] = 0.0  # a step without gradient signal for one row
    lrs = torch.tensor([1e-2 * (0.5 ** k) for k in range(steps)])
    p = torch.nn.Parameter(p0.clone())
    opt = torch.optim.Adam([p], lr=1.0, betas=(0.9, 0.999), eps=1e-15)
    for k in range(steps):
        for group in opt.param_groups:
            group["lr"] = float(lrs[k])
        p.grad = grads[k].clone()
        opt.step()
    t = {"in.param": p0, "in.grads": grads, "in.lrs": lrs, "out.param": p.detach()}
    save_file({k: v.contiguous() for k, v in t.items()}, os.path.join(OUT, f"{name}.safetensors"),
              metadata={"kind": "adam"})


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    loss_case("loss_random_2x24x20", 2, 24, 20, 0.2, 1, smooth=False)
    loss_case("loss_smooth_1x40x33", 1, 40, 33, 0.2, 2, smooth=True)
    loss_case("loss_lambda05_1x9x13", 1, 9, 13, 0.5, 3, smooth=True)
    adam_case("adam_8x3_5steps", 8, 3, 5, 4)
    print("wrote", sorted(os.listdir(OUT)))
