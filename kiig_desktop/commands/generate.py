"""``kiig generate``: chat-templated generation with per-token log-probabilities."""

from __future__ import annotations

import argparse
import sys

from ..engine.client import EngineClient
from ..errors import InputError
from ..events import CancelToken, Token
from ._common import add_engine_args, engine_options, finite_float, print_engine_warnings, print_json, seed_value
from ._progress import drive


def register(sub) -> None:
    p = sub.add_parser("generate", help="generate a reply with a local model (tokens with logprob and entropy)")
    p.add_argument("--model", required=True, help="a .gguf path, a model id/name from `kiig models`, or `default`")
    p.add_argument("--prompt", required=True, help="the user message")
    p.add_argument("--system", default=None, help="an optional system message")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--temperature", type=finite_float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--seed", type=seed_value, default=None, help="sampling seed (used when temperature > 0)")
    p.add_argument("--top-k", type=int, default=5, help="alternatives reported per token (--json)")
    p.add_argument("--json", action="store_true", help="print one JSON object with every token")
    add_engine_args(p)
    p.set_defaults(func=run)


def _echo(event: object) -> None:
    if isinstance(event, Token):
        sys.stdout.write(event.text)
        sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    if args.max_tokens < 1:
        raise InputError(f"--max-tokens must be at least 1, got {args.max_tokens}")
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [{"role": "user", "content": args.prompt}]
    cancel = CancelToken()
    with EngineClient(args.model, engine_options(args)) as client:
        client.start(cancel=cancel)
        print_engine_warnings(client)
        gen = client.generate(messages, cancel=cancel, max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed, top_k=args.top_k)
        result = drive(gen, cancel, lambda e: _echo(e) if not args.json else None)
        if args.json:
            print_json({
                "text": result["text"],
                "tokens": [
                    {"text": t["text"], "logprob": t["logprob"], "entropy_bits": t["entropy_bits"],
                     "top": [{"text": a["text"], "logprob": a["logprob"]} for a in t["top"]]}
                    for t in result["tokens"]
                ],
                "model": client.model_ref(),
                "stop": result["stop"],
            })
        else:
            sys.stdout.write("\n")
            print(f"[{len(result['tokens'])} tokens, {result['tokens_per_s']:.1f} tok/s, stop: {result['stop']}]", file=sys.stderr)
    return 0
