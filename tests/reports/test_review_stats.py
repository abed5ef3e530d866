"""Cohen's kappa and the review-vs-metric AUROCs against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest

from kiig_desktop.reports import review_stats
from kiig_desktop.reports.stats import bootstrap_kappa_ci, cohen_kappa
from kiig_desktop.store import SessionStore, reviews
from tests.support.store_support import SHA_J, model_info

# Two reviewers' knowledge verdicts on 8 steps (c = correct, i = incorrect, t = cannot tell).
A = ["c", "c", "c", "i", "i", "t", "c", "i"]
B = ["c", "c", "i", "i", "i", "t", "t", "i"]
# p_o = 6/8 = 0.75 (they differ on steps 2 and 6)
# A's shares: c 4/8, i 3/8, t 1/8; B's: c 2/8, i 4/8, t 2/8
# p_e = 0.5*0.25 + 0.375*0.5 + 0.125*0.25 = 0.125 + 0.1875 + 0.03125 = 0.34375
# kappa = (0.75 - 0.34375) / (1 - 0.34375) = 0.40625 / 0.65625 = 13/21
KAPPA_AB = 13 / 21


def test_cohen_kappa_by_hand():
    assert cohen_kappa(A, B) == pytest.approx(KAPPA_AB, abs=1e-12)
    assert cohen_kappa(["x", "y", "x"], ["x", "y", "x"]) == 1.0
    # p_o = 0, p_e = 0.5*0.5 + 0.5*0.5 = 0.5: kappa = (0 - 0.5) / 0.5 = -1
    assert cohen_kappa(["x", "y"], ["y", "x"]) == -1.0
    # one label used by both throughout: p_e = 1, undefined
    assert math.isnan(cohen_kappa(["x", "x"], ["x", "x"]))
    assert math.isnan(cohen_kappa([], []))


def test_kappa_interval_is_reproducible_and_brackets_the_estimate():
    est, lo, hi = bootstrap_kappa_ci(A, B, n_boot=500, seed=3)
    assert est == pytest.approx(KAPPA_AB) and lo <= est <= hi and -1.0 <= lo < hi <= 1.0
    assert bootstrap_kappa_ci(A, B, n_boot=500, seed=3) == (est, lo, hi)
    with pytest.raises(ValueError, match="equal numbers"):
        bootstrap_kappa_ci(A, B[:-1])


def test_metric_agreement_by_hand():
    steps = [  # KI vs knowledge; "cannot tell" (ki 0.1) is left out
        {"ki": 0.9, "knowledge": "correct"}, {"ki": 0.8, "knowledge": "correct"}, {"ki": 0.6, "knowledge": "correct"},
        {"ki": 0.3, "knowledge": "incorrect"}, {"ki": 0.85, "knowledge": "incorrect"}, {"ki": 0.1, "knowledge": "cannot_tell"},
        # InfoGain vs role; "irrelevant" is left out
        {"info_gain": 0.5, "role": "helps"}, {"info_gain": 0.0, "role": "helps"}, {"info_gain": -0.2, "role": "misleading"},
        {"info_gain": 0.0, "role": "misleading"}, {"info_gain": 9.0, "role": "irrelevant"},
    ]
    out = review_stats.metric_agreement(steps, n_boot=200)
    # positives 0.9, 0.8, 0.6 vs negatives 0.3, 0.85: 0.9 beats both, 0.8 and 0.6 beat only 0.3 -> 4/6
    assert out["ki_auroc"]["value"] == pytest.approx(4 / 6)
    assert (out["ki_auroc"]["n"], out["ki_auroc"]["n_correct"], out["ki_auroc"]["n_incorrect"]) == (5, 3, 2)
    # at 0.5: 0.9, 0.8, 0.6 called correct (right), 0.3 incorrect (right), 0.85 correct (wrong) -> 4/5
    assert out["judge_accuracy"]["value"] == pytest.approx(0.8) and out["judge_accuracy"]["n"] == 5
    # helps 0.5, 0.0 vs misleading -0.2, 0.0: 0.5 wins twice, 0.0 wins once and ties once -> 3.5/4
    assert out["infogain_auroc"]["value"] == pytest.approx(0.875) and out["infogain_auroc"]["n"] == 4
    assert out["ki_auroc"]["small"] and out["ki_auroc"]["ci"][0] <= 4 / 6 <= out["ki_auroc"]["ci"][1]


def _record(key: str, ki: list, info_gain: list) -> dict:
    steps = [{"index": i, "text": f"{key} step {i}", "info_gain": g, **({"ki": k} if k is not None else {})}
             for i, (k, g) in enumerate(zip(ki, info_gain, strict=True))]
    return {"id": key, "mode": "answer", "steps": steps, "info_gain_mean": sum(info_gain) / len(info_gain)}


def test_run_review_stats_on_a_session_by_hand(tmp_path):
    with SessionStore.open(tmp_path / "s.kiig") as s:
        scorer = s.ensure_model(model_info())
        judge = s.ensure_model(model_info(SHA_J, "/models/judge.gguf"))
        run, _ = s.find_or_create_run("score", {"mode": "answer"}, {"scorer": scorer}, {"kiig": "test"}, seed=0)
        ki = [0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.85, 0.4]
        ig = [0.5, -0.2, 0.1, 0.0, 0.0, 0.3, -0.1, 0.2]
        s.save_chain(run, "q0", _record("q0", ki[:4], ig[:4]))
        # q1's KI comes from a stored KI evaluation, not from its record
        q1 = s.save_chain(run, "q1", _record("q1", [None] * 4, ig[4:]))
        s.save_ki(q1, judge, "demo", [{"index": i, "applicable": True, "ki": v} for i, v in enumerate(ki[4:])], 0.4)
        s.save_chain(run, "q2", _record("q2", [0.99], [5.0]))
        words = {"c": "correct", "i": "incorrect", "t": "cannot_tell"}
        roles = ["helps", "misleading", "irrelevant", "helps", "misleading", "helps", "helps", "misleading"]
        for n in range(8):
            key, pos = f"q{n // 4}", n % 4
            reviews.review_step(s, run, key, pos, "Dr A", knowledge=words[A[n]], role=roles[n])
            reviews.review_step(s, run, key, pos, "Dr B", knowledge=words[B[n]])
        reviews.review_step(s, run, "q2", 0, "Dr A", knowledge="incorrect", role="misleading")
        s.save_chain(run, "q2", _record("q2", [0.98], [5.0]))  # re-scored: that review is now stale, left out
        out = review_stats.run_review_stats(s, run, n_boot=300)
    assert out["reviewers"] == ["Dr A", "Dr B"] and out["n_stale"] == 1 and out["n_step_reviews"] == 16
    assert out["progress"] == {"reviewed": 2, "total": 3}
    assert out["kappa"]["reviewers"] == ["Dr A", "Dr B"]
    assert out["kappa"]["knowledge"]["value"] == pytest.approx(KAPPA_AB) and out["kappa"]["knowledge"]["n"] == 8
    assert out["kappa"]["n_disagreements"] == 2 and out["kappa"]["role"]["n"] == 0
    # KI, both reviewers pooled ("cannot tell" left out):
    #   correct   : A 0.9 0.8 0.3 0.85, B 0.9 0.8             (6)
    #   incorrect : A 0.6 0.2 0.4, B 0.3 0.6 0.2 0.4          (7)
    #   wins: each of 0.9, 0.8, 0.85, 0.9, 0.8 beats all 7; 0.3 beats 0.2 twice and ties 0.3 -> 2.5
    #   AUROC = (5*7 + 2.5) / 42 = 37.5/42 = 25/28
    assert out["ki_auroc"]["value"] == pytest.approx(25 / 28) and out["ki_auroc"]["n"] == 13
    # accuracy at 0.5: correct ones >= 0.5: 5 of 6; incorrect ones < 0.5: 5 of 7 -> 10/13
    assert out["judge_accuracy"]["value"] == pytest.approx(10 / 13)
    # InfoGain (A only): helps 0.5, 0.0, 0.3, -0.1 vs misleading -0.2, 0.0, 0.2
    #   0.5: 3; 0.0: 1 + tie 0.5; 0.3: 3; -0.1: 1 -> 8.5/12 = 17/24
    assert out["infogain_auroc"]["value"] == pytest.approx(17 / 24) and out["infogain_auroc"]["n"] == 7
    assert not out["ki_auroc"]["small"] and out["infogain_auroc"]["small"]


def test_review_queue_filters(tmp_path):
    with SessionStore.open(tmp_path / "q.kiig") as s:
        scorer = s.ensure_model(model_info())
        run, _ = s.find_or_create_run("score", {"mode": "answer"}, {"scorer": scorer}, {"kiig": "test"}, seed=0)
        #        key   KI per step  InfoGain per step  graded
        for key, ki, ig, correct in (("a", [0.9, 0.8], [0.5, 0.1], True), ("b", [0.2, 0.1], [-0.4, 0.0], False),
                                     ("c", [0.6, 0.4], [0.2, -0.1], False), ("d", [0.3, 0.35], [0.05, 0.05], True)):
            rec = _record(key, ki, ig)
            rec.update(correct=correct, ki_mean=sum(ki) / 2)
            s.save_chain(run, key, rec)
        s.save_chain(run, "err", {"id": "err", "error": "too long"})

        def keys(mode: str, who: str | None = "Dr A") -> list[str]:
            return [c["key"] for c in review_stats.review_queue(s, run, who, mode)]

        assert keys("unreviewed") == ["a", "b", "c", "d"]  # the failed chain has nothing to review
        assert keys("wrong") == ["b", "c"]
        # info_gain_mean: a 0.3, b -0.2, c 0.05, d 0.05 (ties keep save order)
        assert keys("lowest_infogain") == ["b", "c", "d", "a"]
        # ki_mean: a 0.85, b 0.15, c 0.5, d 0.325
        assert keys("lowest_ki") == ["b", "d", "c", "a"]
        for pos in (0, 1):
            reviews.review_step(s, run, "b", pos, "Dr A", knowledge="incorrect", role="misleading")
        reviews.review_step(s, run, "a", 1, "Dr A", knowledge="incorrect")  # KI 0.8 but the reviewer says incorrect
        reviews.review_step(s, run, "d", 0, "Dr A", knowledge="incorrect")  # KI 0.3 agrees
        reviews.review_step(s, run, "c", 1, "Dr B", knowledge="correct")  # KI 0.4 disagrees, but another reviewer
        assert keys("unreviewed") == ["a", "c", "d"] and keys("wrong") == ["c"]
        assert keys("disagree") == ["a"] and keys("disagree", None) == ["a", "c"]
        with pytest.raises(ValueError, match="unknown review queue"):
            review_stats.review_queue(s, run, "Dr A", "random")
