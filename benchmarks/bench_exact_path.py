"""What exactness costs where the build is not batch-invariant: the load-time self-test and the
from-scratch scoring path against incremental scoring.

1. The self-test (engine/invariance.py: 16 tokens decoded as one batch, as batches of 8, and as 15
   then the last alone) on the embedded model and on a ~120M-weight Q4_K_M model: its seconds at load, median of
   ``--loads`` loads (target: under 1 s on the 2-core machine for the embedded model).
2. Scoring one 16-step multiple-choice chain on the ~120M Q4_K_M model with weight repacking on
   (a real non-invariant setting: the self-test fails) through the exact from-scratch path and
   through incremental scoring (``fast_not_exact``), median of ``--repeats`` runs each, and the
   largest |incremental - from-scratch| answer NLL.

Usage: python benchmarks/bench_exact_path.py [--loads 5] [--repeats 3] [--out results.json]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _util import machine, median, save

from kiig_desktop.config import EngineOptions
from kiig_desktop.engine.client import EngineClient
from kiig_desktop.metrics.infogain import score_chain
from tests.support.tiny_models import tiny_model

QUESTION = "A 58-year-old man has crushing chest pain for 40 minutes. Which test should be done first?"
OPTIONS = {"A": "A chest X-ray", "B": "A 12-lead ECG", "C": "Serum troponin", "D": "An echocardiogram"}
STEPS = [f"Step {i}: chest pain with sweating suggests an acute coronary syndrome, so time matters." for i in range(1, 17)]


def self_test_seconds(model: str, loads: int) -> dict:
    secs, verdicts = [], set()
    for _ in range(loads):
        with EngineClient(model, EngineOptions(n_ctx=2048)) as c:
            inv = c.start()["invariance"]
            secs.append(inv["seconds"])
            verdicts.add(inv["verdict"])
    return {"median_s": median(secs), "all_s": secs, "verdicts": sorted(verdicts)}


def score_seconds(model: str, fast: bool, repeats: int) -> tuple[dict, list[float]]:
    with EngineClient(model, EngineOptions(n_ctx=4096, repack=True, fast_not_exact=fast)) as c:
        info = c.start()
        times, record = [], None
        for _ in range(repeats):
            t = time.perf_counter()
            record = score_chain(c, QUESTION, OPTIONS["B"], STEPS, OPTIONS, "B", curve=False)
            times.append(time.perf_counter() - t)
        nll = [p["answer_nll"] for p in [record["baseline"]] + record["steps"]]
        return {"scoring": info["scoring"], "verdict": info["invariance"]["verdict"], "median_s": median(times),
                "all_s": times, "tokens": record["n_tokens"]}, nll


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loads", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "exact_path.json"))
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="kiig-bench-exact-"))
    medium = str(tiny_model("qwen2", "Q4_K_M", folder, size="medium"))
    result = {"machine": {**machine(), "load_avg_at_start": os.getloadavg()},
              "self_test": {"embedded": self_test_seconds("default", args.loads),
                            "medium_q4_k_m": self_test_seconds(medium, args.loads)}}
    exact, exact_nll = score_seconds(medium, False, args.repeats)
    fast, fast_nll = score_seconds(medium, True, args.repeats)
    result["chain_16_steps"] = {
        "model": "random-weight llama, ~120M weights, Qwen2 vocabulary, Q4_K_M, weight repacking on",
        "from_scratch": exact, "incremental_fast_not_exact": fast,
        "slowdown": exact["median_s"] / fast["median_s"],
        "load_avg_at_end": os.getloadavg(),
        "max_abs_diff_nats": max(abs(a - b) for a, b in zip(exact_nll, fast_nll, strict=True)),
    }
    save(args.out, result)


if __name__ == "__main__":
    main()
