#!/usr/bin/env python3
"""Render the toy world's data sets.

    python3 tools/toyworld/make_data.py --out /work/toydata          # training sets (npz)
    python3 tools/toyworld/make_data.py --gt assets/toyworld/gt      # ground truth (NeRF-synthetic)

Training sets (``--out``), each an ``.npz`` with ``images`` (N, S, S, 4) u8 RGBA, ``category``
and ``colour`` (N,) indices into `world.CATEGORIES` / `world.COLOURS`, ``azimuth``,
``elevation``, ``radius``, ``fov`` (N,) and ``caption`` (N,) strings:

* ``prior.npz``: instances 1…`--prior-instances` of every category × colour, `--prior-views`
  random cameras each (the prior's training data);
* ``judge_train.npz`` / ``judge_test.npz``: instances 1001… and 2001… (never seen by the prior),
  for the judge's training and its held-out accuracy.

Cameras are drawn as `distill::cameras::CameraConfig::default()` draws them.

Ground truth (``--gt``): for instance 0 of every category × colour a NeRF-synthetic folder
``<colour>-<category>/`` with ``transforms_val.json`` + ``val/r_K.png`` (the 8 evaluation views:
azimuths 0°, 45°, …, 315° at elevation 15°, radius 5.35, FoV 26°) and, with ``--gt-train``,
``transforms_train.json`` + ``train/r_K.png`` (`--gt-train` views on a golden-angle spiral
over elevations −10°…50°), so `splatdream fit` can read it. Cameras are OpenGL camera-to-world
as NeRF-synthetic stores them (`camera_angle_x` is the horizontal FoV).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from raycast import camera_eye, look_at, render, to_u8  # noqa: E402
from world import CATEGORIES, COLOURS, caption, make_object, sample_camera  # noqa: E402

EVAL_AZIMUTHS = [0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0]
EVAL_ELEVATION, EVAL_RADIUS, EVAL_FOV = 15.0, 5.35, 26.0


def slug(category: str, colour: str) -> str:
    return f"{colour}-{category.replace(' ', '-')}"


def _render_set(job):
    cat_i, col_i, seeds, views, size, salt = job
    cat, col = CATEGORIES[cat_i], list(COLOURS)[col_i]
    out = []
    for seed in seeds:
        scene = make_object(cat, col, seed)
        rng = np.random.default_rng([salt, cat_i, col_i, seed])
        for _ in range(views):
            az, el, radius, fov, target = sample_camera(rng)
            view, focal = look_at(camera_eye(az, el, radius, target), target, fov, size)
            img = to_u8(render(scene, view, focal, size, 3))
            out.append((img, cat_i, col_i, az, el, radius, fov, caption(cat, col, az, el)))
    return out


def write_set(path, seeds, views, size, salt, workers):
    jobs = [(ci, oi, seeds, views, size, salt) for ci in range(len(CATEGORIES)) for oi in range(len(COLOURS))]
    t = time.time()
    rows = []
    with ProcessPoolExecutor(workers) as ex:
        for r in ex.map(_render_set, jobs):
            rows.extend(r)
    cols = list(zip(*rows))
    tmp = path + ".tmp.npz"
    np.savez_compressed(
        tmp,
        images=np.stack(cols[0]),
        category=np.array(cols[1], np.int64),
        colour=np.array(cols[2], np.int64),
        azimuth=np.array(cols[3], np.float32),
        elevation=np.array(cols[4], np.float32),
        radius=np.array(cols[5], np.float32),
        fov=np.array(cols[6], np.float32),
        caption=np.array(cols[7]),
    )
    os.replace(tmp, path)
    print(f"{path}: {len(rows)} images in {time.time() - t:.0f} s", flush=True)


def gl_c2w(eye, target=(0.0, 0.0, 0.0)):
    """OpenGL camera-to-world (camera looks down −z, +y up) looking at `target`, world z up."""
    eye = np.asarray(eye, np.float64)
    back = eye - np.asarray(target, np.float64)
    back /= np.linalg.norm(back)
    right = np.cross([0.0, 0.0, 1.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, up, back, eye
    return m


def spiral(n, el_min=-10.0, el_max=50.0):
    golden = math.pi * (3.0 - math.sqrt(5.0))
    s0, s1 = math.sin(math.radians(el_min)), math.sin(math.radians(el_max))
    return [(math.degrees(math.fmod(i * golden, 2 * math.pi)), math.degrees(math.asin(s0 + (s1 - s0) * (i + 0.5) / n))) for i in range(n)]


def _write_gt(job):
    cat_i, col_i, root, size, n_train = job
    cat, col = CATEGORIES[cat_i], list(COLOURS)[col_i]
    scene = make_object(cat, col, 0)
    d = os.path.join(root, slug(cat, col))
    splits = {"val": [(a, EVAL_ELEVATION) for a in EVAL_AZIMUTHS]}
    if n_train:
        splits["train"] = spiral(n_train)
    for split, angles in splits.items():
        os.makedirs(os.path.join(d, split), exist_ok=True)
        frames = []
        for k, (az, el) in enumerate(angles):
            eye = camera_eye(az, el, EVAL_RADIUS)
            view, focal = look_at(eye, [0, 0, 0], EVAL_FOV, size)
            img = to_u8(render(scene, view, focal, size, 3))
            Image.fromarray(img, "RGBA").save(os.path.join(d, split, f"r_{k}.png"), optimize=True)
            c2w = gl_c2w(eye)
            frames.append({"file_path": f"./{split}/r_{k}", "azimuth_deg": az, "elevation_deg": el,
                           "transform_matrix": [[round(float(x), 9) for x in row] for row in c2w]})  # fmt: skip
        with open(os.path.join(d, f"transforms_{split}.json"), "w") as f:
            json.dump({"camera_angle_x": math.radians(EVAL_FOV), "prompt": caption(cat, col), "frames": frames}, f, indent=1)
            f.write("\n")
    return d


def contact_sheet(path, size=64):
    """Instance 0 of every category (colours cycling) at azimuths 0°, 60°, 150°, −100°,
    elevation 20°, over white: two blocks of 8 categories side by side."""
    rows = []
    cols = list(COLOURS)
    for i, cat in enumerate(CATEGORIES):
        row = []
        for j, az in enumerate([0.0, 60.0, 150.0, -100.0]):
            scene = make_object(cat, cols[(i + j) % len(cols)], 0)
            view, focal = look_at(camera_eye(az, 20.0, 5.35), [0, 0, 0], 22.0, size)
            rgba = to_u8(render(scene, view, focal, size, 3)).astype(np.float64) / 255
            row.append(rgba[..., :3] * rgba[..., 3:] + 1 - rgba[..., 3:])
        rows.append(np.concatenate(row, 1))
    half = len(rows) // 2
    img = np.concatenate([np.concatenate(rows[:half], 0), np.concatenate(rows[half:], 0)], 1)
    Image.fromarray(np.rint(img * 255).astype(np.uint8)).save(path, optimize=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="folder for the training sets (npz)")
    ap.add_argument("--gt", help="folder for the ground-truth NeRF-synthetic folders")
    ap.add_argument("--gt-train", type=int, default=0, help="training views per ground-truth object")
    ap.add_argument("--gt-only", default=None, help="comma-separated slugs: ground truth for these only")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--prior-instances", type=int, default=8)
    ap.add_argument("--prior-views", type=int, default=8)
    ap.add_argument("--judge-instances", type=int, default=4)
    ap.add_argument("--judge-views", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sheet", help="write a contact sheet of every category here (PNG)")
    args = ap.parse_args()
    if args.sheet:
        contact_sheet(args.sheet)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        pi, ji = args.prior_instances, args.judge_instances
        write_set(os.path.join(args.out, "prior.npz"), list(range(1, pi + 1)), args.prior_views, args.size, 1, args.workers)
        write_set(os.path.join(args.out, "judge_train.npz"), list(range(1001, 1001 + ji)), args.judge_views, args.size, 2, args.workers)
        write_set(os.path.join(args.out, "judge_test.npz"), list(range(2001, 2001 + max(1, ji // 2))), args.judge_views, args.size, 3, args.workers)
    if args.gt:
        only = set(args.gt_only.split(",")) if args.gt_only else None
        jobs = [(ci, oi, args.gt, args.size, args.gt_train) for ci in range(len(CATEGORIES)) for oi in range(len(COLOURS))
                if only is None or slug(CATEGORIES[ci], list(COLOURS)[oi]) in only]  # fmt: skip
        with ProcessPoolExecutor(args.workers) as ex:
            for d in ex.map(_write_gt, jobs):
                pass
        print(f"{args.gt}: {len(jobs)} objects", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
