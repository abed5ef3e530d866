"""`kiig score` on `reasoning` input, split by `--split lines` and `--split sentences`, on the real
embedded model: the steps are the ones the rule says, and their numbers equal those of the same steps
given verbatim as `steps` (the split changes what is scored, never how)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import kiig

REASONING = "Metformin lowers hepatic glucose output. It is weight neutral.\nGuidelines start with it, so the answer is metformin."
LINE = {"id": "r1", "question": "Which drug is first-line for type 2 diabetes?", "answer": "Metformin"}
EXPECTED = {
    "lines": ["Metformin lowers hepatic glucose output. It is weight neutral.", "Guidelines start with it, so the answer is metformin."],
    "sentences": ["Metformin lowers hepatic glucose output.", "It is weight neutral.", "Guidelines start with it, so the answer is metformin."],
}


def _score(tmp_path: Path, name: str, line: dict, *extra: str) -> dict:
    src, out = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.out.jsonl"
    src.write_text(json.dumps(line) + "\n", encoding="utf-8")
    r = kiig("score", "--model", "default", "--input", src, "--output", out, *extra)
    assert r.returncode == 0, r.stderr
    (record,) = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    return record


@pytest.mark.slow
@pytest.mark.parametrize("split", ["lines", "sentences"])
def test_reasoning_split_by_rule_scores_like_the_same_steps_given(tmp_path, split):
    got = _score(tmp_path, split, dict(LINE, reasoning=REASONING), "--split", split)
    assert [s["text"] for s in got["steps"]] == EXPECTED[split]
    given = _score(tmp_path, f"{split}-given", dict(LINE, steps=EXPECTED[split]))
    for a, b in zip(got["steps"], given["steps"], strict=True):
        for key in ("answer_nll", "delta_nll", "info_gain", "seq_ppl"):
            assert a[key] == pytest.approx(b[key], abs=1e-4), key
    assert got["baseline"]["answer_nll"] == pytest.approx(given["baseline"]["answer_nll"], abs=1e-4)
    assert got["info_gain_mean"] == pytest.approx(given["info_gain_mean"], abs=1e-4)
