"""Bootstrap intervals: exact agreement with a direct computation, coverage sanity, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kiig_desktop.reports.stats import bootstrap_mean_ci, paired_diff_ci


def _direct_ci(values: list[float], n_boot: int, level: float, seed: int) -> tuple[float, float, float]:
    """The documented procedure, written out plainly: one resample at a time, hand-made percentiles."""
    rng = np.random.Generator(np.random.PCG64(seed))
    n = len(values)
    means = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        means.append(sum(values[int(i)] for i in idx) / n)
    means.sort()

    def percentile(q: float) -> float:  # numpy's default "linear" rule
        pos = (len(means) - 1) * q / 100.0
        lo = math.floor(pos)
        hi = min(lo + 1, len(means) - 1)
        return means[lo] + (means[hi] - means[lo]) * (pos - lo)

    alpha = (1.0 - level) / 2.0
    return sum(values) / n, percentile(100 * alpha), percentile(100 * (1 - alpha))


@pytest.mark.parametrize(("n", "n_boot", "level", "seed"), [(7, 500, 0.95, 0), (30, 2000, 0.9, 3), (2, 101, 0.5, 11)])
def test_mean_ci_matches_direct_computation(n: int, n_boot: int, level: float, seed: int) -> None:
    values = [float(v) for v in np.random.default_rng(100 + n).normal(5.0, 2.0, size=n)]
    got = bootstrap_mean_ci(values, n_boot=n_boot, level=level, seed=seed)
    want = _direct_ci(values, n_boot, level, seed)
    assert got == pytest.approx(want, rel=1e-12, abs=1e-12)
    assert got[1] <= got[0] <= got[2] or n == 2


def test_large_sample_uses_blocks_but_same_stream() -> None:
    # 1,500 values x 800 resamples spans several internal blocks; the result must not depend on them.
    values = [float(v) for v in np.random.default_rng(5).exponential(1.0, size=1500)]
    got = bootstrap_mean_ci(values, n_boot=800, seed=9)
    assert got == pytest.approx(_direct_ci(values, 800, 0.95, 9), rel=1e-12)


def test_seed_reproducible_and_different_seeds_differ() -> None:
    values = np.arange(20, dtype=float) ** 1.5
    assert bootstrap_mean_ci(values, seed=1) == bootstrap_mean_ci(values, seed=1)
    assert bootstrap_mean_ci(values, seed=1)[1:] != bootstrap_mean_ci(values, seed=2)[1:]


def test_paired_diff_matches_direct_computation_of_differences() -> None:
    rng = np.random.default_rng(7)
    a = rng.normal(0.6, 0.2, size=25)
    b = a - 0.1 + rng.normal(0.0, 0.05, size=25)
    a[3] = np.nan
    b[10] = np.nan
    mean, lo, hi, n = paired_diff_ci(a, b, n_boot=700, seed=4)
    keep = [i for i in range(25) if i not in (3, 10)]
    diffs = [float(a[i] - b[i]) for i in keep]
    assert n == 23
    assert (mean, lo, hi) == pytest.approx(_direct_ci(diffs, 700, 0.95, 4), rel=1e-12)
    assert lo < 0.1 < hi  # the true shift lies inside
    assert lo > 0.0  # and the paired design detects it


def test_paired_differs_from_unpaired_when_items_vary() -> None:
    # Item difficulty dominates the spread; pairing removes it, so the paired interval is far narrower.
    rng = np.random.default_rng(0)
    difficulty = rng.normal(0.0, 1.0, size=40)
    a, b = difficulty + 0.2, difficulty + rng.normal(0.0, 0.05, size=40)
    _, plo, phi, _ = paired_diff_ci(a, b)
    _, alo, ahi = bootstrap_mean_ci(a)
    assert (phi - plo) < 0.25 * (ahi - alo)


def test_coverage_on_known_distribution() -> None:
    rng = np.random.default_rng(2024)
    true_mean, trials = 1.0, 300
    hits = 0
    for t in range(trials):
        sample = rng.normal(true_mean, 2.0, size=40)
        _, lo, hi = bootstrap_mean_ci(sample, n_boot=400, seed=t)
        hits += lo <= true_mean <= hi
    coverage = hits / trials
    assert 0.88 <= coverage <= 0.99, coverage


def test_level_controls_width() -> None:
    values = np.random.default_rng(1).normal(size=50)
    _, lo80, hi80 = bootstrap_mean_ci(values, level=0.8)
    _, lo99, hi99 = bootstrap_mean_ci(values, level=0.99)
    assert lo99 < lo80 < hi80 < hi99


def test_empty_and_all_nan_give_nan() -> None:
    for values in ([], [float("nan")] * 3, np.array([np.nan])):
        result = bootstrap_mean_ci(values)
        assert len(result) == 3 and all(math.isnan(x) for x in result)
    mean, lo, hi, n = paired_diff_ci([1.0, np.nan], [np.nan, 2.0])
    assert n == 0 and all(math.isnan(x) for x in (mean, lo, hi))
    mean, lo, hi, n = paired_diff_ci([], [])
    assert n == 0 and math.isnan(mean)


def test_single_value_is_degenerate() -> None:
    assert bootstrap_mean_ci([3.25]) == (3.25, 3.25, 3.25)
    assert bootstrap_mean_ci([np.nan, 3.25, np.nan]) == (3.25, 3.25, 3.25)
    assert paired_diff_ci([5.0, np.nan], [2.0, 1.0]) == (3.0, 3.0, 3.0, 1)


def test_constant_values_give_zero_width() -> None:
    assert bootstrap_mean_ci([2.0] * 10) == (2.0, 2.0, 2.0)


def test_booleans_and_none_are_accepted() -> None:
    mean, lo, hi = bootstrap_mean_ci([True, False, True, True])
    assert mean == 0.75 and 0.0 <= lo <= mean <= hi <= 1.0
    mean, _, _, n = paired_diff_ci([1.0, None, 3.0], [0.5, 2.0, None])
    assert (mean, n) == (0.5, 1)


def test_nan_dropping_equals_explicit_removal() -> None:
    values = [1.0, np.nan, 4.0, 2.0, np.nan, 8.0]
    assert bootstrap_mean_ci(values, seed=3) == bootstrap_mean_ci([1.0, 4.0, 2.0, 8.0], seed=3)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        paired_diff_ci([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="level"):
        bootstrap_mean_ci([1.0, 2.0], level=1.0)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_mean_ci([1.0, 2.0], n_boot=0)
    with pytest.raises(ValueError, match="one-dimensional"):
        bootstrap_mean_ci([[1.0, 2.0]])
