"""Parallel sequences: items/min of `kiig run` at --parallel N against --parallel 1, and one-sequence
generation speed against raw llama-cpp-python.

1. Each sample dataset (first ``--limit`` items) runs as a batch (generate + score, and with ``--ki``
   the KI against the demo clinical corpus, the embedded model as judge) in a fresh session,
   sequentially and then with N items per group (generated, scored and judged at once), same build,
   same process, embedded model; wall time includes model load. The stored results of both are
   compared (timings aside), and the seconds of each phase summed from the records' timings.
2. Generation alone: N sampled replies one at a time against the same N at once (same tokens asserted).
3. One sequence, sampled, ``--tokens`` tokens: the engine's ``generate`` (tokens/s of its decode loop,
   per-token log-prob, entropy and top-k included) against ``llama_cpp.Llama.generate`` in a
   child process with the same model, threads and worker environment.

    python benchmarks/bench_parallel.py [--limit 8] [--parallel 8] [--max-tokens 384] [--ki] [--json out.json]

Not a timed test: it prints numbers (and the load average, as this machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import machine, save

from kiig_desktop.config import WORKER_ENV_DEFAULTS, EngineOptions
from kiig_desktop.engine.client import EngineClient
from kiig_desktop.engine.models import builtin_model_path
from kiig_desktop.knowledge.corpus import add_documents
from kiig_desktop.resources import resource_path
from kiig_desktop.runs.batch import BatchConfig, iter_batch
from kiig_desktop.store import SessionStore

SETS = ("clinical_mcq.jsonl", "arithmetic.jsonl")
PROMPT = [{"role": "user", "content": "Explain step by step how a doctor confirms a diagnosis of type 2 diabetes."}]

RAW = """
import json, sys, time
import llama_cpp
path, threads, tokens, n, repeats = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
llm = llama_cpp.Llama(model_path=path, n_ctx=4096, n_batch=512, n_threads=threads, n_threads_batch=threads, verbose=False)
rates = []
for r in range(repeats):
    llm.reset()
    llm.set_seed(r)
    gen = llm.generate(tokens, temp=0.7, top_k=40, top_p=0.95, reset=True)
    next(gen)  # the prompt's prefill and the first token, as the engine's prompt_s
    t = time.perf_counter()
    for _ in range(n - 1):
        next(gen)
    rates.append((n - 1) / (time.perf_counter() - t))
print(json.dumps(rates))
"""


def load() -> float:
    return os.getloadavg()[0]


def snapshot(db: Path) -> dict:
    """Stored results of the batch run, timings aside."""
    out = {}
    phases = {"generation_s": 0.0, "scoring_s": 0.0, "ki_s": 0.0}
    with SessionStore.open(db, write=False) as store:
        run = next(r for r in store.list_runs() if r["kind"] == "batch")
        out["_settings"] = run["settings"]
        for chain in store.chains_for_run(run["id"]):
            record = store.load_chain(chain["id"])
            for k, v in record.pop("timing").items():
                if k in phases:
                    phases[k] += v
            ki = [{k: v for k, v in ev.items() if k != "created"} for ev in store.load_ki(chain["id"])]
            out[chain["key"]] = (record, store.load_generation(chain["id"]), ki)
    out["_phases"] = phases
    return out


def run_batch(name: str, parallel: int, args, out_dir: Path) -> tuple[float, int, dict]:
    db = out_dir / f"{Path(name).stem}-p{parallel}.kiig"
    db.unlink(missing_ok=True)
    if args.ki:
        with SessionStore.open(db) as store:
            add_documents(store.db, "clinical", [resource_path("corpus", "clinical_facts.jsonl")])
    started = time.perf_counter()
    with SessionStore.open(db) as store:
        gen = iter_batch(store, resource_path("datasets", name), ["default"], "default",
                         judge="default" if args.ki else None, corpus="clinical" if args.ki else None,
                         config=BatchConfig(max_tokens=args.max_tokens, limit=args.limit),
                         options=EngineOptions(n_threads=args.threads), parallel=parallel)
        try:
            while True:
                next(gen)
        except StopIteration as stop:
            summary = stop.value
    return time.perf_counter() - started, summary.done, snapshot(db)


def bench_batches(args, out_dir: Path) -> dict:
    out: dict = {}
    for parallel in (1, args.parallel):
        wall, items, snaps, loads = 0.0, 0, {}, []
        phases = {"generation_s": 0.0, "scoring_s": 0.0, "ki_s": 0.0}
        for name in SETS:
            loads.append(load())
            w, n, snaps[name] = run_batch(name, parallel, args, out_dir)
            for k, v in snaps[name].pop("_phases").items():
                phases[k] += v
            wall, items = wall + w, items + n
            print(f"  parallel {parallel:2d}  {name:<20} {n} items in {w:6.1f} s  (load {loads[-1]:.1f})", flush=True)
        out[parallel] = {"items": items, "wall_s": round(wall, 2), "items_per_min": round(items / wall * 60, 2),
                         "phase_s": {k: round(v, 1) for k, v in phases.items()},
                         "load_avg_1m": [round(x, 1) for x in loads], "snapshots": snaps}
    seq, par = out[1], out[args.parallel]
    identical = seq.pop("snapshots") == par.pop("snapshots")
    return {"sequential": seq, "parallel": par, "parallel_n": args.parallel, "ki": args.ki,
            "speedup": round(par["items_per_min"] / seq["items_per_min"], 2), "stored_results_identical": identical}


def bench_single(args) -> dict:
    path = str(builtin_model_path())
    with EngineClient("default", EngineOptions(n_threads=args.threads)) as client:
        client.start()
        tokens = client.call("prompt_tokens", messages=PROMPT)
        threads = client.info["n_threads"]
        ours = []
        for r in range(args.repeats):
            res = client.call("generate", messages=PROMPT, max_tokens=args.tokens, temperature=0.7, seed=r)
            if len(res["tokens"]) >= args.tokens // 2:  # a reply that ended early measures too little
                ours.append(res["tokens_per_s"])
    env = {**os.environ, **{k: v for k, v in WORKER_ENV_DEFAULTS.items() if k not in os.environ}}
    raw = subprocess.run([sys.executable, "-c", RAW, path, str(threads), json.dumps(tokens), str(args.tokens), str(args.repeats)],
                         capture_output=True, text=True, env=env, timeout=1200, check=True)
    raw_rates = json.loads(raw.stdout.strip().splitlines()[-1])
    m_ours, m_raw = statistics.median(ours), statistics.median(raw_rates)
    return {"engine_tok_s": round(m_ours, 1), "raw_llama_cpp_python_tok_s": round(m_raw, 1), "ratio": round(m_ours / m_raw, 3),
            "repeats": args.repeats, "tokens": args.tokens, "threads": threads, "load_avg_1m": round(load(), 1)}


def bench_throughput(args) -> dict:
    """Generation alone: N sampled replies one after another against the same N at once (prefill included)."""
    items = [{"messages": PROMPT, "seed": r} for r in range(args.parallel)]
    with EngineClient("default", EngineOptions(n_threads=args.threads)) as client:
        client.start()
        t = time.perf_counter()
        seq = [client.call("generate", messages=PROMPT, max_tokens=args.tokens, temperature=0.7, seed=r, top_k=0)
               for r in range(args.parallel)]
        seq_s = time.perf_counter() - t
        t = time.perf_counter()
        par = drain(client.generate_many(items, max_tokens=args.tokens, temperature=0.7, top_k=0))
        par_s = time.perf_counter() - t
    assert [[x["id"] for x in r["tokens"]] for r in seq] == [[x["id"] for x in r["tokens"]] for r in par]
    n_tokens = sum(len(r["tokens"]) for r in seq)
    return {"replies": args.parallel, "tokens": n_tokens, "sequential_tok_s": round(n_tokens / seq_s, 1),
            "parallel_tok_s": round(n_tokens / par_s, 1), "speedup": round(seq_s / par_s, 2), "load_avg_1m": round(load(), 1)}


def bench_score_judge(args) -> dict:
    """Scoring alone and judging alone: the demo chains' prefixes scanned one chain at a time against all
    at once (``scan_many``), and the judge prompts of their steps (demo corpus) one at a time against
    ``--parallel`` at once (``judge_many``); the numbers are asserted equal."""
    from kiig_desktop.knowledge.ki import NO_CANDIDATES, YES_CANDIDATES, build_judge_messages, build_query, step_claim
    from kiig_desktop.knowledge.search import search
    from kiig_desktop.metrics.infogain import plan_chain

    chains = [json.loads(line) for line in resource_path("chains", "clinical_chains.jsonl").read_text().splitlines() if line.strip()]
    cands = [*YES_CANDIDATES, *NO_CANDIDATES]
    with tempfile.TemporaryDirectory() as tmp, SessionStore.open(Path(tmp) / "c.kiig") as store, \
            EngineClient("default", EngineOptions(n_threads=args.threads)) as client:
        add_documents(store.db, "clinical", [resource_path("corpus", "clinical_facts.jsonl")])
        client.start()
        plans = [plan_chain(client, c["question"], c["answer"], c["steps"], c.get("options"), c.get("answer_idx")) for c in chains]
        requests = [{"prefixes": p.prefixes, "curve_prefix": len(p.prefixes) - 1} for p in plans]
        prompts = []
        for c in chains:
            for step in c["steps"]:
                ok, _reason, claim = step_claim(step, None, c["question"])
                passages = search(store.db, "clinical", build_query(step, None, c["question"]), 3) if ok else []
                if passages and len(prompts) < args.sj_prompts:
                    prompts.append(build_judge_messages(claim, passages))
        client.call("scan", prefixes=requests[0]["prefixes"])  # warm up
        times: dict[str, list[float]] = {"scan_seq": [], "scan_par": [], "judge_seq": [], "judge_par": []}
        for _ in range(args.sj_repeats):  # alternated, medians: the load of a shared machine drifts
            t = time.perf_counter()
            seq = [client.call("scan", **r) for r in requests]
            times["scan_seq"].append(time.perf_counter() - t)
            t = time.perf_counter()
            par = [r for g in range(0, len(requests), args.parallel) for r in drain(client.scan_many(requests[g : g + args.parallel]))]
            times["scan_par"].append(time.perf_counter() - t)
            assert [[cp["answer_logprob"] for cp in r["checkpoints"]] for r in seq] == [[cp["answer_logprob"] for cp in r["checkpoints"]] for r in par]
            t = time.perf_counter()
            one = [client.next_token_logprobs(m, cands) for m in prompts]
            times["judge_seq"].append(time.perf_counter() - t)
            t = time.perf_counter()
            many = [r for g in range(0, len(prompts), args.parallel) for r in drain(client.judge_many(prompts[g : g + args.parallel], cands))]
            times["judge_par"].append(time.perf_counter() - t)
            assert one == many
    scan_seq, scan_par, judge_seq, judge_par = (statistics.median(times[k]) for k in ("scan_seq", "scan_par", "judge_seq", "judge_par"))
    tokens = sum(r["tokens_evaluated"] for r in seq)
    return {"chains": len(requests), "scan_tokens": tokens, "scan_sequential_s": round(scan_seq, 2), "scan_parallel_s": round(scan_par, 2),
            "scan_speedup": round(scan_seq / scan_par, 2), "judge_prompts": len(prompts), "judge_sequential_s": round(judge_seq, 2),
            "judge_parallel_s": round(judge_par, 2), "judge_speedup": round(judge_seq / judge_par, 2), "load_avg_1m": round(load(), 1)}


def drain(gen):
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=384)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--ki", action="store_true", help="judge the KI too (demo clinical corpus, embedded model as judge)")
    ap.add_argument("--skip-batch", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--score-judge", action="store_true", help="also time scoring alone and judging alone, one at a time against at once")
    ap.add_argument("--sj-repeats", type=int, default=3)
    ap.add_argument("--sj-prompts", type=int, default=16, help="judge prompts timed (the first of the demo chains' steps)")
    ap.add_argument("--skip-single", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    result: dict = {"machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_batch:
            print(f"batch runs, {args.limit} items per sample set, max {args.max_tokens} tokens:", flush=True)
            result["batch"] = bench_batches(args, Path(tmp))
            b = result["batch"]
            print(f"phase seconds: sequential {b['sequential']['phase_s']}, parallel {b['parallel']['phase_s']}", flush=True)
            print(f"sequential {b['sequential']['items_per_min']} items/min, parallel {args.parallel}: "
                  f"{b['parallel']['items_per_min']} items/min = {b['speedup']}x; stored results identical: "
                  f"{b['stored_results_identical']}", flush=True)
    if args.score_judge:
        result["score_judge"] = sj = bench_score_judge(args)
        print(f"scoring alone, {sj['chains']} demo chains ({sj['scan_tokens']} tokens): one at a time {sj['scan_sequential_s']} s, "
              f"{args.parallel} at once {sj['scan_parallel_s']} s = {sj['scan_speedup']}x; judging alone, {sj['judge_prompts']} prompts: "
              f"{sj['judge_sequential_s']} s against {sj['judge_parallel_s']} s = {sj['judge_speedup']}x (same numbers; load {sj['load_avg_1m']})",
              flush=True)
    if args.skip_throughput:
        save(args.json, result)
        return
    result["generation_throughput"] = g = bench_throughput(args)
    print(f"generation alone, {g['replies']} sampled replies ({g['tokens']} tokens): one at a time {g['sequential_tok_s']} tok/s, "
          f"at once {g['parallel_tok_s']} tok/s = {g['speedup']}x (same tokens; load {g['load_avg_1m']})", flush=True)
    if not args.skip_single:
        result["single_sequence"] = s = bench_single(args)
        print(f"one sequence: engine {s['engine_tok_s']} tok/s, raw llama-cpp-python {s['raw_llama_cpp_python_tok_s']} tok/s "
              f"(ratio {s['ratio']}, load {s['load_avg_1m']})")
    save(args.json, result)


if __name__ == "__main__":
    main()
