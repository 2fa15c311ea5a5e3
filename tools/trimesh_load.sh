#!/usr/bin/env bash
# Load a mesh with Python trimesh (https://trimesh.org), pinned below and installed into a
# virtual environment under $HOME/.cache/splatdream on first use, and print what it read as
# one JSON line: vertices, faces, whether it is watertight, its volume, bounds and whether
# it has vertex colours.
#
#   tools/trimesh_load.sh model.glb
#
# Exits non-zero when trimesh cannot load the file or finds no triangles. Needs python3 with
# the venv module (Debian: python3-venv; .ci/run installs it). Environment:
#   SPLATDREAM_TRIMESH_VENV   the virtual environment (default $HOME/.cache/splatdream/venv-trimesh)
set -euo pipefail

TRIMESH=5.2.0
NUMPY=2.4.6
VENV="${SPLATDREAM_TRIMESH_VENV:-$HOME/.cache/splatdream/venv-trimesh}"
if [ $# -ne 1 ]; then
  echo "usage: tools/trimesh_load.sh model.glb" >&2
  exit 2
fi
. "$(dirname "$0")/lib/venv.sh"
ensure_venv "$VENV" "__import__('trimesh').__version__ == '$TRIMESH' and __import__('numpy').__version__ == '$NUMPY'" "trimesh==$TRIMESH" "numpy==$NUMPY"
exec "$VENV/bin/python" - "$1" <<'PY'
import json, sys
import trimesh
path = sys.argv[1]
mesh = trimesh.load(path, force="mesh", process=False)
if len(mesh.faces) == 0:
    sys.exit(f"{path}: trimesh found no triangles")
colors = getattr(mesh.visual, "vertex_colors", None)
print(json.dumps({
    "vertices": int(len(mesh.vertices)),
    "faces": int(len(mesh.faces)),
    "watertight": bool(mesh.is_watertight),
    "volume": float(mesh.volume),
    "bounds": mesh.bounds.tolist(),
    "vertex_colors": colors is not None and len(colors) == len(mesh.vertices),
}))
PY
