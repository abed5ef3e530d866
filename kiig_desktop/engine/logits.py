"""Reduce rows of logits to a few floats each, in bounded memory.

A row of logits (one per output position, ``n_vocab`` floats) is reduced to its log-normaliser,
the entropy of its softmax and the log-probability of a target token. Rows are processed in small
blocks in float64, so the scratch space stays a few tens of MB even for 150k-token vocabularies.
"""

from __future__ import annotations

import numpy as np

LN2 = float(np.log(2.0))
BLOCK_ROWS = 32


def reduce_rows(logits: np.ndarray, targets: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each row: (log-normaliser, entropy in nats, log-prob of ``targets[i]``).

    ``targets[i] < 0`` (or no targets) gives NaN for that row's log-prob.
    """
    n = logits.shape[0]
    lse = np.empty(n, dtype=np.float64)
    ent = np.empty(n, dtype=np.float64)
    tlp = np.full(n, np.nan, dtype=np.float64)
    for b0 in range(0, n, BLOCK_ROWS):
        block = np.asarray(logits[b0 : b0 + BLOCK_ROWS], dtype=np.float64)
        m = block.max(axis=1, keepdims=True)
        e = np.exp(block - m)
        s = e.sum(axis=1)
        blse = m[:, 0] + np.log(s)
        lse[b0 : b0 + len(block)] = blse
        ent[b0 : b0 + len(block)] = blse - (e * block).sum(axis=1) / s
        if targets is not None:
            t = np.asarray(targets[b0 : b0 + len(block)])
            ok = t >= 0
            if ok.any():
                rows = np.nonzero(ok)[0]
                tlp[b0 + rows] = block[rows, t[ok]] - blse[rows]
    return lse, ent, tlp


def row_stats(row: np.ndarray, top_k: int = 0) -> tuple[float, float, list[tuple[int, float]]]:
    """(log-normaliser, entropy in nats, top-k [(token, logprob)]) of one logits row."""
    r = np.asarray(row, dtype=np.float64)
    m = r.max()
    e = np.exp(r - m)
    s = e.sum()
    lse = float(m + np.log(s))
    entropy = float(lse - (e * r).sum() / s)
    top: list[tuple[int, float]] = []
    if top_k > 0:
        k = min(top_k, r.shape[0])
        idx = np.argpartition(-r, k - 1)[:k]
        idx = idx[np.argsort(-r[idx], kind="stable")]
        top = [(int(i), float(r[i] - lse)) for i in idx]
    return lse, entropy, top
