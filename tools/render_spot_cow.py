#!/usr/bin/env python3
"""Render Keenan Crane's "Spot" cow into a small NeRF-synthetic style dataset.

Output (default ``assets/spot-cow/``)::

    transforms_train.json   {"camera_angle_x": ..., "frames": [{"file_path": "./train/r_K",
    transforms_val.json       "transform_matrix": 4x4 camera-to-world}]}
    train/r_K.png           RGBA, straight (non-premultiplied) alpha, transparent background
    val/r_K.png

Conventions (the same as the Blender/NeRF-synthetic scenes):

* world up is +z.  The OBJ is +y up with the cow looking along -z, so it is
  rotated by +90 degrees about x, as Blender's default OBJ import does:
  ``(x, y, z)_obj -> (x, -z, y)_world``; the cow then looks along +y, towards a
  camera at azimuth 0 (on the +y axis), and its right-hand side is +x;
* before the rotation the mesh is centred on the centre of its bounding box and
  scaled uniformly so that its largest bounding-box side is 1;
* ``transform_matrix`` is camera-to-world in the OpenGL convention: the camera
  looks down its -z axis, +y is up in the image, +x to the right;
* pinhole, square pixels, principal point at the image centre:
  ``fx = fy = 0.5 * W / tan(0.5 * camera_angle_x)``, ``cx = cy = W / 2`` in
  continuous pixel coordinates (pixel ``i`` covers ``[i, i + 1)``).

Rendering is a plain numpy software rasterizer: z-buffer, perspective-correct
UV interpolation, bilinear texture lookup from ``cow_texture.png``, Lambert
lighting ``0.35 + 0.65 * max(0, n . l)`` from a fixed world-space directional
light applied to the sRGB texture values (no linearisation), 3x3 supersampling
with a box filter for antialiased RGB and alpha.

The script is deterministic (no random numbers: cameras come from closed-form
formulas) and checks itself: the mesh vertices projected through an OpenCV
pinhole built from each ``transform_matrix`` must have the same bounding box
as the image's alpha mask (within 2 px).

Needs numpy and Pillow only.  Rerun with::

    python3 tools/render_spot_cow.py
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Fixed world-space light direction (pointing from the surface towards the light):
# in front of the cow (+y), to its right-hand side (+x) and above (+z).
LIGHT_DIR = np.array([0.35, 0.55, 0.75])
AMBIENT = 0.35
DIFFUSE = 0.65


# --------------------------------------------------------------------------- mesh


def load_obj(path: str):
    """Positions, texture coordinates and triangle index arrays (pos, uv) of an OBJ."""
    pos, uv, fpos, fuv = [], [], [], []
    with open(path) as f:
        for line in f:
            t = line.split()
            if not t:
                continue
            if t[0] == "v":
                pos.append([float(a) for a in t[1:4]])
            elif t[0] == "vt":
                uv.append([float(a) for a in t[1:3]])
            elif t[0] == "f":
                corners = [c.split("/") for c in t[1:]]
                pi = [int(c[0]) - 1 for c in corners]
                ti = [int(c[1]) - 1 for c in corners]
                for k in range(1, len(corners) - 1):  # fan-triangulate polygons
                    fpos.append([pi[0], pi[k], pi[k + 1]])
                    fuv.append([ti[0], ti[k], ti[k + 1]])
    return (
        np.array(pos, np.float64),
        np.array(uv, np.float64),
        np.array(fpos, np.int64),
        np.array(fuv, np.int64),
    )


def normalise_mesh(pos: np.ndarray):
    """Centre on the bounding-box centre, scale the largest side to 1, rotate +y up to +z up."""
    lo, hi = pos.min(0), pos.max(0)
    centre = 0.5 * (lo + hi)
    scale = 1.0 / float((hi - lo).max())
    rot = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # +90 deg about x
    return ((pos - centre) * scale) @ rot.T, centre, scale, rot


def vertex_normals(pos: np.ndarray, tri: np.ndarray) -> tuple[np.ndarray, float]:
    """Area-weighted smooth vertex normals, oriented outwards; also the signed volume."""
    a, b, c = pos[tri[:, 0]], pos[tri[:, 1]], pos[tri[:, 2]]
    fn = np.cross(b - a, c - a)  # length = 2 * area
    volume = float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)
    if volume < 0:  # clockwise winding: flip so that normals point outwards
        fn = -fn
    vn = np.zeros_like(pos)
    for k in range(3):
        np.add.at(vn, tri[:, k], fn)
    vn /= np.linalg.norm(vn, axis=1, keepdims=True)
    return vn, volume


# --------------------------------------------------------------------------- cameras


def look_at_c2w(eye: np.ndarray, target=np.zeros(3), up=np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """Camera-to-world matrix, OpenGL convention (camera looks down -z, +y up)."""
    back = eye - target
    back = back / np.linalg.norm(back)  # camera +z points away from the target
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    cam_up = np.cross(back, right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, cam_up, back, eye
    return m


def sph_to_cart(radius: float, az: float, el: float) -> np.ndarray:
    """Azimuth 0 is the +y axis (in front of the cow), growing counter-clockwise seen from +z."""
    return radius * np.array([-math.cos(el) * math.sin(az), math.cos(el) * math.cos(az), math.sin(el)])


def train_angles(n: int, el_min_deg: float, el_max_deg: float):
    """Fibonacci (golden-angle) spiral, uniform in area over the elevation band."""
    golden = math.pi * (3.0 - math.sqrt(5.0))
    s0, s1 = math.sin(math.radians(el_min_deg)), math.sin(math.radians(el_max_deg))
    out = []
    for i in range(n):
        el = math.asin(s0 + (s1 - s0) * (i + 0.5) / n)
        az = math.fmod(i * golden, 2.0 * math.pi)
        out.append((az, el))
    return out


def val_angles(n: int, el_min_deg: float, el_max_deg: float):
    """Evenly spaced azimuths offset by half a step, elevations sweeping the band."""
    out = []
    for k in range(n):
        az = 2.0 * math.pi * (k + 0.5) / n + math.radians(7.0)
        t = (k * 3 % n + 0.5) / n  # permuted so neighbouring azimuths get different elevations
        el = math.radians(el_min_deg + 5.0 + (el_max_deg - el_min_deg - 10.0) * t)
        out.append((az, el))
    return out


# --------------------------------------------------------------------------- rendering


def bilinear(tex: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup, OBJ convention (v = 0 is the bottom row), clamp to edge."""
    h, w = tex.shape[:2]
    x = uv[:, 0] * w - 0.5
    y = (1.0 - uv[:, 1]) * h - 0.5
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    fx = (x - x0)[:, None]
    fy = (y - y0)[:, None]
    x0c, x1c = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
    y0c, y1c = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    top = tex[y0c, x0c] * (1 - fx) + tex[y0c, x1c] * fx
    bot = tex[y1c, x0c] * (1 - fx) + tex[y1c, x1c] * fx
    return top * (1 - fy) + bot * fy


def render(c2w, focal, size, ss, pos, vn, uv, tri, tri_uv, tex, volume):
    """RGBA float image (straight alpha) rendered with ss x ss supersampling."""
    n = size * ss
    f = focal * ss
    c = 0.5 * n
    w2c = np.linalg.inv(c2w)
    pc = pos @ w2c[:3, :3].T + w2c[:3, 3]
    depth = -pc[:, 2]  # OpenGL camera looks down -z
    assert depth.min() > 0.1, "mesh crosses the near plane"
    sx = c + f * pc[:, 0] / depth
    sy = c - f * pc[:, 1] / depth  # image rows grow downwards
    invd = 1.0 / depth

    zbuf = np.zeros((n, n))  # stores 1/depth: larger is nearer, 0 is empty
    tbuf = np.full((n, n), -1, np.int64)

    ax, bx, cx_ = sx[tri[:, 0]], sx[tri[:, 1]], sx[tri[:, 2]]
    ay, by, cy_ = sy[tri[:, 0]], sy[tri[:, 1]], sy[tri[:, 2]]
    area = (bx - ax) * (cy_ - ay) - (by - ay) * (cx_ - ax)
    # With y pointing down, an outward-facing counter-clockwise (in world) triangle has
    # negative screen area.  Back faces of the closed mesh are culled.
    front = area < 0 if volume > 0 else area > 0
    xmin = np.maximum(np.ceil(np.minimum(np.minimum(ax, bx), cx_) - 0.5), 0).astype(np.int64)
    xmax = np.minimum(np.floor(np.maximum(np.maximum(ax, bx), cx_) - 0.5), n - 1).astype(np.int64)
    ymin = np.maximum(np.ceil(np.minimum(np.minimum(ay, by), cy_) - 0.5), 0).astype(np.int64)
    ymax = np.minimum(np.floor(np.maximum(np.maximum(ay, by), cy_) - 0.5), n - 1).astype(np.int64)

    for t in np.nonzero(front & (xmax >= xmin) & (ymax >= ymin) & (np.abs(area) > 1e-12))[0]:
        px = np.arange(xmin[t], xmax[t] + 1) + 0.5
        py = (np.arange(ymin[t], ymax[t] + 1) + 0.5)[:, None]
        inv_area = 1.0 / area[t]
        w0 = ((bx[t] - px) * (cy_[t] - py) - (by[t] - py) * (cx_[t] - px)) * inv_area
        w1 = ((cx_[t] - px) * (ay[t] - py) - (cy_[t] - py) * (ax[t] - px)) * inv_area
        w2 = 1.0 - w0 - w1
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        if not inside.any():
            continue
        i0, i1, i2 = tri[t]
        z = w0 * invd[i0] + w1 * invd[i1] + w2 * invd[i2]  # 1/depth is affine in screen space
        zs = zbuf[ymin[t] : ymax[t] + 1, xmin[t] : xmax[t] + 1]
        ts = tbuf[ymin[t] : ymax[t] + 1, xmin[t] : xmax[t] + 1]
        upd = inside & (z > zs)
        zs[upd] = z[upd]
        ts[upd] = t

    cov = tbuf >= 0
    yy, xx = np.nonzero(cov)
    t = tbuf[yy, xx]
    px, py = xx + 0.5, yy + 0.5
    i0, i1, i2 = tri[t, 0], tri[t, 1], tri[t, 2]
    inv_area = 1.0 / area[t]
    w0 = ((sx[i1] - px) * (sy[i2] - py) - (sy[i1] - py) * (sx[i2] - px)) * inv_area
    w1 = ((sx[i2] - px) * (sy[i0] - py) - (sy[i2] - py) * (sx[i0] - px)) * inv_area
    w2 = 1.0 - w0 - w1
    # perspective-correct weights
    p0, p1, p2 = w0 * invd[i0], w1 * invd[i1], w2 * invd[i2]
    s = p0 + p1 + p2
    p0, p1, p2 = (p0 / s)[:, None], (p1 / s)[:, None], (p2 / s)[:, None]
    uvs = p0 * uv[tri_uv[t, 0]] + p1 * uv[tri_uv[t, 1]] + p2 * uv[tri_uv[t, 2]]
    nrm = p0 * vn[i0] + p1 * vn[i1] + p2 * vn[i2]
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    light = LIGHT_DIR / np.linalg.norm(LIGHT_DIR)
    shade = AMBIENT + DIFFUSE * np.maximum(nrm @ light, 0.0)
    rgb = np.clip(bilinear(tex, uvs) * shade[:, None], 0.0, 1.0)

    img = np.zeros((n, n, 3))
    img[yy, xx] = rgb
    # box filter: premultiplied average, then back to straight alpha
    alpha = cov.reshape(size, ss, size, ss).mean(axis=(1, 3))
    prem = img.reshape(size, ss, size, ss, 3).mean(axis=(1, 3))
    straight = np.where(alpha[..., None] > 0, prem / np.maximum(alpha[..., None], 1e-12), 0.0)
    return np.concatenate([straight, alpha[..., None]], axis=-1)


def to_u8(rgba: np.ndarray) -> np.ndarray:
    out = np.clip(np.rint(rgba * 255.0), 0, 255).astype(np.uint8)
    out[out[..., 3] == 0, :3] = 0
    return out


# --------------------------------------------------------------------------- checks


def check_projection(c2w_gl, camera_angle_x, size, pos, rgba_u8, tol=2.0):
    """Project the vertices with an OpenCV pinhole built from the GL c2w; compare with alpha."""
    c2w_cv = c2w_gl @ np.diag([1.0, -1.0, -1.0, 1.0])
    viewmat = np.linalg.inv(c2w_cv)
    fx = 0.5 * size / math.tan(0.5 * camera_angle_x)
    cx = cy = 0.5 * size
    pc = pos @ viewmat[:3, :3].T + viewmat[:3, 3]
    assert (pc[:, 2] > 0).all()
    u = fx * pc[:, 0] / pc[:, 2] + cx
    v = fx * pc[:, 1] / pc[:, 2] + cy
    rows = np.nonzero(rgba_u8[..., 3].any(axis=1))[0]
    cols = np.nonzero(rgba_u8[..., 3].any(axis=0))[0]
    proj = np.array([u.min(), v.min(), u.max(), v.max()])
    mask = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float64)
    err = np.abs(proj - mask).max()
    assert err <= tol, f"projected bbox {proj} vs alpha bbox {mask}"
    assert mask.min() >= 2 and mask.max() <= size - 2, f"object touches the border: {mask}"
    return err, mask


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mesh-dir", default=os.path.join(REPO, "..", "shared", "data", "meshes", "spot-cow"))
    ap.add_argument("--out", default=os.path.join(REPO, "assets", "spot-cow"))
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--supersample", type=int, default=3)
    ap.add_argument("--camera-angle-x", type=float, default=0.69)
    ap.add_argument("--radius", type=float, default=2.2)
    ap.add_argument("--train", type=int, default=48)
    ap.add_argument("--val", type=int, default=8)
    ap.add_argument("--el-min", type=float, default=-20.0, help="degrees")
    ap.add_argument("--el-max", type=float, default=70.0, help="degrees")
    ap.add_argument("--contact-sheet", default=None, help="optional PNG path for a contact sheet of all views")
    args = ap.parse_args()

    pos, uv, tri, tri_uv = load_obj(os.path.join(args.mesh_dir, "cow.obj"))
    pos, centre, scale, _ = normalise_mesh(pos)
    vn, volume = vertex_normals(pos, tri)
    tex = np.asarray(Image.open(os.path.join(args.mesh_dir, "cow_texture.png")).convert("RGB"), np.float64) / 255.0
    print(f"mesh: {len(pos)} vertices, {len(tri)} triangles; centre {centre.tolist()}, scale {scale:.9f}")
    print(f"normalised bbox: {pos.min(0).round(4).tolist()} .. {pos.max(0).round(4).tolist()}")

    focal = 0.5 * args.size / math.tan(0.5 * args.camera_angle_x)
    splits = {
        "train": train_angles(args.train, args.el_min, args.el_max),
        "val": val_angles(args.val, args.el_min, args.el_max),
    }
    # validation views must not repeat a training viewpoint
    tdirs = np.array([sph_to_cart(1.0, a, e) for a, e in splits["train"]])
    for a, e in splits["val"]:
        d = sph_to_cart(1.0, a, e)
        ang = math.degrees(math.acos(min(1.0, float((tdirs @ d).max()))))
        taz = min(abs(math.remainder(a - ta, 2 * math.pi)) for ta, _ in splits["train"])
        assert ang > 3.0 and math.degrees(taz) > 0.5, (a, e, ang, taz)

    sheet = []
    fills = []
    for split, angles in splits.items():
        os.makedirs(os.path.join(args.out, split), exist_ok=True)
        frames = []
        for k, (az, el) in enumerate(angles):
            c2w = look_at_c2w(sph_to_cart(args.radius, az, el))
            rgba = to_u8(render(c2w, focal, args.size, args.supersample, pos, vn, uv, tri, tri_uv, tex, volume))
            err, mask = check_projection(c2w, args.camera_angle_x, args.size, pos, rgba)
            fills.append(max(mask[2] - mask[0], mask[3] - mask[1]) / args.size)
            Image.fromarray(rgba, "RGBA").save(os.path.join(args.out, split, f"r_{k}.png"), optimize=True)
            frames.append(
                {
                    "file_path": f"./{split}/r_{k}",
                    "transform_matrix": [[round(float(x), 9) for x in row] for row in c2w],
                }
            )
            sheet.append(rgba)
            print(
                f"{split}/r_{k}: az {math.degrees(az):7.2f} el {math.degrees(el):6.2f} "
                f"bbox {mask.astype(int).tolist()} proj-err {err:.2f}px",
                flush=True,
            )
        with open(os.path.join(args.out, f"transforms_{split}.json"), "w") as f:
            json.dump({"camera_angle_x": args.camera_angle_x, "frames": frames}, f, indent=4)
            f.write("\n")
    print(f"fill (largest alpha-bbox side / width): min {min(fills):.2f} mean {np.mean(fills):.2f} max {max(fills):.2f}")

    if args.contact_sheet:
        cols = 8
        rows = (len(sheet) + cols - 1) // cols
        canvas = np.full((rows * args.size, cols * args.size, 3), 255.0)
        chk = ((np.indices((args.size, args.size)).sum(0) // 8) % 2)[..., None] * 40.0 + 180.0
        for i, im in enumerate(sheet):
            r, c = divmod(i, cols)
            a = im[..., 3:4] / 255.0
            canvas[r * args.size : (r + 1) * args.size, c * args.size : (c + 1) * args.size] = (
                im[..., :3] * a + chk * (1 - a)
            )
        Image.fromarray(canvas.astype(np.uint8)).save(args.contact_sheet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
