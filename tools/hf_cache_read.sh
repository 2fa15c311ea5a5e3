#!/usr/bin/env bash
# Read a Hugging Face cache folder with huggingface_hub itself (pinned below, installed into a
# virtual environment under $HOME/.cache/splatdream on first use) and print, as one JSON
# object, what it finds for one repository: its revisions from scan_cache_dir(), and for each
# given file the sha256 of what hf_hub_download(local_files_only=True) returns.
#
#   tools/hf_cache_read.sh CACHE_DIR org/name file [file ...]
#
# Exits non-zero when huggingface_hub cannot find a file. Needs python3 with the venv module
# (Debian: python3-venv; .ci/run installs it). Environment:
#   SPLATDREAM_HFHUB_VENV   the virtual environment (default $HOME/.cache/splatdream/venv-hfhub)
set -euo pipefail

HFHUB=2.4.0
VENV="${SPLATDREAM_HFHUB_VENV:-$HOME/.cache/splatdream/venv-hfhub}"
if [ $# -lt 3 ]; then
  echo "usage: tools/hf_cache_read.sh CACHE_DIR org/name file [file ...]" >&2
  exit 2
fi
. "$(dirname "$0")/lib/venv.sh"
ensure_venv "$VENV" "__import__('huggingface_hub').__version__ == '$HFHUB'" "huggingface_hub==$HFHUB"
HF_HUB_OFFLINE=1 exec "$VENV/bin/python" - "$@" <<'PY'
import hashlib, json, sys
from huggingface_hub import hf_hub_download, scan_cache_dir
cache, repo, files = sys.argv[1], sys.argv[2], sys.argv[3:]
info = scan_cache_dir(cache)
revisions = []
for r in info.repos:
    if r.repo_id == repo:
        for rev in r.revisions:
            revisions.append({
                "commit": rev.commit_hash,
                "refs": sorted(rev.refs),
                "files": sorted(str(f.file_path.relative_to(rev.snapshot_path)) for f in rev.files),
            })
out = {"revisions": revisions, "warnings": [str(w) for w in info.warnings], "sha256": {}}
for f in files:
    path = hf_hub_download(repo, f, cache_dir=cache, local_files_only=True)
    with open(path, "rb") as fh:
        out["sha256"][f] = hashlib.sha256(fh.read()).hexdigest()
print(json.dumps(out))
PY
