"""Calibration of a judge's p(yes): Platt scaling on the log-odds, measured out of sample.

``p_cal = sigmoid(a * logit(p) + b)``, fitted by maximum likelihood (Newton's method) on labelled
claims, with Platt's (1999) smoothed targets ``(N+ + 1) / (N+ + 2)`` for supported and
``1 / (N- + 2)`` for unsupported claims, so a judge that separates its claims perfectly still gets
finite ``a`` and ``b``. At the fit the gradient of the log-loss is zero:
``sum(q_i - t_i) = 0`` and ``sum((q_i - t_i) * x_i) = 0`` (``q`` the fitted probabilities, ``t``
the targets, ``x = logit(p)``).

Its quality is measured with k-fold cross-validation: every claim's calibrated probability comes
from a fit on the other folds, and the Brier score (mean squared error of the probability against
the 0/1 label) and log-loss are reported before (raw p) and after (out of sample). The stored fit
is the one on all claims. Pure Python and math only.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

EPS = 1e-6  # p(yes) is clipped to [EPS, 1 - EPS] before its log-odds are taken
DEFAULT_FOLDS = 5
N_BINS = 10
METHOD = "platt-logodds"


def logit(p: float) -> float:
    p = min(1.0 - EPS, max(EPS, float(p)))
    return math.log(p / (1.0 - p))


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def targets(labels: Sequence[bool], smooth: bool = True) -> list[float]:
    """Platt's smoothed targets (or the plain 0/1 labels with ``smooth=False``)."""
    if not smooth:
        return [1.0 if y else 0.0 for y in labels]
    n_pos = sum(1 for y in labels if y)
    n_neg = len(labels) - n_pos
    hi, lo = (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0)
    return [hi if y else lo for y in labels]


def gradient(a: float, b: float, xs: Sequence[float], ts: Sequence[float]) -> tuple[float, float]:
    """Gradient of the summed log-loss in ``(a, b)`` (zero at the fit)."""
    ga = gb = 0.0
    for x, t in zip(xs, ts, strict=True):
        r = sigmoid(a * x + b) - t
        ga += r * x
        gb += r
    return ga, gb


def fit_platt(probs: Sequence[float], labels: Sequence[bool], *, smooth: bool = True,
              max_iter: int = 100, tol: float = 1e-12) -> tuple[float, float]:
    """``(a, b)`` minimising the log-loss of ``sigmoid(a * logit(p) + b)`` against the targets."""
    if len(probs) != len(labels) or not probs:
        raise ValueError("need as many labels as probabilities, at least one")
    xs, ts = [logit(p) for p in probs], targets(labels, smooth)
    a, b = 1.0, 0.0
    for _ in range(max_iter):
        ga, gb = gradient(a, b, xs, ts)
        haa = hab = hbb = 0.0
        for x in xs:
            q = sigmoid(a * x + b)
            w = q * (1.0 - q)
            haa += w * x * x
            hab += w * x
            hbb += w
        haa += 1e-12  # a constant p (all x equal) leaves a undetermined; the tiny ridge keeps it at its start
        det = haa * hbb - hab * hab
        if det <= 0:
            break
        da, db = (hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det
        step = 1.0
        loss = _loss(a, b, xs, ts)
        while step > 1e-10 and _loss(a - step * da, b - step * db, xs, ts) > loss + 1e-15:
            step /= 2  # damped Newton: never a step that raises the loss
        a, b = a - step * da, b - step * db
        if abs(step * da) + abs(step * db) < tol:
            break
    return a, b


def _loss(a: float, b: float, xs: Sequence[float], ts: Sequence[float]) -> float:
    total = 0.0
    for x, t in zip(xs, ts, strict=True):
        z = a * x + b
        total += max(z, 0.0) - z * t + math.log1p(math.exp(-abs(z)))  # -t log q - (1-t) log(1-q), stably
    return total


def apply(p: float | None, a: float, b: float) -> float | None:
    """The calibrated probability of one p(yes) (None stays None)."""
    return None if p is None else sigmoid(a * logit(p) + b)


def brier(probs: Sequence[float], labels: Sequence[bool]) -> float:
    return sum((p - (1.0 if y else 0.0)) ** 2 for p, y in zip(probs, labels, strict=True)) / len(labels)


def log_loss(probs: Sequence[float], labels: Sequence[bool]) -> float:
    total = 0.0
    for p, y in zip(probs, labels, strict=True):
        p = min(1.0 - EPS, max(EPS, p))
        total -= math.log(p if y else 1.0 - p)
    return total / len(labels)


def folds_of(labels: Sequence[bool], k: int, seed: int = 0) -> list[int]:
    """A fold number per claim: stratified (each fold gets its share of both labels), shuffled by ``seed``."""
    rng = random.Random(seed)
    fold = [0] * len(labels)
    for value in (True, False):
        idx = [i for i, y in enumerate(labels) if bool(y) == value]
        rng.shuffle(idx)
        for n, i in enumerate(idx):
            fold[i] = n % k
    return fold


def cross_validated(probs: Sequence[float], labels: Sequence[bool], k: int = DEFAULT_FOLDS, seed: int = 0) -> list[float]:
    """Each claim's calibrated probability from a fit on the other folds (out of sample)."""
    fold = folds_of(labels, k, seed)
    out = [0.0] * len(probs)
    for f in range(k):
        train = [i for i in range(len(probs)) if fold[i] != f]
        test = [i for i in range(len(probs)) if fold[i] == f]
        if not test:
            continue
        a, b = fit_platt([probs[i] for i in train], [labels[i] for i in train])
        for i in test:
            out[i] = sigmoid(a * logit(probs[i]) + b)
    return out


def reliability(probs: Sequence[float], labels: Sequence[bool], n_bins: int = N_BINS) -> list[dict]:
    """Reliability-diagram bins of equal width: ``{"lo", "hi", "n", "mean_p", "frac_true"}`` (empty bins left out)."""
    out = []
    for n in range(n_bins):
        lo, hi = n / n_bins, (n + 1) / n_bins
        idx = [i for i, p in enumerate(probs) if lo <= p < hi or (n == n_bins - 1 and p == 1.0)]
        if idx:
            out.append({"lo": lo, "hi": hi, "n": len(idx), "mean_p": sum(probs[i] for i in idx) / len(idx),
                        "frac_true": sum(1 for i in idx if labels[i]) / len(idx)})
    return out


def calibrate(probs: Sequence[float], labels: Sequence[bool], k: int = DEFAULT_FOLDS, seed: int = 0) -> dict:
    """The calibration stored with a judge validation: the fit on all claims and its out-of-sample quality."""
    n_pos = sum(1 for y in labels if y)
    k = max(2, min(k, n_pos, len(labels) - n_pos))
    if n_pos == 0 or n_pos == len(labels) or len(labels) < 4:
        raise ValueError("calibration needs at least 4 claims, with both labels, at least 2 of each")
    a, b = fit_platt(probs, labels)
    held_out = cross_validated(probs, labels, k, seed)
    return {"method": METHOD, "a": a, "b": b, "n": len(labels), "folds": k, "seed": seed,
            "brier_before": brier(probs, labels), "brier_after": brier(held_out, labels),
            "log_loss_before": log_loss(probs, labels), "log_loss_after": log_loss(held_out, labels),
            "reliability_before": reliability(probs, labels), "reliability_after": reliability(held_out, labels)}
