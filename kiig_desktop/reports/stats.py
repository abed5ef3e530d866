"""Percentile-bootstrap confidence intervals for means and paired differences.

The resampling is reproducible: with ``rng = numpy.random.Generator(numpy.random.PCG64(seed))`` the
``b``-th resample is ``values[rng.integers(0, n, size=n)]`` for ``b = 0 .. n_boot-1`` in order (drawn
in blocks, which yields the same stream), its statistic is the mean, and the interval is
``numpy.percentile(boot_means, [100 * (1 - level) / 2, 100 * (1 + level) / 2])`` with linear
interpolation. NaN values are dropped first (pairwise for paired differences). With no values the
result is all NaN; with one value the interval degenerates to that value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_BLOCK_CELLS = 1 << 20  # indices drawn per block, to bound memory for large samples


def _check(n_boot: int, level: float) -> None:
    if not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1 (exclusive), got {level!r}")


def _as_float_array(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def bootstrap_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """The ``n_boot`` bootstrap-resample means of a 1-D array without NaNs (see module docstring)."""
    n = len(values)
    rng = np.random.Generator(np.random.PCG64(seed))
    out = np.empty(n_boot, dtype=float)
    rows = max(1, _BLOCK_CELLS // max(n, 1))
    for start in range(0, n_boot, rows):
        stop = min(start + rows, n_boot)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = values[idx].mean(axis=1)
    return out


def _interval(clean: np.ndarray, n_boot: int, level: float, seed: int) -> tuple[float, float, float]:
    n = len(clean)
    if n == 0:
        return (float("nan"),) * 3
    mean = float(clean.mean())
    if n == 1:
        return mean, mean, mean
    means = bootstrap_means(clean, n_boot, seed)
    lo, hi = np.percentile(means, [100.0 * (1.0 - level) / 2.0, 100.0 * (1.0 + level) / 2.0])
    return mean, float(lo), float(hi)


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: the sample mean and its percentile-bootstrap interval (NaNs dropped).

    Booleans work too (accuracy with an interval). No values -> all NaN; one value -> ``(v, v, v)``.
    """
    _check(n_boot, level)
    arr = _as_float_array(values, "values")
    return _interval(arr[~np.isnan(arr)], n_boot, level, seed)


def paired_diff_ci(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float, int]:
    """``(mean_diff, lo, hi, n)`` for the per-item differences ``a[i] - b[i]``.

    Items are matched by position; a pair where either side is NaN (or None) is dropped and ``n`` is
    the number of pairs kept. The interval resamples whole pairs, so per-item difficulty cancels.
    """
    _check(n_boot, level)
    x, y = _as_float_array(a, "a"), _as_float_array(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"paired samples need equal lengths, got {len(x)} and {len(y)}")
    keep = ~(np.isnan(x) | np.isnan(y))
    diff = x[keep] - y[keep]
    mean, lo, hi = _interval(diff, n_boot, level, seed)
    return mean, lo, hi, int(keep.sum())


def _pair_matrix(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> np.ndarray:
    """``M[i, j]`` = 1 when positive i outscores negative j, 0.5 on a tie, else 0 (NaN scores dropped)."""
    s = _as_float_array(scores, "scores")
    y = np.asarray(labels, dtype=bool)
    if y.shape != s.shape:
        raise ValueError(f"scores and labels need equal lengths, got {len(s)} and {len(y)}")
    keep = ~np.isnan(s)
    pos, neg = s[keep & y], s[keep & ~y]
    return (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])


def auroc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random positive outscores a random negative (ties 1/2).

    NaN when either class is empty.
    """
    m = _pair_matrix(scores, labels)
    return float(m.mean()) if m.size else float("nan")


def bootstrap_auroc_ci(
    scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray, n_boot: int = 2000,
    level: float = 0.95, seed: int = 0,
) -> tuple[float, float, float]:
    """``(auroc, lo, hi)`` with a stratified percentile bootstrap.

    Positives and negatives are resampled separately (each resample keeps both class sizes, so every
    resample has an AUROC), with the module's generator and seed convention: per resample, the
    positive indices are drawn first, then the negative ones.
    """
    _check(n_boot, level)
    m = _pair_matrix(scores, labels)
    if not m.size:
        return (float("nan"),) * 3
    est = float(m.mean())
    n_pos, n_neg = m.shape
    if n_pos * n_neg == 1:
        return est, est, est
    rng = np.random.Generator(np.random.PCG64(seed))
    boot = np.empty(n_boot, dtype=float)
    rows = max(1, _BLOCK_CELLS // (n_pos * n_neg))
    for start in range(0, n_boot, rows):
        stop = min(start + rows, n_boot)
        draws = rng.integers(0, [n_pos] * n_pos + [n_neg] * n_neg, size=(stop - start, n_pos + n_neg))
        ip, ineg = draws[:, :n_pos], draws[:, n_pos:]
        boot[start:stop] = m[ip[:, :, None], ineg[:, None, :]].mean(axis=(1, 2))
    lo, hi = np.percentile(boot, [100.0 * (1.0 - level) / 2.0, 100.0 * (1.0 + level) / 2.0])
    return est, float(lo), float(hi)


def _kappa_rows(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Cohen's kappa of each row pair of two integer-coded label matrices (NaN where chance agreement is 1)."""
    po = (a == b).mean(axis=1)
    pe = sum((a == c).mean(axis=1) * (b == c).mean(axis=1) for c in range(k))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pe < 1.0, (po - pe) / (1.0 - pe), np.nan)


def cohen_kappa(a: Sequence[object], b: Sequence[object]) -> float:
    """Cohen's kappa of two raters' labels of the same items: ``(p_o - p_e) / (1 - p_e)``.

    ``p_o`` is the share of items both gave the same label, ``p_e = sum_k p_a(k) p_b(k)`` the
    agreement expected by chance from each rater's label shares. NaN with no items or when
    ``p_e = 1`` (both raters used one and the same label throughout).
    """
    x, y, k = _coded(a, b)
    return float(_kappa_rows(x[None, :], y[None, :], k)[0]) if len(x) else float("nan")


def _coded(a: Sequence[object], b: Sequence[object]) -> tuple[np.ndarray, np.ndarray, int]:
    if len(a) != len(b):
        raise ValueError(f"two raters need equal numbers of labels, got {len(a)} and {len(b)}")
    codes = {label: i for i, label in enumerate(sorted({*a, *b}, key=str))}
    return np.array([codes[v] for v in a], dtype=int), np.array([codes[v] for v in b], dtype=int), len(codes)


def bootstrap_kappa_ci(a: Sequence[object], b: Sequence[object], n_boot: int = 2000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float, float]:
    """``(kappa, lo, hi)``: Cohen's kappa and its percentile-bootstrap interval over item pairs.

    Resamples whole items with the module's generator and seed convention; a resample whose kappa
    is undefined (``p_e = 1``) is left out of the percentiles (all NaN when every one is).
    """
    _check(n_boot, level)
    x, y, k = _coded(a, b)
    n = len(x)
    est = cohen_kappa(a, b)
    if n <= 1:
        return est, est, est
    rng = np.random.Generator(np.random.PCG64(seed))
    boot = np.empty(n_boot, dtype=float)
    rows = max(1, _BLOCK_CELLS // n)
    for start in range(0, n_boot, rows):
        stop = min(start + rows, n_boot)
        idx = rng.integers(0, n, size=(stop - start, n))
        boot[start:stop] = _kappa_rows(x[idx], y[idx], k)
    boot = boot[~np.isnan(boot)]
    if not len(boot):
        return est, float("nan"), float("nan")
    lo, hi = np.percentile(boot, [100.0 * (1.0 - level) / 2.0, 100.0 * (1.0 + level) / 2.0])
    return est, float(lo), float(hi)
