"""How llama.cpp's CPU variants differ: speed and numbers, each pinned in turn (KIIG_CPU_VARIANT).

    python benchmarks/bench_cpu_variants.py [--chains N] [--out results/cpu_variants.json]

Scores the first N sample chains (resources/chains) with the embedded model once per variant this
CPU can run, and reports the scoring time and the largest per-step InfoGain difference from the
x64 baseline: the answer's NLL after each step (nats) and the InfoGain derived from it (a
normalised quantity, so small NLL differences can move it a lot where the NLL barely changes). Variants the CPU cannot run are listed as such.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kiig_desktop.config import EngineOptions  # noqa: E402
from kiig_desktop.engine import variants  # noqa: E402
from kiig_desktop.engine.client import EngineClient  # noqa: E402
from kiig_desktop.errors import KiigError  # noqa: E402
from kiig_desktop.events import ItemDone, run_to_end  # noqa: E402
from kiig_desktop.resources import resource_path  # noqa: E402
from kiig_desktop.runs.score import ScoreConfig, iter_score_file, read_score_input  # noqa: E402


def score(pin: str, n: int) -> dict:
    os.environ[variants.ENV] = pin
    jobs = read_score_input(resource_path("chains", "clinical_chains.jsonl"))[:n]
    done: list[dict] = []
    with EngineClient("default", EngineOptions(n_ctx=4096)) as client:
        client.start()
        started = time.perf_counter()
        run_to_end(iter_score_file(client, jobs, ScoreConfig()), lambda e: done.append(e.result) if isinstance(e, ItemDone) else None)
        seconds = time.perf_counter() - started
        build = client.build() or {}
    steps = [s for r in done for s in r["steps"]]
    return {"variant": build.get("cpu_variant"), "isa": build.get("isa"), "seconds": round(seconds, 3),
            "answer_nll": [s["answer_nll"] for s in steps], "info_gain": [s["info_gain"] for s in steps]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--chains", type=int, default=5)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    built = list(variants.available())
    if not built:
        print("this llama.cpp build has no CPU variants (make install builds them)")
        return 1
    rows: dict[str, dict] = {}
    for name in built:
        try:
            rows[name] = score(name, args.chains)
        except KiigError as exc:
            rows[name] = {"error": exc.message}
    base = rows.get("x64")
    print(f"{'variant':<12} {'seconds':>8} {'max |d answer NLL| vs x64 (nats)':>33} {'max |d InfoGain| vs x64':>24}")
    for name, row in rows.items():
        if "error" in row:
            print(f"{name:<12} {'-':>8} {row['error']}")
            continue
        diffs = [max((abs(a - b) for a, b in zip(row[k], base[k], strict=True)), default=0.0) if base and "error" not in base else float("nan")
                 for k in ("answer_nll", "info_gain")]
        row["max_abs_diff_vs_x64"] = dict(zip(("answer_nll", "info_gain"), diffs, strict=True))
        print(f"{name:<12} {row['seconds']:>8.2f} {diffs[0]:>33.2e} {diffs[1]:>24.3g}")
    if args.out:
        Path(args.out).write_text(json.dumps({"chains": args.chains, "variants": rows}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
