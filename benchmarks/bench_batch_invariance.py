"""What batch invariance costs: llama.cpp's K-quant matmul settings against exactness and speed.

llama.cpp's CPU backend multiplies K-quant weights (Q4_K, Q5_K, Q6_K, ...) with a tiled kernel for
batches of 8 rows or more and with the vec_dot kernel below that. Stock, the two round differently:
a token's logits depend on the batch it is decoded in (0.05-0.1 nats measured). Either kernel alone
is batch-invariant: GGML_CPU_TILED_MM=0 (always vec_dot) or GGML_CPU_TILED_MM_FORCE=1 (always
tiled). Our build patches vec_dot to round exactly as the tiled kernel
(packaging/patches/kquant-batch-invariance.patch), so the default is exact too; the engine keeps
the tiled kernel on only with that patch (engine/variants.py). For each setting this prints the
largest |one-pass - token-by-token| log-prob difference, prefill tok/s (512 tokens) and generation
tok/s (greedy, 64 tokens), medians, and whether the loaded build carries the patch.

Usage: python benchmarks/bench_batch_invariance.py [--model PATH] [--repeats 3] [--no-threads] [--out results.json]
(without --model: a random-weight llama model of ~120M weights with the Qwen2 tokenizer, Q4_K_M)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from _util import environment, machine, median, save

from kiig_desktop.config import EngineOptions
from kiig_desktop.engine.client import EngineClient
from tests.support.tiny_models import tiny_model

SETTINGS = {
    "llama.cpp default (tiled from 8 rows)": {"GGML_CPU_TILED_MM": "1", "GGML_CPU_TILED_MM_FORCE": "0"},
    "GGML_CPU_TILED_MM=0 (vec_dot always)": {"GGML_CPU_TILED_MM": "0", "GGML_CPU_TILED_MM_FORCE": "0"},
    "GGML_CPU_TILED_MM_FORCE=1 (tiled always)": {"GGML_CPU_TILED_MM": "1", "GGML_CPU_TILED_MM_FORCE": "1"},
}
TEXT = ("A 58-year-old man has crushing chest pain for 40 minutes. Which test should be done first? "
        "A 12-lead ECG can show ST elevation, which calls for immediate reperfusion. ")
MESSAGES = [{"role": "user", "content": "Explain step by step how a doctor confirms a diagnosis of type 2 diabetes."}]


def measure(model: str, env: dict[str, str], repeats: int, threads: int | None) -> dict:
    with environment(env), EngineClient(model, EngineOptions(n_ctx=2048, n_threads=threads)) as c:
        c.start()
        seq = c.tokenize(TEXT * 2, add_bos=c.info["add_bos"])[:64]
        one = np.asarray(c.call("eval_sequence", tokens=seq)["logprob"])
        each = np.asarray(c.call("eval_sequence", tokens=seq, chunk=1)["logprob"])
        long = (c.tokenize(TEXT * 40, add_bos=c.info["add_bos"]))[:512]
        prefill = [c.call("prefill", tokens=long)["seconds"] for _ in range(repeats)]
        gen = [c.call("generate", messages=MESSAGES, max_tokens=64, temperature=0.0, top_k=0) for _ in range(repeats)]
        return {
            "max_abs_diff_nats": float(np.abs(one - each).max()),
            "prefill_tok_s": len(long) / median(prefill),
            "generation_tok_s": median([g["tokens_per_s"] for g in gen]),
            "threads": c.info["n_threads"],
            "kquant_invariant": bool((c.build() or {}).get("kquant_invariant")),
        }


def thread_check(model: str) -> float:
    """Largest log-prob difference of the same one-pass evaluation with 1, 2, 3 and 4 threads."""
    runs = []
    for threads in (1, 2, 3, 4):
        with EngineClient(model, EngineOptions(n_ctx=2048, n_threads=threads)) as c:
            c.start()
            seq = c.tokenize(TEXT * 6, add_bos=c.info["add_bos"])[:200]
            runs.append(np.asarray(c.call("eval_sequence", tokens=seq, chunk=13)["logprob"]))
    return float(max(np.abs(r - runs[0]).max() for r in runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-threads", action="store_true", help="skip the 1-4 thread comparison")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    model = args.model or str(tiny_model("qwen2", "Q4_K_M", Path(tempfile.gettempdir()) / "kiig-bench-models", size="medium"))
    rows = {}
    print(f"model: {model}")
    print("| setting | max abs(one-pass - token-by-token) nats | prefill tok/s | generation tok/s |")
    print("|---|---:|---:|---:|")
    for name, env in SETTINGS.items():
        r = measure(model, env, args.repeats, args.threads)
        rows[name] = r
        print(f"| {name} | {r['max_abs_diff_nats']:.2e} | {r['prefill_tok_s']:.0f} | {r['generation_tok_s']:.1f} |", flush=True)
    spread = None if args.no_threads else thread_check(model)
    if spread is not None:
        print(f"\nsame tokens with 1, 2, 3 and 4 threads (engine defaults): largest log-prob difference {spread:.2e} nats")
    save(args.out, {"model": model, "settings": rows, "threads_max_abs_diff": spread, "machine": machine()})


if __name__ == "__main__":
    main()
