"""Build a full-size Stable Diffusion 2.1 folder with random weights, in the exact diffusers
layout, from the published configs (no download): for GPU timing runs of `generate`,
`distill2d`, `compare` and `bench` where the real weights are not available. The images it
makes are noise; the cost per step is the real model's.

    python tools/make_random_sd21.py --configs ../shared/data/sd21/base --out /tmp/sd21-random

`--configs` is a diffusers folder holding at least model_index.json, scheduler/, tokenizer/,
text_encoder/config.json, unet/config.json and vae/config.json (the weight files may be
absent or LFS pointers). Needs torch, diffusers and transformers (tools/requirements-sd.txt).
"""

import argparse
import json
import shutil
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fp16", action="store_true", help="store the weights in float16")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    a.out.mkdir(parents=True, exist_ok=True)
    shutil.copy(a.configs / "model_index.json", a.out / "model_index.json")
    for d in ["scheduler", "tokenizer"]:
        shutil.copytree(a.configs / d, a.out / d, dirs_exist_ok=True)
    dtype = torch.float16 if a.fp16 else torch.float32
    unet_cfg = json.loads((a.configs / "unet/config.json").read_text())
    unet = UNet2DConditionModel.from_config(unet_cfg).to(dtype)
    unet.save_pretrained(a.out / "unet", safe_serialization=True)
    del unet
    vae_cfg = json.loads((a.configs / "vae/config.json").read_text())
    AutoencoderKL.from_config(vae_cfg).to(dtype).save_pretrained(
        a.out / "vae", safe_serialization=True
    )
    te_cfg = CLIPTextConfig.from_json_file(a.configs / "text_encoder/config.json")
    CLIPTextModel(te_cfg).to(dtype).save_pretrained(
        a.out / "text_encoder", safe_serialization=True
    )
    print(f"random-weight SD folder in {a.out}")


if __name__ == "__main__":
    main()
