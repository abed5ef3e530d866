"""Generation speed of the embedded model: tokens per second, median over repeats.

Usage: python benchmarks/bench_generation.py [--repeats 5] [--tokens 128] [--out results.json]
"""

from __future__ import annotations

import argparse

from _util import machine, median, save

from kiig_desktop.config import EngineOptions
from kiig_desktop.engine.client import EngineClient

PROMPT = [{"role": "user", "content": "Explain step by step how a doctor confirms a diagnosis of type 2 diabetes."}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="default")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    with EngineClient(args.model, EngineOptions(n_threads=args.threads)) as client:
        client.start()
        client.call("generate", messages=PROMPT, max_tokens=8)  # warm-up
        gen_rates, prompt_rates, lengths = [], [], []
        for i in range(args.repeats):
            # sampled (seeded) so no run stops early on a greedy end-of-turn
            r = client.call("generate", messages=PROMPT, max_tokens=args.tokens, temperature=0.7, seed=i)
            gen_rates.append(r["tokens_per_s"])
            prompt_rates.append(r["n_prompt_tokens"] / r["prompt_s"])
            lengths.append(len(r["tokens"]))
        info = client.info
    result = {
        "model": client.model.path,
        "threads": info["n_threads"],
        "repeats": args.repeats,
        "generated_tokens": lengths,
        "generation_tok_s_median": median(gen_rates),
        "generation_tok_s_all": gen_rates,
        "prompt_tok_s_median": median(prompt_rates),
        "machine": machine(),
    }
    print(f"generation: median {result['generation_tok_s_median']:.1f} tok/s over {args.repeats} runs "
          f"of up to {args.tokens} tokens ({info['n_threads']} threads); runs: {', '.join(f'{x:.1f}' for x in gen_rates)}")
    print(f"prompt processing (short chat prompt): median {result['prompt_tok_s_median']:.0f} tok/s")
    save(args.out, result)


if __name__ == "__main__":
    main()
