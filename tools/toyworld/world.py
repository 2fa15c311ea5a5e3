"""The toy world: 16 object categories built from primitives (plus Spot the cow), 6 colour
words, deterministic from a seed.

Every object sits in the canonical frame of `splatdream generate`: z-up, its bounding box
centred at the origin, its front facing azimuth 0° (the camera on +x), the largest side of its
bounding box `EXTENT` world units long, so it fills the views of
`distill::cameras::CameraConfig::default()` (radius 5.2–5.5, FoV 18.3°–34.4°: the narrowest view
shows ±0.84 units around the origin).

`caption(category, colour, azimuth, elevation)` is the prompt the prior is trained with:
``"a {colour} {category}"`` plus the suffix `distill::prompts::ViewPrompts` appends for that
camera (threestudio's thresholds: front |az| < 45°, back |az| > 135°, overhead el > 60°).
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np

from raycast import Mesh, Prim, Scene, rot

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

CATEGORIES = [
    "chair", "table", "mushroom", "snowman", "car", "house", "tree", "lamp",
    "cup", "bench", "rocket", "teddy bear", "cow", "umbrella", "duck", "robot",
]  # fmt: skip
COLOURS = {
    "red": (0.86, 0.13, 0.11),
    "green": (0.16, 0.64, 0.20),
    "blue": (0.16, 0.30, 0.86),
    "yellow": (0.96, 0.84, 0.14),
    "orange": (0.97, 0.50, 0.09),
    "purple": (0.56, 0.20, 0.74),
}
# Fixed secondary colours (never one of the colour words).
DARK = (0.17, 0.17, 0.19)
BROWN = (0.42, 0.27, 0.15)
WHITE = (0.93, 0.93, 0.91)
BEIGE = (0.88, 0.80, 0.64)
GREY = (0.55, 0.56, 0.58)

EXTENT = 1.35  # largest bounding-box side, world units

# The camera sampler of distill::cameras::CameraConfig::default().
CAMERAS = {
    "radius": [5.2, 5.5],
    "elevation_deg": [-15.0, 45.0],
    "azimuth_deg": [-180.0, 180.0],
    "fov_deg": [18.3, 34.4],
    "jitter_center": 0.05,
    "jitter_target": 0.05,
}
# distill::prompts::ViewPromptConfig::default().
VIEW_RULE = {
    "front_deg": 45.0,
    "back_deg": 45.0,
    "overhead_deg": 60.0,
    "suffixes": [", front view", ", side view", ", back view", ", overhead view"],
}


def wrap_deg(a: float) -> float:
    """Wrap to (−180°, 180°] as `distill::prompts::wrap_deg`."""
    a = math.fmod(a, 360.0)
    if a > 180.0:
        a -= 360.0
    elif a <= -180.0:
        a += 360.0
    return a


def view_index(azimuth_deg: float, elevation_deg: float) -> int:
    """0 front, 1 side, 2 back, 3 overhead, by `ViewPrompts::view`'s rule."""
    az = abs(wrap_deg(azimuth_deg))
    if elevation_deg > VIEW_RULE["overhead_deg"]:
        return 3
    if az < VIEW_RULE["front_deg"]:
        return 0
    if az > 180.0 - VIEW_RULE["back_deg"]:
        return 2
    return 1


def caption(category: str, colour: str, azimuth_deg: float | None = None, elevation_deg: float = 0.0) -> str:
    """The training prompt; without an azimuth, the base prompt alone."""
    base = f"a {colour} {category}"
    if azimuth_deg is None:
        return base
    return base + VIEW_RULE["suffixes"][view_index(azimuth_deg, elevation_deg)]


def sample_camera(rng: np.random.Generator):
    """(azimuth°, elevation°, radius, fov°, eye, target) drawn as `CameraConfig::sample` draws:
    every quantity uniform in its range, target and radius jittered uniformly."""
    c = CAMERAS
    u = lambda r: float(rng.uniform(r[0], r[1]))  # noqa: E731
    az, el, radius, fov = u(c["azimuth_deg"]), u(c["elevation_deg"]), u(c["radius"]), u(c["fov_deg"])
    jt, jc = c["jitter_target"], c["jitter_center"]
    target = rng.uniform(-jt, jt, 3)
    radius += u([-jc, jc])
    return az, el, radius, fov, target


# --------------------------------------------------------------------------- builders

I3 = np.eye(3)


def P(kind, size, centre, albedo, R=I3, r0=1.0, r1=1.0, post=I3) -> Prim:
    """A primitive with half-sizes `size`, rotated by `R`, then linearly mapped by `post`."""
    A = np.asarray(post, np.float64) @ np.asarray(R, np.float64) @ np.diag(np.asarray(size, np.float64))
    return Prim(kind, A, np.asarray(centre, np.float64), np.asarray(albedo, np.float64), r0, r1)


def cyl(radius, half_h, centre, albedo, R=I3, r0=1.0, r1=1.0):
    return P("frustum", (radius, radius, half_h), centre, albedo, R, r0, r1)


def _chair(rng, c):
    w, d, h = rng.uniform(0.45, 0.6), rng.uniform(0.45, 0.6), rng.uniform(0.45, 0.6)
    leg = rng.uniform(0.03, 0.05)
    back_h = rng.uniform(0.5, 0.75)
    p = [P("box", (d, w, 0.05), (0, 0, h), c)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            p.append(P("box", (leg, leg, h / 2), (sx * (d - leg), sy * (w - leg), h / 2), c))
    p.append(P("box", (0.05, w, back_h / 2), (-d + 0.05, 0, h + back_h / 2), c))
    return p


def _table(rng, c):
    w, d, h = rng.uniform(0.7, 0.9), rng.uniform(0.45, 0.6), rng.uniform(0.5, 0.65)
    leg = rng.uniform(0.04, 0.06)
    p = [P("box", (d, w, 0.05), (0, 0, h), c)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            p.append(P("box", (leg, leg, h / 2), (sx * (d - 0.08), sy * (w - 0.08), h / 2), BROWN))
    return p


def _mushroom(rng, c):
    sh, sr = rng.uniform(0.35, 0.5), rng.uniform(0.12, 0.18)
    cr, ch = rng.uniform(0.5, 0.65), rng.uniform(0.25, 0.35)
    p = [cyl(sr, sh / 2, (0, 0, sh / 2), BEIGE, r0=1.2, r1=0.9), P("sphere", (cr, cr, ch), (0, 0, sh), c)]
    for k in range(5):  # white dots on the cap
        a = 2 * math.pi * k / 5 + 0.3
        el = math.radians(45)
        pos = (cr * 0.93 * math.cos(el) * math.cos(a), cr * 0.93 * math.cos(el) * math.sin(a), sh + ch * 0.93 * math.sin(el))
        p.append(P("sphere", (0.07, 0.07, 0.05), pos, WHITE))
    return p


def _snowman(rng, c):
    r1, r2, r3 = rng.uniform(0.38, 0.45), rng.uniform(0.27, 0.33), rng.uniform(0.18, 0.23)
    z1 = r1
    z2 = z1 + r1 + r2 * 0.7
    z3 = z2 + r2 + r3 * 0.7
    p = [P("sphere", (r1,) * 3, (0, 0, z1), c), P("sphere", (r2,) * 3, (0, 0, z2), c), P("sphere", (r3,) * 3, (0, 0, z3), c)]
    for sy in (-1, 1):  # eyes
        p.append(P("sphere", (0.04,) * 3, (r3 * 0.85, sy * r3 * 0.38, z3 + r3 * 0.3), DARK))
    p.append(cyl(0.05, 0.13, (r3 + 0.1, 0, z3), DARK, R=rot("y", 90), r0=1.0, r1=0.0))  # nose
    for k in range(3):  # buttons
        p.append(P("sphere", (0.04,) * 3, (r2 * 0.97, 0, z2 + (k - 1) * r2 * 0.4), DARK))
    p.append(cyl(r3 * 0.9, 0.02, (0, 0, z3 + r3 * 0.85), DARK))  # hat brim
    p.append(cyl(r3 * 0.6, 0.13, (0, 0, z3 + r3 * 0.85 + 0.13), DARK))
    return p


def _car(rng, c):
    L, W, H = rng.uniform(0.8, 0.95), rng.uniform(0.38, 0.45), rng.uniform(0.13, 0.18)
    wr = rng.uniform(0.14, 0.17)
    p = [P("box", (L, W, H), (0, 0, wr + H * 0.6), c)]
    cab = rng.uniform(0.4, 0.55)
    p.append(P("box", (cab, W * 0.9, 0.14), (-0.1, 0, wr + 1.6 * H + 0.14), c))
    p.append(P("box", (cab * 0.95, W * 0.92, 0.1), (-0.1, 0, wr + 1.6 * H + 0.14), (0.55, 0.75, 0.9)))  # windows
    for sx in (-1, 1):
        for sy in (-1, 1):
            p.append(cyl(wr, 0.06, (sx * L * 0.62, sy * (W + 0.02), wr), DARK, R=rot("x", 90)))
    for sy in (-1, 1):  # headlights at the front (+x)
        p.append(P("box", (0.02, 0.08, 0.04), (L + 0.01, sy * W * 0.6, wr + H), (1.0, 0.97, 0.75)))
    return p


def _house(rng, c):
    w, d, h = rng.uniform(0.5, 0.65), rng.uniform(0.45, 0.6), rng.uniform(0.4, 0.5)
    roof = rng.uniform(0.35, 0.5)
    p = [P("box", (d, w, h / 2), (0, 0, h / 2), c)]
    roof = min(roof, 0.9 * h)
    # a box turned 45° about y and squashed in z: its upper half is a gabled roof over the
    # body (ridge along y), its lower half hidden inside the body
    s = (d + 0.06) / math.sqrt(2)
    squash = np.diag([1.0, 1.0, roof / (d + 0.06)])
    p.append(P("box", (s, w + 0.06, s), (0, 0, h), BROWN, R=rot("y", 45), post=squash))
    p.append(P("box", (0.02, 0.09, 0.15), (d + 0.01, 0, 0.15), DARK))  # door on the front
    for sy in (-1, 1):
        p.append(P("box", (0.02, 0.08, 0.07), (d + 0.01, sy * w * 0.55, h * 0.6), (0.6, 0.8, 0.95)))
    return p


def _tree(rng, c):
    th, tr = rng.uniform(0.3, 0.4), rng.uniform(0.07, 0.1)
    p = [cyl(tr, th / 2, (0, 0, th / 2), BROWN)]
    z = th
    for k in range(3):
        r = rng.uniform(0.45, 0.55) * (1 - 0.25 * k)
        hh = rng.uniform(0.22, 0.28)
        p.append(cyl(r, hh, (0, 0, z + hh), c, r0=1.0, r1=0.0))
        z += hh * 1.1
    return p


def _lamp(rng, c):
    br, ph = rng.uniform(0.25, 0.32), rng.uniform(0.8, 1.0)
    sr, sh = rng.uniform(0.35, 0.45), rng.uniform(0.2, 0.28)
    return [
        cyl(br, 0.03, (0, 0, 0.03), DARK),
        cyl(0.03, ph / 2, (0, 0, ph / 2), DARK),
        cyl(sr, sh, (0, 0, ph + sh * 0.6), c, r0=1.0, r1=0.55),
    ]


def _cup(rng, c):
    r, h = rng.uniform(0.38, 0.45), rng.uniform(0.45, 0.6)
    p = [cyl(r, h / 2, (0, 0, h / 2), c, r0=0.85, r1=1.0), cyl(r * 0.9, 0.01, (0, 0, h + 0.001), BROWN)]
    hw = 0.05  # handle on the cup's right (−y) side: a "C" of three boxes
    p.append(P("box", (hw, 0.12, hw), (0, -(r + 0.1), h * 0.75), c))
    p.append(P("box", (hw, 0.12, hw), (0, -(r + 0.1), h * 0.25), c))
    p.append(P("box", (hw, hw, h * 0.25 + hw), (0, -(r + 0.2), h * 0.5), c))
    return p


def _bench(rng, c):
    w, d, h = rng.uniform(0.85, 1.0), rng.uniform(0.22, 0.28), rng.uniform(0.35, 0.45)
    back = rng.uniform(0.3, 0.4)
    p = [P("box", (d, w, 0.04), (0, 0, h), c), P("box", (0.03, w, back / 2), (-d, 0, h + back / 2 + 0.05), c)]
    for sy in (-1, 1):
        for sx in (-1, 1):
            p.append(P("box", (0.03, 0.03, h / 2), (sx * (d - 0.04), sy * (w - 0.08), h / 2), DARK))
        p.append(P("box", (0.03, 0.03, back / 2 + 0.05), (-d, sy * (w - 0.08), h + back / 2), DARK))
    return p


def _rocket(rng, c):
    r, h = rng.uniform(0.2, 0.25), rng.uniform(0.5, 0.65)
    nose = rng.uniform(0.28, 0.38)
    z0 = 0.22
    p = [cyl(r, h, (0, 0, z0 + h), WHITE), cyl(r, nose / 2, (0, 0, z0 + 2 * h + nose / 2), c, r0=1.0, r1=0.0)]
    for k in range(4):  # fins at 45° so the front shows two
        a = math.radians(45 + 90 * k)
        p.append(P("box", (0.2, 0.02, 0.17), ((r + 0.12) * math.cos(a), (r + 0.12) * math.sin(a), z0 + 0.12), c, R=rot("z", math.degrees(a))))
    p.append(cyl(0.09, 0.01, (r, 0, z0 + h * 1.3), (0.55, 0.8, 0.95), R=rot("y", 90)))  # window on the front
    p.append(cyl(r * 0.7, 0.11, (0, 0, z0 - 0.1), DARK, r0=1.0, r1=0.8))  # nozzle
    return p


def _teddy(rng, c):
    br, hr = rng.uniform(0.3, 0.36), rng.uniform(0.22, 0.26)
    zb = 0.18 + br
    zh = zb + br + hr * 0.7
    p = [P("sphere", (br * 0.85, br, br * 1.1), (0, 0, zb), c), P("sphere", (hr,) * 3, (0, 0, zh), c)]
    for sy in (-1, 1):
        p.append(P("sphere", (0.08,) * 3, (-0.02, sy * hr * 0.75, zh + hr * 0.75), c))  # ears
        p.append(P("sphere", (0.1, 0.09, 0.2), (0.05, sy * (br + 0.04), zb + 0.05), c, R=rot("x", -sy * 25)))  # arms
        p.append(P("sphere", (0.2, 0.1, 0.09), (0.12, sy * br * 0.55, 0.12), c))  # legs
        p.append(P("sphere", (0.03,) * 3, (hr * 0.85, sy * hr * 0.35, zh + hr * 0.25), DARK))  # eyes
    p.append(P("sphere", (0.1, 0.1, 0.08), (hr * 0.95, 0, zh - hr * 0.15), BEIGE))  # snout
    p.append(P("sphere", (0.035,) * 3, (hr * 0.95 + 0.09, 0, zh - hr * 0.08), DARK))  # nose
    return p


def _umbrella(rng, c):
    cr, ch = rng.uniform(0.65, 0.75), rng.uniform(0.18, 0.25)
    ph = rng.uniform(0.75, 0.9)
    return [
        cyl(cr, ch / 2, (0, 0, ph + ch / 2), c, r0=1.0, r1=0.05),
        cyl(0.025, ph / 2 + 0.05, (0, 0, ph / 2 + 0.05), DARK),
        P("box", (0.08, 0.025, 0.025), (0.06, 0, 0.025), DARK),
        cyl(0.03, 0.04, (0, 0, ph + ch + 0.03), DARK),
    ]


def _duck(rng, c):
    bl, bw = rng.uniform(0.4, 0.48), rng.uniform(0.28, 0.33)
    hr = rng.uniform(0.17, 0.21)
    zb = bw * 0.85
    p = [
        P("sphere", (bl, bw, bw * 0.85), (0, 0, zb), c),
        P("sphere", (hr,) * 3, (bl * 0.55, 0, zb + bw * 0.85 + hr * 0.5), c),
        P("sphere", (0.12, 0.08, 0.08), (-bl * 0.95, 0, zb + 0.1), c),  # tail
        P("sphere", (0.13, 0.09, 0.035), (bl * 0.55 + hr + 0.06, 0, zb + bw * 0.85 + hr * 0.4), (0.98, 0.62, 0.1) if c != COLOURS["orange"] else DARK),
    ]
    for sy in (-1, 1):
        p.append(P("sphere", (0.03,) * 3, (bl * 0.55 + hr * 0.75, sy * hr * 0.55, zb + bw * 0.85 + hr * 0.75), DARK))
        p.append(P("sphere", (bl * 0.55, 0.05, bw * 0.4), (-0.05, sy * bw * 0.95, zb + 0.02), c))  # wings
    return p


def _robot(rng, c):
    bw, bh = rng.uniform(0.28, 0.34), rng.uniform(0.28, 0.34)
    hs = rng.uniform(0.16, 0.2)
    leg = rng.uniform(0.28, 0.34)
    zb = leg + bh
    zh = zb + bh + hs + 0.04
    p = [P("box", (bw * 0.7, bw, bh), (0, 0, zb), c), P("box", (hs, hs * 1.2, hs), (0, 0, zh), GREY)]
    for sy in (-1, 1):
        p.append(P("box", (0.07, 0.07, leg / 2), (0, sy * bw * 0.5, leg / 2), GREY))
        p.append(P("box", (0.06, 0.06, bh * 0.9), (0, sy * (bw + 0.08), zb - 0.05), GREY))
        p.append(P("box", (0.02, 0.04, 0.035), (hs + 0.01, sy * hs * 0.5, zh + 0.04), (0.2, 0.9, 1.0)))  # eyes
    p.append(cyl(0.015, 0.08, (0, 0, zh + hs + 0.08), DARK))
    p.append(P("sphere", (0.04,) * 3, (0, 0, zh + hs + 0.17), c))
    p.append(P("box", (0.02, bw * 0.5, bh * 0.4), (bw * 0.7 + 0.01, 0, zb), DARK))  # chest panel
    return p


_COW_CACHE: dict = {}


def _cow_mesh():
    """Spot the cow (CC0, Keenan Crane) from assets/spot-cow-mesh or ../shared: positions with
    the largest side 1, looking along +x, z up; smooth normals; texture luminance per vertex."""
    if "mesh" in _COW_CACHE:
        return _COW_CACHE["mesh"]
    sys.path.insert(0, os.path.join(REPO, "tools"))
    import render_spot_cow as rsc  # our own OBJ reader and normals
    from PIL import Image

    for d in (os.path.join(REPO, "assets", "spot-cow-mesh"), os.path.join(REPO, "..", "shared", "data", "meshes", "spot-cow")):
        if os.path.exists(os.path.join(d, "cow.obj")):
            break
    else:
        raise FileNotFoundError("cow.obj: neither assets/spot-cow-mesh nor ../shared/data/meshes/spot-cow has it")
    pos, uv, tri, tri_uv = rsc.load_obj(os.path.join(d, "cow.obj"))
    pos, _, _, _ = rsc.normalise_mesh(pos)  # now looking along +y (render_spot_cow's front)
    pos = pos @ rot("z", -90).T  # +y → +x
    vn, _ = rsc.vertex_normals(pos, tri)
    tex = np.asarray(Image.open(os.path.join(d, "cow_texture.png")).convert("RGB"), np.float64) / 255.0
    # texture luminance at each vertex (the first uv a vertex appears with)
    vuv = np.zeros((len(pos), 2))
    vuv[tri.ravel()] = uv[tri_uv.ravel()]
    lum = rsc.bilinear(tex, vuv) @ np.array([0.3, 0.59, 0.11])
    _COW_CACHE["mesh"] = (pos, vn, tri, lum)
    return _COW_CACHE["mesh"]


def _cow(rng, c):
    pos, vn, tri, lum = _cow_mesh()
    s = np.array([rng.uniform(0.95, 1.05), rng.uniform(0.95, 1.1), rng.uniform(0.95, 1.05)])
    # Spot's texture is light with dark patches: the colour word tints the light parts.
    albedo = np.asarray(c)[None, :] * (0.35 + 0.65 * np.clip(lum, 0, 1))[:, None]
    return Mesh(pos * s, vn, tri, albedo)


BUILDERS = {
    "chair": _chair, "table": _table, "mushroom": _mushroom, "snowman": _snowman, "car": _car,
    "house": _house, "tree": _tree, "lamp": _lamp, "cup": _cup, "bench": _bench, "rocket": _rocket,
    "teddy bear": _teddy, "cow": _cow, "umbrella": _umbrella, "duck": _duck, "robot": _robot,
}  # fmt: skip


def make_object(category: str, colour: str, seed: int) -> Scene:
    """The object `category` in `colour`, instance `seed`, normalised to the canonical frame."""
    if category not in BUILDERS:
        raise KeyError(f"unknown category {category!r}")
    ss = np.random.SeedSequence([CATEGORIES.index(category), list(COLOURS).index(colour), seed])
    rng = np.random.default_rng(ss)
    base = np.asarray(COLOURS[colour])
    c = tuple(np.clip(base + rng.uniform(-0.04, 0.04, 3), 0, 1)) if seed != 0 else tuple(base)
    parts = BUILDERS[category](rng, c)
    scene = Scene(meshes=[parts]) if isinstance(parts, Mesh) else Scene(prims=parts)
    lo, hi = scene.bounds()
    scale = EXTENT / float((hi - lo).max())
    centre = 0.5 * (lo + hi) * scale
    return scene.transformed(scale, -centre)
