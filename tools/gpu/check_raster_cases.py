"""Check the rasterizer's reference cases against gsplat's CUDA `rasterization()` (issue 27,
item 6).

`tests/cases/raster/*.safetensors` hold float64 renders and gradients made by
`tools/gen_raster_cases.py` with its own port of gsplat's CUDA compositing rules (gsplat's torch
compositor needs CUDA). This script renders every case with gsplat's CUDA kernels in float32
(classic or antialiased mode, the case's SH degree, eps2d 0.3, near 0.01, far 1e10, its
background) and backpropagates the case's loss L = Σ rgb·G + Σ alpha·H + Σ depth·D, then writes,
per case and tensor, max |gsplat − reference| / max |reference| (the reference's own float64
values), and gsplat's intersection count beside the case's.

    python3 tools/gpu/check_raster_cases.py --cases tests/cases/raster --out raster-vs-gsplat.json

Needs CUDA, torch and gsplat (tools/requirements.txt pins gsplat 1.5.3). Exit status 1 when a
tensor's relative error exceeds --tol (default 1e-3: float32 with gsplat's fast-math
exponentials against float64).
"""

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=Path, default=Path("tests/cases/raster"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tol", type=float, default=1e-3)
    a = ap.parse_args()

    import gsplat
    import torch

    if not torch.cuda.is_available():
        print("check_raster_cases: needs CUDA", file=sys.stderr)
        return 2
    dev = torch.device("cuda")
    report = {"gsplat": gsplat.__version__, "torch": torch.__version__,
              "device": torch.cuda.get_device_name(), "tol": a.tol, "cases": {}}
    worst = 0.0
    for path in sorted(a.cases.glob("*.safetensors")):
        try:
            worst = max(worst, check(path, dev, report, a.tol))
        except Exception as e:  # one broken case is reported, the others still run
            report["cases"][path.stem] = {"error": repr(e)}
            worst = float("inf")
            print(f"{path.stem:22s} ERROR {e!r}")
    report["worst_relative_error"] = worst
    report["passed"] = worst <= a.tol
    a.out.write_text(json.dumps(report, indent=1))
    print(f"worst relative error {worst:.2e} (tol {a.tol:g}): "
          + ("pass" if report["passed"] else "FAIL"))
    return 0 if report["passed"] else 1


def check(path, dev, report, tol):
    """Render and differentiate one case with gsplat; record and return its worst error."""
    import torch
    from gsplat import rasterization
    from safetensors.torch import load_file

    t = load_file(str(path))
    f32 = {k: v.to(dev, torch.float32) for k, v in t.items() if v.is_floating_point()}
    leaf = lambda k: f32[k].clone().requires_grad_(True)  # noqa: E731
    means, quats, log_scales, logits = (leaf("in.means"), leaf("in.quats"),
                                        leaf("in.log_scales"), leaf("in.opacity_logits"))
    if "in.sh" in t:
        colours = leaf("in.sh")
        k = colours.shape[1]
        sh_degree = int(t["in.sh_degree"]) if "in.sh_degree" in t else int(k ** 0.5) - 1
    else:
        colours, sh_degree = leaf("in.colors"), None
    aa = bool(int(t["in.antialiased"])) if "in.antialiased" in t else False
    w, h = int(t["in.width"]), int(t["in.height"])
    # RGB only: for "RGB+D" gsplat appends the depth channel's zero background itself.
    bg = f32["in.background"][None]
    img, alpha, meta = rasterization(
        means, quats, torch.exp(log_scales), torch.sigmoid(logits), colours,
        f32["in.viewmat"][None], f32["in.K"][None], w, h, near_plane=0.01, far_plane=1e10,
        eps2d=0.3, sh_degree=sh_degree, packed=False, backgrounds=bg,
        render_mode="RGB+D", rasterize_mode="antialiased" if aa else "classic")
    meta["means2d"].retain_grad()
    rgb, depth, alpha = img[0, ..., :3], img[0, ..., 3], alpha[0, ..., 0]
    loss = ((rgb * f32["in.G"]).sum() + (alpha * f32["in.H"]).sum()
            + (depth * f32["in.D"]).sum())
    loss.backward()
    ours = {"out.rgb": rgb, "out.alpha": alpha, "out.depth_accum": depth,
            "grad.means": means.grad, "grad.quats": quats.grad,
            "grad.log_scales": log_scales.grad, "grad.opacity_logits": logits.grad,
            "grad.means2d": meta["means2d"].grad[0],
            ("grad.sh" if "in.sh" in t else "grad.colors"): colours.grad}
    errors = {}
    for name, value in ours.items():
        ref = t.get(name + "_f64", t.get(name))
        if ref is None or value is None:
            continue
        ref = ref.to(dev, torch.float64)
        scale = ref.abs().max().item() or 1.0
        errors[name] = (value.double() - ref).abs().max().item() / scale
    report["cases"][path.stem] = {
        "relative_error": errors,
        "n_isects_gsplat": int(meta["flatten_ids"].numel()),
        "n_isects_case": int(t["meta.n_isects"]),
        "n_isects_opacity_aware_case": int(t["meta.n_isects_opacity_aware"]),
    }
    bad = [n for n, e in errors.items() if e > tol]
    print(f"{path.stem:22s} max rel err {max(errors.values()):.2e}"
          f" isects gsplat {report['cases'][path.stem]['n_isects_gsplat']}"
          f" case {int(t['meta.n_isects'])}/{int(t['meta.n_isects_opacity_aware'])}"
          + (f"  OVER TOL: {bad}" if bad else ""))
    return max(errors.values())


if __name__ == "__main__":
    sys.exit(main())
