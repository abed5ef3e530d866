"""How fast the CLI reads model headers: `kiig models` over a folder of ten GGUFs with 150k-token
vocabularies (cold: empty KIIG caches; warm: second run), and `kiig score` on a one-step chain.

Targets (issue 15): `kiig models` under 5 s cold and 1 s warm, `kiig score` on one step under 1.5 s.
The ten files are copies of a random-weight model with the Qwen2 tokenizer (151,936 tokens and
151,387 merges: a real model's header, with tiny weights). Each command runs as a fresh process,
as a user runs it. Usage: python benchmarks/bench_models.py [--repeats 3] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import machine, median, save

from tests.support.tiny_models import tiny_model


def kiig(args: list[str], env: dict) -> float:
    started = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "kiig_desktop", *args], env=env, capture_output=True, text=True, timeout=600)
    took = time.perf_counter() - started
    if r.returncode != 0:
        raise SystemExit(f"kiig {' '.join(args)} failed: {r.stderr}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kiig-bench-models-"))
    try:
        src = tiny_model("qwen2", "Q4_0", Path(tempfile.gettempdir()) / "kiig-bench-models")
        folder = root / "models"
        folder.mkdir()
        for i in range(10):
            shutil.copyfile(src, folder / f"qwen2-vocab-{i}.gguf")
        env = dict(os.environ, KIIG_MODELS_DIR=str(folder), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        cold, warm = [], []
        for r in range(args.repeats):
            env["KIIG_DATA_DIR"] = str(root / f"data-{r}")  # empty: no header or SHA-256 cache yet
            cold.append(kiig(["models", "--json"], env))
            warm.append(kiig(["models", "--json"], env))
        chain = root / "one.jsonl"
        chain.write_text(json.dumps({"id": "one", "question": "What is 2 + 2?", "answer": "4", "steps": ["2 + 2 = 4."]}) + "\n")
        score = [kiig(["score", "--model", "default", "--input", str(chain), "--output", str(root / f"out{i}.jsonl")], env)
                 for i in range(args.repeats)]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result = {"models_cold_s": median(cold), "models_warm_s": median(warm), "score_one_step_s": median(score),
              "runs": {"cold": cold, "warm": warm, "score": score}, "machine": machine()}
    print(f"kiig models --json, ten 150k-vocabulary GGUFs: cold {median(cold):.2f} s (target < 5), "
          f"warm {median(warm):.2f} s (target < 1)")
    print(f"kiig score, one-step chain on the embedded model: {median(score):.2f} s (target < 1.5)")
    save(args.out, result)


if __name__ == "__main__":
    main()
