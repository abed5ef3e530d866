"""Judge validation: the bundled claims, the check with a scripted judge, the stored result, and
``kiig judge-check`` on the embedded model through real llama.cpp."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from kiig_desktop.errors import InputError
from kiig_desktop.events import run_to_end
from kiig_desktop.resources import resource_path
from kiig_desktop.runs import judge_check as jc
from kiig_desktop.store import judge_validation as validation
from tests.support.cli import kiig
from tests.support.judge import FakeJudge
from tests.support.paths import ROOT


def test_bundled_claims_are_balanced_clinical_and_arithmetic_and_cite_the_demo_corpus():
    claims = jc.load_claims()
    assert len(claims) >= 60
    counts = Counter((c["kind"], c["label"]) for c in claims)
    assert counts[("clinical", True)] == counts[("clinical", False)] > 0
    assert counts[("arithmetic", True)] == counts[("arithmetic", False)] > 0
    ids = {json.loads(line)["id"] for line in resource_path("corpus", "clinical_facts.jsonl").read_text().splitlines()}
    raw = [json.loads(line) for line in validation.claims_path().read_text().splitlines()]
    assert all(r["source"] in ids for r in raw if r["label"])  # a supported claim names its passage
    assert len({c["id"] for c in claims}) == len(claims)


def test_malformed_claims_are_input_errors(tmp_path):
    bad = tmp_path / "c.jsonl"
    bad.write_text('{"claim": "x", "label": "yes"}\n')
    with pytest.raises(InputError, match="line 1"):
        jc.load_claims(bad)
    bad.write_text('{"claim": "x", "label": true}\n')
    with pytest.raises(InputError, match="both supported"):
        jc.load_claims(bad)


def _oracle(claims: list[dict], flip: bool = False) -> FakeJudge:
    truth = {c["claim"]: c["label"] != flip for c in claims}
    return FakeJudge(rule=lambda claim, _messages: 0.9 if truth[claim] else 0.1)


def test_a_judge_that_knows_the_answers_scores_one_and_a_contrary_one_zero():
    claims = jc.load_claims()[:6] + jc.load_claims()[-6:]
    good = run_to_end(jc.iter_judge_check(_oracle(claims), claims, k=2))
    assert good["auroc"] == 1.0 and good["accuracy"] == 1.0 and good["n"] == 12
    assert good["claims"][0]["top_source"] is not None  # the demo corpus was searched
    bad = run_to_end(jc.iter_judge_check(_oracle(claims, flip=True), claims, k=2))
    assert bad["auroc"] == 0.0 and validation.is_weak(bad)
    assert "Warning" in validation.note(bad) and "0.00 < 0.7" in validation.note(bad)
    assert "AUROC 1.00" in validation.note(good) and not validation.is_weak(good)
    assert "not validated" in validation.note(None, "default") and "kiig judge-check --model default" in validation.note(None, "default")


def test_results_are_stored_per_model_sha_method_and_claims(tmp_path):
    result = {"model": {"path": "/m.gguf", "sha256": "a" * 64}, "method": 1, "claims_sha256": "c" * 64, "auroc": 0.8,
              "auroc_ci": [0.7, 0.9], "accuracy": 0.75, "accuracy_ci": [0.6, 0.85], "n": 64}
    validation.save(result, data_dir=tmp_path)
    assert validation.lookup("a" * 64, 1, claims_sha256="c" * 64, data_dir=tmp_path) == result
    assert validation.lookup("a" * 64, 2, claims_sha256="c" * 64, data_dir=tmp_path) is None  # a new judge prompt
    assert validation.lookup("b" * 64, 1, claims_sha256="c" * 64, data_dir=tmp_path) is None
    assert validation.lookup(None) is None


def _kiig(data_dir: Path, *argv: str) -> subprocess.CompletedProcess:
    return kiig(*argv, env={**os.environ, "KIIG_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}, timeout=900)


@pytest.mark.slow
def test_judge_check_on_the_embedded_model(tmp_path):
    claims = jc.load_claims()
    subset = tmp_path / "claims.jsonl"  # 3 + 3 claims keep the test short on 2 cores; the command is the same
    picked = [c for c in claims if c["label"]][:3] + [c for c in claims if not c["label"]][:3]
    subset.write_text("".join(json.dumps(c) + "\n" for c in picked), encoding="utf-8")
    first = _kiig(tmp_path / "data", "judge-check", "--model", "default", "--json", "--claims", str(subset), "--k", "1")
    assert first.returncode == 0, first.stderr
    r = json.loads(first.stdout)
    assert r["cached"] is False and r["n"] == 6 and r["n_supported"] == 3
    for name in ("auroc", "accuracy"):
        lo, hi = r[f"{name}_ci"]
        assert 0.0 <= lo <= r[name] <= hi <= 1.0
    assert len(r["model"]["sha256"]) == 64
    assert (tmp_path / "data" / validation.FILE_NAME).is_file()
    second = _kiig(tmp_path / "data", "judge-check", "--model", "default", "--json", "--claims", str(subset), "--k", "1")
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["cached"] is True
    assert {k: again[k] for k in ("auroc", "auroc_ci", "accuracy", "accuracy_ci")} == {
        k: r[k] for k in ("auroc", "auroc_ci", "accuracy", "accuracy_ci")}
    text = _kiig(tmp_path / "data", "judge-check", "--model", "default", "--claims", str(subset), "--k", "1")
    assert text.returncode == 0 and "AUROC" in text.stdout and "(stored result)" in text.stdout
