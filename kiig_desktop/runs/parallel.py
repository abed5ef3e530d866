"""Parallel items for batch runs: how many at once, and generating one group of them.

Generation one sequence at a time is bound by memory bandwidth (every token reads all weights);
N sequences decoded in one batch read the weights once per step. A batch run also scores and
judges each group at once (``runs.batch``: the engine's ``scan_many`` and ``judge_many``). The
engine keeps each sequence in a KV-cache stream of its own and its kernels are batch-invariant, so
a reply, a score or a judgement is the same whatever it shares a batch with: the parallel setting
changes speed only, never stored numbers, and is therefore not part of a run's identity.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence

from ..engine.client import available_memory, estimate_kv_bytes
from ..engine.models import ModelInfo
from ..errors import Cancelled, KiigError
from ..events import Progress, offset_tokens

MAX_PARALLEL = 16
SETTING_KEY = "batch_parallel"  # the settings key a GUI stores the user's choice under (None: default_parallel)


def default_parallel(model: ModelInfo | None = None, n_ctx: int = 4096) -> int:
    """Items taken at once when the user does not say: 4 per core up to 8, and no more than
    half the free memory holds KV caches of ``n_ctx`` tokens for (batched decode gains little past
    the point where compute, not weight reads, bounds a step)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    n = min(8, 4 * max(1, cores))
    kv = estimate_kv_bytes(model, n_ctx) if model is not None else None
    free = available_memory()
    if kv and free:
        n = min(n, max(1, int(free * 0.5 // kv)))
    return n


def check_parallel(n: int) -> int:
    from ..errors import InputError

    if not 1 <= n <= MAX_PARALLEL:
        raise InputError(f"--parallel must be between 1 and {MAX_PARALLEL}, got {n}")
    return n


def generate_group(client, requests: Sequence[dict], *, max_tokens: int, temperature: float,
                   cancel, progress: Progress) -> Generator[Progress, None, list]:
    """Replies to ``requests`` (``{"messages", "seed"}``) generated at once: per request the engine's
    result or the KiigError it failed with.

    A failure of the whole call (a crashed worker, say) becomes every item's failure, so each is
    handled as it would be one at a time; cancel propagates.
    """
    try:
        return (yield from offset_tokens(
            client.generate_many(list(requests), cancel=cancel, max_tokens=max_tokens, temperature=temperature, top_k=0),
            progress, progress.tokens))
    except Cancelled:
        raise
    except KiigError as exc:
        return [exc] * len(requests)
