#!/usr/bin/env python3
"""Train the toy world's independent judge: a small CNN that names the category and the colour
of a 64×64 render (over white), trained on instances the prior never saw
(`make_data.py`'s ``judge_train.npz``; accuracy on ``judge_test.npz``, other instances again).

    python3 tools/toyworld/train_judge.py --data /work/toydata --out assets/toyworld/judge.safetensors

Architecture (ported to burn in `crates/eval/src/judge.rs`; tensor names are the contract):

    x: (B, 3, 64, 64) RGB in [0, 1] over white, normalised as (x − 0.5) / 0.25
    conv0  3→32,  3×3, stride 1, pad 1, ReLU
    conv1 32→48,  3×3, stride 2, pad 1, ReLU      → 32²
    conv2 48→64,  3×3, stride 2, pad 1, ReLU      → 16²
    conv3 64→96,  3×3, stride 2, pad 1, ReLU      → 8²
    conv4 96→128, 3×3, stride 2, pad 1, ReLU      → 4²
    mean over H, W                                → (B, 128)
    category: Linear 128→16,  colour: Linear 128→6 (logits)

Augmentations make it robust to what it will judge (renders of generated splats and samples of
the prior): random scale 0.75–1.15 and shift ±6 px over white, Gaussian blur σ ≤ 1.2 px, pixel
noise, brightness ±10 %, horizontal flips, and splat-like speckle (random white/grey dots).
Writes safetensors (f32) with metadata ``categories`` and ``colours`` (JSON lists) and the
held-out accuracy; also ``--cases FILE``: reference logits of a few test images for the Rust
port's parity test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from world import CATEGORIES, COLOURS  # noqa: E402

WIDTHS = [3, 32, 48, 64, 96, 128]


class Judge(nn.Module):
    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(WIDTHS[i], WIDTHS[i + 1], 3, stride=1 if i == 0 else 2, padding=1) for i in range(5)
        )
        self.category = nn.Linear(WIDTHS[-1], len(CATEGORIES))
        self.colour = nn.Linear(WIDTHS[-1], len(COLOURS))

    def forward(self, x):
        h = (x - 0.5) / 0.25
        for c in self.convs:
            h = F.relu(c(h))
        h = h.mean((2, 3))
        return self.category(h), self.colour(h)


def load(data, name):
    z = np.load(os.path.join(data, f"{name}.npz"))
    rgba = torch.from_numpy(z["images"]).float() / 255.0
    a = rgba[..., 3:4]
    rgb = (rgba[..., :3] * a + (1 - a)).permute(0, 3, 1, 2).contiguous()
    return rgb, torch.from_numpy(z["category"]), torch.from_numpy(z["colour"])


def blur(x, sigma):
    """Per-image Gaussian blur (sigma: (B,) px; 0 = none)."""
    k = torch.arange(-3, 4, dtype=torch.float32)
    out = x.clone()
    for i, s in enumerate(sigma.tolist()):
        if s < 0.2:
            continue
        w = torch.exp(-0.5 * (k / s) ** 2)
        w = w / w.sum()
        xi = x[i : i + 1]
        xi = F.conv2d(F.pad(xi, (3, 3, 0, 0), mode="replicate"), w.view(1, 1, 1, 7).repeat(3, 1, 1, 1), groups=3)
        xi = F.conv2d(F.pad(xi, (0, 0, 3, 3), mode="replicate"), w.view(1, 1, 7, 1).repeat(3, 1, 1, 1), groups=3)
        out[i : i + 1] = xi
    return out


def augment(x, gen):
    b = len(x)
    scale = torch.empty(b).uniform_(0.75, 1.15, generator=gen)
    shift = torch.empty(b, 2).uniform_(-6 / 32, 6 / 32, generator=gen)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = 1 / scale
    theta[:, 1, 1] = 1 / scale
    theta[:, :, 2] = shift
    flip = torch.rand(b, generator=gen) < 0.5
    theta[flip, 0, 0] *= -1
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    y = F.grid_sample(x - 1, grid, align_corners=False, padding_mode="zeros") + 1  # white outside
    y = blur(y, torch.rand(b, generator=gen) * 1.2)
    y = y * torch.empty(b, 1, 1, 1).uniform_(0.9, 1.1, generator=gen)
    speck = (torch.rand(y.shape[0], 1, 64, 64, generator=gen) < 0.01 * torch.rand(b, 1, 1, 1, generator=gen))
    y = torch.where(speck, torch.rand(b, 1, 1, 1, generator=gen).expand_as(y[:, :1]), y)
    y = y + 0.03 * torch.rand(b, 1, 1, 1, generator=gen) * torch.randn(y.shape, generator=gen)
    return y.clamp(0, 1)


def accuracy(model, x, cat, col):
    model.eval()
    with torch.no_grad():
        lc, lo = [], []
        for i in range(0, len(x), 256):
            a, b = model(x[i : i + 256])
            lc.append(a.argmax(1))
            lo.append(b.argmax(1))
    lc, lo = torch.cat(lc), torch.cat(lo)
    return (lc == cat).float().mean().item(), (lo == col).float().mean().item(), ((lc == cat) & (lo == col)).float().mean().item()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="/work/toydata")
    ap.add_argument("--out", required=True)
    ap.add_argument("--cases", default=None, help="write 4 held-out images and their PyTorch logits here (safetensors)")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    x, cat, col = load(args.data, "judge_train")
    xt, catt, colt = load(args.data, "judge_test")
    model = Judge()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    t0 = time.time()
    for step in range(1, args.steps + 1):
        model.train()
        idx = torch.randint(0, len(x), (args.batch,), generator=gen)
        a, b = model(augment(x[idx], gen))
        loss = F.cross_entropy(a, cat[idx]) + F.cross_entropy(b, col[idx])
        opt.zero_grad()
        loss.backward()
        lr = args.lr * 0.5 * (1 + np.cos(np.pi * step / args.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        if step % 250 == 0:
            acc = accuracy(model, xt, catt, colt)
            print(f"step {step}: loss {loss.item():.4f}  held-out category {acc[0]:.3f} colour {acc[1]:.3f} both {acc[2]:.3f}  ({time.time() - t0:.0f} s)", flush=True)
    acc = accuracy(model, xt, catt, colt)
    gen2 = torch.Generator().manual_seed(1)
    acc_aug = accuracy(model, augment(xt, gen2), catt, colt)
    print(f"held-out ({len(xt)} renders of {len(xt) // 6} unseen instances): category {acc[0]:.4f}, colour {acc[1]:.4f}, both {acc[2]:.4f}; augmented: {acc_aug}")
    from safetensors.torch import save_file

    sd = {}
    for i, c in enumerate(model.convs):
        sd[f"conv{i}.weight"] = c.weight.detach().contiguous()
        sd[f"conv{i}.bias"] = c.bias.detach().contiguous()
    for name in ("category", "colour"):
        sd[f"{name}.weight"] = getattr(model, name).weight.detach().contiguous()
        sd[f"{name}.bias"] = getattr(model, name).bias.detach().contiguous()
    meta = {
        "format": "splatdream-toyworld-judge/1",
        "categories": json.dumps(CATEGORIES),
        "colours": json.dumps(list(COLOURS)),
        "input": "RGB 64x64 in [0,1] over white, normalised (x-0.5)/0.25",
        "heldout_images": str(len(xt)),
        "heldout_category_accuracy": f"{acc[0]:.4f}",
        "heldout_colour_accuracy": f"{acc[1]:.4f}",
        "heldout_both_accuracy": f"{acc[2]:.4f}",
        "train_steps": str(args.steps),
    }
    tmp = args.out + ".tmp"
    save_file(sd, tmp, metadata=meta)
    os.replace(tmp, args.out)
    if args.cases:
        model.eval()
        pick = [0, len(xt) // 3, 2 * len(xt) // 3, len(xt) - 1]
        with torch.no_grad():
            a, b = model(xt[pick])
        cases = {
            "images": xt[pick].contiguous(),
            "category_logits": a.contiguous(),
            "colour_logits": b.contiguous(),
            "category": catt[pick].contiguous(),
            "colour": colt[pick].contiguous(),
        }
        save_file(cases, args.cases, metadata={"source": "tools/toyworld/train_judge.py (PyTorch f32)"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
