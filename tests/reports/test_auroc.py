"""AUROC and its stratified bootstrap interval (stats module), on inputs with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kiig_desktop.reports.stats import auroc, bootstrap_auroc_ci


def _direct_auroc(pos: list[float], neg: list[float]) -> float:
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_auroc_known_values():
    assert auroc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], [False, False, True, True]) == 0.0
    assert auroc([0.5, 0.5, 0.5, 0.5], [True, False, True, False]) == 0.5  # ties count half
    assert auroc([0.9, 0.5, 0.4, 0.1], [True, False, True, False]) == 0.75  # 3 of 4 pairs ordered
    assert math.isnan(auroc([0.3, 0.4], [True, True]))  # one class only
    assert auroc([0.9, float("nan"), 0.1], [True, True, False]) == 1.0  # a NaN score is dropped


def test_auroc_matches_pairwise_counting_on_random_scores():
    rng = np.random.default_rng(3)
    scores = np.round(rng.random(41), 2)  # rounding makes ties
    labels = rng.random(41) < 0.5
    pos = [float(s) for s, y in zip(scores, labels, strict=True) if y]
    neg = [float(s) for s, y in zip(scores, labels, strict=True) if not y]
    assert auroc(scores, labels) == pytest.approx(_direct_auroc(pos, neg), abs=1e-12)


def test_bootstrap_interval_contains_the_estimate_and_follows_the_documented_draws():
    rng = np.random.default_rng(5)
    labels = np.array([True] * 12 + [False] * 10)
    scores = np.where(labels, rng.normal(0.65, 0.2, 22), rng.normal(0.4, 0.2, 22))
    est, lo, hi = bootstrap_auroc_ci(scores, labels, n_boot=300, seed=7)
    assert est == auroc(scores, labels)
    assert 0.0 <= lo <= est <= hi <= 1.0
    assert bootstrap_auroc_ci(scores, labels, n_boot=300, seed=7) == (est, lo, hi)  # reproducible
    # the documented procedure written out: per resample, positives then negatives, from one PCG64 stream
    gen = np.random.Generator(np.random.PCG64(7))
    pos, neg = list(scores[labels]), list(scores[~labels])
    boot = []
    for _ in range(300):
        draw = gen.integers(0, [12] * 12 + [10] * 10)
        boot.append(_direct_auroc([pos[i] for i in draw[:12]], [neg[i] for i in draw[12:]]))
    want = np.percentile(boot, [2.5, 97.5])
    assert (lo, hi) == pytest.approx(tuple(want), abs=1e-12)


def test_bootstrap_edge_cases():
    assert all(math.isnan(v) for v in bootstrap_auroc_ci([0.1, 0.2], [False, False]))
    assert bootstrap_auroc_ci([0.9, 0.1], [True, False]) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        bootstrap_auroc_ci([0.1], [True, False])
