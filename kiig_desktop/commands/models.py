"""``kiig models``: the models this machine offers."""

from __future__ import annotations

import argparse

from ..engine.models import discover_models
from ..units import human_bytes, human_count
from ._common import print_json


def register(sub) -> None:
    p = sub.add_parser("models", help="list discovered GGUF models (builtin, models folder, LM Studio, Ollama)")
    p.add_argument("--json", action="store_true", help="machine-readable output, with SHA-256 of each file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    models = discover_models()
    if args.json:
        print_json({"models": [m.to_dict(with_sha256=True) for m in models]})
        return 0
    if not models:
        print("no models found; put .gguf files in the models folder or install the embedded model")
        return 0
    rows = [("ID", "SOURCE", "ARCH", "QUANT", "PARAMS", "CONTEXT", "SIZE", "PATH")]
    for m in models:
        h = m.header
        rows.append((
            m.id, m.source, h.architecture if h else "-", h.quantization if h else "-",
            human_count(h.parameters) if h else "-", str(h.context_length or "?") if h else "-",
            human_bytes(m.size), m.path if not m.error else f"{m.path}  ({m.error})",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    return 0
