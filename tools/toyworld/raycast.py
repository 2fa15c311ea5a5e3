"""Vectorised numpy renderer for the toy world: analytic ray casting of primitives plus a
z-buffer rasterizer for triangle meshes (Spot the cow), merged by depth.

Conventions (the same as splatdream's `splat::Camera`):

* a camera is OpenCV: world→camera ``viewmat`` (4×4, x right, y down, z forward) and
  ``K = [[f, 0, W/2], [0, f, H/2], [0, 0, 1]]`` in continuous pixel coordinates (pixel ``i``
  covers ``[i, i + 1)``);
* depth is camera-space z (the ray direction has camera z = 1, so the ray parameter is the depth).

A primitive is a unit shape in its local frame mapped to the world by ``p = A q + t``
(usually ``A = R · diag(S)``, a rotation and half-sizes):

* ``sphere``: |q| ≤ 1;
* ``box``: q ∈ [−1, 1]³;
* ``frustum``: a cone frustum along local z ∈ [−1, 1] with radius ``r0`` at z = −1 and ``r1``
  at z = +1 (``r0 = r1 = 1`` is a cylinder, ``r1 = 0`` a cone), capped.

Shading is Lambert with a key and a fill light fixed in the world, so a colour seen from two
cameras is the same surface colour (what a splat with SH degree 0 can represent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# World-space light directions (towards the light): key above front-right, fill behind-left.
KEY = np.array([0.45, 0.35, 0.82]) / np.linalg.norm([0.45, 0.35, 0.82])
FILL = np.array([-0.55, -0.45, 0.25]) / np.linalg.norm([-0.55, -0.45, 0.25])
AMBIENT, KEY_W, FILL_W = 0.42, 0.50, 0.18

INF = np.inf


@dataclass
class Prim:
    """One analytic primitive: kind, local→world linear map A (3×3), centre t (3), albedo (3)."""

    kind: str
    A: np.ndarray
    t: np.ndarray
    albedo: np.ndarray
    r0: float = 1.0
    r1: float = 1.0

    def corners(self) -> np.ndarray:
        """The 8 corners of the local unit box mapped to the world (a conservative bound)."""
        c = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], np.float64)
        return c @ self.A.T + self.t


@dataclass
class Mesh:
    """A triangle mesh: vertex positions (V, 3), smooth normals (V, 3), triangles (T, 3) and
    per-vertex albedo (V, 3)."""

    pos: np.ndarray
    nrm: np.ndarray
    tri: np.ndarray
    albedo: np.ndarray


@dataclass
class Scene:
    prims: list[Prim] = field(default_factory=list)
    meshes: list[Mesh] = field(default_factory=list)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        pts = [p.corners() for p in self.prims] + [m.pos for m in self.meshes]
        allp = np.concatenate(pts, 0)
        return allp.min(0), allp.max(0)

    def transformed(self, scale: float, offset: np.ndarray) -> "Scene":
        """Every primitive and mesh scaled by `scale` about the origin, then moved by `offset`."""
        prims = [
            Prim(p.kind, p.A * scale, p.t * scale + offset, p.albedo, p.r0, p.r1) for p in self.prims
        ]
        meshes = [Mesh(m.pos * scale + offset, m.nrm, m.tri, m.albedo) for m in self.meshes]
        return Scene(prims, meshes)


def rot(axis: str, deg: float) -> np.ndarray:
    """Rotation matrix about a world axis by `deg` degrees (right-handed)."""
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], np.float64)
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], np.float64)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float64)


# --------------------------------------------------------------------------- cameras


def look_at(eye, target, fov_deg: float, size: int):
    """OpenCV world→camera matrix and focal length of a square camera, as
    `splat::Camera::look_at(eye, target, Vec3::Z, fov, size, size)` builds them."""
    eye, target = np.asarray(eye, np.float64), np.asarray(target, np.float64)
    fwd = target - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    r = np.stack([right, down, fwd])
    view = np.eye(4)
    view[:3, :3] = r
    view[:3, 3] = -r @ eye
    focal = 0.5 * size / math.tan(0.5 * math.radians(fov_deg))
    return view, focal


def camera_eye(azimuth_deg: float, elevation_deg: float, radius: float, target=(0.0, 0.0, 0.0)):
    """`distill::cameras::CameraConfig::at`: azimuth 0 on +x, counter-clockwise seen from +z."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return np.asarray(target, np.float64) + radius * np.array(
        [math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)]
    )


# --------------------------------------------------------------------------- intersections


def _hit_sphere(o, d):
    a = (d * d).sum(1)
    b = 2 * (o * d).sum(1)
    c = (o * o).sum(1) - 1
    disc = b * b - 4 * a * c
    ok = disc >= 0
    sq = np.sqrt(np.where(ok, disc, 0))
    s = (-b - sq) / (2 * a)
    s = np.where(ok & (s > 1e-6), s, INF)
    p = o + s[:, None] * d
    return s, np.where(np.isfinite(s)[:, None], p, 0.0)


def _hit_box(o, d):
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / np.where(np.abs(d) < 1e-12, 1e-12, d)
        t1 = (-1 - o) * inv
        t2 = (1 - o) * inv
    tn = np.minimum(t1, t2)
    tf = np.maximum(t1, t2)
    tmin = tn.max(1)
    tmax = tf.min(1)
    hit = (tmax >= tmin) & (tmin > 1e-6)
    s = np.where(hit, tmin, INF)
    axis = tn.argmax(1)
    n = np.zeros_like(o)
    rows = np.arange(len(o))
    n[rows, axis] = -np.sign(d[rows, axis])
    return s, n


def _hit_frustum(o, d, r0, r1):
    a_ = 0.5 * (r0 + r1)
    b_ = 0.5 * (r1 - r0)
    A = d[:, 0] ** 2 + d[:, 1] ** 2 - (b_ * d[:, 2]) ** 2
    ra = a_ + b_ * o[:, 2]
    B = 2 * (o[:, 0] * d[:, 0] + o[:, 1] * d[:, 1] - b_ * d[:, 2] * ra)
    C = o[:, 0] ** 2 + o[:, 1] ** 2 - ra**2
    best = np.full(len(o), INF)
    nrm = np.zeros_like(o)
    disc = B * B - 4 * A * C
    ok = (disc >= 0) & (np.abs(A) > 1e-12)
    sq = np.sqrt(np.where(ok, disc, 0))
    Asafe = np.where(np.abs(A) > 1e-12, A, 1.0)
    for sign in (-1.0, 1.0):
        s = (-B + sign * sq) / (2 * Asafe)
        p = o + s[:, None] * d
        z = p[:, 2]
        rz = a_ + b_ * z
        good = ok & (s > 1e-6) & (np.abs(z) <= 1) & (rz >= 0) & (s < best)
        best = np.where(good, s, best)
        n = np.stack([p[:, 0], p[:, 1], -b_ * rz], 1)
        nrm = np.where(good[:, None], n, nrm)
    for zc, rc, nz in ((-1.0, r0, -1.0), (1.0, r1, 1.0)):
        if rc <= 0:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (zc - o[:, 2]) / np.where(np.abs(d[:, 2]) < 1e-12, 1e-12, d[:, 2])
        p = o + s[:, None] * d
        good = (s > 1e-6) & (p[:, 0] ** 2 + p[:, 1] ** 2 <= rc * rc) & (s < best)
        best = np.where(good, s, best)
        nrm = np.where(good[:, None], np.array([0.0, 0.0, nz]), nrm)
    return best, nrm


def _cast_prim(prim: Prim, origin, dirs):
    """Depth (ray parameter) and world normal of the first hit of every ray on one primitive."""
    inv = np.linalg.inv(prim.A)  # world → local
    o = (origin - prim.t) @ inv.T
    d = dirs @ inv.T
    o = np.broadcast_to(o, d.shape)
    if prim.kind == "sphere":
        s, n = _hit_sphere(o, d)
    elif prim.kind == "box":
        s, n = _hit_box(o, d)
    elif prim.kind == "frustum":
        s, n = _hit_frustum(o, d, prim.r0, prim.r1)
    else:
        raise ValueError(f"unknown primitive kind {prim.kind!r}")
    nw = n @ inv  # normals map by A⁻ᵀ
    nw /= np.maximum(np.linalg.norm(nw, axis=1, keepdims=True), 1e-12)
    return s, nw


def _raster_mesh(mesh: Mesh, view, focal, n, depth, normal, albedo):
    """Z-buffer rasterization of a mesh into the (n·n) buffers (in place), nearest depth wins."""
    pc = mesh.pos @ view[:3, :3].T + view[:3, 3]
    z = pc[:, 2]
    if z.min() <= 0.05:
        raise ValueError("mesh crosses the near plane")
    c = 0.5 * n
    sx = c + focal * pc[:, 0] / z
    sy = c + focal * pc[:, 1] / z
    invz = 1.0 / z
    tri = mesh.tri
    ax, bx, cx = sx[tri[:, 0]], sx[tri[:, 1]], sx[tri[:, 2]]
    ay, by, cy = sy[tri[:, 0]], sy[tri[:, 1]], sy[tri[:, 2]]
    area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    xmin = np.maximum(np.ceil(np.minimum(np.minimum(ax, bx), cx) - 0.5), 0).astype(np.int64)
    xmax = np.minimum(np.floor(np.maximum(np.maximum(ax, bx), cx) - 0.5), n - 1).astype(np.int64)
    ymin = np.maximum(np.ceil(np.minimum(np.minimum(ay, by), cy) - 0.5), 0).astype(np.int64)
    ymax = np.minimum(np.floor(np.maximum(np.maximum(ay, by), cy) - 0.5), n - 1).astype(np.int64)
    dbuf = depth.reshape(n, n)
    tbuf = np.full((n, n), -1, np.int64)
    live = np.nonzero((xmax >= xmin) & (ymax >= ymin) & (np.abs(area) > 1e-12))[0]
    for t in live:
        px = np.arange(xmin[t], xmax[t] + 1) + 0.5
        py = (np.arange(ymin[t], ymax[t] + 1) + 0.5)[:, None]
        ia = 1.0 / area[t]
        w0 = ((bx[t] - px) * (cy[t] - py) - (by[t] - py) * (cx[t] - px)) * ia
        w1 = ((cx[t] - px) * (ay[t] - py) - (cy[t] - py) * (ax[t] - px)) * ia
        w2 = 1.0 - w0 - w1
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        if not inside.any():
            continue
        i0, i1, i2 = tri[t]
        zz = 1.0 / np.maximum(w0 * invz[i0] + w1 * invz[i1] + w2 * invz[i2], 1e-12)
        ds = dbuf[ymin[t] : ymax[t] + 1, xmin[t] : xmax[t] + 1]
        ts = tbuf[ymin[t] : ymax[t] + 1, xmin[t] : xmax[t] + 1]
        upd = inside & (zz < ds)
        ds[upd] = zz[upd]
        ts[upd] = t
    yy, xx = np.nonzero(tbuf >= 0)
    if len(yy) == 0:
        return
    t = tbuf[yy, xx]
    px, py = xx + 0.5, yy + 0.5
    i0, i1, i2 = tri[t, 0], tri[t, 1], tri[t, 2]
    ia = 1.0 / area[t]
    w0 = ((sx[i1] - px) * (sy[i2] - py) - (sy[i1] - py) * (sx[i2] - px)) * ia
    w1 = ((sx[i2] - px) * (sy[i0] - py) - (sy[i2] - py) * (sx[i0] - px)) * ia
    w2 = 1.0 - w0 - w1
    p0, p1, p2 = w0 * invz[i0], w1 * invz[i1], w2 * invz[i2]
    s = p0 + p1 + p2
    p0, p1, p2 = (p0 / s)[:, None], (p1 / s)[:, None], (p2 / s)[:, None]
    flat = yy * n + xx
    nn = p0 * mesh.nrm[i0] + p1 * mesh.nrm[i1] + p2 * mesh.nrm[i2]
    normal[flat] = nn / np.maximum(np.linalg.norm(nn, axis=1, keepdims=True), 1e-12)
    albedo[flat] = p0 * mesh.albedo[i0] + p1 * mesh.albedo[i1] + p2 * mesh.albedo[i2]


def render(scene: Scene, view: np.ndarray, focal: float, size: int, ss: int = 3) -> np.ndarray:
    """RGBA float image (size × size × 4, straight alpha, linear-free sRGB-ish values in [0, 1])
    of `scene` from an OpenCV camera, with ss × ss supersampling and a box filter."""
    n = size * ss
    f = focal * ss
    ii = (np.arange(n) + 0.5 - 0.5 * n) / f
    xs, ys = np.meshgrid(ii, ii)  # xs varies along columns (image x), ys along rows (image y)
    dcam = np.stack([xs.ravel(), ys.ravel(), np.ones(n * n)], 1)
    r = view[:3, :3]
    origin = -r.T @ view[:3, 3]
    dirs = dcam @ r  # camera → world: rᵀ · dcam (row vectors)
    depth = np.full(n * n, INF)
    normal = np.zeros((n * n, 3))
    albedo = np.zeros((n * n, 3))
    for prim in scene.prims:
        s, nw = _cast_prim(prim, origin, dirs)
        upd = s < depth
        depth = np.where(upd, s, depth)
        normal[upd] = nw[upd]
        albedo[upd] = prim.albedo
    for mesh in scene.meshes:
        _raster_mesh(mesh, view, f, n, depth, normal, albedo)
    cov = np.isfinite(depth)
    # normals face the camera
    facing = (normal * dirs).sum(1) > 0
    normal[facing] *= -1
    shade = AMBIENT + KEY_W * np.maximum(normal @ KEY, 0) + FILL_W * np.maximum(normal @ FILL, 0)
    rgb = np.clip(albedo * shade[:, None], 0, 1) * cov[:, None]
    alpha = cov.reshape(size, ss, size, ss).mean(axis=(1, 3))
    prem = rgb.reshape(size, ss, size, ss, 3).mean(axis=(1, 3))
    straight = np.where(alpha[..., None] > 0, prem / np.maximum(alpha[..., None], 1e-12), 0.0)
    return np.concatenate([straight, alpha[..., None]], -1)


def to_u8(rgba: np.ndarray) -> np.ndarray:
    """Quantise an RGBA float image; fully transparent pixels get RGB 0."""
    out = np.clip(np.rint(rgba * 255.0), 0, 255).astype(np.uint8)
    out[out[..., 3] == 0, :3] = 0
    return out


def over_white(rgba_u8: np.ndarray) -> np.ndarray:
    """Composite a u8 RGBA image over a white background (float RGB in [0, 1])."""
    a = rgba_u8[..., 3:4] / 255.0
    return rgba_u8[..., :3] / 255.0 * a + (1 - a)
