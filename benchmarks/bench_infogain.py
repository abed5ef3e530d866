"""InfoGain scoring speed and memory with the embedded model.

1. Incremental scoring (what `kiig score` runs) against per-prefix recomputation from scratch,
   for chains of 4, 8, 16 and 32 steps: median wall time over repeats, and the speed-up ratio.
2. Peak resident memory of the model worker while scoring a chain of about 6,000 tokens, against
   the budget "model file + KV cache + 300 MB".
3. Scoring throughput (tokens evaluated per second) against plain prefill of the same tokens.

Usage: python benchmarks/bench_infogain.py [--repeats 3] [--out results.json]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from _util import machine, median, proc_status, reset_peak_rss, save, timed

from kiig_desktop.config import EngineOptions
from kiig_desktop.engine.client import EngineClient, estimate_kv_bytes
from kiig_desktop.metrics.infogain import plan_chain, score_chain

QUESTION = "A 58-year-old man has crushing chest pain for 40 minutes. Which test should be done first?"
OPTIONS = {"A": "Chest X-ray", "B": "12-lead ECG", "C": "Exercise stress test", "D": "CT pulmonary angiogram"}
SENTENCES = [
    "Chest pain lasting this long in a man of this age raises concern for an acute coronary syndrome.",
    "The first test must be quick, cheap and able to change management within minutes.",
    "A 12-lead ECG can show ST elevation, which calls for immediate reperfusion.",
    "A chest X-ray helps with other causes but does not identify myocardial infarction.",
    "Exercise testing is unsafe while an acute coronary syndrome is still possible.",
    "CT pulmonary angiography answers a different question and takes longer to arrange.",
    "Troponin is also drawn early, but the ECG comes first because it is immediate.",
    "Guidelines ask for an ECG within ten minutes of arrival for chest pain.",
]


def make_steps(n: int, words_per_step: int = 0) -> list[str]:
    steps = []
    for i in range(n):
        s = SENTENCES[i % len(SENTENCES)]
        if words_per_step:
            s = " ".join([s] * max(1, words_per_step // len(s.split())))
        steps.append(f"Step {i + 1}: {s}")
    return steps


def from_scratch(client, plan, options: bool = True) -> None:
    """What scoring costs without KV reuse: every prefix and its answer (and option letters) anew."""
    for p in plan.prefixes:
        client.eval_sequence(p["context"] + p["answer"])
        for cand in p.get("candidates") or [] if options else []:  # each letter on top of the context
            client.eval_sequence(p["context"] + cand)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="default")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--lengths", default="4,8,16,32")
    ap.add_argument("--long-tokens", type=int, default=6000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    opts = EngineOptions(n_ctx=8192)
    result: dict = {"machine": machine(), "engine": opts.to_dict()}
    with EngineClient(args.model, opts) as client:
        client.start()
        score_chain(client, QUESTION, OPTIONS["B"], make_steps(2), OPTIONS, "B")  # warm-up
        # open question: incremental and from-scratch compute the same thing (the answer's NLL per prefix)
        print("| steps | tokens | `kiig score` path, incremental (s) | per-prefix recomputation (s) | speed-up |")
        print("|---:|---:|---:|---:|---:|")
        rows = []
        for n in [int(x) for x in args.lengths.split(",")]:
            steps = make_steps(n)
            plan = plan_chain(client, QUESTION, OPTIONS["B"], steps)
            inc = timed(lambda steps=steps: score_chain(client, QUESTION, OPTIONS["B"], steps), args.repeats)
            base = timed(lambda plan=plan: from_scratch(client, plan, options=False), args.repeats)
            n_tokens = len(plan.prefixes[-1]["context"]) + len(plan.prefixes[-1]["answer"])
            row = {"steps": n, "tokens": n_tokens, "incremental_s": median(inc), "from_scratch_s": median(base), "speedup": median(base) / median(inc)}
            rows.append(row)
            print(f"| {n} | {n_tokens} | {row['incremental_s']:.2f} | {row['from_scratch_s']:.2f} | {row['speedup']:.1f}x |")
        result["speedup"] = rows
        # multiple choice, 16 steps: the answer and the four option letters at every prefix
        steps = make_steps(16)
        plan = plan_chain(client, QUESTION, OPTIONS["B"], steps, OPTIONS, "B")
        inc = timed(lambda: score_chain(client, QUESTION, OPTIONS["B"], steps, OPTIONS, "B"), args.repeats)
        full = timed(lambda: from_scratch(client, plan), args.repeats)
        result["mcq16"] = {"incremental_s": median(inc), "from_scratch_s": median(full), "speedup": median(full) / median(inc)}
        print(f"\nmultiple choice, 16 steps (answer + 4 option letters per prefix): incremental {median(inc):.2f} s, "
              f"from scratch {median(full):.2f} s, speed-up {median(full) / median(inc):.1f}x")
        steady = proc_status(client.pid, "VmRSS")
        result["steady_rss_after_speedup_runs"] = steady
        print(f"worker RSS after these runs: {steady / 2**20:.0f} MiB (llama.cpp keeps its output and compute buffers)")

    # a long chain in a fresh worker: what scoring it costs, not what earlier requests left resident
    with EngineClient(args.model, opts) as client:
        client.start()
        steps = make_steps(32, words_per_step=int(args.long_tokens / 32 * 0.85))
        plan = plan_chain(client, QUESTION, OPTIONS["B"], steps, OPTIONS, "B")
        n_ctx_tokens = len(plan.prefixes[-1]["context"])
        pid = client.pid
        reset_ok = reset_peak_rss(pid)
        rss_before = proc_status(pid, "VmRSS")
        t = time.perf_counter()
        scan = client.call("scan", prefixes=plan.prefixes)
        scan_s = time.perf_counter() - t
        peak = proc_status(pid, "VmHWM")
        context = plan.prefixes[-1]["context"]
        prefill = [client.call("prefill", tokens=context)["seconds"] for _ in range(args.repeats)]
        model_bytes = os.path.getsize(client.model.path)
        kv = estimate_kv_bytes(client.model, opts.n_ctx)
        budget = model_bytes + kv + 300 * 10**6
        evaluated = scan["tokens_evaluated"]
        result["long_chain"] = {
            "context_tokens": n_ctx_tokens, "tokens_evaluated": evaluated, "scan_s": scan_s,
            "scan_tok_s": evaluated / scan_s, "prefill_tok_s": n_ctx_tokens / median(prefill),
            "throughput_ratio": (evaluated / scan_s) / (n_ctx_tokens / median(prefill)),
            "peak_rss": peak, "rss_before": rss_before, "peak_was_reset": reset_ok,
            "model_bytes": model_bytes, "kv_bytes": kv, "budget_bytes": budget,
            "answer_nll_last": float(-np.mean(scan["checkpoints"][-1]["answer_logprob"])),
        }
        lc = result["long_chain"]
        print(f"\nlong chain: {n_ctx_tokens} context tokens in 32 steps, {evaluated} tokens evaluated with the probes")
        print(f"scoring throughput {lc['scan_tok_s']:.0f} tok/s vs plain prefill {lc['prefill_tok_s']:.0f} tok/s "
              f"= {100 * lc['throughput_ratio']:.0f}% (target >= 70%)")
        print(f"worker RSS {rss_before / 2**20:.0f} MiB after loading, peak {peak / 2**20:.0f} MiB while scoring; budget "
              f"{budget / 2**20:.0f} MiB = model {model_bytes / 2**20:.0f} + KV {kv / 2**20:.0f} + 300 MB (286 MiB)"
              f"{'' if reset_ok else ' (peak since worker start)'}")

    with EngineClient(args.model, EngineOptions(n_ctx=8192, flash_attn=True)) as fa:
        fa.start()
        fa_prefill = [fa.call("prefill", tokens=context)["seconds"] for _ in range(args.repeats)]
        result["long_chain"]["prefill_flash_attn_tok_s"] = n_ctx_tokens / median(fa_prefill)
        print(f"(plain prefill with flash attention on: {n_ctx_tokens / median(fa_prefill):.0f} tok/s; scoring keeps it off "
              f"because it makes logits depend on batch boundaries)")
    save(args.out, result)


if __name__ == "__main__":
    main()
