#!/usr/bin/env python3
"""Reference-fixture generator for the Gaussian-splat rasterizer tests.

What it does
------------
Builds a fixed set of small, deterministic 3D-Gaussian-splatting scenes, renders
each one with a float64 re-implementation of gsplat's "classic" forward
rasterizer, back-propagates a random linear loss through the whole pipeline
with torch autograd, and writes one ``<case>.safetensors`` file per scene plus a
``README.md`` describing every case.  The Rust rasterizer (float32) is tested
against these files.

Pipeline (all float64, torch autograd end to end):

* ``in.quats`` (wxyz, not normalised) / ``exp(in.log_scales)`` -> 3D covariance
  via ``gsplat.cuda._torch_impl._quat_scale_to_covar_preci``;
* EWA projection via ``_fully_fused_projection`` (eps2d=0.3, near=0.01,
  far=1e10; FOV-clamped Jacobian; radius = ceil(3.33*sqrt(cov2d_ii)));
  optional "antialiased" compensation multiplies the opacity;
* colours either used as given (``in.colors``) or from SH via
  ``_spherical_harmonics`` with ``max(sh + 0.5, 0)``;
* tile binning (16x16) via ``_isect_tiles`` / ``_isect_offset_encode``;
* per-pixel front-to-back compositing written here, following
  ``gsplat/cuda/csrc/RasterizeToPixels3DGSFwd.cu`` (gsplat's own torch
  compositor needs CUDA + nerfacc):
  ``delta = mean2d - pixel_centre``,
  ``sigma = 0.5*(a*dx^2 + c*dy^2) + b*dx*dy``,
  ``alpha = min(0.999, o*exp(-sigma))``, skip if ``sigma < 0`` or
  ``alpha < 1/255``, stop *before* a Gaussian whose ``next_T <= 1e-4``.

Loss: ``L = sum(rgb*G) + sum(alpha*H) + sum(depth_accum*D)``; gradients are
w.r.t. every raw input (means, raw quats, log-scales, opacity logits,
colours/SH) and w.r.t. the projected 2D means.

Robustness: the Rust side is float32 and is compared with tolerance
``1e-4*max|ref| + 1e-5``, so every discontinuous decision in every scene is
kept away from its threshold (see ``analyse()``); offending Gaussians are
re-drawn deterministically until the scene is clean.  As a final guard each
case is re-rendered end to end in float32 (its own float32 decisions) and
compared with the float64 reference under the Rust tolerance.

How to run
----------
From the repository root::

    python3 tools/gen_raster_cases.py --out tests/cases/raster
    python3 tools/gen_raster_cases.py --out /tmp/x --only dense_tile
    python3 tools/gen_raster_cases.py --out /tmp/x --fd-check   # + finite differences

Output is deterministic (fixed seeds, CPU, float64).  CPU only; no CUDA needed.

Pinned versions (see tools/requirements.txt)
--------------------------------------------
Python 3.11, torch==2.15.0, gsplat==1.5.3, numpy==2.4.6, safetensors==0.8.0.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from typing import Callable, Dict, List, Optional

import gsplat
import numpy as np
import torch
from safetensors.torch import save_file

# gsplat's pure-PyTorch reference functions (importable without CUDA).
from gsplat.cuda._torch_impl import (
    _fully_fused_projection,
    _isect_offset_encode,
    _isect_tiles,
    _quat_scale_to_covar_preci,
    _spherical_harmonics,
)

# --------------------------------------------------------------------------
# Constants of gsplat's classic rasterizer.  The compositing thresholds are
# float32 literals in the CUDA kernel; we use their exact float32 values.
# --------------------------------------------------------------------------
TILE_SIZE = 16
EPS2D = 0.3
NEAR_PLANE = 0.01
FAR_PLANE = 1e10
EXTEND = 3.33  # radius = ceil(EXTEND * sqrt(cov2d_ii))
ALPHA_THRESHOLD = float(np.float32(1.0 / 255.0))  # ALPHA_THRESHOLD (1.f / 255.f)
ALPHA_MAX = float(np.float32(0.999))  # min(0.999f, ...)
T_EPS = float(np.float32(1e-4))  # next_T <= 1e-4f -> stop

# Robustness margins (see analyse()).
MARGIN = 1e-3  # general relative / absolute margin requested for all decisions
CLAMP_ABOVE_MARGIN = 2e-4  # o*exp(-sigma) above 0.999 can exceed it by <= 0.1%
DEPTH_GAP_REL = 1e-4  # min relative depth gap between Gaussians sharing a tile
SIGMA_CANCEL = 1e-3  # sigma >= SIGMA_CANCEL * (sum of |terms|): float32 cannot flip its sign
AA_DECORRELATION = 1e-3  # antialiased: det(cov2d)/(cov_xx*cov_yy) lower bound
COND2D_MAX = 500.0  # max eigenvalue ratio of the blurred 2D covariance (float32 conditioning)

# Tolerance used by the Rust tests; the float32 self-check uses it too.
TOL_REL = 1e-4
TOL_ABS = 1e-5

# The float32 emulation must stay within this fraction of the tolerance, leaving
# headroom for a float32 implementation that rounds differently.
F32_HEADROOM = 0.5

SH_K = 16  # coefficients stored per Gaussian (degree 3)


# ==========================================================================
# Camera
# ==========================================================================
def rotation_from_axis_angle(axis_angle) -> np.ndarray:
    """Rodrigues' formula."""
    v = np.asarray(axis_angle, dtype=np.float64)
    theta = np.linalg.norm(v)
    if theta == 0.0:
        return np.eye(3)
    k = v / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(theta) * kx + (1 - math.cos(theta)) * kx @ kx


@dataclasses.dataclass
class Camera:
    """OpenCV pinhole camera: +x right, +y down, +z forward."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    R: np.ndarray  # world -> camera rotation
    t: np.ndarray  # world -> camera translation

    @staticmethod
    def make(width, height, fx, fy=None, cx=None, cy=None, axis_angle=(0, 0, 0), position=(0, 0, 0)):
        """Camera at world `position` with camera->world rotation exp(axis_angle)."""
        fy = fx if fy is None else fy
        cx = width / 2.0 if cx is None else cx
        cy = height / 2.0 if cy is None else cy
        R_c2w = rotation_from_axis_angle(axis_angle)
        R = R_c2w.T
        t = -R @ np.asarray(position, dtype=np.float64)
        return Camera(width, height, float(fx), float(fy), float(cx), float(cy), R, t)

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    @property
    def viewmat(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = self.R
        m[:3, 3] = self.t
        return m

    @property
    def position(self) -> np.ndarray:
        return -self.R.T @ self.t

    def fov_limits(self):
        """The Jacobian clamp limits of gsplat's persp_proj (on x/z and y/z)."""
        tan_fovx = 0.5 * self.width / self.fx
        tan_fovy = 0.5 * self.height / self.fy
        return dict(
            x_pos=(self.width - self.cx) / self.fx + 0.3 * tan_fovx,
            x_neg=self.cx / self.fx + 0.3 * tan_fovx,
            y_pos=(self.height - self.cy) / self.fy + 0.3 * tan_fovy,
            y_neg=self.cy / self.fy + 0.3 * tan_fovy,
        )

    def unproject(self, u, v, z) -> np.ndarray:
        """World points whose projection is pixel coords (u, v) at camera depth z."""
        u, v, z = np.broadcast_arrays(np.asarray(u, float), np.asarray(v, float), np.asarray(z, float))
        p_cam = np.stack([(u - self.cx) / self.fx * z, (v - self.cy) / self.fy * z, z], -1)
        return self.cam_to_world(p_cam)

    def cam_to_world(self, p_cam) -> np.ndarray:
        return (np.asarray(p_cam) - self.t) @ self.R  # R^T (p - t), row-vector form

    @property
    def tiles(self):
        return math.ceil(self.width / TILE_SIZE), math.ceil(self.height / TILE_SIZE)


# ==========================================================================
# Case specification and random Gaussian helpers
# ==========================================================================
DrawFn = Callable[[np.random.Generator, np.ndarray], Dict[str, np.ndarray]]


@dataclasses.dataclass
class CaseSpec:
    name: str
    covers: str  # which edge case it covers (goes to the README)
    camera: Camera
    n: int
    draw: DrawFn  # draw(rng, indices) -> per-Gaussian parameter arrays
    seed: int
    color_mode: str = "colors"  # "colors" or "sh"
    sh_degree: Optional[int] = None  # stored as in.sh_degree when not None
    antialiased: Optional[bool] = None  # stored as in.antialiased when not None
    background: tuple = (0.25, 0.5, 0.75)
    random_depth_cotangent: bool = False
    # Assertion on the statistics that the intended edge case is really hit.
    coverage: Optional[Callable[[dict], bool]] = None

    @property
    def effective_sh_degree(self) -> int:
        return 3 if self.sh_degree is None else self.sh_degree

    @property
    def is_antialiased(self) -> bool:
        return bool(self.antialiased)


def random_quats(rng, n):
    """Random rotations as *non-normalised* wxyz quaternions (norm in [0.5, 2])."""
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q * rng.uniform(0.5, 2.0, size=(n, 1))


def logit(p):
    p = np.asarray(p, dtype=np.float64)
    return np.log(p) - np.log1p(-p)


def appearance(rng, n, mode):
    """Random colours (slightly outside [0, 1]: no clamping) or SH coefficients."""
    if mode == "colors":
        return {"colors": rng.uniform(-0.1, 1.1, size=(n, 3))}
    sh = np.empty((n, SH_K, 3))
    sh[:, 0, :] = rng.normal(0.0, 0.8, size=(n, 3))
    sh[:, 1:, :] = rng.normal(0.0, 0.25, size=(n, SH_K - 1, 3))
    return {"sh": sh}


def splats_at_pixels(rng, cam, mode, u, v, z, scale_px, logits):
    """Gaussians centred at pixel coords (u, v), camera depth z, with per-axis
    standard deviations `scale_px` expressed in pixels at that depth."""
    n = len(u)
    scale_world = np.asarray(scale_px) * (np.asarray(z)[:, None] / cam.fx)
    out = {
        "means": cam.unproject(u, v, z),
        "quats": random_quats(rng, n),
        "log_scales": np.log(scale_world),
        "opacity_logits": np.asarray(logits, dtype=np.float64),
    }
    out.update(appearance(rng, n, mode))
    return out


def concat_draws(parts: List[Dict[str, np.ndarray]], order: np.ndarray) -> Dict[str, np.ndarray]:
    """Concatenate group-wise draws and restore the original index order."""
    keys = parts[0].keys()
    cat = {k: np.concatenate([p[k] for p in parts], 0) for k in keys}
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    return {k: v[inv] for k, v in cat.items()}


def grouped_draw(groups: Dict[str, Callable], group_of: Callable[[np.ndarray], np.ndarray]) -> DrawFn:
    """Build a draw function from per-group samplers; group_of(idx) names the group."""

    def draw(rng, idx):
        idx = np.asarray(idx)
        g = group_of(idx)
        parts, order = [], []
        for name, sampler in groups.items():
            sel = np.nonzero(g == name)[0]
            if len(sel):
                parts.append(sampler(rng, len(sel)))
                order.append(sel)
        return concat_draws(parts, np.concatenate(order))

    return draw


def log_uniform(rng, lo, hi, size):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size=size))


# ==========================================================================
# Forward pipeline (projection + colours), differentiable, any float dtype
# ==========================================================================
def to_torch(params: Dict[str, np.ndarray], dtype, requires_grad: bool):
    return {k: torch.tensor(v, dtype=dtype, requires_grad=requires_grad) for k, v in params.items()}


def project(p: Dict[str, torch.Tensor], spec: CaseSpec):
    """Projection, opacity and colour of every Gaussian (gsplat classic mode)."""
    cam = spec.camera
    dtype = p["means"].dtype
    scales = torch.exp(p["log_scales"])
    covars, _ = _quat_scale_to_covar_preci(p["quats"], scales, compute_covar=True, compute_preci=False)
    viewmat = torch.tensor(cam.viewmat, dtype=dtype)[None]
    K = torch.tensor(cam.K, dtype=dtype)[None]
    radii, means2d, depths, conics, comps = _fully_fused_projection(
        p["means"], covars, viewmat, K, cam.width, cam.height,
        eps2d=EPS2D, near_plane=NEAR_PLANE, far_plane=FAR_PLANE,
        calc_compensations=spec.is_antialiased,
    )
    opacities = torch.sigmoid(p["opacity_logits"])
    if spec.is_antialiased:
        opacities = opacities * comps[0]
    sh_raw = None
    if "sh" in p:
        campos = torch.tensor(cam.position, dtype=dtype)  # -R^T t
        dirs = p["means"] - campos
        sh_raw = _spherical_harmonics(spec.effective_sh_degree, dirs, p["sh"])
        colors = torch.clamp_min(sh_raw + 0.5, 0.0)
    else:
        colors = p["colors"]
    return dict(
        radii=radii,  # [1, N, 2] int32
        means2d=means2d,  # [1, N, 2]  (kept batched: retain_grad target)
        depths=depths,  # [1, N]
        conics=conics[0],  # [N, 3]
        compensations=None if comps is None else comps[0],
        opacities=opacities,  # [N], compensation included
        colors=colors,  # [N, 3]
        sh_raw=sh_raw,  # [N, 3] (before +0.5 / clamp) or None
    )


# ==========================================================================
# Discrete analysis: tiles, per-pixel contributor lists, robustness checks
# ==========================================================================
def frac_dist_to_int(x):
    return np.abs(x - np.round(x))


def analyse(proj, spec: CaseSpec, params: Dict[str, np.ndarray], check: bool):
    """Replays the CUDA kernel's decisions without gradients.

    Returns (pixel_lists, stats, offenders): pixel_lists[pix] is the ordered
    array of Gaussian ids that contribute to pixel `pix` (row-major).  When
    `check` is set, every discontinuous decision is tested against its margin
    and the Gaussians responsible for a violation are returned in `offenders`
    (dict id -> set of reasons).  Decisions use the dtype of `proj`.
    """
    cam = spec.camera
    W, H = cam.width, cam.height
    tw, th = cam.tiles
    np_dtype = np.float64 if proj["means2d"].dtype == torch.float64 else np.float32

    radii_t = proj["radii"]
    means2d_t = proj["means2d"].detach()
    depths_t = proj["depths"].detach()
    radii = radii_t[0].numpy().astype(np.int64)
    m2 = means2d_t[0].numpy()
    z = depths_t[0].numpy()
    conic = proj["conics"].detach().numpy()
    opac = proj["opacities"].detach().numpy()
    N = len(z)
    visible = (radii > 0).all(1)

    offenders: Dict[int, set] = {}
    margins: Dict[str, float] = {}

    def blame(ids, reason):
        for i in np.atleast_1d(ids):
            offenders.setdefault(int(i), set()).add(reason)

    def record(name, values, threshold, ids):
        """Track the smallest margin seen; blame ids whose margin < threshold."""
        values = np.asarray(values, dtype=np.float64)
        if values.size == 0:
            return
        margins[name] = min(margins.get(name, np.inf), float(values.min()))
        bad = values < threshold
        if bad.any():
            blame(np.asarray(ids)[bad], name)

    # ---------------- per-Gaussian checks (projection / binning) ----------------
    stats = {}
    p64 = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    mean_c = p64["means"] @ cam.R.T + cam.t
    lims = cam.fov_limits()
    valid_z = z > NEAR_PLANE
    a, b, c = conic[:, 0].astype(np.float64), conic[:, 1].astype(np.float64), conic[:, 2].astype(np.float64)
    det_c = a * c - b * b
    with np.errstate(divide="ignore", invalid="ignore"):
        cov_xx = c / det_c  # blurred 2D covariance recovered from the conic
        cov_yy = a / det_c
        cov_xy = -b / det_c

    # CUDA opacity-aware bbox (ProjectionEWA3DGSFused.cu), reported as extra meta.
    with np.errstate(divide="ignore", invalid="ignore"):
        extend_oa = np.minimum(EXTEND, np.sqrt(2.0 * np.log(opac.astype(np.float64) / ALPHA_THRESHOLD)))
    opac_cull_oa = opac < ALPHA_THRESHOLD

    if check:
        all_ids = np.arange(N)
        record("near_plane_abs", np.abs(z.astype(np.float64) - NEAR_PLANE), MARGIN, all_ids)
        record("depth_abs", np.abs(z.astype(np.float64)), 1e-3, all_ids)
        vz = np.nonzero(valid_z)[0]
        u = mean_c[vz, 0] / mean_c[vz, 2]
        v = mean_c[vz, 1] / mean_c[vz, 2]
        fov = np.minimum.reduce([
            np.abs(u / lims["x_pos"] - 1), np.abs(-u / lims["x_neg"] - 1),
            np.abs(v / lims["y_pos"] - 1), np.abs(-v / lims["y_neg"] - 1),
        ])
        record("fov_clamp_rel", fov, MARGIN, vz)
        # Radius = ceil(extend * sqrt(cov)): the ceil argument must not sit on an integer.
        for tag, ext in (("", np.full(N, EXTEND)), ("_oa", extend_oa)):
            sel = vz if tag == "" else vz[~opac_cull_oa[vz]]
            rx_arg = ext[sel] * np.sqrt(cov_xx[sel])
            ry_arg = ext[sel] * np.sqrt(cov_yy[sel])
            record("radius_ceil" + tag, np.minimum(frac_dist_to_int(rx_arg), frac_dist_to_int(ry_arg)), MARGIN, sel)
            rx, ry = np.ceil(rx_arg), np.ceil(ry_arg)
            mx, my = m2[sel, 0].astype(np.float64), m2[sel, 1].astype(np.float64)
            # image-border culling (mean +- r vs 0 / W / H) and tile-boundary crossings
            edges = np.minimum.reduce([
                np.abs(mx + rx), np.abs(mx - rx - W), np.abs(my + ry), np.abs(my - ry - H),
                frac_dist_to_int((mx - rx) / TILE_SIZE) * TILE_SIZE,
                frac_dist_to_int((mx + rx) / TILE_SIZE) * TILE_SIZE,
                frac_dist_to_int((my - ry) / TILE_SIZE) * TILE_SIZE,
                frac_dist_to_int((my + ry) / TILE_SIZE) * TILE_SIZE,
            ])
            record("bbox_edges" + tag, edges, MARGIN, sel)
        # CUDA culls when the effective opacity < 1/255.
        record("opacity_cull_rel", np.abs(opac[vz] / ALPHA_THRESHOLD - 1), MARGIN, vz)
        # Ill-conditioned 2D covariances lose too many digits in float32
        # (conic = inverse with a cancelling determinant).
        vis = np.nonzero(visible)[0]
        tr, dt = cov_xx[vis] + cov_yy[vis], cov_xx[vis] * cov_yy[vis] - cov_xy[vis] ** 2
        disc = np.sqrt(np.maximum(tr * tr / 4 - dt, 0))
        cond = (tr / 2 + disc) / (tr / 2 - disc)
        record("cond2d_inv", 1.0 / cond, 1.0 / COND2D_MAX, vis)
        if spec.is_antialiased:
            cxx0, cyy0 = cov_xx[vis] - EPS2D, cov_yy[vis] - EPS2D
            decor = (cxx0 * cyy0 - cov_xy[vis] ** 2) / (cxx0 * cyy0)
            record("aa_decorrelation", decor, AA_DECORRELATION, vis)
        if proj["sh_raw"] is not None:
            vis = np.nonzero(visible)[0]
            col = proj["sh_raw"].detach().numpy()[vis] + 0.5
            record("sh_clamp_abs", np.abs(col).min(1), MARGIN, vis)

    # ---------------- tile binning (gsplat torch reference) ----------------
    _, isect_ids, flatten_ids = _isect_tiles(means2d_t, radii_t, depths_t, TILE_SIZE, tw, th)
    offsets = _isect_offset_encode(isect_ids, 1, tw, th).flatten().numpy()
    flatten_ids = flatten_ids.numpy().astype(np.int64)
    n_isects = len(flatten_ids)
    ends = np.append(offsets[1:], n_isects)

    # ---------------- per-tile, per-pixel compositing decisions ----------------
    pixel_lists: List[np.ndarray] = [np.zeros(0, np.int64)] * (W * H)
    f = np_dtype
    thr, amax, teps = f(ALPHA_THRESHOLD), f(ALPHA_MAX), f(T_EPS)
    n_contrib = n_early = n_clamped = n_skip_low = 0
    max_tile = 0
    for tile in range(tw * th):
        ids = flatten_ids[offsets[tile]:ends[tile]]
        M = len(ids)
        max_tile = max(max_tile, M)
        if M == 0:
            continue
        if check:
            d = z[ids].astype(np.float64)
            assert np.all(np.diff(d) >= 0), "tile list not depth sorted"
            gaps = np.diff(d) / np.maximum(np.abs(d[1:]), 1e-12)
            record("depth_gap_rel", gaps, DEPTH_GAP_REL, ids[1:])
        ty, tx = divmod(tile, tw)
        ii, jj = np.meshgrid(np.arange(ty * TILE_SIZE, min((ty + 1) * TILE_SIZE, H)),
                             np.arange(tx * TILE_SIZE, min((tx + 1) * TILE_SIZE, W)), indexing="ij")
        ii, jj = ii.ravel(), jj.ravel()
        px = (jj.astype(f) + f(0.5))[:, None]
        py = (ii.astype(f) + f(0.5))[:, None]
        dx = m2[ids, 0][None, :] - px  # delta = mean - pixel (CUDA sign)
        dy = m2[ids, 1][None, :] - py
        ca, cb, cc = conic[ids, 0][None], conic[ids, 1][None], conic[ids, 2][None]
        sigma = f(0.5) * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
        raw = opac[ids][None] * np.exp(-sigma)
        alpha = np.minimum(amax, raw)
        valid = (sigma >= 0) & (alpha >= thr)
        factor = np.where(valid, f(1) - alpha, f(1)).astype(f)
        next_T = np.cumprod(factor, axis=1, dtype=f)  # T after each Gaussian
        stop = valid & (next_T <= teps)
        has_stop = stop.any(1)
        k_stop = np.where(has_stop, stop.argmax(1), M)  # first stopping index
        col = np.arange(M)[None]
        processed = col <= k_stop[:, None]  # pairs actually evaluated by the kernel
        contrib = valid & (col < k_stop[:, None])
        n_contrib += int(contrib.sum())
        n_early += int(has_stop.sum())
        n_clamped += int((contrib & (raw >= amax)).sum())
        n_skip_low += int((processed & (sigma >= 0) & (raw < thr) & (raw > thr / 4)).sum())
        for r in range(len(ii)):
            pixel_lists[ii[r] * W + jj[r]] = ids[contrib[r]]
        if check:
            idm = np.broadcast_to(ids[None], sigma.shape)
            P = processed
            # sigma < 0 only through cancellation: compare with the term magnitudes.
            mag = f(0.5) * (np.abs(ca) * dx * dx + np.abs(cc) * dy * dy) + np.abs(cb * dx * dy)
            sig_ok = np.where(mag > 0, sigma / np.where(mag > 0, mag, 1), 1.0)
            record("sigma_cancel_rel", sig_ok[P], SIGMA_CANCEL, idm[P])
            record("alpha_thresh_rel", np.abs(raw[P] / thr - 1), MARGIN, idm[P])
            # distance from the 0.999 clamp in units of the allowed margin (>= 1 passes)
            rel = raw[P] / amax - 1
            record("alpha_clamp_units", np.where(rel >= 0, rel / CLAMP_ABOVE_MARGIN, -rel / MARGIN), 1.0, idm[P])
            V = P & valid
            record("next_T_rel", np.abs(next_T[V] / teps - 1), MARGIN, idm[V])

    # ---------------- statistics ----------------
    with np.errstate(divide="ignore", invalid="ignore"):
        u_all = mean_c[:, 0] / mean_c[:, 2]
        v_all = mean_c[:, 1] / mean_c[:, 2]
    fov_out = visible & ((u_all > lims["x_pos"]) | (u_all < -lims["x_neg"]) |
                         (v_all > lims["y_pos"]) | (v_all < -lims["y_neg"]))
    # opacity-aware (CUDA) visibility and intersection count, for debugging only
    with np.errstate(invalid="ignore"):
        rx_oa = np.ceil(extend_oa * np.sqrt(cov_xx))
        ry_oa = np.ceil(extend_oa * np.sqrt(cov_yy))
    mx, my = m2[:, 0].astype(np.float64), m2[:, 1].astype(np.float64)
    vis_oa = (valid_z & ~opac_cull_oa & (mx + rx_oa > 0) & (mx - rx_oa < W) & (my + ry_oa > 0) & (my - ry_oa < H))
    n_isects_oa = 0
    for i in np.nonzero(vis_oa)[0]:
        x0 = min(max(math.floor((mx[i] - rx_oa[i]) / TILE_SIZE), 0), tw)
        x1 = min(max(math.ceil((mx[i] + rx_oa[i]) / TILE_SIZE), 0), tw)
        y0 = min(max(math.floor((my[i] - ry_oa[i]) / TILE_SIZE), 0), th)
        y1 = min(max(math.ceil((my[i] + ry_oa[i]) / TILE_SIZE), 0), th)
        n_isects_oa += (x1 - x0) * (y1 - y0)
    counts = np.array([len(l) for l in pixel_lists])
    stats.update(
        n=N, width=W, height=H,
        n_visible=int(visible.sum()), n_isects=int(n_isects),
        n_visible_opacity_aware=int(vis_oa.sum()), n_isects_opacity_aware=int(n_isects_oa),
        max_tile_count=int(max_tile), n_contrib_pairs=int(n_contrib),
        max_contrib_per_pixel=int(counts.max()), n_early_stop_pixels=int(n_early),
        n_clamped_pairs=int(n_clamped), n_near_threshold_skips=int(n_skip_low),
        n_behind_camera=int((z < 0).sum()), n_before_near_plane=int(((z >= 0) & (z <= NEAR_PLANE)).sum()),
        n_offscreen_culled=int((valid_z & ~visible).sum()),
        n_fov_clamped_visible=int(fov_out.sum()),
        n_opacity_culled_cuda=int((valid_z & opac_cull_oa).sum()),
        max_radius=int(radii.max()) if N else 0,
        min_visible_radius=int(radii[visible].min()) if visible.any() else 0,
        visible_depth_range=(float(z[visible].min()), float(z[visible].max())) if visible.any() else (0.0, 0.0),
    )
    if proj["sh_raw"] is not None:
        shc = proj["sh_raw"].detach().numpy()[visible] + 0.5
        stats["n_sh_clamped_channels"] = int((shc < 0).sum())
    stats["margins"] = margins
    return pixel_lists, stats, offenders


# ==========================================================================
# Differentiable compositing over the fixed contributor lists
# ==========================================================================
def composite(proj, pixel_lists, spec: CaseSpec):
    """Front-to-back alpha compositing (autograd), given per-pixel ordered lists
    of contributing Gaussians.  All contributors pass sigma>=0, alpha>=1/255
    and next_T>1e-4 (decided in analyse()), so the result is a smooth function
    of the parameters around the current point."""
    cam = spec.camera
    W, H = cam.width, cam.height
    dtype = proj["conics"].dtype
    P = W * H
    Kmax = max(1, max(len(l) for l in pixel_lists))
    idx = np.zeros((P, Kmax), np.int64)
    mask = np.zeros((P, Kmax), bool)
    for p, l in enumerate(pixel_lists):
        idx[p, : len(l)] = l
        mask[p, : len(l)] = True
    idx_t = torch.from_numpy(idx)
    mask_t = torch.from_numpy(mask)
    jj = torch.arange(P) % W
    ii = torch.arange(P) // W
    px = (jj.to(dtype) + 0.5)[:, None]
    py = (ii.to(dtype) + 0.5)[:, None]

    means2d = proj["means2d"][0]
    conics = proj["conics"]
    dx = means2d[idx_t, 0] - px
    dy = means2d[idx_t, 1] - py
    a, b, c = conics[idx_t, 0], conics[idx_t, 1], conics[idx_t, 2]
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    raw = proj["opacities"][idx_t] * torch.exp(-sigma)
    alpha = torch.clamp(raw, max=ALPHA_MAX)
    alpha = torch.where(mask_t, alpha, torch.zeros((), dtype=dtype))
    one_minus = 1.0 - alpha
    T_after = torch.cumprod(one_minus, dim=1)
    T_before = torch.cat([torch.ones(P, 1, dtype=dtype), T_after[:, :-1]], dim=1)
    w = alpha * T_before  # alpha_i * T_i
    T_final = T_after[:, -1]
    bg = torch.tensor(spec.background, dtype=dtype)
    rgb = (w[..., None] * proj["colors"][idx_t]).sum(1) + T_final[:, None] * bg
    depth = (w * proj["depths"][0][idx_t]).sum(1)
    return rgb.reshape(H, W, 3), (1.0 - T_final).reshape(H, W), depth.reshape(H, W)


GRAD_KEYS = ("means", "quats", "log_scales", "opacity_logits")


def render(params, spec, cot, dtype, check):
    """Full pipeline in `dtype`: decisions, outputs, loss and gradients."""
    p = to_torch(params, dtype, requires_grad=True)
    proj = project(p, spec)
    proj["means2d"].retain_grad()
    lists, stats, offenders = analyse(proj, spec, params, check)
    rgb, alpha, depth = composite(proj, lists, spec)
    G, Hc, D = (torch.tensor(cot[k], dtype=dtype) for k in ("G", "H", "D"))
    loss = (rgb * G).sum() + (alpha * Hc).sum() + (depth * D).sum()
    loss.backward()
    grads = {k: p[k].grad.detach().clone() for k in p}
    grads["means2d"] = proj["means2d"].grad[0].detach().clone()
    outs = {"rgb": rgb.detach(), "alpha": alpha.detach(), "depth_accum": depth.detach()}
    return dict(outs=outs, grads=grads, lists=lists, stats=stats, offenders=offenders,
                radii=proj["radii"][0], loss=float(loss.detach()))


# ==========================================================================
# Case construction
# ==========================================================================
def build_case(spec: CaseSpec, max_rounds=400, verbose=True):
    """Draw the scene, then re-draw offending Gaussians until every decision
    has its margin.  Fully deterministic for a given spec.seed."""
    rng = np.random.default_rng(spec.seed)
    params = spec.draw(rng, np.arange(spec.n))
    cam = spec.camera
    n_redrawn = 0
    for rnd in range(max_rounds):
        with torch.no_grad():
            proj = project(to_torch(params, torch.float64, False), spec)
        _, stats, offenders = analyse(proj, spec, params, check=True)
        if not offenders:
            break
        bad = np.array(sorted(offenders))
        new = spec.draw(rng, bad)
        for k in params:
            params[k][bad] = new[k]
        n_redrawn += len(bad)
    else:
        raise RuntimeError(f"{spec.name}: could not satisfy margins after {max_rounds} rounds: {offenders}")
    # Cotangents (drawn after the scene is final so they do not depend on redraws).
    crng = np.random.default_rng(spec.seed + 1000)
    W, H = cam.width, cam.height
    cot = {"G": crng.normal(size=(H, W, 3)), "H": crng.normal(size=(H, W))}
    if spec.random_depth_cotangent:
        z = proj["depths"][0].numpy()
        vis = (proj["radii"][0] > 0).all(-1).numpy()
        z_typ = float(np.median(z[vis])) if vis.any() else 1.0
        cot["D"] = crng.normal(size=(H, W)) / z_typ  # keep the depth term O(1)
    else:
        cot["D"] = np.zeros((H, W))
    stats["redraw_rounds"] = rnd
    stats["n_redrawn"] = n_redrawn
    return params, cot, stats


def compare(ref, test):
    """Worst (error / tolerance) ratio over all outputs and gradients."""
    worst, where = 0.0, ""
    for group in ("outs", "grads"):
        for k, r in ref[group].items():
            t = test[group][k].to(torch.float64)
            tol = TOL_REL * float(r.abs().max()) + TOL_ABS
            ratio = float((t - r).abs().max()) / tol
            if ratio > worst:
                worst, where = ratio, f"{group}.{k}"
    return worst, where


def finite_difference_check(params, spec, cot, ref, n_probe=12, h=1e-6):
    """Central differences of the full float64 pipeline (decisions re-made at
    every evaluation) on random scalar parameters of visible Gaussians.
    Returns the worst |fd - autograd| / (1e-6 * max|grad of that input| + 1e-7);
    values <= 1 pass (1e-7: round-off floor of the differences)."""
    rng = np.random.default_rng(spec.seed + 7)
    keys = [k for k in params if k in GRAD_KEYS or k in ("colors", "sh")]
    vis = np.nonzero((ref["radii"] > 0).all(-1).numpy())[0]
    worst = 0.0
    for _ in range(n_probe):
        k = keys[rng.integers(len(keys))]
        g = int(vis[rng.integers(len(vis))])
        flat = np.unravel_index(rng.integers(params[k][g].size), params[k][g].shape) if params[k].ndim > 1 else ()
        sl = (g,) + tuple(int(x) for x in flat)
        vals = []
        for sgn in (+1, -1):
            q = {kk: vv.copy() for kk, vv in params.items()}
            q[k][sl] += sgn * h
            with torch.no_grad():
                vals.append(render_nograd(q, spec, cot))
        fd = (vals[0] - vals[1]) / (2 * h)
        ad = float(ref["grads"][k][sl])
        worst = max(worst, abs(fd - ad) / (1e-6 * float(ref["grads"][k].abs().max()) + 1e-7))
    return worst


def render_nograd(params, spec, cot):
    p = to_torch(params, torch.float64, requires_grad=False)
    proj = project(p, spec)
    lists, _, _ = analyse(proj, spec, params, check=False)
    rgb, alpha, depth = composite(proj, lists, spec)
    return float((rgb * torch.tensor(cot["G"])).sum() + (alpha * torch.tensor(cot["H"])).sum()
                 + (depth * torch.tensor(cot["D"])).sum())


def save_case(path, spec, params, cot, ref, stats, f32):
    cam = spec.camera
    t = {}
    f64 = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64)
    i64 = lambda v: torch.tensor(int(v), dtype=torch.int64)
    for k in ("means", "quats", "log_scales", "opacity_logits"):
        t[f"in.{k}"] = f64(params[k])
    if spec.color_mode == "sh":
        t["in.sh"] = f64(params["sh"])
        if spec.sh_degree is not None:
            t["in.sh_degree"] = i64(spec.sh_degree)
    else:
        t["in.colors"] = f64(params["colors"])
    if spec.antialiased is not None:
        t["in.antialiased"] = i64(spec.antialiased)
    t["in.viewmat"] = f64(cam.viewmat)
    t["in.K"] = f64(cam.K)
    t["in.background"] = f64(spec.background)
    t["in.width"] = i64(cam.width)
    t["in.height"] = i64(cam.height)
    t["in.G"], t["in.H"], t["in.D"] = f64(cot["G"]), f64(cot["H"]), f64(cot["D"])
    for k, v in ref["outs"].items():
        t[f"out.{k}_f64"] = v.contiguous()
        t[f"out.{k}"] = v.to(torch.float32).contiguous()
    grad_names = list(GRAD_KEYS) + (["sh"] if spec.color_mode == "sh" else ["colors"]) + ["means2d"]
    for k in grad_names:
        v = ref["grads"][k]
        t[f"grad.{k}_f64"] = v.contiguous()
        t[f"grad.{k}"] = v.to(torch.float32).contiguous()
        # gsplat's own float32 pipeline (the same functions run in float32): what float32
        # precision gsplat itself reaches, for the Rust side's precision checks.
        t[f"grad.{k}_gsplat_f32"] = f32["grads"][k].to(torch.float32).contiguous()
    t["meta.n_visible"] = i64(stats["n_visible"])
    t["meta.n_isects"] = i64(stats["n_isects"])
    t["meta.n_visible_opacity_aware"] = i64(stats["n_visible_opacity_aware"])
    t["meta.n_isects_opacity_aware"] = i64(stats["n_isects_opacity_aware"])
    # A single metadata entry: safetensors stores the metadata as a hash map, so
    # several keys would come out in a random order (non-reproducible bytes).
    info = {"case": spec.name, "covers": spec.covers, "generator": "tools/gen_raster_cases.py",
            "torch": torch.__version__, "gsplat": gsplat.__version__, "numpy": np.__version__}
    save_file(t, path, metadata={"info": json.dumps(info, sort_keys=True)})


# ==========================================================================
# The cases
# ==========================================================================
def case_specs() -> List[CaseSpec]:
    specs: List[CaseSpec] = []

    def add(**kw):
        specs.append(CaseSpec(**kw))

    # ---- basic random scene, plain colours ----
    cam = Camera.make(47, 33, fx=40.0)

    def basic(cam, mode, margin=4.0, zr=(1.5, 6.0), spx=(0.6, 5.0), lr=(-2.0, 3.0)):
        def draw(rng, idx):
            n = len(idx)
            u = rng.uniform(-margin, cam.width + margin, n)
            v = rng.uniform(-margin, cam.height + margin, n)
            z = rng.uniform(*zr, n)
            return splats_at_pixels(rng, cam, mode, u, v, z, log_uniform(rng, *spx, (n, 3)),
                                    rng.uniform(*lr, n))
        return draw

    add(name="basic_colors", covers="random scene, RGB colours (some outside [0,1]), 47x33 (not a multiple of 16)",
        camera=cam, n=64, draw=basic(cam, "colors"), seed=101, background=(0.2, 0.3, 0.9))

    cam = Camera.make(40, 30, fx=36.0, axis_angle=(0.05, -0.08, 0.02), position=(0.3, -0.2, -1.0))
    add(name="basic_sh3", covers="random scene, SH degree 3 (in.sh_degree absent -> default 3), some SH colours clamped at 0",
        camera=cam, n=48, draw=basic(cam, "sh"), seed=102, color_mode="sh",
        background=(0.7, 0.2, 0.4), random_depth_cotangent=True)

    cam = Camera.make(33, 29, fx=30.0, fy=33.0, axis_angle=(0.0, 0.3, 0.0), position=(-0.5, 0.0, 0.0))
    add(name="sh_degree1", covers="SH with in.sh_degree=1: only 4 of 16 coefficients used, the rest get zero gradient",
        camera=cam, n=40, draw=basic(cam, "sh"), seed=103, color_mode="sh", sh_degree=1,
        background=(0.1, 0.8, 0.3))

    cam = Camera.make(24, 20, fx=22.0)
    add(name="sh_degree0", covers="SH with in.sh_degree=0 (view-independent DC term only)",
        camera=cam, n=20, draw=basic(cam, "sh"), seed=104, color_mode="sh", sh_degree=0,
        background=(0.5, 0.5, 0.1), random_depth_cotangent=True)

    # ---- behind the camera ----
    cam = Camera.make(32, 32, fx=30.0, axis_angle=(0.1, 0.2, 0.0), position=(0.0, 0.0, -2.0))

    def behind_draw(cam):
        def behind(rng, n):  # centre behind the camera, big
            p_cam = np.stack([rng.uniform(-2, 2, n), rng.uniform(-2, 2, n), rng.uniform(-4.0, -0.2, n)], -1)
            out = {"means": cam.cam_to_world(p_cam), "quats": random_quats(rng, n),
                   "log_scales": np.log(rng.uniform(0.3, 1.5, (n, 3))), "opacity_logits": rng.uniform(0, 4, n)}
            out.update(appearance(rng, n, "colors"))
            return out

        def straddle(rng, n):  # just behind the camera, extent reaching in front
            p_cam = np.stack([rng.uniform(-0.3, 0.3, n), rng.uniform(-0.3, 0.3, n), rng.uniform(-0.3, -0.02, n)], -1)
            out = {"means": cam.cam_to_world(p_cam), "quats": random_quats(rng, n),
                   "log_scales": np.log(rng.uniform(0.5, 1.0, (n, 3))), "opacity_logits": rng.uniform(0, 4, n)}
            out.update(appearance(rng, n, "colors"))
            return out

        front = lambda rng, n: basic(cam, "colors")(rng, np.arange(n))
        return grouped_draw({"behind": behind, "straddle": straddle, "front": front},
                            lambda idx: np.where(idx < 16, "behind", np.where(idx < 24, "straddle", "front")))

    add(name="behind_camera", covers="Gaussians centred behind the camera (z<0, some straddling z=0 with large extent): culled, zero gradients",
        camera=cam, n=48, draw=behind_draw(cam), seed=105, background=(0.9, 0.6, 0.2),
        random_depth_cotangent=True, coverage=lambda s: s["n_behind_camera"] == 24)

    # ---- between camera and near plane ----
    cam = Camera.make(36, 28, fx=32.0)

    def near_draw(cam):
        def culled(rng, n):  # 0 < z < near: culled
            z = rng.uniform(0.002, 0.008, n)
            return splats_at_pixels(rng, cam, "colors", rng.uniform(0, cam.width, n), rng.uniform(0, cam.height, n),
                                    z, log_uniform(rng, 2, 20, (n, 3)), rng.uniform(0, 4, n))

        def just_past(rng, n):  # just beyond the near plane, tiny world size
            z = rng.uniform(0.012, 0.05, n)
            return splats_at_pixels(rng, cam, "colors", rng.uniform(0, cam.width, n), rng.uniform(0, cam.height, n),
                                    z, log_uniform(rng, 1.0, 6.0, (n, 3)), rng.uniform(-1, 3, n))

        back = lambda rng, n: basic(cam, "colors", zr=(2, 5))(rng, np.arange(n))
        return grouped_draw({"culled": culled, "near": just_past, "back": back},
                            lambda idx: np.where(idx < 10, "culled", np.where(idx < 22, "near", "back")))

    add(name="near_plane", covers="Gaussians between camera and near plane (0<z<0.01, culled) and just beyond it (z in [0.012,0.05], visible)",
        camera=cam, n=40, draw=near_draw(cam), seed=106, background=(0.3, 0.3, 0.3),
        coverage=lambda s: s["n_before_near_plane"] == 10 and s["visible_depth_range"][0] < 0.05)

    # ---- needles and flat discs ----
    cam = Camera.make(48, 32, fx=40.0, axis_angle=(-0.1, 0.15, 0.05))

    def aniso_draw(cam):
        def needles(rng, n):
            s = np.stack([log_uniform(rng, 5, 12, n), log_uniform(rng, 0.01, 0.1, n), log_uniform(rng, 0.01, 0.1, n)], -1)
            s = np.take_along_axis(s, np.argsort(rng.random((n, 3)), 1), 1)
            return splats_at_pixels(rng, cam, "colors", rng.uniform(0, cam.width, n), rng.uniform(0, cam.height, n),
                                    rng.uniform(2, 6, n), s, rng.uniform(-1, 3, n))

        def discs(rng, n):
            s = np.stack([log_uniform(rng, 4, 12, n), log_uniform(rng, 4, 12, n), log_uniform(rng, 1e-3, 1e-2, n)], -1)
            s = np.take_along_axis(s, np.argsort(rng.random((n, 3)), 1), 1)
            return splats_at_pixels(rng, cam, "colors", rng.uniform(0, cam.width, n), rng.uniform(0, cam.height, n),
                                    rng.uniform(2, 6, n), s, rng.uniform(-1, 3, n))

        return grouped_draw({"needle": needles, "disc": discs}, lambda idx: np.where(idx % 2 == 0, "needle", "disc"))

    add(name="anisotropic", covers="needles (3D scale ratio 50-1200) and flat discs (one axis ~1e-3..1e-2 px), random orientations; 2D condition number up to 500",
        camera=cam, n=48, draw=aniso_draw(cam), seed=107, background=(0.05, 0.1, 0.2), random_depth_cotangent=True)

    # ---- partly off-screen ----
    cam = Camera.make(40, 24, fx=34.0)
    add(name="offscreen", covers="means off-screen by up to 25 px: partly visible Gaussians, fully off-screen ones culled by the bbox test",
        camera=cam, n=48, draw=basic(cam, "colors", margin=25.0, spx=(2.0, 10.0)), seed=108,
        background=(0.6, 0.9, 0.6), coverage=lambda s: s["n_offscreen_culled"] > 0)

    # ---- outside the FOV clamp (mean x/z beyond the Jacobian limit, still visible) ----
    cam = Camera.make(48, 36, fx=30.0, fy=28.0, axis_angle=(0.0, 0.0, 0.3), position=(0.2, 0.1, 0.0))

    def fov_draw(cam):
        lim = cam.fov_limits()

        def outside(rng, n):
            z = rng.uniform(2, 5, n)
            side = rng.integers(0, 4, n)
            tx = np.where(side == 0, lim["x_pos"], np.where(side == 1, -lim["x_neg"], 0)) * rng.uniform(1.05, 1.5, n)
            ty = np.where(side == 2, lim["y_pos"], np.where(side == 3, -lim["y_neg"], 0)) * rng.uniform(1.05, 1.5, n)
            tx = np.where(side >= 2, rng.uniform(-0.5, 0.5, n), tx)
            ty = np.where(side < 2, rng.uniform(-0.5, 0.5, n), ty)
            p_cam = np.stack([tx * z, ty * z, z], -1)
            sc = rng.uniform(0.25, 0.6, (n, 3)) * z[:, None]  # large: the tail reaches the image
            out = {"means": cam.cam_to_world(p_cam), "quats": random_quats(rng, n),
                   "log_scales": np.log(sc), "opacity_logits": rng.uniform(1, 4, n)}
            out.update(appearance(rng, n, "colors"))
            return out

        inside = lambda rng, n: basic(cam, "colors")(rng, np.arange(n))
        return grouped_draw({"out": outside, "in": inside}, lambda idx: np.where(idx < 20, "out", "in"))

    add(name="fov_clamp", covers="means with x/z or y/z beyond gsplat's Jacobian clamp (1.3x half-FOV + principal-point offset) that are still visible",
        camera=cam, n=32, draw=fov_draw(cam), seed=109, background=(0.4, 0.1, 0.6),
        random_depth_cotangent=True, coverage=lambda s: s["n_fov_clamped_visible"] >= 5)

    # ---- opacity around 1/255 ----
    cam = Camera.make(32, 32, fx=30.0)

    def thresh_draw(cam):
        def near_thresh(rng, n):
            delta = rng.uniform(0.01, 0.3, n) * np.where(rng.random(n) < 0.5, -1, 1)
            o = (1.0 / 255.0) * (1 + delta)
            return splats_at_pixels(rng, cam, "colors", rng.uniform(0, cam.width, n), rng.uniform(0, cam.height, n),
                                    rng.uniform(2, 6, n), log_uniform(rng, 1.5, 5, (n, 3)), logit(o))

        normal = lambda rng, n: basic(cam, "colors", lr=(-3.0, 0.0))(rng, np.arange(n))
        return grouped_draw({"thr": near_thresh, "normal": normal}, lambda idx: np.where(idx < 32, "thr", "normal"))

    add(name="opacity_threshold", covers="opacities 1/255*(1+-[1%,30%]): below ones never pass alpha>=1/255 (and are culled by CUDA's opacity-aware bbox), above ones only near their centre",
        camera=cam, n=40, draw=thresh_draw(cam), seed=110, background=(0.8, 0.8, 0.2),
        coverage=lambda s: s["n_opacity_culled_cuda"] >= 5 and s["n_near_threshold_skips"] > 0)

    # ---- alpha hitting the 0.999 clamp ----
    cam = Camera.make(32, 24, fx=30.0)

    def clamp_draw(cam):
        def opaque(rng, n):
            # centre within 0.1 px of a pixel centre so that o*exp(-sigma) > 0.999 there
            u = rng.integers(0, cam.width, n) + 0.5 + rng.uniform(-0.1, 0.1, n)
            v = rng.integers(0, cam.height, n) + 0.5 + rng.uniform(-0.1, 0.1, n)
            return splats_at_pixels(rng, cam, "colors", u, v, rng.uniform(2, 8, n),
                                    log_uniform(rng, 3, 8, (n, 3)), rng.uniform(10.5, 14, n))

        return grouped_draw({"o": opaque}, lambda idx: np.full(len(idx), "o"))

    add(name="alpha_clamp", covers="near-opaque splats (logit 10.5-14) centred near pixel centres: alpha clamped to 0.999 (zero opacity/means2d gradient through that pair)",
        camera=cam, n=24, draw=clamp_draw(cam), seed=111, background=(0.1, 0.9, 0.9), random_depth_cotangent=True,
        coverage=lambda s: s["n_clamped_pairs"] >= 5)

    # ---- opaque layers -> early termination ----
    cam = Camera.make(40, 32, fx=36.0)

    def stack_draw(cam):
        def layers(rng, n):
            z = rng.uniform(1.5, 6.0, n)
            return splats_at_pixels(rng, cam, "colors", rng.uniform(-4, cam.width + 4, n),
                                    rng.uniform(-4, cam.height + 4, n), z,
                                    log_uniform(rng, 6, 16, (n, 3)), rng.uniform(2.0, 6.0, n))

        return grouped_draw({"l": layers}, lambda idx: np.full(len(idx), "l"))

    add(name="opaque_stack", covers="many large, nearly opaque overlapping splats: transmittance reaches 1e-4 and pixels stop early (the stopping Gaussian does not contribute)",
        camera=cam, n=36, draw=stack_draw(cam), seed=112, background=(0.9, 0.2, 0.2),
        coverage=lambda s: s["n_early_stop_pixels"] >= 0.3 * s["width"] * s["height"])

    # ---- sub-pixel splats ----
    cam = Camera.make(32, 32, fx=30.0)
    add(name="subpixel", covers="sub-pixel splats (std 0.01-0.4 px): footprint dominated by the eps2d=0.3 blur, radius 2-3",
        camera=cam, n=80, draw=basic(cam, "colors", spx=(0.01, 0.4), lr=(0.0, 4.0)), seed=113,
        background=(0.2, 0.2, 0.6), random_depth_cotangent=True, coverage=lambda s: s["max_radius"] <= 3)

    # ---- very far splats ----
    cam = Camera.make(40, 30, fx=36.0, axis_angle=(0.02, 0.4, -0.05), position=(100.0, -50.0, 30.0))

    def far_draw(cam):
        def far(rng, n):
            return splats_at_pixels(rng, cam, "colors", rng.uniform(-3, cam.width + 3, n),
                                    rng.uniform(-3, cam.height + 3, n), log_uniform(rng, 50, 2e4, n),
                                    log_uniform(rng, 0.3, 6, (n, 3)), rng.uniform(-1, 3, n))

        return grouped_draw({"f": far}, lambda idx: np.full(len(idx), "f"))

    add(name="far", covers="very far splats (depth 50..2e4, world coordinates ~1e2-1e4, translated/rotated camera)",
        camera=cam, n=40, draw=far_draw(cam), seed=114, background=(0.5, 0.7, 0.9),
        coverage=lambda s: s["visible_depth_range"][1] > 5e3)

    # ---- dense tile: > 256 Gaussians in one 16x16 tile ----
    cam = Camera.make(44, 36, fx=40.0)

    def dense_draw(cam):
        def dense(rng, n):
            return splats_at_pixels(rng, cam, "colors", rng.uniform(18, 30, n), rng.uniform(18, 30, n),
                                    rng.uniform(2, 10, n), log_uniform(rng, 0.8, 2.5, (n, 3)), rng.uniform(-4.5, -2.5, n))

        return grouped_draw({"d": dense}, lambda idx: np.full(len(idx), "d"))

    add(name="dense_tile", covers="600 small translucent splats over tile (1,1): >256 Gaussians in one tile (several 256-wide batches)",
        camera=cam, n=600, draw=dense_draw(cam), seed=115, background=(0.3, 0.6, 0.3), random_depth_cotangent=True,
        coverage=lambda s: s["max_tile_count"] > 512)

    # ---- antialiased mode ----
    cam = Camera.make(40, 32, fx=36.0, axis_angle=(0.1, -0.1, 0.0))

    def aa_draw(cam, mode):
        def small(rng, n):
            return splats_at_pixels(rng, cam, mode, rng.uniform(0, cam.width, n), rng.uniform(0, cam.height, n),
                                    rng.uniform(2, 6, n), log_uniform(rng, 0.1, 0.8, (n, 3)), rng.uniform(2, 6, n))

        big = lambda rng, n: basic(cam, mode)(rng, np.arange(n))
        return grouped_draw({"s": small, "b": big}, lambda idx: np.where(idx % 2 == 0, "s", "b"))

    add(name="antialiased_colors", covers="antialiased mode (opacity *= sqrt(det(cov2d)/det(cov2d+0.3 I))), RGB colours, mix of small and large splats",
        camera=cam, n=56, draw=aa_draw(cam, "colors"), seed=116, antialiased=True, background=(0.9, 0.9, 0.9))

    cam = Camera.make(36, 28, fx=32.0, axis_angle=(-0.2, 0.1, 0.1), position=(0.1, 0.2, -0.3))
    add(name="antialiased_sh", covers="antialiased mode with SH colours (in.sh_degree=2)",
        camera=cam, n=40, draw=aa_draw(cam, "sh"), seed=117, antialiased=True, color_mode="sh", sh_degree=2,
        background=(0.2, 0.1, 0.05), random_depth_cotangent=True)

    # ---- rotated camera, off-centre principal point, fx != fy ----
    cam = Camera.make(50, 38, fx=52.0, fy=38.0, cx=19.3, cy=24.7, axis_angle=(0.4, -0.7, 0.25), position=(1.5, -0.8, -3.0))
    add(name="rotated_camera", covers="strongly rotated + translated camera, off-centre principal point (19.3, 24.7), fx=52 != fy=38, SH degree 3 (view direction from -R^T t), explicit in.antialiased=0",
        camera=cam, n=56, draw=basic(cam, "sh", margin=8.0), seed=118, color_mode="sh", sh_degree=3,
        antialiased=False, background=(0.35, 0.25, 0.65))
    return specs


# ==========================================================================
# README
# ==========================================================================
README_HEAD = """# Rasterizer reference cases

Generated by `tools/gen_raster_cases.py` (run `python3 tools/gen_raster_cases.py --out tests/cases/raster`
from the repository root; versions pinned in `tools/requirements.txt`). Do not edit by hand.

Each `<case>.safetensors` file is a float64 reference of gsplat 1.5.3's "classic" 3DGS rasterizer
(pinhole camera, tile size 16, eps2d 0.3, near 0.01, far 1e10) with gradients from torch autograd.

## Format

Camera: OpenCV (+x right, +y down, +z forward); `in.viewmat` is world->camera (4x4), `in.K` in pixels,
pixel centres at (j+0.5, i+0.5). All float tensors are float64 unless noted; scalars are int64 0-dim.

| key | shape | meaning |
|---|---|---|
| `in.means` | [N,3] | world-space centres |
| `in.quats` | [N,4] | wxyz, **not normalised** (normalised inside; gradients are w.r.t. the raw values) |
| `in.log_scales` | [N,3] | scale = exp |
| `in.opacity_logits` | [N] | opacity = sigmoid |
| `in.colors` | [N,3] | RGB used as is (no clamp) -- or -- |
| `in.sh` | [N,16,3] | colour = max(sum_k Y_k(dir) sh_k + 0.5, 0), dir = normalize(mean - cam_pos), cam_pos = -R^T t |
| `in.sh_degree` | int64 | optional, default 3; only the first (d+1)^2 coefficients are used (others get zero gradient) |
| `in.antialiased` | int64 | optional, default 0; 1: opacity *= sqrt(max(det(cov2d)/det(cov2d + 0.3 I), 0)) |
| `in.viewmat`, `in.K` | [4,4], [3,3] | camera |
| `in.background` | [3] | composited as `rgb = sum c_i a_i T_i + T_final * bg` |
| `in.width`, `in.height` | int64 | image size |
| `in.G`, `in.H`, `in.D` | [H,W,3], [H,W], [H,W] | cotangents, see below |
| `out.rgb`, `out.alpha`, `out.depth_accum` | [H,W,3], [H,W], [H,W] | float32; `_f64` suffix: float64 |
| `grad.means`, `grad.quats`, `grad.log_scales`, `grad.opacity_logits`, `grad.colors` or `grad.sh`, `grad.means2d` | like the inputs; means2d [N,2] | float32 (the float64 values rounded); `_f64` suffix: float64; `_gsplat_f32` suffix: the same pipeline run in float32 (gsplat's own float32 precision) |
| `meta.n_visible`, `meta.n_isects` | int64 | non-culled Gaussians / tile intersections, gsplat torch rule (bbox radius = ceil(3.33 sqrt(cov2d_ii))) |
| `meta.n_visible_opacity_aware`, `meta.n_isects_opacity_aware` | int64 | the same under gsplat's CUDA rule (see "CUDA notes") |

`out.alpha = 1 - T_final`; `out.depth_accum = sum z_i a_i T_i` (camera-space z, no background term).

**Loss (extension of the rgb/alpha-only form):**
`L = sum(rgb * G) + sum(alpha * H) + sum(depth_accum * D)`. `D` is all zeros in about half of the cases
(column "D" below) and random normal (divided by the median visible depth) in the others. `grad.means2d` is
dL/d(projected 2D mean) in pixels. Culled Gaussians have exactly zero gradients.

## Compositing rules (gsplat `RasterizeToPixels3DGSFwd.cu`)

Per pixel, front to back over the pixel's tile list (sorted by depth):
`delta = mean2d - (j+0.5, i+0.5)`, `sigma = 0.5*(a dx^2 + c dy^2) + b dx dy` (conic = inverse blurred cov2d, (a,b,c)),
`alpha = min(0.999, o * exp(-sigma))`; skip when `sigma < 0` or `alpha < 1/255`;
`next_T = T (1 - alpha)`; if `next_T <= 1e-4` stop **before** this Gaussian; else accumulate and `T = next_T`.

## Robustness margins

Every decision that is discontinuous was checked (in float64) and kept away from its threshold; offending
Gaussians were re-drawn deterministically:
relative margin >= 1e-3 for `o e^-sigma` vs 1/255, for `o e^-sigma` below 0.999 (>= 2e-4 above it: the most a
value <= 1 can exceed 0.999 by is 0.1%), for `next_T` vs 1e-4, for x/z, y/z vs the Jacobian clamp limits, and
for the effective opacity vs 1/255 (CUDA culling); `sigma >= 1e-3 * (|a| dx^2/2 + |c| dy^2/2 + |b dx dy|)`
(no cancellation that could make it negative in float32); >= 1e-3 px between mean2d +- radius and any tile
boundary / image border; ceil arguments of both radius rules >= 1e-3 from an integer; |z - 0.01| >= 1e-3;
relative depth gap >= 1e-4 between Gaussians sharing a tile; SH colour + 0.5 at least 1e-3 from 0; antialiased:
det(cov2d)/(cov_xx cov_yy) >= 1e-3. Blurred 2D covariances have an eigenvalue ratio <= 500 (beyond that float32
loses too many digits in the conic for the tolerance below). Each case was also re-rendered end to end in float32 (torch, its own float32
decisions) and matches the float64 reference within `1e-4*max|ref| + 1e-5` (column "f32 err/tol").

## Cases

"""


def write_readme(out_dir, rows):
    lines = [README_HEAD]
    lines.append("| case | size WxH | N | colour | D | AA | n_visible | n_isects | max/tile | f32 err/tol | covers |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for spec, st, ratio in rows:
        colour = "colors" if spec.color_mode == "colors" else f"sh (deg {spec.effective_sh_degree})"
        lines.append(
            f"| `{spec.name}` | {st['width']}x{st['height']} | {st['n']} | {colour} | "
            f"{'random' if spec.random_depth_cotangent else 'zero'} | {int(spec.is_antialiased)} | "
            f"{st['n_visible']} | {st['n_isects']} | {st['max_tile_count']} | {ratio:.3f} | {spec.covers} |")
    lines.append("")
    lines.append("Per-case statistics (early-stopped pixels, clamped pairs, ...):")
    lines.append("")
    lines.append("| case | contributing pairs | max per pixel | early-stop pixels | clamped pairs | culled: behind / near / off-screen / CUDA-opacity | FOV-clamped visible | radius min..max | SH channels clamped at 0 |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for spec, st, _ in rows:
        lines.append(
            f"| `{spec.name}` | {st['n_contrib_pairs']} | {st['max_contrib_per_pixel']} | {st['n_early_stop_pixels']} | "
            f"{st['n_clamped_pairs']} | {st['n_behind_camera']} / {st['n_before_near_plane']} / {st['n_offscreen_culled']} / "
            f"{st['n_opacity_culled_cuda']} | {st['n_fov_clamped_visible']} | {st['min_visible_radius']}..{st['max_radius']} | "
            f"{st.get('n_sh_clamped_channels', '-')} |")
    lines.append("")
    lines.append(CUDA_NOTES)
    with open(os.path.join(out_dir, "README.md"), "w") as fh:
        fh.write("\n".join(lines))


CUDA_NOTES = """## CUDA notes (where gsplat's CUDA path differs from the torch reference used here)

* `ProjectionEWA3DGSFused.cu`: `rasterization()` passes `opacities` to the projection, which culls Gaussians whose
  effective opacity (times compensation when antialiased) is `< ALPHA_THRESHOLD` and uses an opacity-aware
  bbox: `extend = min(3.33f, sqrt(2.0f * __logf(opacity / ALPHA_THRESHOLD)))`, `radius = ceilf(extend * sqrtf(cov2d_ii))`.
  The torch reference (`_fully_fused_projection`) always uses 3.33 and does not cull on opacity. This changes
  `n_visible` / `n_isects` (both variants are stored in `meta.*`) but never the rendered image or the gradients:
  any pixel with alpha >= 1/255 lies inside both boxes.
* Near plane: CUDA culls `z < near_plane` (torch: keeps `z > near_plane`); identical away from equality.
* Tile order: CUDA sorts by the 64-bit key `tile_id << 32 | float32-bits(depth)`; float32 depth ties would be
  broken by the (stable) radix sort, i.e. by Gaussian index. The cases contain no near-ties.
"""


# ==========================================================================
# main
# ==========================================================================
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output directory (tests/cases/raster)")
    ap.add_argument("--only", nargs="*", help="generate only these case names")
    ap.add_argument("--fd-check", action="store_true", help="also run central finite differences on a few parameters")
    ap.add_argument("--no-readme", action="store_true")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)  # reproducible reduction order (float32 emulation included)
    os.makedirs(args.out, exist_ok=True)
    specs = case_specs()
    names = [s.name for s in specs]
    assert len(set(names)) == len(names)
    if args.only:
        unknown = set(args.only) - set(names)
        if unknown:
            ap.error(f"unknown case(s): {sorted(unknown)}")
        specs = [s for s in specs if s.name in args.only]

    rows = []
    failures = []
    for spec in specs:
        params, cot, stats = build_case(spec)
        ref = render(params, spec, cot, torch.float64, check=True)
        assert not ref["offenders"], ref["offenders"]
        st = ref["stats"]
        st["redraw_rounds"], st["n_redrawn"] = stats["redraw_rounds"], stats["n_redrawn"]
        # Sanity: culled Gaussians get exactly zero gradient, everything finite.
        culled = ~(ref["radii"] > 0).all(-1)
        for k, g in ref["grads"].items():
            assert torch.isfinite(g).all(), (spec.name, k)
            assert (g[culled] == 0).all(), (spec.name, k, "non-zero gradient on a culled Gaussian")
        if spec.color_mode == "sh":
            used = (spec.effective_sh_degree + 1) ** 2
            assert (ref["grads"]["sh"][:, used:] == 0).all()
        if spec.coverage is not None and not spec.coverage(st):
            failures.append(f"{spec.name}: intended edge case not covered")
        # float32 end-to-end emulation of the Rust side: same decisions, within tolerance.
        f32 = render(params, spec, cot, torch.float32, check=False)
        same_lists = all(np.array_equal(a, b) for a, b in zip(ref["lists"], f32["lists"]))
        ratio, where = compare(ref, f32)
        if not same_lists:
            failures.append(f"{spec.name}: float32 decisions differ from float64")
        if ratio > F32_HEADROOM:
            failures.append(f"{spec.name}: float32 emulation uses {ratio:.2f} of the tolerance at {where}")
        path = os.path.join(args.out, f"{spec.name}.safetensors")
        save_case(path, spec, params, cot, ref, st, f32)
        size_kb = os.path.getsize(path) / 1024
        m = st["margins"]
        print(f"[{spec.name}] {st['width']}x{st['height']} N={st['n']} visible={st['n_visible']} "
              f"isects={st['n_isects']} (cuda rule: {st['n_visible_opacity_aware']}/{st['n_isects_opacity_aware']}) "
              f"max/tile={st['max_tile_count']} pairs={st['n_contrib_pairs']} max/px={st['max_contrib_per_pixel']} "
              f"early={st['n_early_stop_pixels']} clamped={st['n_clamped_pairs']} "
              f"near-thr-skips={st['n_near_threshold_skips']} fov-out={st['n_fov_clamped_visible']} "
              f"redrawn={st['n_redrawn']} in {st['redraw_rounds']} rounds | f32 err/tol={ratio:.3f} ({where}) "
              f"same-decisions={same_lists} | {size_kb:.0f} KiB")
        print("    min margins: " + ", ".join(f"{k}={v:.3g}" for k, v in sorted(m.items())))
        if args.fd_check:
            err = finite_difference_check(params, spec, cot, ref)
            print(f"    finite differences: max |fd - autograd| / (1e-6 max|grad| + 1e-7) = {err:.3f}")
            if err > 1.0:
                failures.append(f"{spec.name}: finite-difference mismatch {err:.2e}")
        rows.append((spec, st, ratio))

    if not args.no_readme and not args.only:
        write_readme(args.out, rows)
    total = sum(os.path.getsize(os.path.join(args.out, f"{s.name}.safetensors")) for s in specs)
    print(f"total size: {total / 1024:.0f} KiB in {len(specs)} cases")
    if failures:
        print("FAILURES:\n  " + "\n  ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
