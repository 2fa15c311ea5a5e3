#!/usr/bin/env python3
"""Write the seed inputs of the fuzz targets into fuzz/corpus/<target>/ (standard library only).

The seeds are small valid (and a few nearly valid) files of each format; `cargo fuzz run` grows
the corpus from them and `cargo fuzz cmin` keeps the inputs that add coverage (it may drop a
seed whose coverage others give). Run from anywhere: `python3 fuzz/make_seeds.py`.
"""

import json
import math
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --------------------------------------------------------------------------------------------
# PLY: INRIA splat layout, binary and ASCII, SH degrees 0 and 1.


def ply(n, degree, encoding="binary_little_endian", normals=True, double=False):
    k = (degree + 1) ** 2
    names = ["x", "y", "z"] + (["nx", "ny", "nz"] if normals else [])
    names += [f"f_dc_{c}" for c in range(3)] + [f"f_rest_{i}" for i in range(3 * (k - 1))]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    ty = "double" if double else "float"
    head = f"ply\nformat {encoding} 1.0\ncomment seed\nelement vertex {n}\n"
    head += "".join(f"property {ty} {p}\n" for p in names) + "end_header\n"
    rows = []
    for i in range(n):
        row = []
        for p in names:
            if p == "rot_0":
                row.append(1.0)
            elif p.startswith("rot_"):
                row.append(0.1 * i)
            else:
                row.append(round(math.sin(i + len(p) + ord(p[-1])), 3))
        rows.append(row)
    if encoding == "ascii":
        return (head + "".join(" ".join(repr(v) for v in r) + "\n" for r in rows)).encode()
    fmt = ("<" if encoding.endswith("little_endian") else ">") + ("d" if double else "f")
    body = b"".join(struct.pack(fmt, v) for r in rows for v in r)
    return head.encode() + body


put("ply", "deg0_binary.ply", ply(3, 0))
put("ply", "deg1_binary.ply", ply(2, 1, normals=False))
put("ply", "deg0_ascii.ply", ply(2, 0, "ascii"))
put("ply", "deg0_be_double.ply", ply(2, 0, "binary_big_endian", double=True))
# A second element with a list property (as meshes have faces).
put(
    "ply",
    "with_faces_ascii.ply",
    ply(1, 0, "ascii").replace(b"end_header\n", b"element face 1\nproperty list uchar int vertex_indices\nend_header\n")
    + b"3 0 0 0\n",
)

# --------------------------------------------------------------------------------------------
# COLMAP: first byte selects the file kind (0 cameras.bin, 1 cameras.txt, 2 images.bin,
# 3 images.txt, 4 points3D.bin, 5 points3D.txt).

CAMS = [(1, 1, "PINHOLE", 8, 6, [10.0, 11.0, 4.0, 3.0]), (7, 4, "OPENCV", 10, 8, [12.0, 12.5, 5.5, 4.25, 0.05, -0.01, 0.001, 0.002]), (9, 2, "SIMPLE_RADIAL", 4, 4, [3.0, 2.0, 2.0, 0.1])]
S = math.sqrt(0.5)
IMGS = [(1, [S, 0.0, 0.0, S], [0.0, 0.0, 5.0], 1, "b.png", [(1.0, 2.0, 1), (3.5, 4.5, -1)]), (2, [1.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0], 7, "sub dir/a.png", [])]
PTS = [(1, [0.0, 0.0, 0.0], [255, 0, 0], 0.5, [(1, 0)]), (2, [1.0, -2.0, 3.5], [10, 20, 30], 1.25, [(1, 1), (2, 0)])]

cams_bin = struct.pack("<Q", len(CAMS)) + b"".join(
    struct.pack("<iiQQ", cid, mid, w, h) + struct.pack(f"<{len(p)}d", *p) for cid, mid, _, w, h, p in CAMS
)
cams_txt = "# Camera list with one line of data per camera:\n" + "".join(
    f"{cid} {name} {w} {h} {' '.join(repr(x) for x in p)}\n" for cid, _, name, w, h, p in CAMS
)
imgs_bin = struct.pack("<Q", len(IMGS))
imgs_txt = "# Image list with two lines of data per image:\n"
for iid, q, t, cam, name, pts in IMGS:
    imgs_bin += struct.pack("<i7di", iid, *q, *t, cam) + name.encode() + b"\0" + struct.pack("<Q", len(pts))
    imgs_bin += b"".join(struct.pack("<ddq", *p) for p in pts)
    imgs_txt += f"{iid} {' '.join(map(repr, q + t))} {cam} {name}\n"
    imgs_txt += " ".join(f"{x} {y} {pid}" for x, y, pid in pts) + "\n"
pts_bin = struct.pack("<Q", len(PTS))
pts_txt = "# 3D point list with one line of data per point:\n"
for pid, xyz, rgb, err, track in PTS:
    pts_bin += struct.pack("<Q3d3BdQ", pid, *xyz, *rgb, err, len(track))
    pts_bin += b"".join(struct.pack("<ii", *t) for t in track)
    pts_txt += f"{pid} {' '.join(map(repr, xyz))} {' '.join(map(str, rgb))} {err} "
    pts_txt += " ".join(f"{a} {b}" for a, b in track) + "\n"
for i, (name, data) in enumerate(
    [("cameras.bin", cams_bin), ("cameras.txt", cams_txt.encode()), ("images.bin", imgs_bin), ("images.txt", imgs_txt.encode()), ("points3D.bin", pts_bin), ("points3D.txt", pts_txt.encode())]
):
    put("colmap", name, bytes([i]) + data)

# --------------------------------------------------------------------------------------------
# transforms.json: NeRF-synthetic (camera_angle_x) and instant-ngp (fl_x, fl_y, cx, cy, w, h,
# k1, k2, p1, p2; per-frame overrides).

C2W = [[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 4.0], [0.0, 0.0, 0.0, 1.0]], [[0.0, 0.0, 1.0, 4.0], [0.0, 1.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]]
put(
    "transforms_json",
    "nerf_synthetic.json",
    json.dumps({"camera_angle_x": 0.6911112070083618, "frames": [{"file_path": f"./train/r_{i}", "rotation": 0.012566370614359171, "transform_matrix": m} for i, m in enumerate(C2W)]}, indent=1),
)
put(
    "transforms_json",
    "instant_ngp.json",
    json.dumps(
        {
            "fl_x": 1375.5, "fl_y": 1374.5, "cx": 554.6, "cy": 965.3, "w": 1080, "h": 1920,
            "k1": 0.058, "k2": -0.081, "p1": -0.00098, "p2": 0.00016, "aabb_scale": 16, "scale": 0.33,
            "frames": [
                {"file_path": "images/0001.jpg", "sharpness": 30.1, "transform_matrix": C2W[0]},
                {"file_path": "images/0002.jpg", "fl_x": 1300.0, "camera_angle_y": 1.2, "transform_matrix": C2W[1][:3]},
            ],
        },
        indent=1,
    ),
)

# --------------------------------------------------------------------------------------------
# safetensors: small files of every dtype the reader converts (and one it refuses), plus the
# header of a tiny test model cut to 4 KiB.


def safetensors(tensors, metadata=None):
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


put(
    "safetensors_header",
    "mixed.safetensors",
    safetensors(
        {
            "lin.weight": ("F32", [2, 3], struct.pack("<6f", *range(6))),
            "lin.bias": ("F16", [2], struct.pack("<2e", 0.5, -1.0)),
            "conv.weight": ("BF16", [2, 1, 1, 1], bytes([0x80, 0x3F, 0x00, 0x40])),
            "ids": ("I64", [2], struct.pack("<2q", 1, 2)),
            "empty": ("F32", [0, 4], b""),
        },
        {"format": "pt"},
    ),
)
put("safetensors_header", "scalar_f16.safetensors", safetensors({"s": ("F16", [], struct.pack("<e", 1.5))}))
with open(os.path.join(ROOT, "tests/cases/sd/tiny-eps_unet.safetensors"), "rb") as f:
    put("safetensors_header", "tiny_unet_head.safetensors", f.read(4096))
with open(os.path.join(ROOT, "tests/cases/train/adam_8x3_5steps.safetensors"), "rb") as f:
    put("safetensors_header", "adam_case.safetensors", f.read())
