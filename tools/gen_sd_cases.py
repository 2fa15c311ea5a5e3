#!/usr/bin/env python3
"""Reference-case generator for the Stable Diffusion 2.1 port (format B of
``docs`` reference-cases, see ``/work/shared/docs/reference-cases.md``).

What it makes
-------------
Two tiny random-weight models with the *real* SD 2.1 architecture (real config
JSONs from ``--sd21`` with only widths, head counts, group counts and sample
size shrunk), each written as a complete diffusers model folder, plus three
case files per model::

    <out>/tiny-eps/                        SD 2.1 base (512, epsilon) shape
    <out>/tiny-v/                          SD 2.1 768-v (v_prediction, upcast_attention) shape
    <out>/<name>_text_encoder.safetensors  input_ids -> last_hidden_state
    <out>/<name>_unet.safetensors          latents, timesteps, ehs -> out, gradients, CFG
    <out>/<name>_vae.safetensors           image -> mean/logvar/std, z -> decoded, gradients
    <out>/README.md

The two folders deliberately use the two weight-name layouts found in the wild:

* ``tiny-eps``: float32 ``diffusion_pytorch_model.safetensors`` /
  ``model.safetensors``; text-encoder keys *with* the ``text_model.`` prefix;
  VAE mid-block attention as ``to_q/to_k/to_v/to_out.0``; no ``position_ids``.
  Configs written by diffusers/transformers ``save_config`` (full, modern).
* ``tiny-v``: only float16 ``*.fp16.safetensors`` files; text-encoder keys
  *without* the prefix plus an int64 ``embeddings.position_ids [1,77]``;
  VAE mid-block attention as legacy ``query/key/value/proj_attn`` (2-D
  Linear weights).  Configs are the real (old, minimal) JSONs with only the
  shrunk fields replaced.  References use exactly the stored f16 values.

Every parameter is re-drawn non-zero from a fixed seed (weights
N(0, 1/fan_in), biases N(0, 0.1^2), norm weights 1 + N(0, 0.1^2), norm biases
N(0, 0.1^2), embeddings N(0, 0.5^2)).  All references are computed with the
model in float64 (``.double()``); every output/gradient is stored as float32
under its spec name and as float64 under ``<name>_f64``.  Inputs are drawn in
float32 (the f64 computation uses exactly the stored f32 values); ids and
timesteps are int64.

The script checks that every saved folder loads back (tiny-eps through
``from_pretrained``; tiny-v by loading the saved tensors with the keys renamed
back, and additionally through ``from_pretrained(variant="fp16")``) and
reproduces the outputs, prints max|ref| of every output, and runs the same
cases in float32 to show how far a float32 implementation lands from the
float64 reference relative to the test tolerance 1e-4*max|ref| + 1e-5.

How to run
----------
From the repository root (CPU only, about a minute)::

    pip install -r tools/requirements-sd.txt
    python tools/gen_sd_cases.py --out tests/cases/sd

Output is deterministic (fixed seeds, CPU, one thread, float64).
Pinned versions: see ``tools/requirements-sd.txt`` (Python 3.11, torch 2.15.0,
diffusers 0.42.1, transformers 5.23.0, safetensors 0.8.0, numpy 2.4.6).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import sys
import warnings

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import diffusers
import transformers
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

warnings.filterwarnings("ignore")
transformers.logging.set_verbosity_error()
diffusers.utils.logging.set_verbosity_error()

DEFAULT_SD21 = "/work/shared/data/sd21"
TOKENIZER_FILES = ["vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"]
PROMPTS = [
    "a photograph of an astronaut riding a horse",
    "a DSLR photo of a corgi wearing a top hat, highly detailed",
]
TOL_REL, TOL_ABS = 1e-4, 1e-5

# Only these fields differ from the real SD 2.1 configs.
MODELS = {
    "tiny-eps": dict(
        src="base",
        seed=1001,
        layout="modern",
        unet=dict(block_out_channels=[16, 32, 32, 32], norm_num_groups=8,
                  attention_head_dim=[1, 2, 2, 2], cross_attention_dim=32, sample_size=16),
        text_encoder=dict(hidden_size=32, num_attention_heads=4, intermediate_size=64,
                          projection_dim=16),
        vae=dict(block_out_channels=[16, 32, 32, 32], norm_num_groups=8, sample_size=64),
    ),
    "tiny-v": dict(
        src="768v",
        seed=2002,
        layout="legacy_fp16",
        unet=dict(block_out_channels=[24, 48, 48, 48], norm_num_groups=6,
                  attention_head_dim=[3, 6, 6, 6], cross_attention_dim=48, sample_size=16,
                  upcast_attention=True),
        text_encoder=dict(hidden_size=48, num_attention_heads=6, intermediate_size=96,
                          projection_dim=16),
        vae=dict(block_out_channels=[8, 16, 32, 32], norm_num_groups=4, sample_size=64),
    ),
}

# diffusers name (current writers) -> legacy name (published SD 2.1 VAE files)
VAE_LEGACY = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


# ----------------------------------------------------------------------------- helpers

def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")


def init_weights_(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Re-draw every parameter (deterministic order), all non-zero."""
    norm_types = (torch.nn.GroupNorm, torch.nn.LayerNorm)
    seen = set()
    for mname, mod in model.named_modules():
        for pname, p in mod.named_parameters(recurse=False):
            full = f"{mname}.{pname}" if mname else pname
            seen.add(full)
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            if isinstance(mod, norm_types):
                val = 1.0 + 0.1 * noise if pname == "weight" else 0.1 * noise
            elif isinstance(mod, torch.nn.Embedding):
                val = 0.5 * noise
            elif pname == "bias":
                val = 0.1 * noise
            elif pname == "weight" and p.dim() >= 2:
                fan_in = int(np.prod(p.shape[1:]))
                val = noise / math.sqrt(fan_in)
            else:
                raise RuntimeError(f"no init rule for parameter {full} {tuple(p.shape)} in {type(mod)}")
            with torch.no_grad():
                p.copy_(val.to(p.dtype))
    missing = {n for n, _ in model.named_parameters()} - seen
    assert not missing, missing
    assert all(bool((p != 0).all()) for p in model.parameters()), "zero weight drawn"


def round_to_f16_(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().to(p.dtype))


def stats(t: torch.Tensor) -> str:
    t = t.detach().double()
    return (f"shape={list(t.shape)} mean={t.mean().item():+.4f} std={t.std().item():.4f} "
            f"max|.|={t.abs().max().item():.4f}")


def check_not_degenerate(name: str, t: torch.Tensor) -> None:
    a = t.detach().double().abs()
    assert torch.isfinite(a).all(), f"{name}: non-finite"
    std = t.detach().double().std().item()
    assert 1e-3 < std < 1e3 and a.max().item() < 1e4, f"{name}: degenerate ({stats(t)})"


def save_st(path: str, tensors: dict, meta: dict) -> None:
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=meta)


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item()


# ----------------------------------------------------------------------------- models

def build_models(spec: dict, sd21: str):
    src = os.path.join(sd21, spec["src"])
    unet_cfg = read_json(os.path.join(src, "unet", "config.json"))
    vae_cfg = read_json(os.path.join(src, "vae", "config.json"))
    te_cfg = read_json(os.path.join(src, "text_encoder", "config.json"))
    for cfg, key in ((unet_cfg, "unet"), (vae_cfg, "vae"), (te_cfg, "text_encoder")):
        for k, v in spec[key].items():
            if key != "unet" or k != "upcast_attention":
                assert k in cfg, f"{key}: {k} not in the real config"
            cfg[k] = v
    if spec["src"] == "768v":
        assert unet_cfg.get("upcast_attention") is True

    unet = UNet2DConditionModel.from_config(unet_cfg)
    vae = AutoencoderKL.from_config(vae_cfg)
    te = CLIPTextModel(CLIPTextConfig.from_dict(te_cfg))
    gen = torch.Generator().manual_seed(spec["seed"])
    for m in (te, unet, vae):  # fixed order
        init_weights_(m, gen)
        m.eval()
        m.requires_grad_(False)
    if spec["layout"] == "legacy_fp16":
        for m in (te, unet, vae):
            round_to_f16_(m)
    return dict(unet=unet, vae=vae, text_encoder=te), dict(unet=unet_cfg, vae=vae_cfg,
                                                           text_encoder=te_cfg)


def te_keys_out(sd: dict, layout: str) -> dict:
    """transformers 5 CLIPTextModel keys have no `text_model.` prefix."""
    assert not any(k.startswith("text_model.") for k in sd)
    if layout == "modern":
        return {"text_model." + k: v for k, v in sd.items()}
    out = dict(sd)
    out["embeddings.position_ids"] = torch.arange(77, dtype=torch.int64)[None]
    return out


def vae_keys_out(sd: dict, layout: str) -> dict:
    if layout == "modern":
        return dict(sd)
    out = {}
    for k, v in sd.items():
        nk = k
        if ".mid_block.attentions." in k:
            for new, old in VAE_LEGACY.items():
                if f".{new}." in k:
                    nk = k.replace(f".{new}.", f".{old}.")
        out[nk] = v
    return out


def vae_keys_in(sd: dict) -> dict:
    out = {}
    for k, v in sd.items():
        nk = k
        if ".mid_block.attentions." in k:
            for new, old in VAE_LEGACY.items():
                if f".{old}." in k:
                    nk = k.replace(f".{old}.", f".{new}.")
        out[nk] = v
    return out


def write_folder(name: str, spec: dict, models: dict, cfgs: dict, sd21: str, out: str) -> str:
    root = os.path.join(out, name)
    if os.path.exists(root):
        shutil.rmtree(root)
    for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        os.makedirs(os.path.join(root, sub))
    src = os.path.join(sd21, spec["src"])
    layout = spec["layout"]

    mi = read_json(os.path.join(src, "model_index.json"))
    # No feature_extractor / safety_checker folders are shipped.
    mi["feature_extractor"] = [None, None]
    mi["safety_checker"] = [None, None]
    mi["requires_safety_checker"] = False
    write_json(os.path.join(root, "model_index.json"), mi)
    shutil.copyfile(os.path.join(src, "scheduler", "scheduler_config.json"),
                    os.path.join(root, "scheduler", "scheduler_config.json"))
    for f in TOKENIZER_FILES:  # the 768v folder has no vocab/merges; they are identical anyway
        shutil.copyfile(os.path.join(sd21, "base", "tokenizer", f), os.path.join(root, "tokenizer", f))

    meta = {"format": "pt"}
    if layout == "modern":
        models["unet"].save_config(os.path.join(root, "unet"))
        models["vae"].save_config(os.path.join(root, "vae"))
        models["text_encoder"].config.save_pretrained(os.path.join(root, "text_encoder"))
        dt, suffix = torch.float32, ""
    else:
        write_json(os.path.join(root, "unet", "config.json"), cfgs["unet"])
        write_json(os.path.join(root, "vae", "config.json"), cfgs["vae"])
        write_json(os.path.join(root, "text_encoder", "config.json"), cfgs["text_encoder"])
        dt, suffix = torch.float16, ".fp16"

    def cast(sd):
        return {k: (v.to(dt) if v.is_floating_point() else v) for k, v in sd.items()}

    save_st(os.path.join(root, "unet", f"diffusion_pytorch_model{suffix}.safetensors"),
            cast(models["unet"].state_dict()), meta)
    save_st(os.path.join(root, "vae", f"diffusion_pytorch_model{suffix}.safetensors"),
            cast(vae_keys_out(models["vae"].state_dict(), layout)), meta)
    save_st(os.path.join(root, "text_encoder", f"model{suffix}.safetensors"),
            cast(te_keys_out(models["text_encoder"].state_dict(), layout)), meta)
    return root


def reload_folder(root: str, layout: str, models_like: dict) -> dict:
    """Load the written folder back into fresh (float32) models."""
    if layout == "modern":
        unet, info_u = UNet2DConditionModel.from_pretrained(os.path.join(root, "unet"),
                                                            output_loading_info=True)
        vae, info_v = AutoencoderKL.from_pretrained(os.path.join(root, "vae"), output_loading_info=True)
        te, info_t = CLIPTextModel.from_pretrained(os.path.join(root, "text_encoder"),
                                                   output_loading_info=True)
        for n, info in (("unet", info_u), ("vae", info_v), ("text_encoder", info_t)):
            bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys",
                                                        "mismatched_keys") and v}
            assert not bad, f"{n}: {bad}"
    else:
        unet = copy.deepcopy(models_like["unet"]).float()
        vae = copy.deepcopy(models_like["vae"]).float()
        te = copy.deepcopy(models_like["text_encoder"]).float()
        for m in (unet, vae, te):
            with torch.no_grad():
                for p in m.parameters():
                    p.fill_(float("nan"))
        sd_u = load_file(os.path.join(root, "unet", "diffusion_pytorch_model.fp16.safetensors"))
        sd_v = load_file(os.path.join(root, "vae", "diffusion_pytorch_model.fp16.safetensors"))
        sd_t = load_file(os.path.join(root, "text_encoder", "model.fp16.safetensors"))
        assert all(v.dtype == torch.float16 for v in sd_u.values())
        assert all(v.dtype == torch.float16 for v in sd_v.values())
        assert any(".query." in k for k in sd_v) and not any(".to_q." in k for k in sd_v)
        assert sd_v["encoder.mid_block.attentions.0.proj_attn.weight"].dim() == 2
        pid = sd_t.pop("embeddings.position_ids")
        assert pid.dtype == torch.int64 and pid.shape == (1, 77)
        assert torch.equal(pid, torch.arange(77)[None])
        assert not any(k.startswith("text_model.") for k in sd_t)
        unet.load_state_dict({k: v.float() for k, v in sd_u.items()}, strict=True)
        vae.load_state_dict({k: v.float() for k, v in vae_keys_in(sd_v).items()}, strict=True)
        te.load_state_dict({k: v.float() for k, v in sd_t.items()}, strict=True)
    out = dict(unet=unet, vae=vae, text_encoder=te)
    for m in out.values():
        m.eval()
        m.requires_grad_(False)
    return out


def reload_fp16_variant(root: str) -> dict:
    """Informative: do the stock loaders accept the legacy/fp16 layout?"""
    unet = UNet2DConditionModel.from_pretrained(os.path.join(root, "unet"), variant="fp16",
                                                torch_dtype=torch.float32)
    vae = AutoencoderKL.from_pretrained(os.path.join(root, "vae"), variant="fp16",
                                        torch_dtype=torch.float32)
    te = CLIPTextModel.from_pretrained(os.path.join(root, "text_encoder"), variant="fp16",
                                       dtype=torch.float32)
    out = dict(unet=unet, vae=vae, text_encoder=te)
    for m in out.values():
        m.eval()
        m.requires_grad_(False)
    return out


# ----------------------------------------------------------------------------- cases

def make_inputs(name: str, spec: dict, cfgs: dict, tokenizer) -> dict:
    g = torch.Generator().manual_seed(spec["seed"] + 7)
    d = cfgs["unet"]["cross_attention_dim"]
    assert d == cfgs["text_encoder"]["hidden_size"]
    enc = tokenizer(PROMPTS, padding="max_length", max_length=77, truncation=True,
                    return_tensors="pt")
    ids = enc.input_ids.to(torch.int64)
    assert ids.shape == (2, 77)
    inp = {
        "te.input_ids": ids,
        "unet.latents": torch.randn(2, 4, 16, 8, generator=g),
        "unet.timesteps": torch.tensor([17, 901], dtype=torch.int64),
        "unet.encoder_hidden_states": torch.randn(2, 77, d, generator=g),
        "unet.grad_g": torch.randn(2, 4, 16, 8, generator=g),
        "unet.cfg_latents": torch.randn(1, 4, 16, 8, generator=g),
        "unet.cfg_timestep": torch.tensor(500, dtype=torch.int64),
        "unet.cfg_encoder_hidden_states": torch.randn(2, 77, d, generator=g),
        "unet.cfg_guidance_scale": torch.tensor(7.5, dtype=torch.float32),
        "vae.image": torch.rand(2, 3, 64, 48, generator=g) * 2 - 1,
        "vae.z": torch.randn(2, 4, 8, 6, generator=g),
        "vae.grad_g_mean": torch.randn(2, 4, 8, 6, generator=g),
        "vae.grad_g_decoded": torch.randn(2, 3, 64, 48, generator=g),
    }
    for k, v in inp.items():
        if v.is_floating_point():
            assert v.dtype == torch.float32, k
    return inp


def run_cases(models: dict, inp: dict, dtype: torch.dtype) -> dict:
    """All outputs of the three case files, computed in `dtype`."""
    te, unet, vae = models["text_encoder"], models["unet"], models["vae"]
    for m in (te, unet, vae):
        m.to(dtype)
    f = lambda k: inp[k].to(dtype)  # noqa: E731
    res = {}
    with torch.no_grad():
        res["te.last_hidden_state"] = te(input_ids=inp["te.input_ids"]).last_hidden_state

    # U-Net forward + VJP
    lat = f("unet.latents").requires_grad_(True)
    ehs = f("unet.encoder_hidden_states").requires_grad_(True)
    out = unet(lat, inp["unet.timesteps"], encoder_hidden_states=ehs).sample
    gl, ge = torch.autograd.grad((out * f("unet.grad_g")).sum(), (lat, ehs))
    res["unet.out"], res["unet.grad_latents"], res["unet.grad_encoder_hidden_states"] = (
        out.detach(), gl, ge)
    # CFG exactly as the pipeline: batch [uncond, cond] on duplicated latents, scalar t
    with torch.no_grad():
        cl = f("unet.cfg_latents")
        eps = unet(torch.cat([cl, cl]), inp["unet.cfg_timestep"],
                   encoder_hidden_states=f("unet.cfg_encoder_hidden_states")).sample
        u, c = eps.chunk(2)
        s = inp["unet.cfg_guidance_scale"].item()
        res["unet.cfg_guided"] = u + s * (c - u)

    # VAE encode (score-distillation path) + VJP
    img = f("vae.image").requires_grad_(True)
    dist = vae.encode(img).latent_dist
    (gi,) = torch.autograd.grad((dist.mean * f("vae.grad_g_mean")).sum(), (img,))
    res["vae.mean"], res["vae.logvar"], res["vae.std"] = (
        dist.mean.detach(), dist.logvar.detach(), dist.std.detach())
    res["vae.grad_image_from_mean"] = gi
    z = f("vae.z").requires_grad_(True)
    dec = vae.decode(z).sample
    (gz,) = torch.autograd.grad((dec * f("vae.grad_g_decoded")).sum(), (z,))
    res["vae.decoded"], res["vae.grad_z_from_decoded"] = dec.detach(), gz
    return res


def write_cases(name: str, out: str, inp: dict, ref: dict, meta: dict) -> dict:
    files = {}
    for part, fname in (("te", "text_encoder"), ("unet", "unet"), ("vae", "vae")):
        t = {}
        for k, v in inp.items():
            if k.startswith(part + "."):
                t[k.split(".", 1)[1]] = v
        for k, v in ref.items():
            if k.startswith(part + "."):
                key = k.split(".", 1)[1]
                t[key] = v.detach().to(torch.float32)
                t[key + "_f64"] = v.detach().to(torch.float64)
        path = os.path.join(out, f"{name}_{fname}.safetensors")
        save_st(path, t, meta)
        files[fname] = path
    return files


# ----------------------------------------------------------------------------- main

def describe_attention(models: dict) -> str:
    procs = {}
    for part in ("unet", "vae"):
        for v in models[part].attn_processors.values():
            procs.setdefault(part, set()).add(type(v).__name__)
    te_impl = models["text_encoder"].config._attn_implementation
    return (f"unet: {sorted(procs['unet'])}, vae: {sorted(procs['vae'])}, "
            f"text_encoder attn_implementation: {te_impl}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output directory (e.g. tests/cases/sd)")
    ap.add_argument("--sd21", default=DEFAULT_SD21,
                    help="folder holding the real SD 2.1 configs base/ and 768v/")
    ap.add_argument("--only", choices=sorted(MODELS), action="append")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, "
          f"transformers {transformers.__version__}")

    summary = {}
    for name in args.only or list(MODELS):
        spec = MODELS[name]
        print(f"\n=== {name} (from sd21/{spec['src']}, layout {spec['layout']})")
        models, cfgs = build_models(spec, args.sd21)
        for part, m in models.items():
            print(f"  {part}: {sum(p.numel() for p in m.parameters()):,} parameters")
        print("  attention:", describe_attention(models))
        root = write_folder(name, spec, models, cfgs, args.sd21, args.out)

        tok = CLIPTokenizer.from_pretrained(os.path.join(root, "tokenizer"))
        inp = make_inputs(name, spec, cfgs, tok)
        print("  input_ids[:, :16]:", inp["te.input_ids"][:, :16].tolist())

        ref = run_cases(models, inp, torch.float64)
        # A single metadata key: safetensors writes the metadata map in hash order, so
        # several keys would make the files differ byte-wise from run to run.
        meta = {"generator": json.dumps({
            "script": "tools/gen_sd_cases.py", "model": name, "torch": torch.__version__,
            "diffusers": diffusers.__version__, "transformers": transformers.__version__},
            sort_keys=True)}
        write_cases(name, args.out, inp, ref, meta)

        # Reload the written folder and reproduce (float64, bit-exact expected).
        back = reload_folder(root, spec["layout"], models)
        rep = run_cases(back, inp, torch.float64)
        worst = max(max_abs_diff(ref[k], rep[k]) for k in ref)
        print(f"  reload ({'from_pretrained' if spec['layout'] == 'modern' else 'renamed keys'}):"
              f" max |ref - reloaded| = {worst:.3e}")
        assert worst == 0.0, "reloaded folder does not reproduce the references"
        if spec["layout"] != "modern":
            back2 = reload_fp16_variant(root)
            rep2 = run_cases(back2, inp, torch.float64)
            worst2 = max(max_abs_diff(ref[k], rep2[k]) for k in ref)
            print(f"  reload (from_pretrained variant='fp16'): max |ref - reloaded| = {worst2:.3e}")
            assert worst2 == 0.0

        # How far does plain float32 land (same code, model.float())?
        f32 = run_cases(models, inp, torch.float32)
        print(f"  {'output':40s} {'max|ref|':>10s} {'f32 err':>10s} {'err/tol':>8s}  stats")
        rows = []
        for k, v in ref.items():
            check_not_degenerate(f"{name}:{k}", v)
            mx = v.abs().max().item()
            err = max_abs_diff(v, f32[k])
            ratio = err / (TOL_REL * mx + TOL_ABS)
            rows.append((k, mx, err, ratio))
            print(f"  {k:40s} {mx:10.4g} {err:10.3e} {ratio:8.3f}  {stats(v)}")
        summary[name] = rows

    print("\nmax err/tol of a float32 run over all outputs:",
          {n: round(max(r[3] for r in rows), 3) for n, rows in summary.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
