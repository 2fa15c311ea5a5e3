#!/usr/bin/env python3
"""Write the bad-input corpus `crates/cli/tests/bad_inputs/<case>/` (case.toml plus the case's files).

Every case is one malformed input to the `splatdream` CLI; `crates/cli/tests/bad_inputs.rs`
runs the binary on each and requires a non-zero exit, no panic, no GPU validation error, no
hang, and a message containing every `expect` string (the file and the field at fault). See
`crates/cli/tests/bad_inputs/README.md` for the case.toml format.

Standard library only; deterministic. Run from the repository root:

    python3 tools/gen_bad_inputs.py            # rewrites crates/cli/tests/bad_inputs/ (README kept)

Cases whose inputs are a broken copy of the tiny SD model are described here only by their
`model_base` / `remove` / `[[safetensors]]` edits; the test assembles the copy at run time.
"""

import gzip
import json
import math
import shutil
import struct
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "crates" / "cli" / "tests" / "bad_inputs"
TINY = ROOT / "tests" / "cases" / "sd" / "tiny-eps"

CASES = []


def toml_str(s):
    return json.dumps(s, ensure_ascii=False)


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return toml_str(v)
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{toml_str(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def case(name, what, args, expect, files=None, model_base=None, remove=None, safetensors=None,
         platforms=None):
    """Register a case: `files` maps relative paths to bytes or str."""
    CASES.append(dict(name=name, what=what, args=args, expect=expect, files=files or {},
                      model_base=model_base, remove=remove or [], safetensors=safetensors or [],
                      platforms=platforms))


def write_case(c):
    d = OUT / c["name"]
    d.mkdir(parents=True)
    lines = [f"# {c['what']}", f"args = {toml_value(c['args'])}",
             f"expect = {toml_value(c['expect'])}"]
    if c["model_base"]:
        lines.append(f"model_base = {toml_str(c['model_base'])}")
    if c["platforms"]:
        lines.append(f"platforms = {toml_value(c['platforms'])}")
    if c["remove"]:
        lines.append(f"remove = {toml_value(c['remove'])}")
    for e in c["safetensors"]:
        lines.append("")
        lines.append("[[safetensors]]")
        for k, v in e.items():
            lines.append(f"{k} = {toml_value(v)}")
    (d / "case.toml").write_text("\n".join(lines) + "\n")
    for rel, data in c["files"].items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        p.write_bytes(data)


# --------------------------------------------------------------------------------------------
# Building blocks.

def png(w, h, rgba=False, seed=1):
    """A small deterministic PNG (8-bit RGB or RGBA)."""
    ch = 4 if rgba else 3
    raw = bytearray()
    for y in range(h):
        raw.append(0)
        for x in range(w):
            px = [(x * 37 + y * 11 + seed * 53 + c * 71) % 256 for c in range(3)]
            if rgba:
                px.append(255 if (x + y) % 3 else 128)
            raw.extend(px)

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6 if rgba else 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(raw)))
            + chunk(b"IEND", b""))


SPLAT_PROPS = (["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1",
                "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def splat_row(i, props):
    v = {"x": 0.1 * i, "y": -0.05 * i, "z": 0.02 * i, "f_dc_0": 0.5, "f_dc_1": 0.2,
         "f_dc_2": -0.1, "opacity": 1.0, "scale_0": -3.0, "scale_1": -3.2, "scale_2": -2.9,
         "rot_0": 1.0, "rot_1": 0.0, "rot_2": 0.0, "rot_3": 0.0}
    return [v.get(p, 0.0) for p in props]


def ply(n=3, props=None, declared=None, rows=None, fmt="binary_little_endian", header_end=True,
        magic="ply", edit=None, extra_header=""):
    """A splat PLY: `props` (float properties), `declared` vertex count in the header (default
    n), `rows` explicit values, `edit(i, row_dict)` to alter values."""
    props = props or SPLAT_PROPS
    declared = n if declared is None else declared
    if rows is None:
        rows = []
        for i in range(n):
            r = dict(zip(props, splat_row(i, props)))
            if edit:
                edit(i, r)
            rows.append([r[p] for p in props])
    head = f"{magic}\nformat {fmt} 1.0\ncomment bad-input corpus\n{extra_header}"
    head += f"element vertex {declared}\n"
    head += "".join(f"property float {p}\n" for p in props)
    if header_end:
        head += "end_header\n"
    body = bytearray()
    for r in rows:
        if fmt == "ascii":
            body += (" ".join(x if isinstance(x, str) else repr(float(x)) for x in r) + "\n").encode()
        else:
            body += struct.pack("<" + "f" * len(r), *r)
    return head.encode() + bytes(body)


def opengl_pose(angle_deg, dist=4.0):
    """Camera-to-world (OpenGL) on a circle around the origin, looking at it."""
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    return [[c, 0.0, s, dist * s], [0.0, 1.0, 0.0, 0.0], [-s, 0.0, c, dist * c],
            [0.0, 0.0, 0.0, 1.0]]


def nerf(frames_edit=None, top_edit=None, images=None, text=None, name="transforms_train.json"):
    """A two-view NeRF-synthetic folder under `data/`."""
    top = {"camera_angle_x": 0.69,
           "frames": [{"file_path": f"./train/r_{i}", "transform_matrix": opengl_pose(90 * i)}
                      for i in range(2)]}
    if top_edit:
        top_edit(top)
    if frames_edit:
        frames_edit(top["frames"])
    files = {f"data/{name}": text if text is not None else json.dumps(top, indent=1)}
    imgs = {f"data/train/r_{i}.png": png(8, 8, rgba=True, seed=i) for i in range(2)}
    if images is not None:
        imgs.update(images)
    files.update({k: v for k, v in imgs.items() if v is not None})
    return files


def ngp(frames_edit=None, top_edit=None, images=None):
    """A three-view instant-ngp folder under `data/` (`transforms.json`, `images/`)."""
    top = {"fl_x": 10.0, "fl_y": 10.0, "cx": 4.0, "cy": 4.0, "w": 8, "h": 8,
           "frames": [{"file_path": f"images/{i}.png", "transform_matrix": opengl_pose(60 * i)}
                      for i in range(3)]}
    if top_edit:
        top_edit(top)
    if frames_edit:
        frames_edit(top["frames"])
    files = {"data/transforms.json": json.dumps(top, indent=1)}
    imgs = {f"data/images/{i}.png": png(8, 8, seed=i) for i in range(3)}
    if images is not None:
        imgs.update(images)
    files.update({k: v for k, v in imgs.items() if v is not None})
    return files


# COLMAP: one PINHOLE camera, two images, three points.
COLMAP_CAMS = [(1, 1, 8, 8, [10.0, 10.0, 4.0, 4.0])]
COLMAP_IMGS = [(1, [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 4.0], 1, "a.png"),
               (2, [0.7071, 0.0, 0.7071, 0.0], [0.0, 0.0, 4.0], 1, "b.png")]
COLMAP_PTS = [(i + 1, [0.1 * i, 0.0, -0.1 * i], [200, 100, 50]) for i in range(3)]


def cameras_bin(cams=COLMAP_CAMS, count=None):
    b = struct.pack("<Q", len(cams) if count is None else count)
    for cid, model, w, h, params in cams:
        b += struct.pack("<iiQQ", cid, model, w, h) + struct.pack("<" + "d" * len(params), *params)
    return b


def images_bin(imgs=COLMAP_IMGS, count=None):
    b = struct.pack("<Q", len(imgs) if count is None else count)
    for iid, q, t, cid, name in imgs:
        b += struct.pack("<i", iid) + struct.pack("<4d", *q) + struct.pack("<3d", *t)
        b += struct.pack("<i", cid) + name.encode() + b"\0"
        b += struct.pack("<Q", 1) + struct.pack("<ddq", 4.0, 4.0, 1)
    return b


def points_bin(pts=COLMAP_PTS, count=None):
    b = struct.pack("<Q", len(pts) if count is None else count)
    for pid, xyz, rgb in pts:
        b += struct.pack("<Q", pid) + struct.pack("<3d", *xyz) + bytes(rgb)
        b += struct.pack("<d", 0.5) + struct.pack("<Q", 1) + struct.pack("<ii", 1, 0)
    return b


def cameras_txt(cams=COLMAP_CAMS, names=("SIMPLE_PINHOLE", "PINHOLE")):
    s = "# Camera list\n"
    for cid, model, w, h, params in cams:
        s += f"{cid} {names[model]} {w} {h} " + " ".join(repr(p) for p in params) + "\n"
    return s


def images_txt(imgs=COLMAP_IMGS):
    s = "# Image list\n"
    for iid, q, t, cid, name in imgs:
        s += f"{iid} " + " ".join(repr(x) for x in q + t) + f" {cid} {name}\n4.0 4.0 1\n"
    return s


def points_txt(pts=COLMAP_PTS):
    s = "# 3D point list\n"
    for pid, xyz, rgb in pts:
        s += f"{pid} " + " ".join(repr(x) for x in xyz) + " " + " ".join(map(str, rgb))
        s += " 0.5 1 0\n"
    return s


def colmap(cams=None, imgs=None, pts=None, text=False, images=None):
    """A COLMAP folder under `data/` (`sparse/0/`, `images/`); pass bytes/str to override a
    model file."""
    ext = "txt" if text else "bin"
    gen = (cameras_txt, images_txt, points_txt) if text else (cameras_bin, images_bin, points_bin)
    files = {}
    for stem, given, g in zip(("cameras", "images", "points3D"), (cams, imgs, pts), gen):
        files[f"data/sparse/0/{stem}.{ext}"] = g() if given is None else given
    imgs_files = {"data/images/a.png": png(8, 8, seed=3), "data/images/b.png": png(8, 8, seed=4)}
    if images is not None:
        imgs_files.update(images)
    files.update({k: v for k, v in imgs_files.items() if v is not None})
    return files


FIT = ["fit", "{case}/data", "--steps", "1", "--out", "{tmp}/run"]
RENDER = ["render", "--width", "16", "--height", "16", "--out", "{tmp}/out.png", "--ply"]
SAMPLE = ["sample", "--model", "{tiny_model}", "--steps", "1", "--width", "64", "--height", "64",
          "--out", "{tmp}/sample.png", "--prompt"]
GENERATE_NO_OUT = ["generate", "--model", "{tiny_model}", "--resolution", "64", "--set",
                   "init.count=200", "--steps", "1", "--batch", "1"]
GENERATE = GENERATE_NO_OUT + ["--out", "{tmp}/run"]
GENERATE_BASE = ["generate", "--model", "{tiny_model}", "--resolution", "64", "--set",
                 "init.count=200", "--out", "{tmp}/run"]
DISTILL2D = ["distill2d", "--model", "{tiny_model}", "--steps", "1", "--size", "64",
             "--out", "{tmp}/run"]


def define():
    # ---------------------------------------------------------------- PLY (render --ply)
    def ply_case(name, what, data, expect):
        case(name, what, RENDER + ["{case}/scene.ply"], ["scene.ply"] + expect,
             {"scene.ply": data})

    ply_case("ply-empty-file", "a zero-byte PLY", b"", [])
    ply_case("ply-no-magic", "the first line is not `ply`", ply(magic="plx"), ["ply"])
    ply_case("ply-missing-end-header", "the header never ends (no `end_header`)",
             ply(header_end=False, n=0), ["end_header"])
    ply_case("ply-unknown-format", "the format line names an unknown encoding",
             ply(fmt="binary_middle_endian"), ["format"])
    ply_case("ply-missing-x", "no `x` property",
             ply(props=[p for p in SPLAT_PROPS if p != "x"]), ["`x`"])
    ply_case("ply-missing-opacity", "no `opacity` property",
             ply(props=[p for p in SPLAT_PROPS if p != "opacity"]), ["`opacity`"])
    ply_case("ply-missing-scale-2", "no `scale_2` property",
             ply(props=[p for p in SPLAT_PROPS if p != "scale_2"]), ["`scale_2`"])
    ply_case("ply-missing-rot-0", "no `rot_0` property",
             ply(props=[p for p in SPLAT_PROPS if p != "rot_0"]), ["`rot_0`"])
    ply_case("ply-f-rest-count", "7 `f_rest_*` properties: no SH degree has that many",
             ply(props=SPLAT_PROPS + [f"f_rest_{i}" for i in range(7)]), ["f_rest"])
    ply_case("ply-no-vertex-element", "the only element is `face`",
             b"ply\nformat ascii 1.0\nelement face 0\nproperty list uchar int vertex_indices\n"
             b"end_header\n", ["vertex"])
    ply_case("ply-list-property", "`x` is declared as a list",
             b"ply\nformat ascii 1.0\nelement vertex 1\nproperty list uchar float x\n"
             + "".join(f"property float {p}\n" for p in SPLAT_PROPS[1:]).encode()
             + b"end_header\n1 0.5 " + b" ".join(b"0.5" for _ in SPLAT_PROPS[1:]) + b"\n",
             ["`x`"])
    ply_case("ply-truncated-body", "the header declares 10 vertices, the body holds 3",
             ply(n=3, declared=10), ["vertex"])
    ply_case("ply-trailing-data", "the header declares 2 vertices, the body holds 3",
             ply(n=3, declared=2), ["vertex"])
    ply_case("ply-huge-vertex-count", "the header declares 10^12 vertices (must not allocate)",
             ply(n=2, declared=10**12), ["1000000000000"])
    ply_case("ply-zero-vertices", "a valid header with no vertices: nothing to render",
             ply(n=0), ["vertex"])
    ply_case("ply-nan-mean", "vertex 1 has x = NaN",
             ply(edit=lambda i, r: r.update(x=float("nan")) if i == 1 else None),
             ["vertex 1", "`x`"])
    ply_case("ply-inf-scale", "vertex 2 has scale_1 = +Inf",
             ply(edit=lambda i, r: r.update(scale_1=float("inf")) if i == 2 else None),
             ["vertex 2", "`scale_1`"])
    ply_case("ply-zero-quaternion", "vertex 0 has rot_0..rot_3 = 0",
             ply(edit=lambda i, r: r.update(rot_0=0.0) if i == 0 else None),
             ["vertex 0", "quaternion"])
    rows = [splat_row(i, SPLAT_PROPS) for i in range(2)]
    rows[1][5] = "banana"
    ply_case("ply-ascii-not-a-number", "an ascii PLY with `banana` for f_dc_2",
             ply(fmt="ascii", rows=rows, n=2), ["banana"])
    ply_case("ply-ascii-short-row", "an ascii PLY whose second row has 5 of 14 values",
             ply(fmt="ascii", n=2, rows=[splat_row(0, SPLAT_PROPS),
                                         splat_row(1, SPLAT_PROPS)[:5]]), [])

    # ---------------------------------------------------------------- camera JSON (render)
    good = json.dumps({"viewmat": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]],
                       "K": [[20, 0, 8], [0, 20, 8], [0, 0, 1]], "width": 16, "height": 16})
    case("camera-malformed-json", "render --camera with a JSON syntax error",
         ["render", "--ply", "assets/donut.ply", "--camera", "{case}/camera.json", "--out",
          "{tmp}/out.png"], ["camera.json"], {"camera.json": good[:-9]})
    case("camera-singular-viewmat", "render --camera whose viewmat is all zeros",
         ["render", "--ply", "assets/donut.ply", "--camera", "{case}/camera.json", "--out",
          "{tmp}/out.png"], ["camera.json", "viewmat"],
         {"camera.json": good.replace('[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]]',
                                      '[[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]')})
    case("camera-zero-size", "render --camera with width 0",
         ["render", "--ply", "assets/donut.ply", "--camera", "{case}/camera.json", "--out",
          "{tmp}/out.png"], ["camera.json", "width"],
         {"camera.json": good.replace('"width": 16', '"width": 0')})
    case("render-zero-size", "render --width 0 (a zero-size image)",
         ["render", "--ply", "assets/donut.ply", "--width", "0", "--height", "16", "--out",
          "{tmp}/out.png"], ["--width"])
    # ---------------------------------------------------------------- compressed scene files
    def spz_legacy(version, points, sh_degree, body):
        head = struct.pack("<IIIBBBB", 0x5053474E, version, points, sh_degree, 12, 0, 0)
        return gzip.compress(head + body, mtime=0)
    RENDER16 = ["render", "--width", "16", "--height", "16", "--out", "{tmp}/out.png", "--ply"]
    case("spz-version-unsupported", "an SPZ whose gzip header says version 7",
         RENDER16 + ["{case}/scene.spz"], ["scene.spz", "version", "7"],
         {"scene.spz": spz_legacy(7, 1, 0, bytes(19))})
    case("spz-sh-degree-4", "an SPZ 3 of SH degree 4 (we hold 0–3)",
         RENDER16 + ["{case}/scene.spz"], ["scene.spz", "shDegree"],
         {"scene.spz": spz_legacy(3, 1, 4, bytes(20 + 72))})
    case("spz-gzip-short", "an SPZ 3 whose gzip body holds 2 of the 10 points it declares",
         RENDER16 + ["{case}/scene.spz"], ["scene.spz", "numPoints"],
         {"scene.spz": spz_legacy(3, 10, 0, bytes(2 * 20))})
    ngsp = struct.pack("<IIIBBBBI12x", 0x5053474E, 4, 10, 0, 12, 0, 6, 32)
    ngsp += b"".join(struct.pack("<QQ", 1000, n) for n in [90, 10, 30, 30, 40, 0])
    case("spz-v4-truncated", "an SPZ 4 whose streams end at the table of contents",
         RENDER16 + ["{case}/scene.spz"], ["scene.spz", "stream 0", "past the file end"],
         {"scene.spz": ngsp})
    chunk_header = ("ply\nformat binary_little_endian 1.0\nelement chunk 2\n"
                    + "".join(f"property float {p}\n" for p in
                              ["min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
                               "min_scale_x", "min_scale_y", "min_scale_z",
                               "max_scale_x", "max_scale_y", "max_scale_z"])
                    + "element vertex 300\n"
                    + "".join(f"property uint {p}\n" for p in
                              ["packed_position", "packed_rotation", "packed_scale",
                               "packed_color"])
                    + "end_header\n").encode()
    case("compressed-ply-truncated", "a compressed PLY cut after 100 of its 300 splats",
         RENDER16 + ["{case}/scene.compressed.ply"],
         ["scene.compressed.ply", "vertex", "truncated"],
         {"scene.compressed.ply": chunk_header + bytes(2 * 48 + 100 * 16)})
    case("splat-odd-length", "a .splat file of 33 bytes",
         RENDER16 + ["{case}/scene.splat"], ["scene.splat", "32-byte"],
         {"scene.splat": bytes(33)})
    case("convert-unknown-output", "convert to a name of no scene format",
         ["convert", "assets/donut.ply", "{tmp}/donut.obj"], ["donut.obj", ".spz"])
    case("convert-spz-version", "convert --spz-version 5",
         ["convert", "assets/donut.ply", "{tmp}/donut.spz", "--spz-version", "5"],
         ["--spz-version", "5"])
    # ---------------------------------------------------------------- mesh
    case("mesh-grid-too-large", "mesh --resolution 4096 (a grid of ~2^36 cells)",
         ["mesh", "assets/donut.ply", "--out", "{tmp}/donut.glb", "--resolution", "4096"],
         ["donut.ply", "resolution 4096", "exceeds"])
    case("mesh-unknown-format", "mesh --out of an extension we do not write",
         ["mesh", "assets/donut.ply", "--out", "{tmp}/donut.stl"], ["donut.stl", ".glb"])
    case("mesh-no-surface", "mesh --iso above every density of the scene",
         ["mesh", "assets/donut.ply", "--out", "{tmp}/donut.glb", "--resolution", "16",
          "--iso", "1e9"], ["donut.ply", "iso", "no surface"])
    case("mesh-out-not-a-dir", "mesh --out inside a regular file (ENOTDIR)",
         ["mesh", "assets/donut.ply", "--out", "{case}/not_a_dir.txt/donut.glb"],
         ["not_a_dir.txt"], {"not_a_dir.txt": "a regular file\n"})
    case("render-path-empty", "render --path with an empty camera list",
         ["render", "--ply", "assets/donut.ply", "--path", "{case}/cams.json", "--out",
          "{tmp}/out.mp4"], ["cams.json", "no cameras"], {"cams.json": "[]\n"})
    case("render-path-bad-camera", "render --path whose second camera has width 0",
         ["render", "--ply", "assets/donut.ply", "--path", "{case}/cams.json", "--out",
          "{tmp}/out.mp4"], ["cams.json[1]", "width"],
         {"cams.json": "[" + good + "," + good.replace('"width": 16', '"width": 0') + "]\n"})
    case("render-out-unknown-type", "render --out with an extension that is no image or video",
         ["render", "--ply", "assets/donut.ply", "--out", "{tmp}/out.webm"],
         ["out.webm", ".mp4"])
    case("render-out-not-a-dir", "render --out inside a regular file (ENOTDIR)",
         ["render", "--ply", "assets/donut.ply", "--width", "16", "--height", "16", "--out",
          "{case}/not_a_dir.txt/out.png"], ["not_a_dir.txt"],
         {"not_a_dir.txt": "a regular file, not a folder\n"})

    # ---------------------------------------------------------------- NeRF-synthetic (fit)
    def fit_case(name, what, files, expect, extra=()):
        case(name, what, FIT + list(extra), expect, files)

    fit_case("nerf-malformed-json", "transforms_train.json is cut mid-object",
             nerf(text='{"camera_angle_x": 0.69, "frames": [{"file_path": "./train/r_0", '),
             ["transforms_train.json", "JSON"])
    fit_case("nerf-missing-camera-angle-x", "no `camera_angle_x` (and no `fl_x`)",
             nerf(top_edit=lambda t: t.pop("camera_angle_x")),
             ["transforms_train.json", "camera_angle_x"])
    fit_case("nerf-empty-frames", "`frames` is an empty array",
             nerf(top_edit=lambda t: t.update(frames=[])), ["transforms_train.json", "frames"])
    fit_case("nerf-matrix-3x3", "frame 1's transform_matrix is 3×3",
             nerf(frames_edit=lambda f: f[1].update(
                 transform_matrix=[[1, 0, 0], [0, 1, 0], [0, 0, 1]])),
             ["transforms_train.json", "frame 1", "transform_matrix"])
    fit_case("nerf-singular-matrix", "frame 0's transform_matrix has a zero rotation",
             nerf(frames_edit=lambda f: f[0].update(
                 transform_matrix=[[0, 0, 0, 1], [0, 0, 0, 2], [0, 0, 0, 3], [0, 0, 0, 1]])),
             ["transforms_train.json", "frame 0", "transform_matrix", "invertible"])
    fit_case("nerf-missing-image", "frame 1 points at train/r_9 which does not exist",
             nerf(frames_edit=lambda f: f[1].update(file_path="./train/r_9")), ["r_9.png"])
    fit_case("nerf-zero-byte-image", "train/r_1.png is empty",
             nerf(images={"data/train/r_1.png": b""}), ["r_1.png"])
    fit_case("nerf-truncated-png", "train/r_0.png is cut after 40 bytes",
             nerf(images={"data/train/r_0.png": png(8, 8, rgba=True)[:40]}), ["r_0.png"])
    fit_case("nerf-file-path-number", "frame 0's file_path is a number",
             nerf(frames_edit=lambda f: f[0].update(file_path=17)),
             ["transforms_train.json", "frame 0", "file_path"])

    # ---------------------------------------------------------------- instant-ngp (fit)
    fit_case("ngp-missing-focal", "no `fl_x` and no `camera_angle_x` anywhere",
             ngp(top_edit=lambda t: [t.pop("fl_x"), t.pop("fl_y")]),
             ["transforms.json", "camera_angle_x"])
    fit_case("ngp-negative-focal", "fl_x = -10",
             ngp(top_edit=lambda t: t.update(fl_x=-10.0)), ["transforms.json", "fl_x"])
    fit_case("ngp-size-mismatch", "w × h = 8×8 but images/1.png is 16×4",
             ngp(images={"data/images/1.png": png(16, 4, seed=9)}), ["1.png", "w"])
    fit_case("ngp-singular-matrix", "frame 2's transform_matrix is all zeros",
             ngp(frames_edit=lambda f: f[2].update(transform_matrix=[[0] * 4] * 4)),
             ["transforms.json", "frame 2", "transform_matrix"])
    fit_case("ngp-zero-size-image", "images/0.png is a valid PNG of 0×0 pixels",
             ngp(images={"data/images/0.png": png(0, 0)}), ["0.png"])

    # ---------------------------------------------------------------- COLMAP binary (fit)
    fit_case("colmap-cameras-bin-truncated", "cameras.bin cut in the middle of the camera",
             colmap(cams=cameras_bin()[:30]), ["cameras.bin", "truncated"])
    fit_case("colmap-images-bin-truncated", "images.bin cut inside the second image's name",
             colmap(imgs=images_bin()[:-35]), ["images.bin"])
    fit_case("colmap-points-bin-truncated", "points3D.bin cut in the middle of a point",
             colmap(pts=points_bin()[:60]), ["points3D.bin"])
    fit_case("colmap-bad-magic", "cameras.bin holds text (no COLMAP binary)",
             colmap(cams=b"# Camera list with one camera\n1 PINHOLE 8 8 10 10 4 4\n"),
             ["cameras.bin"])
    fit_case("colmap-absurd-count", "cameras.bin declares 2^60 cameras",
             colmap(cams=cameras_bin(count=1 << 60)), ["cameras.bin", "count"])
    fit_case("colmap-unknown-model-id", "camera 1 has model id 42",
             colmap(cams=cameras_bin([(1, 42, 8, 8, [10.0, 10.0, 4.0, 4.0])])),
             ["cameras.bin", "camera 1", "42"])
    fit_case("colmap-image-missing-camera", "image 2 names camera 7, which does not exist",
             colmap(imgs=images_bin([COLMAP_IMGS[0], (2, [1.0, 0, 0, 0], [0, 0, 4.0], 7,
                                                      "b.png")])),
             ["images.bin", "image 2", "camera 7"])
    fit_case("colmap-zero-quaternion", "image 1's quaternion is zero",
             colmap(imgs=images_bin([(1, [0.0, 0.0, 0.0, 0.0], [0, 0, 4.0], 1, "a.png"),
                                     COLMAP_IMGS[1]])),
             ["images.bin", "image 1", "quaternion"])
    fit_case("colmap-missing-image-file", "images/b.png is not there",
             colmap(images={"data/images/b.png": None}), ["b.png"])
    fit_case("colmap-zero-size-camera", "camera 1 is 0×8 pixels",
             colmap(cams=cameras_bin([(1, 1, 0, 8, [10.0, 10.0, 4.0, 4.0])])),
             ["cameras.bin", "camera 1"])

    # ---------------------------------------------------------------- COLMAP text (fit)
    fit_case("colmap-txt-malformed-camera-line", "cameras.txt line with a word for the width",
             colmap(text=True, cams="1 PINHOLE wide 8 10 10 4 4\n"), ["cameras.txt", "line"])
    fit_case("colmap-txt-wrong-param-count", "PINHOLE with 3 parameters",
             colmap(text=True, cams="1 PINHOLE 8 8 10 10 4\n"),
             ["cameras.txt", "PINHOLE", "parameters"])
    fit_case("colmap-txt-unknown-model", "camera model FANCY_LENS",
             colmap(text=True, cams="1 FANCY_LENS 8 8 10 10 4 4\n"),
             ["cameras.txt", "FANCY_LENS"])
    fit_case("colmap-txt-image-missing-camera", "image 1 names camera 3",
             colmap(text=True, imgs=images_txt([(1, [1.0, 0, 0, 0], [0, 0, 4.0], 3, "a.png"),
                                                COLMAP_IMGS[1]])),
             ["images.txt", "image 1", "camera 3"])
    fit_case("colmap-txt-image-bad-number", "images.txt: QW is `one`",
             colmap(text=True, imgs=images_txt().replace("1 1.0 0.0", "1 one 0.0", 1)),
             ["images.txt", "line"])
    fit_case("colmap-txt-image-short-line", "images.txt: an image line with 5 fields",
             colmap(text=True, imgs="1 1.0 0.0 0.0 0.0\n\n"), ["images.txt", "line"])
    fit_case("colmap-txt-points-malformed", "points3D.txt: a point with no colour",
             colmap(text=True, pts="1 0.0 0.0 0.0\n"), ["points3D.txt", "line"])
    fit_case("colmap-txt-missing-image-file", "images.txt names c.png, absent from images/",
             colmap(text=True, imgs=images_txt([COLMAP_IMGS[0],
                                                (2, [1.0, 0, 0, 0], [0, 0, 4.0], 1, "c.png")])),
             ["c.png"])

    # ---------------------------------------------------------------- fit settings
    fit_case("fit-config-malformed-toml", "fit --config: a TOML syntax error",
             colmap(), ["bad.toml"], ["--config", "{case}/bad.toml"])
    CASES[-1]["files"]["bad.toml"] = "[train\nsteps = 3\n"
    fit_case("fit-config-unknown-key", "fit --config: [train] stpes = 3",
             colmap(), ["bad.toml", "stpes"], ["--config", "{case}/bad.toml"])
    CASES[-1]["files"]["bad.toml"] = "[train]\nstpes = 3\n"
    fit_case("fit-config-negative-steps", "fit --config: [train] steps = -5",
             colmap(), ["bad.toml", "steps"], ["--config", "{case}/bad.toml"])
    CASES[-1]["files"]["bad.toml"] = "[train]\nsteps = -5\n"
    case("fit-no-dataset", "fit on a folder with no dataset layout",
         ["fit", "{case}/empty", "--steps", "1", "--out", "{tmp}/run"], ["empty"],
         {"empty/README": "no transforms, no sparse/ here\n"})
    case("fit-out-not-a-dir", "fit --out inside a regular file (ENOTDIR)",
         FIT[:4] + ["--out", "{case}/not_a_dir.txt/run"], ["--out", "not_a_dir.txt", "is not a folder"],
         dict(colmap(), **{"not_a_dir.txt": "a regular file\n"}))
    case("fit-init-ply-missing", "fit --init points at a missing PLY",
         FIT + ["--init", "{case}/missing.ply"], ["missing.ply"], colmap())

    # ---------------------------------------------------------------- model folders (sample)
    def model_case(name, what, expect, prompt="a corgi", **kw):
        case(name, what, SAMPLE + [prompt], expect, model_base="tiny-eps", **kw)

    model_case("model-missing-vae", "the model folder has no vae/", ["vae"], remove=["vae"])
    model_case("model-missing-text-encoder-config", "text_encoder/ has no config.json",
               ["text_encoder/config.json"], remove=["text_encoder/config.json"])
    model_case("model-missing-unet-weights", "unet/ has its config but no weights",
               ["unet"], remove=["unet/diffusion_pytorch_model.safetensors"])
    cfg = json.loads((TINY / "unet" / "config.json").read_text())
    model_case("model-unet-config-malformed", "unet/config.json is not JSON",
               ["unet/config.json"], files={"model/unet/config.json": "{\"sample_size\": 16,,}"})
    bad = dict(cfg, block_out_channels="sixteen")
    model_case("model-unet-config-wrong-type", "unet/config.json: block_out_channels is a string",
               ["unet/config.json", "block_out_channels"],
               files={"model/unet/config.json": json.dumps(bad, indent=1)})
    vcfg = json.loads((TINY / "vae" / "config.json").read_text())
    bad = dict(vcfg, latent_channels=-4)
    model_case("model-vae-config-negative", "vae/config.json: latent_channels = -4",
               ["vae/config.json", "latent_channels"],
               files={"model/vae/config.json": json.dumps(bad, indent=1)})
    model_case("model-scheduler-config-malformed", "scheduler/scheduler_config.json is empty",
               ["scheduler_config.json"], files={"model/scheduler/scheduler_config.json": ""})
    model_case("model-tensor-wrong-shape", "unet conv_in.weight stored as [16, 4, 1, 1]",
               ["diffusion_pytorch_model.safetensors", "conv_in.weight"],
               safetensors=[{"file": "unet/diffusion_pytorch_model.safetensors",
                             "shape": {"conv_in.weight": [16, 4, 1, 1]}}])
    model_case("model-tensor-i64", "vae decoder.conv_in.bias stored as I64",
               ["vae/diffusion_pytorch_model.safetensors", "decoder.conv_in.bias"],
               safetensors=[{"file": "vae/diffusion_pytorch_model.safetensors",
                             "dtype": {"decoder.conv_in.bias": "I64"}}])
    model_case("model-missing-tensor", "text encoder without layers.0.layer_norm1.weight",
               ["model.safetensors", "text_model.encoder.layers.0.layer_norm1.weight"],
               safetensors=[{"file": "text_encoder/model.safetensors",
                             "drop": ["text_model.encoder.layers.0.layer_norm1.weight"]}])
    model_case("model-safetensors-header-too-long",
               "the header length field says 2^40 bytes, past the end of the file",
               ["unet/diffusion_pytorch_model.safetensors"],
               safetensors=[{"file": "unet/diffusion_pytorch_model.safetensors",
                             "patch": [{"offset": 0, "hex": "0000000000010000"}]}])
    model_case("model-safetensors-corrupt-header", "a `{` in the header JSON becomes `#`",
               ["text_encoder/model.safetensors"],
               safetensors=[{"file": "text_encoder/model.safetensors",
                             "patch": [{"offset": 8, "hex": "23"}]}])
    model_case("model-safetensors-truncated", "the VAE weights cut to half their size",
               ["vae/diffusion_pytorch_model.safetensors"],
               safetensors=[{"file": "vae/diffusion_pytorch_model.safetensors",
                             "truncate": 888654}])
    model_case("model-safetensors-tiny", "the U-Net weights are a 5-byte file",
               ["unet/diffusion_pytorch_model.safetensors"],
               safetensors=[{"file": "unet/diffusion_pytorch_model.safetensors",
                             "truncate": 5}])
    model_case("model-tokenizer-merges-corrupt", "tokenizer/merges.txt holds one-token lines",
               ["merges.txt"], files={"model/tokenizer/merges.txt":
                                      "#version: 0.2\nab\ncd\n"})
    case("model-not-found", "--model names a folder that does not exist",
         SAMPLE[:2] + ["{case}/no-such-model"] + SAMPLE[3:] + ["a corgi"], ["no-such-model"])

    # ---------------------------------------------------------------- prompts and options
    long_prompt = " ".join(["a very detailed photograph of a corgi"] * 40)
    case("prompt-empty", "sample --prompt \"\"", SAMPLE + [""], ["--prompt", "empty"])
    case("prompt-300-tokens", "sample --prompt with 280 words",
         SAMPLE + [long_prompt], ["--prompt", "tokens", "77"])
    case("sample-out-not-a-dir", "sample --out inside a regular file (ENOTDIR)",
         ["sample", "--model", "{tiny_model}", "--steps", "1", "--width", "64", "--height", "64",
          "--prompt", "a corgi", "--out", "{case}/not_a_dir.txt/sample.png"],
         ["not_a_dir.txt"], {"not_a_dir.txt": "a regular file\n"})
    case("sample-size-not-multiple", "sample --width 60 (not a multiple of 8)",
         ["sample", "--model", "{tiny_model}", "--steps", "1", "--width", "60", "--height", "64",
          "--prompt", "a corgi", "--out", "{tmp}/s.png"], ["60", "width", "multiple"])
    case("sample-zero-steps", "sample --steps 0",
         ["sample", "--model", "{tiny_model}", "--steps", "0", "--width", "64", "--height", "64",
          "--prompt", "a corgi", "--out", "{tmp}/s.png"], ["--steps"])
    case("generate-prompt-300-tokens", "generate --prompt with 280 words",
         GENERATE + ["--prompt", long_prompt], ["--prompt", "tokens", "77"])
    case("generate-prompt-empty", "generate --prompt \"  \"", GENERATE + ["--prompt", "  "],
         ["prompt", "empty"])
    case("generate-prompts-file-blank", "generate --prompts: a file of blank lines",
         GENERATE + ["--prompts", "{case}/prompts.txt"], ["prompts.txt", "no prompts"],
         {"prompts.txt": "\n   \n\n"})
    case("generate-prompts-file-long", "generate --prompts: line 2 is 280 words",
         GENERATE + ["--prompts", "{case}/prompts.txt"], ["prompts.txt", "line 2", "tokens"],
         {"prompts.txt": "a corgi\n" + long_prompt + "\n"})
    case("generate-shard-out-of-range", "generate --prompts --shard 2/2: no such shard",
         GENERATE + ["--prompts", "{case}/prompts.txt", "--shard", "2/2"],
         ["--shard 2/2", "0 ≤ I < N"], {"prompts.txt": "a corgi\na cat\n"})
    case("compare-shard-malformed", "compare --shard 1-of-2: not I/N",
         ["compare", "--methods", "sds", "--model", "{tiny_model}", "--prompt", "a corgi",
          "--steps", "1", "--out", "{tmp}/cmp", "--shard", "1-of-2"],
         ["--shard 1-of-2", "I/N"])
    case("generate-config-malformed", "generate --config: unterminated string",
         GENERATE + ["--prompt", "a corgi", "--config", "{case}/bad.toml"], ["bad.toml"],
         {"bad.toml": 'prompt = "a corgi\nsteps = 3\n'})
    case("generate-config-unknown-key", "generate --config: `stpes = 3`",
         GENERATE + ["--prompt", "a corgi", "--config", "{case}/bad.toml"],
         ["bad.toml", "stpes"], {"bad.toml": "stpes = 3\n"})
    case("generate-config-zero-steps", "generate --config: steps = 0 (no --steps override)",
         GENERATE_BASE + ["--batch", "1", "--prompt", "a corgi", "--config", "{case}/bad.toml"],
         ["bad.toml", "steps"], {"bad.toml": "steps = 0\n"})
    case("generate-config-bad-type", "generate --config: batch = \"four\"",
         GENERATE_BASE + ["--steps", "1", "--prompt", "a corgi", "--config", "{case}/bad.toml"],
         ["bad.toml", "batch"], {"bad.toml": 'batch = "four"\n'})
    case("generate-unknown-method", "generate --method magic",
         GENERATE + ["--prompt", "a corgi", "--method", "magic"], ["magic", "sds"])
    case("generate-set-malformed", "generate --set without `=`",
         GENERATE + ["--prompt", "a corgi", "--set", "init.count"], ["--set", "init.count"])
    case("generate-init-ply-corrupt", "generate with init.kind = ply on a truncated PLY",
         GENERATE + ["--prompt", "a corgi", "--set", "init.kind=ply", "--set",
                     "init.path=\"{case}/init.ply\""], ["init.ply"],
         {"init.ply": ply(n=3, declared=30)})
    case("generate-out-not-a-dir", "generate --out inside a regular file (ENOTDIR)",
         GENERATE_NO_OUT + ["--out", "{case}/not_a_dir.txt/run", "--prompt", "a corgi"],
         ["not_a_dir.txt"], {"not_a_dir.txt": "a regular file\n"})
    ckpt = {"checkpoints/step-0000002.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":",
            "checkpoints/step-0000002.json": json.dumps({"step": 2}),
            "config.toml": 'prompt = "a corgi"\nmodel = "tests/cases/sd/tiny-eps"\nsteps = 4\n'
                           'batch = 1\nresolution = 64\n\n[init]\ncount = 200\n'}
    case("generate-resume-corrupt-checkpoint", "generate --resume of a garbage checkpoint",
         ["generate", "--resume", "{case}/run/checkpoints/step-0000002.safetensors", "--out",
          "{tmp}/run"], ["step-0000002.safetensors"],
         {f"run/{k}": v for k, v in ckpt.items()})
    fit_cfg = ('[data]\npath = "assets/spot-cow"\ndownscale = 4\n\n[train]\nsteps = 10\n\n'
               '[init]\nrandom_points = 100\n')
    case("fit-resume-corrupt-checkpoint", "fit --resume of a run whose checkpoint is garbage",
         ["fit", "--resume", "{case}/run"], ["step-0000005.safetensors", "safetensors"],
         {"run/config.toml": fit_cfg,
          "run/checkpoints/step-0000005.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage"})
    case("fit-resume-no-checkpoints", "fit --resume of a run folder without checkpoints",
         ["fit", "--resume", "{case}/run"], ["checkpoints", "no checkpoints"],
         {"run/config.toml": fit_cfg, "run/checkpoints/README": "nothing saved yet\n"})
    case("generate-vae-too-large", "generate whose batch of renders cannot fit the VAE on any device",
         ["generate", "--model", "{tiny_model}", "--set", "init.count=200", "--out", "{tmp}/run",
          "--prompt", "a corgi", "--resolution", "8192", "--batch", "2", "--steps", "1"],
         ["`resolution`", "storage-binding limit", "`batch`"])
    case("generate-resume-missing", "generate --resume of a folder with no config.toml",
         ["generate", "--resume", "{case}/nothing", "--out", "{tmp}/run"], ["nothing"],
         {"nothing/README": "not a run folder\n"})
    case("model-unknown-builtin",
         "--model names no built-in model (a bare name that is not a folder)",
         ["generate", "--prompt", "a red chair", "--model", "toyword", "--out", "{tmp}/run"],
         ["toyword", "unknown built-in model", "toyworld"])
    case("model-offline-missing",
         "--offline with a Hugging Face id that is not in the cache",
         ["--offline", "generate", "--prompt", "a red chair", "--model",
          "splatdream-test/never-cached", "--out", "{tmp}/run"],
         ["splatdream-test/never-cached", "offline"])
    case("distill2d-init-image-zero-byte", "distill2d --init-image of an empty file",
         DISTILL2D + ["--prompt", "a corgi", "--init-image", "{case}/init.png"], ["init.png"],
         {"init.png": b""})
    case("distill2d-init-image-truncated", "distill2d --init-image cut inside IDAT",
         DISTILL2D + ["--prompt", "a corgi", "--init-image", "{case}/init.png"], ["init.png"],
         {"init.png": png(16, 16)[:60]})
    case("distill2d-init-image-zero-size", "distill2d --init-image of a 0×0 PNG",
         DISTILL2D + ["--prompt", "a corgi", "--init-image", "{case}/init.png"], ["init.png"],
         {"init.png": png(0, 0)})
    case("distill2d-config-bad-value", "distill2d --config: space = \"hyper\"",
         DISTILL2D + ["--prompt", "a corgi", "--config", "{case}/bad.toml"],
         ["bad.toml", "space"], {"bad.toml": 'space = "hyper"\n'})
    case("distill2d-prompt-300-tokens", "distill2d --prompt with 280 words",
         DISTILL2D + ["--prompt", long_prompt], ["--prompt", "tokens"])
    case("lmc-train-zero-byte-image", "lmc-train --images with an empty PNG",
         ["lmc-train", "--model", "{tiny_model}", "--images", "{case}/images", "--out",
          "{tmp}/blur.safetensors", "--steps", "1", "--batch", "1", "--resolution", "64"],
         ["empty.png"], {"images/empty.png": b"", "images/ok.png": png(8, 8)})
    case("lmc-train-out-not-a-dir", "lmc-train --out inside a regular file (ENOTDIR)",
         ["lmc-train", "--model", "{tiny_model}", "--images", "{case}/ok.png", "--out",
          "{case}/not_a_dir.txt/blur.safetensors", "--steps", "1", "--batch", "1"],
         ["not_a_dir.txt"], {"ok.png": png(8, 8), "not_a_dir.txt": "a regular file\n"})
    case("lmc-blur-model-corrupt", "generate --method lmc with a corrupt blur model file",
         GENERATE + ["--prompt", "a corgi", "--method", "lmc", "--set",
                     "guidance.lmc.blur_model=\"{case}/blur.safetensors\""],
         ["blur.safetensors"], {"blur.safetensors": b"\xff" * 64})
    case("bench-unet-config-malformed", "bench unet --config of a broken U-Net config",
         ["bench", "unet", "--config", "{case}/config.json", "--batch", "1", "--latent", "8",
          "--repeats", "1"], ["config.json"], {"config.json": "[1, 2"})

    # ---------------------------------------------------------------- backends
    case("backend-unsupported", "--backend quantum", ["--backend", "quantum", "info"],
         ["--backend", "quantum"])
    case("backend-unavailable", "--backend metal on a machine without Metal",
         ["--backend", "metal", "info"], ["--backend", "metal"], platforms=["linux", "windows"])


def main():
    define()
    names = [c["name"] for c in CASES]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        sys.exit(f"duplicate case names: {sorted(dup)}")
    OUT.mkdir(parents=True, exist_ok=True)
    for d in OUT.iterdir():
        if d.is_dir():
            shutil.rmtree(d)
    for c in CASES:
        write_case(c)
    print(f"wrote {len(CASES)} cases to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
