"""Merge the GPU kit's result documents into one kit.json (tools/gpu/kit.sh calls it).

    python3 tools/gpu/collect.py RESULTS_DIR PHASES_JSONL INFO_TXT OUT_JSON

Every `RESULTS_DIR/*.json` (splatdream-bench/1 documents and the raster-case check) goes under
`results.<file stem>`; a file that does not parse is kept as its error message.
"""

import json
import pathlib
import sys


def main() -> None:
    res, phases, info, out = (pathlib.Path(p) for p in sys.argv[1:5])
    doc = {
        "schema": "splatdream-gpu-kit/1",
        "info": info.read_text(errors="replace") if info.exists() else "",
        "phases": [json.loads(line) for line in phases.read_text().splitlines() if line.strip()],
        "results": {},
    }
    for f in sorted(res.glob("*.json")):
        try:
            doc["results"][f.stem] = json.loads(f.read_text())
        except ValueError as e:
            doc["results"][f.stem] = {"error": str(e)}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(out)


if __name__ == "__main__":
    main()
