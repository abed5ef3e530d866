"""Our batch-invariance patch against stock llama.cpp: exactness and speed of K-quant models, per build
and tiled-matmul setting, measured side by side.

Stock llama.cpp rounds K-quant products differently in its tiled matmul (batches of 8+ rows) and in
vec_dot (fewer rows), so exact numbers needed GGML_CPU_TILED_MM=0; packaging/patches/
kquant-batch-invariance.patch makes the two paths bit-identical so the tiled one can stay on. Each
build is a folder holding a ``llama_cpp`` package (with its variant libraries in ``llama_cpp/lib``);
one worker per build and setting stays loaded and rounds alternate between them, so a busy machine
slows all alike. Reports the largest |one-pass - token-by-token| log-prob difference (64 tokens),
prefill tok/s (512 tokens) and greedy generation tok/s (32 tokens): best and median of the rounds.

Usage: python benchmarks/bench_kquant_patch.py --build stock=DIR --build patched=DIR [--model PATH]
       [--rounds 6] [--threads N] [--out results.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np
from _util import environment, machine, save

from kiig_desktop.config import EngineOptions
from kiig_desktop.engine.client import EngineClient
from tests.support.tiny_models import tiny_model

TEXT = ("A 58-year-old man has crushing chest pain for 40 minutes. Which test should be done first? "
        "A 12-lead ECG can show ST elevation, which calls for immediate reperfusion. ")
MESSAGES = [{"role": "user", "content": "Explain step by step how a doctor confirms a diagnosis of type 2 diabetes."}]


def start(model: str, folder: str, tiled: str, threads: int | None) -> EngineClient:
    """A worker that imports llama_cpp from *folder*, with GGML_CPU_TILED_MM=*tiled*."""
    path = os.pathsep.join(p for p in (folder, os.environ.get("PYTHONPATH")) if p)
    with environment({"PYTHONPATH": path, "GGML_CPU_TILED_MM": tiled}):
        client = EngineClient(model, EngineOptions(n_ctx=2048, n_threads=threads))
        client.start()
        return client


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", action="append", required=True, help="NAME=DIR (a folder holding llama_cpp/)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    model = args.model or str(tiny_model("qwen2", "Q4_K_M", Path(tempfile.gettempdir()) / "kiig-bench-models", size="medium"))
    clients: dict[str, EngineClient] = {}
    rows: dict[str, dict] = {}
    try:
        for spec in args.build:
            name, folder = spec.split("=", 1)
            for tiled in ("0", "1"):
                key = f"{name}, GGML_CPU_TILED_MM={tiled}"
                c = clients[key] = start(model, folder, tiled, args.threads)
                seq = c.tokenize(TEXT * 2, add_bos=c.info["add_bos"])[:64]
                one = np.asarray(c.call("eval_sequence", tokens=seq)["logprob"])
                each = np.asarray(c.call("eval_sequence", tokens=seq, chunk=1)["logprob"])
                build = c.build() or {}
                rows[key] = {"max_abs_diff_nats": float(np.abs(one - each).max()), "prefill": [], "generation": [],
                             "kquant_invariant": build.get("kquant_invariant"), "cpu_variant": build.get("cpu_variant"),
                             "threads": c.info["n_threads"]}
        first = next(iter(clients.values()))
        long = first.tokenize(TEXT * 40, add_bos=first.info["add_bos"])[:512]
        for _ in range(args.rounds):
            for key, c in clients.items():
                rows[key]["prefill"].append(len(long) / c.call("prefill", tokens=long)["seconds"])
                gen = c.call("generate", messages=MESSAGES, max_tokens=32, temperature=0.0, top_k=0)
                rows[key]["generation"].append(gen["tokens_per_s"])
    finally:
        for c in clients.values():
            c.close()
    print(f"model: {model}, {args.rounds} rounds, load {os.getloadavg()[0]:.1f} at the end")
    print("| build, setting | max abs(one-pass - token-by-token) nats | prefill tok/s best / median | generation tok/s best / median |")
    print("|---|---:|---:|---:|")
    for key, r in rows.items():
        for m in ("prefill", "generation"):
            r[f"{m}_best"], r[f"{m}_median"] = max(r[m]), statistics.median(r[m])
        print(f"| {key} | {r['max_abs_diff_nats']:.2e} | {r['prefill_best']:.0f} / {r['prefill_median']:.0f} "
              f"| {r['generation_best']:.1f} / {r['generation_median']:.1f} |", flush=True)
    save(args.out, {"model": model, "rounds": args.rounds, "rows": rows, "load_end": os.getloadavg(), "machine": machine()})


if __name__ == "__main__":
    main()
