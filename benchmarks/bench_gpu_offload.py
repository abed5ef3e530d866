"""GPU offload check: the same engine on CPU and with every layer on the GPU.

Needs a llama-cpp-python built with GPU support (e.g. CMAKE_ARGS="-DGGML_CUDA=on"). Reports the
doctor's view, prefill and generation speed on each backend, scoring of the demo chains, whether
incremental scoring equals a from-scratch pass on the GPU, and how far CPU and GPU numbers differ
(they are not interchangeable: record the backend with every number).

Usage: python benchmarks/bench_gpu_offload.py [--model PATH] [--threads N] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
from _util import machine, median, save

from kiig_desktop.commands.doctor import check
from kiig_desktop.config import EngineOptions
from kiig_desktop.engine.client import EngineClient
from kiig_desktop.metrics.infogain import incremental_error, score_chain
from kiig_desktop.resources import resource_path

TEXT = "The patient reports chest pain radiating to the left arm, with sweating and nausea. " * 120


def measure(model: str, opts: EngineOptions, chains: list[dict], repeats: int) -> dict:
    with EngineClient(model, opts) as c:
        t = time.perf_counter()
        info = c.start()
        load_s = time.perf_counter() - t
        tokens = c.tokenize(TEXT)[:2000]
        c.call("prefill", tokens=tokens)  # warm-up
        prefill = [len(tokens) / c.call("prefill", tokens=tokens)["seconds"] for _ in range(repeats)]
        gen = [c.call("generate", messages=[{"role": "user", "content": "List five causes of chest pain."}], max_tokens=128, temperature=0.7, seed=i)["tokens_per_s"] for i in range(repeats)]
        records, times = [], []
        for ch in chains:
            t = time.perf_counter()
            records.append(score_chain(c, ch["question"], ch["answer"], ch["steps"], ch.get("options"), ch.get("answer_idx"), curve=False))
            times.append(time.perf_counter() - t)
        worst = max(incremental_error(c, ch["question"], ch["answer"], ch["steps"], ch.get("options")) for ch in chains[:2])
        return {
            "system_info": info.get("system_info"), "gpu_offload": info.get("gpu_offload"), "warnings": info.get("warnings"),
            "load_s": load_s, "prefill_tok_s": median(prefill), "generation_tok_s": median(gen),
            "score_chain_s_median": median(times), "incremental_vs_scratch_max_abs_nats": worst,
            "answer_nll": [[e["answer_nll"] for e in [r["baseline"]] + r["steps"]] for r in records],
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="default")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--gpu-layers", type=int, default=99)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    chains = [json.loads(x) for x in resource_path("chains", "clinical_chains.jsonl").read_text().splitlines()]
    doctor = check(args.model, EngineOptions(n_gpu_layers=args.gpu_layers))
    print(json.dumps({k: doctor[k] for k in ("llama_cpp_python", "system_info", "gpu_offload", "smoke")}, indent=1))
    cpu = measure(args.model, EngineOptions(n_threads=args.threads), chains, args.repeats)
    gpu = measure(args.model, EngineOptions(n_threads=args.threads, n_gpu_layers=args.gpu_layers), chains, args.repeats)
    diffs = [abs(a - b) for ra, rb in zip(cpu["answer_nll"], gpu["answer_nll"], strict=True) for a, b in zip(ra, rb, strict=True)]
    summary = {
        "machine": machine(), "doctor": doctor, "cpu": cpu, "gpu": gpu,
        "cpu_vs_gpu_answer_nll_max_abs": max(diffs), "cpu_vs_gpu_answer_nll_median_abs": float(np.median(diffs)),
    }
    for name, r in (("CPU", cpu), ("GPU", gpu)):
        print(f"{name}: load {r['load_s']:.2f} s, prefill {r['prefill_tok_s']:.0f} tok/s, generation {r['generation_tok_s']:.1f} tok/s, "
              f"score one demo chain {r['score_chain_s_median'] * 1000:.0f} ms (median), incremental vs from-scratch max "
              f"{r['incremental_vs_scratch_max_abs_nats']:.2e} nats")
    print(f"answer NLL, CPU vs GPU: max |diff| {summary['cpu_vs_gpu_answer_nll_max_abs']:.4f} nats, median {summary['cpu_vs_gpu_answer_nll_median_abs']:.4f}")
    assert math.isfinite(summary["cpu_vs_gpu_answer_nll_max_abs"])
    save(args.out, summary)


if __name__ == "__main__":
    main()
