"""Independent checks without a model: InfoGain's chain numbers on hand-computed values, and the
engine's logits reduction against a plain numpy softmax."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kiig_desktop.engine.logits import BLOCK_ROWS, reduce_rows, row_stats
from kiig_desktop.metrics.infogain import ChainPlan, chain_record, paper_aggregates

LN = math.log


def test_paper_aggregates_by_hand():
    # n = 3 steps: InfoGain = ((10-8) + (8-6) + (6-5)) / 4, mean = (8 + 6 + 5) / 4 (the baseline only in the denominator)
    assert paper_aggregates([10, 8, 6, 5]) == {"paper_info_gain": 1.25, "paper_mean": 4.75}
    short = paper_aggregates([10, 8, 6])
    assert short["paper_info_gain"] is None and short["paper_mean"] is None
    assert short["paper_excluded"].startswith("2 steps: ")


def test_chain_record_by_hand():
    """Answer perplexities 8, 4, 2, 1 and sequence perplexities 10, 8, 6, 5 over a baseline and three steps."""
    answer_ppl, seq_ppl = [8.0, 4.0, 2.0, 1.0], [10.0, 8.0, 6.0, 5.0]
    plan = ChainPlan(prefixes=[{"context": [1] * (5 + k), "answer": [7, 7]} for k in range(3)] + [{"context": [1] * 20, "answer": [7, 7]}],
                     letters=["A", "B"], correct_letter="B")
    scan = {"checkpoints": [{"answer_logprob": [-LN(a) + 0.5, -LN(a) - 0.5],  # mean -ln(a): NLL ln(a)
                             "seq_nll": LN(s), "candidates": [LN(1.0), LN(3.0)]}  # unnormalised: p = 1/4, 3/4
                            for a, s in zip(answer_ppl, seq_ppl, strict=True)]}
    r = chain_record(plan, scan, ["one", "two", "three"])
    assert r["n_tokens"] == 22
    assert r["baseline"]["answer_ppl"] == pytest.approx(8.0) and r["baseline"]["seq_ppl"] == pytest.approx(10.0)
    assert [s["text"] for s in r["steps"]] == ["one", "two", "three"] and [s["index"] for s in r["steps"]] == [0, 1, 2]
    assert [s["info_gain"] for s in r["steps"]] == pytest.approx([4.0, 2.0, 1.0])  # ppl before - ppl after
    assert [s["delta_nll"] for s in r["steps"]] == pytest.approx([LN(2)] * 3)  # ln 8 - ln 4, ...
    assert [s["answer_nll"] for s in r["steps"]] == pytest.approx([LN(4), LN(2), 0.0], abs=1e-12)
    assert r["info_gain_mean"] == pytest.approx(7 / 3) and r["delta_nll_mean"] == pytest.approx(LN(2))
    assert r["paper_info_gain"] == pytest.approx(1.25) and r["paper_mean"] == pytest.approx(4.75)
    for entry in [r["baseline"], *r["steps"]]:
        assert entry["option_probs"] == pytest.approx({"A": 0.25, "B": 0.75})
        assert entry["p_correct"] == pytest.approx(0.75)
        assert entry["entropy_bits"] == pytest.approx(-(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75)))  # 0.8113


def _softmax_reference(row: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Textbook softmax in float64 (no max subtraction: the test logits are small)."""
    e = np.exp(row.astype(np.float64))
    p = e / e.sum()
    return float(np.log(e.sum())), float(-(p * np.log(p)).sum()), np.log(p)


def test_logits_rows_on_hand_values():
    lse, ent, lp = reduce_rows(np.zeros((1, 4), dtype=np.float32), np.array([2]))
    assert lse[0] == pytest.approx(LN(4)) and ent[0] == pytest.approx(LN(4)) and lp[0] == pytest.approx(-LN(4))
    lse, ent, top = row_stats(np.array([0.0, LN(3)], dtype=np.float32), top_k=2)
    assert lse == pytest.approx(LN(4), rel=1e-6)
    assert ent == pytest.approx(-(0.25 * LN(0.25) + 0.75 * LN(0.75)), rel=1e-6)
    assert [t for t, _ in top] == [1, 0] and [v for _, v in top] == pytest.approx([LN(0.75), LN(0.25)], rel=1e-6)


def test_reduce_rows_and_row_stats_equal_a_plain_softmax():
    rng = np.random.default_rng(5)
    n_rows, vocab = 2 * BLOCK_ROWS + 7, 301  # several blocks and a partial one
    logits = (rng.standard_normal((n_rows, vocab)) * 3).astype(np.float32)
    targets = rng.integers(0, vocab, n_rows)
    targets[[0, BLOCK_ROWS, n_rows - 1]] = -1  # no target: NaN
    lse, ent, tlp = reduce_rows(logits, targets)
    for i in range(n_rows):
        ref_lse, ref_ent, ref_lp = _softmax_reference(logits[i])
        assert lse[i] == pytest.approx(ref_lse, abs=1e-9) and ent[i] == pytest.approx(ref_ent, abs=1e-9)
        if targets[i] < 0:
            assert math.isnan(tlp[i])
        else:
            assert tlp[i] == pytest.approx(ref_lp[targets[i]], abs=1e-9)
        s_lse, s_ent, top = row_stats(logits[i], top_k=5)
        assert (s_lse, s_ent) == pytest.approx((ref_lse, ref_ent), abs=1e-9)
        best = np.argsort(-ref_lp, kind="stable")[:5]
        assert [t for t, _ in top] == best.tolist()
        assert [v for _, v in top] == pytest.approx(ref_lp[best].tolist(), abs=1e-9)


def test_large_logits_do_not_overflow():
    """Shifting every logit by 1000 shifts the log-normaliser by 1000 and changes nothing else."""
    row = np.array([[0.0, 1.0, 2.0, 3.0]])
    base = reduce_rows(row, np.array([3]))
    shifted = reduce_rows(row + 1000.0, np.array([3]))
    assert shifted[0][0] == pytest.approx(base[0][0] + 1000.0)
    assert shifted[1][0] == pytest.approx(base[1][0]) and shifted[2][0] == pytest.approx(base[2][0])
    assert all(np.isfinite(x).all() for x in shifted)
