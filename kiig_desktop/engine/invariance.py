"""Is incremental scoring exact on this build, backend and model? Measured once per load.

Incremental scoring (KV cache kept between prefixes, answer tokens decoded on top) equals a
from-scratch pass only when a token's logits do not depend on the batch it was decoded in. That
holds for KIIG's patched CPU build with its settings, but not with flash attention on CPU, weight
repacking, a stock llama.cpp with the tiled K-quant kernel, llamafile, or (never verified) a GPU.
So the worker decodes the same 16 tokens as one batch, as two batches of 8, and as a batch of 15
followed by the last token alone (one row: the single-token path generation takes), and compares
the reduced numbers of every position bit for bit:

- ``verified``: all equal; incremental scoring is used (it equals the from-scratch reference);
- ``failed``: some differ; scoring evaluates every prefix from scratch in one pass (the
  reference itself), unless the user chose "fast, not exact";
- ``skipped``: the context or batch is too small to run the test; treated like ``failed``.

The test runs on the loaded model itself, so every weight type and layer the model uses takes part.
"""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np

N_TOKENS = 16
SPLITS = ((16,), (8, 8), (15, 1))  # batch sizes of each pass over the same tokens

VERIFIED, FAILED, SKIPPED = "verified", "failed", "skipped"
INCREMENTAL, FROM_SCRATCH, FAST = "incremental", "from-scratch", "fast-not-exact"


class _Decoder(Protocol):
    n_ctx: int
    n_batch: int
    n_vocab: int

    def clear(self) -> None: ...

    def decode(self, tokens, outputs: str = ..., targets=None, extra=None): ...


def probe_tokens(n_vocab: int, n: int = N_TOKENS) -> list[int]:
    """A fixed, spread-out token sequence (no special meaning needed: only the arithmetic is tested)."""
    return [(7919 * i + 104729) % n_vocab for i in range(1, n + 1)]


def _pass(backend: _Decoder, tokens: list[int], split: tuple[int, ...]) -> bytes:
    backend.clear()
    targets = tokens[1:] + [-1]
    starts = [sum(split[:i]) for i in range(len(split))]
    parts = [backend.decode(tokens[a : a + n], outputs="all", targets=targets[a : a + n]) for a, n in zip(starts, split, strict=True)]
    lp = np.concatenate([p.target_logprob for p in parts])[:-1]
    ent = np.concatenate([p.entropy for p in parts])
    return lp.tobytes() + ent.tobytes()


def self_test(backend: _Decoder) -> dict:
    """Decode :func:`probe_tokens` split as :data:`SPLITS` and compare bit for bit.

    Returns ``{"verdict", "seconds", "detail"}``; the KV cache is left empty.
    """
    started = time.monotonic()
    if backend.n_ctx < N_TOKENS or backend.n_batch < N_TOKENS or backend.n_vocab < 2:
        return {"verdict": SKIPPED, "seconds": 0.0,
                "detail": f"needs a context and batch of {N_TOKENS} tokens (n_ctx {backend.n_ctx}, n_batch {backend.n_batch})"}
    tokens = probe_tokens(backend.n_vocab)
    try:
        results = {split: _pass(backend, tokens, split) for split in SPLITS}
    finally:
        backend.clear()
    differ = ["+".join(map(str, s)) for s in SPLITS[1:] if results[s] != results[SPLITS[0]]]
    verdict = FAILED if differ else VERIFIED
    detail = (f"batches of {', '.join(differ)} tokens differ from one batch of {N_TOKENS}" if differ
              else f"one batch of {N_TOKENS}, batches of 8+8 and of 15 then a single token agree bit for bit")
    return {"verdict": verdict, "seconds": time.monotonic() - started, "detail": detail}


def scoring_path(verdict: str, fast_not_exact: bool) -> str:
    """How prefixes are scored: incremental where verified, else from scratch unless the user chose speed."""
    if verdict == VERIFIED:
        return INCREMENTAL
    return FAST if fast_not_exact else FROM_SCRATCH
