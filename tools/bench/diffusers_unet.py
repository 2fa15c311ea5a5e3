"""Time the diffusers SD 2.1 U-Net the way `splatdream bench unet` times ours.

Kept for the commands in docs/perf.md: the same as `diffusers_bench.py --suites unet` (same
flags: --batch, --latent, --dtype, --model, --repeats, --json, --out), writing the
splatdream-bench/1 JSON document. See diffusers_bench.py.
"""

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "--suites", "unet", *sys.argv[1:]]
    runpy.run_path(str(Path(__file__).with_name("diffusers_bench.py")), run_name="__main__")
