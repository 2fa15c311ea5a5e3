"""The `splatdream-bench/1` JSON document (docs/bench.md), shared by the tools/bench scripts.

Each script times a workload the way `splatdream bench` does (warm-up runs, then timed runs,
median/min/max of wall times in milliseconds, the device synchronised before a timer stops)
and writes the same document with the same case ids, so

    splatdream bench --compare ours.json theirs.json

prints the ratio per case. Nothing here imports torch; the scripts pass in what they measured.
"""

import datetime
import json
import os
import statistics
import tempfile

SCHEMA = "splatdream-bench/1"


def case(suite, case_id, params, warmup, samples_ms, peak_memory_bytes, **extra):
    """One result: `samples_ms` are the timed runs in run order (at least one)."""
    if not samples_ms:
        raise ValueError(f"{case_id}: no timed runs")
    r = {
        "suite": suite,
        "case": case_id,
        "params": params,
        "warmup": warmup,
        "repeats": len(samples_ms),
        # statistics.median averages the middle two of an even count, like splatdream.
        "median_ms": statistics.median(samples_ms),
        "min_ms": min(samples_ms),
        "max_ms": max(samples_ms),
        "samples_ms": list(samples_ms),
        "peak_memory_bytes": peak_memory_bytes,
    }
    r.update(extra)
    return r


def document(results, *, adapter, backend, device_type, driver, implementation, started_at):
    """The whole document. `splatdream_version` is null: these are not splatdream's numbers;
    `implementation` names what was timed instead."""
    return {
        "schema": SCHEMA,
        "splatdream_version": None,
        "implementation": implementation,
        "adapter": adapter,
        "backend": backend,
        "device_type": device_type,
        "driver": driver,
        "started_at": started_at,
        "results": results,
    }


def now():
    """UTC now as RFC 3339 with a `Z`, like splatdream."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def torch_device_fields(torch, dev):
    """adapter, backend, device_type and driver for a torch device string."""
    if dev == "cuda":
        return dict(
            adapter=torch.cuda.get_device_name(),
            backend="CUDA" if torch.version.hip is None else "ROCm",
            device_type="DiscreteGpu",
            driver=f"CUDA {torch.version.cuda}" if torch.version.hip is None
            else f"HIP {torch.version.hip}",
        )
    return dict(adapter="cpu", backend="CPU", device_type="Cpu", driver=f"torch {torch.__version__}")


class Peak:
    """Peak device memory of one case on CUDA: `torch.cuda.max_memory_reserved()` (bytes held
    by PyTorch's caching allocator, the closest analogue of cubecl's reserved pool bytes) after
    `empty_cache()` and `reset_peak_memory_stats()` at the start of the case; None on CPU."""

    def __init__(self, torch, dev):
        self.torch, self.dev = torch, dev
        if dev == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def bytes(self):
        if self.dev != "cuda":
            return None
        self.torch.cuda.synchronize()
        return int(self.torch.cuda.max_memory_reserved())


def write(doc, out, as_json):
    """Write `doc` to `out` atomically (temporary file + rename) and/or print it."""
    text = json.dumps(doc, indent=2)
    if out:
        d = os.path.dirname(os.path.abspath(out))
        fd, tmp = tempfile.mkstemp(prefix=".bench-", dir=d)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, out)
    if as_json:
        print(text)
    else:
        for r in doc["results"]:
            peak = r["peak_memory_bytes"]
            peak = "-" if peak is None else f"{peak / 2**20:.1f} MiB"
            print(f"{r['case']:<44} median {r['median_ms']:10.3f} ms "
                  f"(min {r['min_ms']:.3f}, max {r['max_ms']:.3f}, {r['repeats']} runs) peak {peak}")


def int_list(s):
    """`10000,100000` → [10000, 100000], refusing empty items and non-positive values."""
    out = []
    for x in s.split(","):
        v = int(x)
        if v <= 0:
            raise ValueError(f"{v} is not positive")
        out.append(v)
    if not out:
        raise ValueError("empty list")
    return out
