"""Sum cubecl's per-kernel profiling log by kernel (tools/gpu/kit.sh's U-Net profile phase).

cubecl writes one line `| <duration> | <kernel name>` per launched kernel when a process runs
with `CUBECL_DEBUG_OPTION=profile CUBECL_DEBUG_LOG=<file>` (each kernel is timed on its own, so
the process is slower than unprofiled; the shares are what matter). Names lose their trailing
`_<hex>` hash so that one kernel with different fused bodies counts once.

    python3 tools/gpu/profile_summary.py cubecl.log [--top 25] [--json out.json]
"""

import argparse
import json
import re
import sys
from collections import defaultdict

LINE = re.compile(r"^\|\s*([0-9.]+)\s*(ns|µs|us|ms|s)\s*\|\s*(\S.*?)\s*$")
UNIT_MS = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}


def short(name):
    """A matmul's name is its whole type list; keep the kernel and the parts that tell the
    algorithm apart (`…Family`, `…Partitioner`, `…Loading`, `…Matmul`)."""
    parts = name.split(" | ")
    if len(parts) <= 3:
        return name
    keep = [p for p in parts[1:] if re.search(r"Family|Partitioner|Loading|Matmul", p)]
    return " | ".join([parts[0]] + list(dict.fromkeys(keep)))


def summarise(lines):
    """Return {kernel: [count, total_ms]} from the log's profiling lines."""
    acc = defaultdict(lambda: [0, 0.0])
    for line in lines:
        m = LINE.match(line)
        if not m:
            continue
        name = short(re.sub(r"_[0-9a-f]{6,}$", "", m.group(3)))
        acc[name][0] += 1
        acc[name][1] += float(m.group(1)) * UNIT_MS[m.group(2)]
    return acc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("log")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--json")
    a = ap.parse_args()
    with open(a.log, errors="replace") as f:
        acc = summarise(f)
    total = sum(v[1] for v in acc.values())
    launches = sum(v[0] for v in acc.values())
    if not acc:
        print(f"{a.log}: no profiling lines", file=sys.stderr)
        return 1
    rows = sorted(acc.items(), key=lambda kv: -kv[1][1])
    print(f"{launches} kernel launches, {total:.1f} ms of kernel time in all")
    print(f"{'ms':>10} {'share':>6} {'launches':>8}  kernel")
    for name, (n, ms) in rows[: a.top]:
        print(f"{ms:10.2f} {100 * ms / total:5.1f}% {n:8d}  {name}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"total_ms": total, "launches": launches,
                       "kernels": [{"name": k, "launches": n, "ms": ms} for k, (n, ms) in rows]},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
