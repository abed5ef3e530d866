"""Session store speed: write time per chain, opening a 1,000-chain session, loading one chain.

Usage: python benchmarks/bench_store.py [--chains 1000] [--repeats 30] [--dir DIR] [--json]

Chains are realistic `kiig score` records (12 steps with option probabilities, a 600-token curve)
with their input item; a second series adds a 400-token generation and KI evidence. Prints a
markdown table and a JSON summary (medians over repeats). Not a timed test.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kiig_desktop.store import SessionStore  # noqa: E402


def make_record(i: int, n_steps: int = 12, n_tokens: int = 600) -> dict:
    rng = random.Random(i)
    nll = [rng.uniform(0.5, 4.0)]
    for _ in range(n_steps):
        nll.append(max(0.01, nll[-1] + rng.gauss(-0.2, 0.3)))
    ppl = [math.exp(x) for x in nll]

    def opts() -> dict:
        w = [rng.random() for _ in range(4)]
        return {k: v / sum(w) for k, v in zip("ABCD", w, strict=True)}

    steps = [{
        "index": k - 1, "text": f"Step {k}: " + "reasoning text " * 8, "start": (k - 1) * 130, "end": k * 130,
        "answer_nll": nll[k], "answer_ppl": ppl[k], "delta_nll": nll[k - 1] - nll[k], "info_gain": ppl[k - 1] - ppl[k],
        "seq_ppl": rng.uniform(2, 30), "option_probs": opts(), "entropy_bits": rng.uniform(0, 2), "p_correct": rng.random(),
    } for k in range(1, n_steps + 1)]
    per = n_tokens // n_steps
    return {
        "id": f"q{i}", "mode": "answer", "model": {"path": "/models/m.gguf", "sha256": "a" * 64}, "n_tokens": n_tokens,
        "baseline": {"answer_nll": nll[0], "answer_ppl": ppl[0], "seq_ppl": 20.0, "option_probs": opts(),
                     "entropy_bits": 1.9, "p_correct": 0.25},
        "steps": steps,
        "info_gain_mean": sum(s["info_gain"] for s in steps) / n_steps,
        "delta_nll_mean": sum(s["delta_nll"] for s in steps) / n_steps,
        "paper_info_gain": rng.uniform(-1, 1), "paper_mean": rng.uniform(2, 30),
        "token_curve": {
            "token_ids": [rng.randrange(49152) for _ in range(n_tokens)],
            "pieces": [f" t{t}" for t in range(n_tokens)],
            "surprisal_bits": [rng.uniform(0, 15) for _ in range(n_tokens)],
            "entropy_bits": [rng.uniform(0, 12) for _ in range(n_tokens)],
            "step": [min(n_steps - 1, t // per) for t in range(n_tokens)],
        },
    }


def make_item(i: int) -> dict:
    return {"id": f"q{i}", "question": f"Question {i}: " + "clinical vignette text " * 30, "answer": "Drug B",
            "options": {"A": "Drug A", "B": "Drug B", "C": "Drug C", "D": "Drug D"}, "answer_idx": "B"}


def make_generation(i: int, model_id: int) -> dict:
    rng = random.Random(i)
    return {"text": "w " * 400, "model_id": model_id, "correct": True,
            "tokens": [{"text": " w", "logprob": -rng.random(), "entropy_bits": rng.random()} for _ in range(400)]}


def make_ki(model_id: int, i: int) -> dict:
    rng = random.Random(i)
    steps = [{"index": k, "applicable": True, "ki": rng.random(), "judge_p": rng.random(),
              "evidence": [{"source": f"doc{j}.md", "chunk": j, "score": rng.uniform(1, 20)} for j in range(3)]}
             for k in range(12)]
    return {"judge_model_id": model_id, "corpus": "demo", "steps": steps, "ki_mean": 0.5}


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def summary(values: list[float]) -> dict:
    values = sorted(values)
    return {"median_ms": ms(statistics.median(values)), "p90_ms": ms(values[int(0.9 * (len(values) - 1))]),
            "min_ms": ms(values[0]), "n": len(values)}


def run(args: argparse.Namespace) -> dict:
    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="kiig-bench-"))
    path = folder / "bench.kiig"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    try:
        records = [make_record(i) for i in range(args.chains)]
        write_times = []
        with SessionStore.open(path) as s:
            model = s.ensure_model({"path": "/models/m.gguf", "sha256": "a" * 64})
            run_id, _ = s.find_or_create_run("score", {"mode": "answer"}, {"scorer": model}, {"kiig": "bench"})
            for i, record in enumerate(records):
                t = time.perf_counter()
                s.save_chain(run_id, f"q{i}", record, item=make_item(i))
                write_times.append(time.perf_counter() - t)
            full_run, _ = s.find_or_create_run("score", {"mode": "answer", "with": "generation+ki"}, {"scorer": model}, {})
            full_times = []
            for i in range(min(100, args.chains)):
                gen, ki = make_generation(i, model), make_ki(model, i)
                t = time.perf_counter()
                s.save_chain(full_run, f"q{i}", records[i], item=make_item(i), generation=gen, ki=ki)
                full_times.append(time.perf_counter() - t)
            s.set_run_status(run_id, "finished")
        size = path.stat().st_size

        def open_view(write: bool) -> float:
            t = time.perf_counter()
            with SessionStore.open(path, write=write) as st:
                st.list_runs()
                rows = st.chains_for_run(run_id)
            elapsed = time.perf_counter() - t
            assert len(rows) == args.chains
            return elapsed

        open_write = [open_view(True) for _ in range(args.repeats)]
        open_read = [open_view(False) for _ in range(args.repeats)]
        rng = random.Random(0)
        load_times, all_records = [], []
        with SessionStore.open(path, write=False) as st:
            ids = [c["id"] for c in st.chains_for_run(run_id)]
            for _ in range(args.repeats * 10):
                cid = rng.choice(ids)
                t = time.perf_counter()
                chain = st.load_chain(cid)
                load_times.append(time.perf_counter() - t)
                assert len(chain["token_curve"]["surprisal_bits"]) == 600
            for _ in range(max(3, args.repeats // 5)):
                t = time.perf_counter()
                assert len(st.load_run_records(run_id)) == args.chains
                all_records.append(time.perf_counter() - t)
        return {
            "sqlite": sqlite3.sqlite_version, "python": platform.python_version(), "machine": platform.machine(),
            "chains": args.chains, "steps_per_chain": 12, "curve_tokens": 600, "file_mb": round(size / 1e6, 2),
            "write_chain": summary(write_times),
            "write_chain_with_generation_and_ki": summary(full_times),
            "open_session_write_list_chains": summary(open_write),
            "open_session_read_list_chains": summary(open_read),
            "load_one_chain_with_curve": summary(load_times),
            "load_run_records_all_chains": summary(all_records),
        }
    finally:
        if not args.dir:
            shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--dir", help="folder for the benchmark session (default: a temporary folder, removed after)")
    parser.add_argument("--json", action="store_true", help="print only the JSON summary")
    args = parser.parse_args()
    result = run(args)
    if not args.json:
        print(f"KIIG session store: {result['chains']} chains x {result['steps_per_chain']} steps, "
              f"{result['curve_tokens']}-token curves, file {result['file_mb']} MB, SQLite {result['sqlite']}\n")
        print("| measurement | median ms | p90 ms | n |\n|---|---:|---:|---:|")
        for key, value in result.items():
            if isinstance(value, dict):
                print(f"| {key} | {value['median_ms']} | {value['p90_ms']} | {value['n']} |")
        print()
    print(json.dumps(result, indent=None if args.json else 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
