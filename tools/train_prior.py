#!/usr/bin/env python3
"""Train the toy-world prior: a small text-to-image model in the exact Stable Diffusion 2.1
architecture (diffusers AutoencoderKL + transformers CLIPTextModel + diffusers
UNet2DConditionModel, the real SD 2.1 CLIP tokenizer and noise schedule), on the renders of
`tools/toyworld/make_data.py`.

    python3 tools/toyworld/make_data.py --out /work/toydata
    python3 tools/train_prior.py --data /work/toydata --work /work/toyprior \\
        --vae-steps 4000 --unet-steps 10000
    python3 tools/train_prior.py --data /work/toydata --work /work/toyprior --export assets/toyworld

Stages (each resumable: a checkpoint every `--save-every` steps in `--work`, losses appended to
`--work/log.jsonl`; rerunning the same command continues where it stopped):

1. **VAE** (f = 4: 64² RGB ↔ 16²×4 latents): L1 + MSE reconstruction + 1e-6·KL, as SD's VAE
   without the perceptual and GAN terms, AdamW with a 100-step warm-up and a cosine decay to 10 %;
   `scaling_factor` = 1/std of the latents afterwards.
2. **Text encoder + U-Net**, trained together from scratch with the ε-prediction loss of SD 2.1-base
   (scaled-linear β 0.00085…0.012, 1000 steps), min-SNR-5 weighting (Hang et al. 2023), 10 %
   empty captions for classifier-free guidance, horizontal flips, posterior samples of the frozen
   VAE, AdamW with a 200-step warm-up and a cosine decay to 10 % over `--unet-steps`, an EMA of
   the weights (the EMA is exported). (The shipped run, session 16–17, began with
   `--unet-steps 15000` and was shortened to 10,000 at step 3,800, a step down of the learning
   rate from 0.87× to 0.73× of its peak.)
3. **Export** (`--export DIR`): a diffusers folder (model_index.json, vae/, text_encoder/, unet/,
   tokenizer/, scheduler/ = SD 2.1-base's), f16 safetensors, `toyworld.json` and `README.md`
   (the model card).

Images are composited over white and scaled to [−1, 1], as SD's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# The SD 2.1 CLIP tokenizer files, byte for byte (the same as ../shared/data/sd21/base/tokenizer).
TOKENIZER = os.path.join(REPO, "tests", "cases", "sd", "tiny-eps", "tokenizer")

VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4,
    down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3,
    block_out_channels=[32, 64, 64], layers_per_block=1, norm_num_groups=16, act_fn="silu",
    sample_size=64, scaling_factor=0.18215, mid_block_add_attention=True,
)  # fmt: skip
TEXT_CONFIG = dict(
    vocab_size=49408, hidden_size=64, intermediate_size=256, num_hidden_layers=3,
    num_attention_heads=4, max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5,
    projection_dim=64, bos_token_id=49406, eos_token_id=49407, pad_token_id=0,
)  # fmt: skip
UNET_CONFIG = dict(
    sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
    block_out_channels=[32, 64, 128],
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    attention_head_dim=[2, 4, 8], cross_attention_dim=64, norm_num_groups=16,
    use_linear_projection=True, act_fn="silu", flip_sin_to_cos=True, freq_shift=0,
)  # fmt: skip
SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.10.0.dev0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}


def log(work, **rec):
    rec["time"] = time.time()
    with open(os.path.join(work, "log.jsonl"), "a") as f:
        f.write(json.dumps(rec) + "\n")


def save_atomic(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_images(data, name):
    z = np.load(os.path.join(data, f"{name}.npz"))
    rgba = z["images"].astype(np.float32) / 255.0
    a = rgba[..., 3:4]
    rgb = rgba[..., :3] * a + (1 - a)  # over white
    x = torch.from_numpy(rgb).permute(0, 3, 1, 2).contiguous() * 2 - 1
    return x, [str(c) for c in z["caption"]], z


# --------------------------------------------------------------------------- VAE


def train_vae(args):
    from diffusers import AutoencoderKL

    path = os.path.join(args.work, "vae.pt")
    x, _, _ = load_images(args.data, "prior")
    torch.manual_seed(0)
    vae = AutoencoderKL(**VAE_CONFIG)
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, weight_decay=0.0)
    step = 0
    if os.path.exists(path):
        ck = torch.load(path, weights_only=False)
        vae.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step = ck["step"]
        torch.set_rng_state(ck["rng"])
    print(f"VAE: {sum(p.numel() for p in vae.parameters()) / 1e6:.2f} M parameters, step {step}/{args.vae_steps}", flush=True)
    gen = torch.Generator().manual_seed(1000 + step)
    t0 = time.time()
    while step < args.vae_steps:
        idx = torch.randint(0, len(x), (args.vae_batch,), generator=gen)
        b = x[idx]
        flip = torch.rand(len(b), generator=gen) < 0.5
        b = torch.where(flip[:, None, None, None], b.flip(-1), b)
        post = vae.encode(b).latent_dist
        rec = vae.decode(post.sample()).sample
        l1 = (rec - b).abs().mean()
        mse = F.mse_loss(rec, b)
        kl = post.kl().mean() / (b.shape[1] * b.shape[2] * b.shape[3])
        loss = l1 + mse + 1e-6 * kl * b[0].numel()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        warm = min(1.0, (step + 1) / 100)
        decay = 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, args.vae_steps))))
        lr = args.vae_lr * warm * (0.1 + 0.9 * decay)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        step += 1
        if step % 25 == 0:
            dt = (time.time() - t0) / 25
            t0 = time.time()
            print(f"vae {step}: l1 {l1.item():.4f} mse {mse.item():.5f} kl {kl.item():.4f} ({dt:.2f} s/step)", flush=True)
            log(args.work, stage="vae", step=step, l1=l1.item(), mse=mse.item(), kl=kl.item(), s_per_step=dt)
        if step % args.save_every == 0 or step == args.vae_steps:
            save_atomic({"model": vae.state_dict(), "opt": opt.state_dict(), "step": step, "rng": torch.get_rng_state()}, path)
    return vae


def encode_latents(args, vae):
    """Posterior mean and std of every prior image and of its mirror image, and the scaling factor."""
    path = os.path.join(args.work, "latents.pt")
    if os.path.exists(path):
        return torch.load(path, weights_only=False)
    x, caps, _ = load_images(args.data, "prior")
    means, stds = [], []
    vae.eval()
    with torch.no_grad():
        for flip in (False, True):
            for i in range(0, len(x), 64):
                b = x[i : i + 64]
                d = vae.encode(b.flip(-1) if flip else b).latent_dist
                means.append(d.mean)
                stds.append(d.std)
        mean = torch.cat(means)
        std = torch.cat(stds)
        # scaling factor: 1 / std of posterior samples (SD's recipe for its 0.18215)
        g = torch.Generator().manual_seed(0)
        samp = mean + std * torch.randn(mean.shape, generator=g)
        scale = float(1.0 / samp.std())
        # reconstruction check on the first 256 images
        rec = vae.decode(mean[:256]).sample.clamp(-1, 1)
        psnr = float(10 * torch.log10(4.0 / F.mse_loss(rec, x[:256])))
        # and on 256 held-out renders of objects the VAE never saw
        xt, _, _ = load_images(args.data, "judge_test")
        xt = xt[torch.randperm(len(xt), generator=torch.Generator().manual_seed(0))[:256]]
        rect = vae.decode(vae.encode(xt).latent_dist.mean).sample.clamp(-1, 1)
        psnr_test = float(10 * torch.log10(4.0 / F.mse_loss(rect, xt)))
    out = {"mean": mean, "std": std, "captions": caps + caps, "scaling_factor": scale, "recon_psnr": psnr, "recon_psnr_heldout": psnr_test}
    print(f"latents: {tuple(mean.shape)}, scaling_factor {scale:.5f}, reconstruction PSNR {psnr:.2f} dB (held-out {psnr_test:.2f} dB)", flush=True)
    log(args.work, stage="latents", scaling_factor=scale, recon_psnr=psnr, recon_psnr_heldout=psnr_test)
    save_atomic(out, path)
    return out


# --------------------------------------------------------------------------- U-Net + text encoder


def tokenizer():
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(TOKENIZER)


def alphas_cumprod():
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0).float()


def train_unet(args, lat):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    path = os.path.join(args.work, "unet.pt")
    torch.manual_seed(0)
    te = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))
    unet = UNet2DConditionModel(**UNET_CONFIG)
    params = list(te.parameters()) + list(unet.parameters())
    ema = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    step = 0
    if os.path.exists(path):
        ck = torch.load(path, weights_only=False)
        te.load_state_dict(ck["te"])
        unet.load_state_dict(ck["unet"])
        opt.load_state_dict(ck["opt"])
        ema = ck["ema"]
        step = ck["step"]
    n_te = sum(p.numel() for p in te.parameters())
    n_un = sum(p.numel() for p in unet.parameters())
    print(f"text encoder {n_te / 1e6:.2f} M, U-Net {n_un / 1e6:.2f} M parameters; step {step}/{args.unet_steps}", flush=True)
    tok = tokenizer()
    caps = lat["captions"]
    uniq = sorted(set(caps)) + [""]
    ids_of = {c: i for i, c in enumerate(uniq)}
    ids = tok(uniq, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    cap_idx = torch.tensor([ids_of[c] for c in caps])
    empty = ids_of[""]
    ac = alphas_cumprod()
    scale = lat["scaling_factor"]
    gen = torch.Generator().manual_seed(2000 + step)
    t0 = time.time()
    losses = []
    while step < args.unet_steps:
        idx = torch.randint(0, len(cap_idx), (args.batch,), generator=gen)
        z0 = (lat["mean"][idx] + lat["std"][idx] * torch.randn(lat["mean"][idx].shape, generator=gen)) * scale
        ci = cap_idx[idx].clone()
        ci[torch.rand(args.batch, generator=gen) < 0.1] = empty
        t = torch.randint(0, 1000, (args.batch,), generator=gen)
        eps = torch.randn(z0.shape, generator=gen)
        a = ac[t][:, None, None, None]
        zt = a.sqrt() * z0 + (1 - a).sqrt() * eps
        hid = te(ids[ci]).last_hidden_state
        pred = unet(zt, t, encoder_hidden_states=hid).sample
        snr = ac[t] / (1 - ac[t])
        w = torch.clamp(snr, max=5.0) / snr  # min-SNR-5 for ε-prediction
        loss = (w * ((pred - eps) ** 2).mean((1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        warm = min(1.0, (step + 1) / 200)
        decay = 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, args.unet_steps))))
        for g in opt.param_groups:
            g["lr"] = args.lr * warm * (0.1 + 0.9 * decay)
        opt.step()
        step += 1
        d = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.mul_(d).add_(p.detach(), alpha=1 - d)
        losses.append(loss.item())
        if step % 25 == 0:
            dt = (time.time() - t0) / 25
            t0 = time.time()
            m = float(np.mean(losses))
            losses = []
            print(f"unet {step}: loss {m:.4f} ({dt:.2f} s/step)", flush=True)
            log(args.work, stage="unet", step=step, loss=m, s_per_step=dt)
        if step % args.save_every == 0 or step == args.unet_steps:
            save_atomic({"te": te.state_dict(), "unet": unet.state_dict(), "opt": opt.state_dict(), "ema": ema, "step": step}, path)
    return te, unet, ema, step


# --------------------------------------------------------------------------- export


def export(args):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    sys.path.insert(0, os.path.join(HERE, "toyworld"))
    import world

    lat = torch.load(os.path.join(args.work, "latents.pt"), weights_only=False)
    vck = torch.load(os.path.join(args.work, "vae.pt"), weights_only=False)
    uck = torch.load(os.path.join(args.work, "unet.pt"), weights_only=False)
    vae = AutoencoderKL(**{**VAE_CONFIG, "scaling_factor": round(lat["scaling_factor"], 5)})
    vae.load_state_dict(vck["model"])
    te = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))
    unet = UNet2DConditionModel(**UNET_CONFIG)
    te.load_state_dict(uck["te"])
    unet.load_state_dict(uck["unet"])
    params = list(te.parameters()) + list(unet.parameters())
    with torch.no_grad():
        for p, e in zip(params, uck["ema"]):
            p.copy_(e)
    out = args.export
    tmp = out.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    vae.to(torch.float16).save_pretrained(os.path.join(tmp, "vae"), safe_serialization=True)
    unet.to(torch.float16).save_pretrained(os.path.join(tmp, "unet"), safe_serialization=True)
    te.to(torch.float16).save_pretrained(os.path.join(tmp, "text_encoder"), safe_serialization=True)
    shutil.copytree(TOKENIZER, os.path.join(tmp, "tokenizer"))
    os.makedirs(os.path.join(tmp, "scheduler"))
    with open(os.path.join(tmp, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(SCHEDULER_CONFIG, f, indent=2)
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.42.1",
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    with open(os.path.join(tmp, "model_index.json"), "w") as f:
        json.dump(index, f, indent=2)
    recs = [json.loads(line) for line in open(os.path.join(args.work, "log.jsonl"))]
    vae_recs = [r for r in recs if r["stage"] == "vae"]
    un_recs = [r for r in recs if r["stage"] == "unet"]
    info = {
        "name": "toyworld",
        "resolution": 64,
        "latent_resolution": 16,
        "categories": world.CATEGORIES,
        "colours": list(world.COLOURS),
        "colour_rgb": world.COLOURS,
        "prompt": "a {colour} {category}",
        "cameras": world.CAMERAS,
        "view_rule": world.VIEW_RULE,
        "extent": world.EXTENT,
        "background": [1.0, 1.0, 1.0],
        "training": {
            "vae_steps": vck["step"],
            "unet_steps": uck["step"],
            "vae_final_l1": vae_recs[-1]["l1"] if vae_recs else None,
            "unet_final_loss": float(np.mean([r["loss"] for r in un_recs[-8:]])) if un_recs else None,
            "vae_seconds": sum(r["s_per_step"] * 25 for r in vae_recs),
            "unet_seconds": sum(r["s_per_step"] * 25 for r in un_recs),
            "recon_psnr_db": lat["recon_psnr"],
            "scaling_factor": lat["scaling_factor"],
            "images": int(len(lat["captions"]) // 2),
        },
    }
    with open(os.path.join(tmp, "toyworld.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    with open(os.path.join(tmp, "README.md"), "w") as f:
        f.write(model_card(info, te, unet, vae))
    # Replace the model's own entries one by one; gt/ and judge/ beside them stay.
    os.makedirs(out, exist_ok=True)
    for name in sorted(os.listdir(tmp)):
        dst = os.path.join(out, name)
        if os.path.isdir(dst):
            shutil.rmtree(dst)
        os.replace(os.path.join(tmp, name), dst)
    os.rmdir(tmp)
    print(f"exported {out}: {json.dumps(info['training'])}")


def model_card(info, te, unet, vae) -> str:
    """The exported folder's README.md: data, architecture, training, losses, licence."""
    tr = info["training"]
    n = lambda m: sum(p.numel() for p in m.parameters()) / 1e6  # noqa: E731
    cats = ", ".join(info["categories"])
    cols = ", ".join(info["colours"])
    return f"""# toyworld: a small Stable Diffusion 2.1-architecture prior of a procedural 3D world

`splatdream --model toyworld` resolves to this folder. It is a diffusers folder
(`StableDiffusionPipeline` layout) that diffusers, transformers and splatdream's SD 2.1 port all
load: `AutoencoderKL`, `CLIPTextModel` with the real SD 2.1 CLIP tokenizer, `UNet2DConditionModel`
(linear-projection transformers as SD 2.1), SD 2.1-base's noise schedule and ε-prediction.

## Data
Renders of `tools/toyworld/` (procedural objects built from primitives plus Spot the cow):
{len(info["categories"])} categories ({cats}) × {len(info["colours"])} colours ({cols}), instances 1–8 of each,
8 cameras each drawn as `distill::cameras::CameraConfig::default()` draws them (radius 5.2–5.5,
elevation −15°…45°, full azimuth, FoV 18.3°–34.4°), {tr["images"]} images of
{info["resolution"]}×{info["resolution"]} over white, horizontal flips. Captions:
`"a {{colour}} {{category}}"` plus the view suffix splatdream appends for that camera
(", front view" |az| < 45°, ", back view" |az| > 135°, else ", side view"), 10 % empty
(classifier-free guidance; use an empty negative prompt). Instance 0 of every object is never
trained on: it is the ground truth in `gt/`; the judge in `judge/` was trained on instances
1001+ and tested on 2001+.

## Architecture
- VAE: f = 4 (64² RGB ↔ 16²×4 latents), channels 32/64/64, one ResNet block per level,
  {n(vae):.2f} M parameters; `scaling_factor` {tr["scaling_factor"]:.5f} (1/std of the latents).
- Text encoder: CLIP, width 64, 3 layers, 4 heads, GELU, 77 tokens, {n(te):.2f} M parameters
  (3.16 M of them the 49,408-token embedding the real tokenizer needs).
- U-Net: channels 32/64/128, one layer per block, cross-attention at 16² and 8²,
  cross-attention width 64, {n(unet):.2f} M parameters.

## Training (`tools/train_prior.py`, torch 2.15 on 2 CPU cores)
| stage | steps | batch | wall time | final loss |
|---|---|---|---|---|
| VAE (L1 + MSE + 1e-6·KL) | {tr["vae_steps"]} | 16 | {tr["vae_seconds"] / 3600:.2f} h | L1 {tr["vae_final_l1"]:.4f} |
| text encoder + U-Net (ε, min-SNR-5) | {tr["unet_steps"]} | 32 | {tr["unet_seconds"] / 3600:.2f} h | {tr["unet_final_loss"] if tr["unet_final_loss"] is None else round(tr["unet_final_loss"], 4)} |

VAE reconstruction PSNR on 256 training images: {tr["recon_psnr_db"]:.2f} dB. The U-Net and text
encoder weights are an EMA (decay 0.999). Weights are stored in f16.

## Licence
Everything here — the procedural world, the renders, the weights — was made by the splatdream
project and is under the project's licence (MIT OR Apache-2.0). Spot the cow is Keenan Crane's,
CC0. The tokenizer files are OpenAI CLIP's BPE (MIT), as SD 2.1 ships them.
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="/work/toydata")
    ap.add_argument("--work", default="/work/toyprior")
    ap.add_argument("--vae-steps", type=int, default=4000)
    ap.add_argument("--vae-batch", type=int, default=16)
    ap.add_argument("--vae-lr", type=float, default=4e-4)
    ap.add_argument("--unet-steps", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--save-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--export", default=None, help="write the diffusers folder here and stop")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    if args.export:
        export(args)
        return 0
    vae = train_vae(args)
    lat = encode_latents(args, vae)
    del vae
    train_unet(args, lat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
