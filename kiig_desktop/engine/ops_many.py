"""Scoring and judging several items at once: one KV-cache sequence each, in shared batches.

Like ``ops.generate_many``, these run in the context of ``Backend.seq_context`` (a KV-cache stream
per sequence, so a sequence's cells sit where they would in a one-sequence context) and rely on the
engine's batch-invariant kernels: an item's numbers are those of ``ops.scan`` or
``ops.next_token_logprobs`` run for it alone, whatever it shares a batch with. A failure of one item
(a chain longer than the context, say) is that item's ``{"error": ...}``; the others go on. Cancel
stops the whole operation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from ..errors import Cancelled, InputError, KiigError
from .backend import Backend, Reduced, batch_spans, check_fits
from .invariance import FROM_SCRATCH
from .ops import Decode, Events, candidate_logprobs, next_token_logprobs, prompt_tokens, scan, scan_chain
from .wire import error_payload


def _one_at_a_time(runs: list[Callable[[], Events]]) -> Events:
    """Run single-item operations in turn (per-item errors kept), for builds whose batches are not
    verified invariant: sharing a batch would change an item's numbers there."""
    results: list[dict | None] = []
    for k, run in enumerate(runs):
        try:
            gen = run()
            while True:
                next(gen)  # the item's own progress; this operation counts items
        except StopIteration as stop:
            results.append(stop.value)
        except Cancelled:
            raise
        except KiigError as exc:
            results.append({"error": error_payload(exc)})
        yield {"type": "progress", "done": k + 1, "total": len(runs), "tokens": 0}
    return {"results": results}


def _check_count(backend: Backend, n: int) -> None:
    if n > backend.n_batch:
        raise InputError(f"at most {backend.n_batch} parallel sequences (n_batch), got {n}")


def _runs(seqs: Sequence[int], pos: Sequence[int], tokens: Sequence[int], b0: int, m: int) -> list[tuple[int, list[int], int]]:
    """The flat positions ``b0..b0+m`` as ``(seq, tokens, first position)`` rows, one per run of a sequence."""
    rows: list[tuple[int, list[int], int]] = []
    for i in range(b0, b0 + m):
        if rows and rows[-1][0] == seqs[i]:
            rows[-1][1].append(tokens[i])
        else:
            rows.append((seqs[i], [tokens[i]], pos[i]))
    return rows


def _decode_requests(backend: Backend, ctx, requests: list[tuple[int, Decode]]) -> dict[int, Reduced]:
    """Carry out the :class:`~.ops.Decode` requests of several sequences in shared batches of ``n_batch``.

    The sequences go in increasing order, so llama.cpp's per-stream splitting can put the tokens of
    neighbouring sequences in one micro-batch.
    """
    seqs: list[int] = []
    pos: list[int] = []
    tokens: list[int] = []
    targets: list[int] = []
    extra: dict[int, list[int]] = {}
    offsets: dict[int, tuple[int, int]] = {}
    for seq, req in requests:
        backend.forget(ctx, seq, req.start)
        o = len(tokens)
        offsets[seq] = (o, len(req.tokens))
        extra.update({o + row: ids for row, ids in (req.extra or {}).items()})
        seqs += [seq] * len(req.tokens)
        pos += range(req.start, req.start + len(req.tokens))
        tokens += req.tokens
        targets += req.targets
    parts: list[Reduced] = []
    for b0, m in batch_spans(len(tokens), backend.n_batch):
        here = {row - b0: ids for row, ids in extra.items() if b0 <= row < b0 + m}
        parts.append(backend.decode_seqs(ctx, _runs(seqs, pos, tokens, b0, m), "all", targets[b0 : b0 + m], here))
    lse = np.concatenate([p.lse for p in parts])
    ent = np.concatenate([p.entropy for p in parts])
    tlp = np.concatenate([p.target_logprob for p in parts])
    more = {b0 + row: v for (b0, _), p in zip(batch_spans(len(tokens), backend.n_batch), parts, strict=True) for row, v in p.extra.items()}
    return {seq: Reduced(lse[o : o + n], ent[o : o + n], tlp[o : o + n], {r - o: v for r, v in more.items() if o <= r < o + n})
            for seq, (o, n) in offsets.items()}


def scan_many(backend: Backend, chains: list[dict]) -> Events:
    """:func:`~.ops.scan` for several chains at once, chain k in sequence k.

    ``chains[k]``: ``{"prefixes": [...], "curve_prefix": int?}`` as ``scan`` takes them. Each round
    every unfinished chain asks for its next incremental decode (its KV reuse stays within its own
    sequence) and all the requests share batches. Progress counts prefixes over all chains.
    Returns ``{"results": [scan's result or {"error"}]}``.
    """
    n = len(chains)
    if n == 0:
        return {"results": []}
    if backend.scoring == FROM_SCRATCH:
        return (yield from _one_at_a_time([partial(scan, backend, c["prefixes"], c.get("curve_prefix")) for c in chains]))
    _check_count(backend, n)
    ctx = backend.seq_context(n)
    results: list[dict | None] = [None] * n
    running = {k: scan_chain(c["prefixes"], c.get("curve_prefix"), backend.n_ctx) for k, c in enumerate(chains)}
    pending: dict[int, Decode] = {}
    done = [0] * n
    total = [len(c["prefixes"]) for c in chains]
    tokens = [0] * n

    def advance(k: int, reply: Reduced | None) -> None:
        """Run chain ``k`` to its next request; keep its result (or error) once it ends."""
        try:
            while True:
                item = running[k].send(reply)
                if isinstance(item, Decode):
                    pending[k] = item
                    return
                done[k], total[k], tokens[k] = item["done"], item["total"], item["tokens"]
                reply = None
        except StopIteration as stop:
            results[k] = stop.value
        except Cancelled:
            raise
        except KiigError as exc:
            results[k] = {"error": error_payload(exc)}
        del running[k]
        backend.forget(ctx, k, 0)

    for k in list(running):
        advance(k, None)
    while pending:
        replies = _decode_requests(backend, ctx, sorted(pending.items()))
        pending.clear()
        for k, reply in replies.items():
            advance(k, reply)
        yield {"type": "progress", "done": sum(done), "total": sum(total), "tokens": sum(tokens)}
    ctx.kv_cache_clear()
    return {"results": results}


def judge_many(backend: Backend, items: list[dict], candidates: list[str]) -> Events:
    """:func:`~.ops.next_token_logprobs` for several judge prompts at once, prompt k in sequence k.

    ``items[k]``: ``{"messages": [...]}``. The prompts are decoded in shared batches, each keeping
    the logits of its last token only. Progress counts prompts read. Returns ``{"results":
    [next_token_logprobs' result or {"error"}]}``.
    """
    n = len(items)
    if n == 0:
        return {"results": []}
    if backend.scoring == FROM_SCRATCH:
        return (yield from _one_at_a_time([partial(next_token_logprobs, backend, it["messages"], candidates) for it in items]))
    _check_count(backend, n)
    results: list[dict | None] = [None] * n
    prompts: dict[int, list[int]] = {}
    for k, item in enumerate(items):
        try:
            toks = prompt_tokens(backend, item["messages"])
            check_fits(len(toks), backend.n_ctx, "the judge prompt")
            prompts[k] = toks
        except KiigError as exc:
            results[k] = {"error": error_payload(exc)}
    ctx = backend.seq_context(n)
    seqs = [k for k, toks in prompts.items() for _ in toks]
    pos = [i for toks in prompts.values() for i in range(len(toks))]
    flat = [t for toks in prompts.values() for t in toks]
    last = {k: i for i, k in enumerate(seqs) if i + 1 == len(seqs) or seqs[i + 1] != k}  # flat index of each prompt's end
    n_read = 0
    for b0, m in batch_spans(len(flat), backend.n_batch):
        backend.decode_seqs(ctx, _runs(seqs, pos, flat, b0, m))
        for k, i in last.items():
            if b0 <= i < b0 + m:
                results[k] = candidate_logprobs(backend, backend.logits_at(ctx, i - b0), candidates, len(prompts[k]))
                n_read += 1
        yield {"type": "progress", "done": n_read, "total": len(prompts), "tokens": b0 + m}
    ctx.kv_cache_clear()
    return {"results": results}
