"""Time gsplat on the workloads of `splatdream bench raster` and `bench sort`, writing the same
JSON document (schema splatdream-bench/1, same case ids) for `splatdream bench --compare`.

raster: for every splat count × image side, `gsplat.rasterization` forward (until the image is
ready) and the backward of the image sum (until the gradients are ready), fresh leaf tensors
each run, on the same random scene (the same 64-bit LCG draws as splatdream's `random_scene`,
seed 7, SH degree 3 by default) seen by the same orbit cameras (distance 4, elevation 0.2 rad,
up −y, horizontal FoV 50°), black background, near 0.01, far 1e10, eps2d 0.3 (classic mode).

sort: gsplat has no standalone sort (it sorts its 64-bit camera|tile|depth keys inside
`isect_tiles` with CUB's radix sort), so this times `torch.sort(keys, stable=True)` of the same
number of random keys (int64 holding 32-bit values: torch sorts all 64 bits, where splatdream's
`--bits 32` sorts 8 passes of 4 bits) plus the gather of the u32-sized payload by the returned
permutation.

Every timer stops after `torch.cuda.synchronize()`.

    python tools/bench/gsplat_bench.py --json --out gsplat.json
    splatdream bench all --suites raster,sort --out ours.json
    splatdream bench --compare ours.json gsplat.json

Requires torch with CUDA and gsplat (pip install gsplat; tested API: gsplat 1.x `rasterization`).
"""

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchjson  # noqa: E402

A = 6364136223846793005
C = 1442695040888963407
MASK = (1 << 64) - 1


def lcg_uniforms(seed, count):
    """The first `count` uniforms of splatdream's benchmark LCG, float32 `(s >> 40) / 2^24`."""
    import numpy as np

    s0 = (seed * A + C) & MASK
    block = min(count, 1 << 20)
    # s_{i} = a_i·s_0 + c_i (mod 2^64) for i = 1..block; numpy's uint64 arithmetic wraps.
    with np.errstate(over="ignore"):
        a = np.cumprod(np.full(block, A, dtype=np.uint64))
        powers = np.concatenate([np.ones(1, np.uint64), a[:-1]])
        c = np.cumsum(powers) * np.uint64(C)
        out = np.empty(count, dtype=np.float32)
        s = np.uint64(s0)
        for start in range(0, count, block):
            n = min(block, count - start)
            states = a[:n] * s + c[:n]
            out[start:start + n] = (states >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24)
            s = states[n - 1]
    return out


def random_scene(n, sh_degree, seed=7):
    """splatdream's `random_scene`: per splat, in draw order, mean (3), quaternion (4), log-scale
    base and 3 offsets, opacity logit, 3·K SH values."""
    import numpy as np

    k = (sh_degree + 1) ** 2
    d = 3 + 4 + 1 + 3 + 1 + 3 * k
    u = lcg_uniforms(seed, n * d).reshape(n, d)
    two, one, half = np.float32(2), np.float32(1), np.float32(0.5)
    means = u[:, 0:3] * two - one
    quats = u[:, 3:7] - half
    base = np.float32(-4.5) - u[:, 7:8]
    log_scales = base + u[:, 8:11]
    opacity_logits = u[:, 11] * np.float32(4) - two
    sh = u[:, 12:].copy()
    sh[:, :3] = sh[:, :3] * two - one
    sh[:, 3:] = (sh[:, 3:] - half) * np.float32(0.2)
    return means, quats, log_scales, opacity_logits, sh.reshape(n, k, 3)


def orbit_cameras(count, side, radius=4.0, elevation=0.2, fov_x=math.radians(50)):
    """splatdream's `bench_cameras`: OpenCV world→camera matrices and intrinsics."""
    import numpy as np

    up = np.array([0.0, -1.0, 0.0])
    a = np.array([0.0, 0.0, 1.0])  # normalize(up × x)
    b = np.cross(up, a)
    viewmats, ks = [], []
    for f in range(count):
        phi = 2 * math.pi * f / max(count, 1)
        direction = (a * math.cos(phi) + b * math.sin(phi)) * math.cos(elevation) + up * math.sin(elevation)
        eye = direction * radius
        fwd = -eye / np.linalg.norm(eye)
        right = np.cross(fwd, up)
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        r = np.stack([right, down, fwd])
        v = np.eye(4)
        v[:3, :3] = r
        v[:3, 3] = -r @ eye
        viewmats.append(v)
        fx = 0.5 * side / math.tan(0.5 * fov_x)
        ks.append([[fx, 0, 0.5 * side], [0, fx, 0.5 * side], [0, 0, 1]])
    return np.array(viewmats, dtype=np.float32), np.array(ks, dtype=np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suites", default="raster,sort")
    ap.add_argument("--splats", type=benchjson.int_list, default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--sizes", type=benchjson.int_list, default=[256, 512, 1024])
    ap.add_argument("--cameras", type=int, default=1)
    ap.add_argument("--sh-degree", type=int, default=3)
    ap.add_argument("--counts", type=benchjson.int_list, default=[100_000, 1_000_000, 10_000_000])
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--small", action="store_true", help="splatdream's --small sizes")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.repeats < 1 or a.warmup < 0 or a.cameras < 1 or not 0 <= a.sh_degree <= 3:
        ap.error("--repeats ≥ 1, --warmup ≥ 0, --cameras ≥ 1, --sh-degree 0..3")
    if a.small:
        a.splats, a.sizes, a.counts = [2000], [64], [10_000]
    suites = a.suites.split(",")

    import torch

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev != "cuda" and "raster" in suites:
        sys.exit("gsplat_bench.py: gsplat needs a CUDA device (torch.cuda.is_available() is False)")

    def sync():
        if dev == "cuda":
            torch.cuda.synchronize()

    started = benchjson.now()
    results = []
    impl = [f"torch {torch.__version__}"]
    if "raster" in suites:
        import gsplat

        impl.insert(0, f"gsplat {getattr(gsplat, '__version__', '?')}")
        for n in a.splats:
            means, quats, log_scales, logits, sh = random_scene(n, a.sh_degree)
            for side in a.sizes:
                viewmats, ks = orbit_cameras(a.cameras, side)
                vm = torch.from_numpy(viewmats).to(dev)
                kk = torch.from_numpy(ks).to(dev)
                peak = benchjson.Peak(torch, dev)
                fwd, bwd = [], []
                for rep in range(a.warmup + a.repeats):
                    leaves = [torch.from_numpy(x).to(dev).requires_grad_(True)
                              for x in (means, quats, log_scales, logits, sh)]
                    sync()
                    t0 = time.perf_counter()
                    m, q, ls, o, c = leaves
                    rgb, _, _ = gsplat.rasterization(
                        m, q, torch.exp(ls), torch.sigmoid(o), c, vm, kk, side, side,
                        near_plane=0.01, far_plane=1e10, eps2d=0.3, sh_degree=a.sh_degree,
                        backgrounds=torch.zeros(a.cameras, 3, device=dev), packed=False,
                        rasterize_mode="classic")
                    loss = rgb.sum()
                    sync()
                    t1 = time.perf_counter()
                    loss.backward()
                    sync()
                    t2 = time.perf_counter()
                    assert torch.isfinite(leaves[0].grad).all()
                    if rep >= a.warmup:
                        fwd.append((t1 - t0) * 1e3)
                        bwd.append((t2 - t1) * 1e3)
                suffix = (f"/sh={a.sh_degree}" if a.sh_degree != 3 else "") + \
                    (f"/cams={a.cameras}" if a.cameras != 1 else "")
                params = dict(splats=n, width=side, height=side, cameras=a.cameras,
                              sh_degree=a.sh_degree, seed=7)
                p = peak.bytes()
                for name, s in (("fwd", fwd), ("bwd", bwd)):
                    results.append(benchjson.case("raster", f"raster/{name}/n={n}/{side}x{side}{suffix}",
                                                  params, a.warmup, s, p))
    if "sort" in suites:
        g = torch.Generator(device="cpu").manual_seed(0)
        for n in a.counts:
            keys = torch.randint(0, 1 << 32, (n,), generator=g, dtype=torch.int64).to(dev)
            values = torch.arange(n, dtype=torch.int32, device=dev)
            peak = benchjson.Peak(torch, dev)
            samples = []
            for rep in range(a.warmup + a.repeats):
                sync()
                t0 = time.perf_counter()
                sk, perm = torch.sort(keys, stable=True)
                sv = values[perm]
                sync()
                t1 = time.perf_counter()
                if rep == 0:
                    assert bool((sk[1:] >= sk[:-1]).all()) and sv.shape[0] == n
                if rep >= a.warmup:
                    samples.append((t1 - t0) * 1e3)
            r = benchjson.case("sort", f"sort/n={n}/bits=32",
                               dict(pairs=n, bits=32, key_bytes=8, value_bytes=4,
                                    method="torch.sort(stable=True) + gather"),
                               a.warmup, samples, peak.bytes())
            r["mkeys_per_s"] = n / r["median_ms"] / 1e3
            results.append(r)
    doc = benchjson.document(results, implementation=", ".join(impl), started_at=started,
                             **benchjson.torch_device_fields(torch, dev))
    benchjson.write(doc, a.out, a.json)


if __name__ == "__main__":
    main()
