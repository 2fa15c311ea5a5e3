#!/usr/bin/env python3
"""Reference cases for the diffusion schedulers (crates/sd/src/scheduler.rs), from diffusers.

Generated with diffusers 0.42.1 and torch (CPU, float32 as diffusers computes). Reads the real
Stable Diffusion 2.1 scheduler configs and writes one file per config:

    tests/cases/scheduler/base.safetensors   (sd21/base,  prediction_type = epsilon)
    tests/cases/scheduler/768v.safetensors   (sd21/768v,  prediction_type = v_prediction)

read by crates/sd/tests/sd_scheduler.rs. Run from the repository root:

    python3 tools/gen_scheduler_cases.py [--data /work/shared/data/sd21]

Every file's `__metadata__` holds `config` (the scheduler_config.json text, verbatim) and
`manifest` (JSON describing each case below). Tensors:

- schedule: `betas`, `alphas_cumprod` (DDIMScheduler's float32 values stored as float64),
  `final_alpha_cumprod` [1]; `ddpm_variance` at `ddpm_variance_t` (DDPMScheduler._get_variance,
  fixed_small, no set_timesteps, computed by diffusers' own code on float64 copies of its
  float32 alphas_cumprod so the reference carries no extra float32 cancellation error);
  `ddim_variance` at pairs `ddim_variance_pairs` [K,2] (DDIMScheduler._get_variance(t, prev),
  same float64 treatment).
- timesteps: `ts/ddim/<spacing>/<n>` (DDIMScheduler.set_timesteps) and
  `ts/inv/<spacing>/<n>` (DDIMInverseScheduler.set_timesteps), int64, for the config's own
  spacing (leading) and the variants trailing / linspace (linspace: DDIM only; diffusers'
  inverse scheduler rejects it).
- inputs, float32 [2,4,8,8]: `in/sample`, `in/model_output`, `in/noise` (variance noise),
  `in/x0`, `in/eps`; per-sample timesteps `in/t` [2] (int64).
- `ddim/<key>/prev`, `ddim/<key>/x0`: DDIMScheduler.step(model_output, t, sample, eta,
  variance_noise=noise) after set_timesteps(n); manifest["ddim"] lists key, n, t, eta,
  prediction_type (the config's own type plus a `sample`-prediction variant).
- `inv/<key>/next`, `inv/<key>/x0`: DDIMInverseScheduler.step(model_output, t, sample) after
  set_timesteps(n) (t is the target level; the source level is t - T//n). Also general pairs
  (t_from -> t_to) with n chosen so that T//n = t_to - t_from.
- `sdi/<key>/next`: the η-noised inversion step of docs methods.md §2 (SDI), written out here
  from diffusers' pieces: the deterministic DDIMInverseScheduler step plus
  eta * sqrt(DDIMScheduler._get_variance(t_to, t_from)) * noise.
- `add_noise`, `velocity`: DDPMScheduler.add_noise(x0, eps, t) and get_velocity(x0, eps, t)
  with per-sample timesteps `in/t`.
- `conv/x0_from_eps`, `conv/eps_from_x0`, `conv/eps_from_v`, `conv/x0_from_v`: the conversions
  DDIMScheduler.step computes internally (epsilon / sample / v_prediction branches), per-sample
  timesteps `in/t`, input `in/model_output` as ε, x0 or v and `in/sample` as x_t.
"""
import argparse
import json
import os

import diffusers
from diffusers.utils import logging as dlogging
import numpy as np
import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler, DDPMScheduler
from safetensors.torch import save_file

dlogging.set_verbosity_error()
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "cases", "scheduler")


def load(cls, cfg, **over):
    c = {k: v for k, v in cfg.items() if not k.startswith("_")}
    c.update(over)
    return cls.from_config(c)


def per_sample(vals, t, ndim):
    v = vals[t]
    return v.reshape(-1, *([1] * (ndim - 1)))


def make(name, cfg_path):
    text = open(cfg_path).read()
    cfg = json.loads(text)
    T = cfg.get("num_train_timesteps", 1000)
    g = torch.Generator().manual_seed(1234 if name == "base" else 5678)
    shape = (2, 4, 8, 8)
    sample = torch.randn(shape, generator=g)
    model_output = torch.randn(shape, generator=g)
    noise = torch.randn(shape, generator=g)
    x0 = torch.randn(shape, generator=g)
    eps = torch.randn(shape, generator=g)
    t_ps = torch.tensor([37, 861], dtype=torch.int64)
    out = {
        "in/sample": sample, "in/model_output": model_output, "in/noise": noise,
        "in/x0": x0, "in/eps": eps, "in/t": t_ps,
    }
    man = {"diffusers_version": diffusers.__version__, "ddim": [], "inv": [], "sdi": []}

    ddim = load(DDIMScheduler, cfg)
    out["betas"] = ddim.betas.double()
    out["alphas_cumprod"] = ddim.alphas_cumprod.double()
    out["final_alpha_cumprod"] = ddim.final_alpha_cumprod.double().reshape(1)

    # float64 copies: diffusers' own formulas without extra float32 rounding.
    ddpm = load(DDPMScheduler, cfg)
    ddpm.alphas_cumprod = ddpm.alphas_cumprod.double()
    ddpm.one = torch.tensor(1.0, dtype=torch.float64)
    vt = [0, 1, 2, 10, 250, 500, 998, 999]
    out["ddpm_variance_t"] = torch.tensor(vt, dtype=torch.int64)
    out["ddpm_variance"] = torch.stack([ddpm._get_variance(t).reshape(()) for t in vt]).double()
    d64 = load(DDIMScheduler, cfg)
    d64.alphas_cumprod = d64.alphas_cumprod.double()
    d64.final_alpha_cumprod = d64.final_alpha_cumprod.double()
    pairs = [(1, -19), (21, 1), (501, 481), (981, 961), (999, 966), (350, 100)]
    out["ddim_variance_pairs"] = torch.tensor(pairs, dtype=torch.int64)
    out["ddim_variance"] = torch.stack(
        [torch.as_tensor(d64._get_variance(t, p)).double().reshape(()) for t, p in pairs])

    for spacing in ["leading", "trailing", "linspace"]:
        for n in [10, 30, 50]:
            s = load(DDIMScheduler, cfg, timestep_spacing=spacing)
            s.set_timesteps(n)
            out[f"ts/ddim/{spacing}/{n}"] = s.timesteps.clone()
            if spacing != "linspace":
                s = load(DDIMInverseScheduler, cfg, timestep_spacing=spacing)
                s.set_timesteps(n)
                out[f"ts/inv/{spacing}/{n}"] = s.timesteps.clone()

    own = cfg.get("prediction_type", "epsilon")
    for pred in [own, "sample"]:
        steps = [(50, 981), (50, 501), (50, 21), (50, 1), (30, 999), (30, 33)]
        for n, t in steps:
            for eta in [0.0, 0.3]:
                if pred != own and eta == 0.0 and t not in (981, 1):
                    continue
                s = load(DDIMScheduler, cfg, prediction_type=pred)
                s.set_timesteps(n)
                key = f"{pred}_n{n}_t{t}_eta{eta}"
                r = s.step(model_output, t, sample, eta=eta,
                           variance_noise=noise if eta > 0 else None, return_dict=False)
                out[f"ddim/{key}/prev"] = r[0]
                out[f"ddim/{key}/x0"] = r[1]
                man["ddim"].append({"key": key, "n": n, "t": t, "eta": eta, "prediction_type": pred})

    inv_steps = [(50, 1), (50, 21), (50, 501), (50, 981), (4, 350), (10, 700), (50, 999), (30, 999)]
    for n, t in inv_steps:
        s = load(DDIMInverseScheduler, cfg)
        s.set_timesteps(n)
        key = f"n{n}_t{t}"
        r = s.step(model_output, t, sample, return_dict=False)
        out[f"inv/{key}/next"] = r[0]
        out[f"inv/{key}/x0"] = r[1]
        man["inv"].append({"key": key, "n": n, "t": t, "t_from": t - T // n})

    for t_from, t_to, eta in [(100, 350, 0.3), (600, 700, 0.3), (21, 41, 1.0)]:
        n = T // (t_to - t_from)
        assert T // n == t_to - t_from
        s = load(DDIMInverseScheduler, cfg)
        s.set_timesteps(n)
        det = s.step(model_output, t_to, sample, return_dict=False)[0]
        var = d64._get_variance(t_to, t_from)
        key = f"{t_from}_{t_to}_eta{eta}"
        out[f"sdi/{key}/next"] = det + (eta * float(var) ** 0.5) * noise
        man["sdi"].append({"key": key, "t_from": t_from, "t_to": t_to, "eta": eta})

    ddpm32 = load(DDPMScheduler, cfg)
    out["add_noise"] = ddpm32.add_noise(x0, eps, t_ps)
    out["velocity"] = ddpm32.get_velocity(x0, eps, t_ps)

    a = ddim.alphas_cumprod
    ap = per_sample(a, t_ps, 4)
    bp = 1 - ap
    # Same expressions as DDIMScheduler.step's three prediction_type branches.
    out["conv/x0_from_eps"] = (sample - bp ** 0.5 * model_output) / ap ** 0.5
    out["conv/eps_from_x0"] = (sample - ap ** 0.5 * model_output) / bp ** 0.5
    out["conv/x0_from_v"] = (ap ** 0.5) * sample - (bp ** 0.5) * model_output
    out["conv/eps_from_v"] = (ap ** 0.5) * model_output + (bp ** 0.5) * sample

    out = {k: v.detach().clone().contiguous() for k, v in out.items()}
    path = os.path.join(OUT, f"{name}.safetensors")
    save_file(out, path, metadata={"config": text, "manifest": json.dumps(man)})
    print(f"wrote {path}: {len(out)} tensors")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/work/shared/data/sd21")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    for name in ["base", "768v"]:
        make(name, os.path.join(args.data, name, "scheduler", "scheduler_config.json"))


if __name__ == "__main__":
    main()
