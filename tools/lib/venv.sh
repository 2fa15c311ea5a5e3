# Sourced by the Python tool wrappers (tools/trimesh_load.sh, tools/hf_cache_read.sh):
#   ensure_venv VENV CHECK SPEC...
# creates the virtual environment VENV with pip-installed SPEC... unless its python already
# passes CHECK (a Python expression that is true when the pinned versions are there). Concurrent
# first uses wait on a lock. Needs python3 with the venv module (Debian: python3-venv).
ensure_venv() {
  local venv="$1" check="$2"
  shift 2
  have() {
    [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import sys; sys.exit(not ($check))" 2>/dev/null
  }
  if have; then
    return 0
  fi
  mkdir -p "$(dirname "$venv")"
  exec 9>"$venv.lock"
  flock 9
  if ! have; then
    echo "$(basename "$0"): installing $* into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >&2
  fi
  flock -u 9
  exec 9>&-
}
