"""``kiig review export|import|stats`` and ``kiig judge-check --from-reviews`` as real subprocesses
on real session files built with the store API."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kiig_desktop.knowledge.corpus import add_documents
from kiig_desktop.reports.review_stats import run_review_stats
from kiig_desktop.resources import resource_path
from kiig_desktop.runs import judge_check as jc
from kiig_desktop.store import SessionStore, reviews
from kiig_desktop.store import judge_validation as validation
from tests.support.paths import ROOT
from tests.support.store_support import model_info


def _kiig(data_dir: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KIIG_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "kiig_desktop", *argv], capture_output=True, text=True, env=env,
                          timeout=900, cwd=ROOT)


def _claims() -> list[dict]:
    claims = jc.load_claims()
    return [c for c in claims if c["label"]][:2] + [c for c in claims if not c["label"]][:2]


def _record(key: str, infogain: list[float], ki: list[float], knowledge: list[str] | None = None) -> dict:
    steps = [{"index": i, "text": f"{key}: step {i}", "info_gain": g, "ki": k} for i, (g, k) in enumerate(zip(infogain, ki, strict=True))]
    for step, text in zip(steps, knowledge or [], strict=False):
        step["knowledge"] = text
    return {"id": key, "mode": "answer", "steps": steps, "info_gain_mean": sum(infogain) / len(infogain)}


def _session(path: Path) -> int:
    texts = [c["claim"] for c in _claims()]
    with SessionStore.open(path) as s:
        scorer = s.ensure_model(model_info())
        run, _ = s.find_or_create_run("score", {"mode": "answer"}, {"scorer": scorer}, {"kiig": "test"}, seed=0, name="ward")
        s.save_chain(run, "q0", _record("q0", [0.4, -0.1, 0.2, 0.0], [0.9, 0.2, 0.7, 0.4], texts))
        s.save_chain(run, "q1", _record("q1", [0.3, 0.1], [0.8, 0.6]))
        return run


def _review_a(path: Path, run: int) -> None:
    with SessionStore.open(path) as s:
        for pos, (k, r) in enumerate([("correct", "helps"), ("correct", "misleading"), ("incorrect", "helps"), ("incorrect", "misleading")]):
            reviews.review_step(s, run, "q0", pos, "Dr A", knowledge=k, role=r)
        reviews.review_step(s, run, "q1", 0, "Dr A", knowledge="correct", role="helps", note="=HYPERLINK(\"x\")")
        reviews.review_step(s, run, "q1", 1, "Dr A", knowledge="cannot_tell", role="irrelevant")
        reviews.review_chain(s, run, "q0", "Dr A", verdict="flawed", note="step 2 is wrong")


@pytest.mark.slow
def test_a_second_reviewer_is_imported_matched_by_record_hash_and_stale_ones_are_reported(tmp_path):
    mine, theirs = tmp_path / "mine.kiig", tmp_path / "theirs.kiig"
    run = _session(mine)
    shutil.copyfile(mine, theirs)  # the second reviewer works on a copy of the same session
    _review_a(mine, run)
    with SessionStore.open(theirs) as s:
        for pos, k in enumerate(["correct", "incorrect", "incorrect", "incorrect"]):
            reviews.review_step(s, run, "q0", pos, "Dr B", knowledge=k, role="helps")
        reviews.review_step(s, run, "q1", 0, "Dr B", knowledge="correct")
    with SessionStore.open(mine) as s:  # q1 is re-scored here after Dr B reviewed it
        s.save_chain(run, "q1", _record("q1", [0.35, 0.1], [0.8, 0.6]))

    out = _kiig(tmp_path / "data", "review", "import", "--db", str(mine), str(theirs))
    assert out.returncode == 0, out.stderr
    assert "imported 5 reviews" in out.stdout
    assert "1 of them were made on an earlier version of their chain" in out.stdout
    assert f"run {run} q1 step 0 by Dr B" in out.stdout
    again = _kiig(tmp_path / "data", "review", "import", "--db", str(mine), str(theirs), "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["added"] == 0 and json.loads(again.stdout)["already"] == 5

    with SessionStore.open(mine, write=False) as s:
        b = {(r["chain_key"], r["step_index"]): r for r in reviews.step_reviews(s, run, reviewer="Dr B")}
        assert b[("q1", 0)]["stale"] and not b[("q0", 1)]["stale"] and b[("q0", 1)]["origin"] == "theirs.kiig"
        # Dr A's q1 reviews were made before the re-score too
        expected = run_review_stats(s, run)

    stats = _kiig(tmp_path / "data", "review", "stats", "--db", str(mine), "--json")
    assert stats.returncode == 0, stats.stderr
    [got] = json.loads(stats.stdout)["runs"]
    assert got["kappa"]["knowledge"]["value"] == expected["kappa"]["knowledge"]["value"]
    # q0 only (q1's reviews are stale): A c c i i vs B c i i i -> p_o 3/4, p_e 0.5*0.25 + 0.5*0.75 = 0.5, kappa 0.5
    assert got["kappa"]["knowledge"]["value"] == 0.5 and got["kappa"]["knowledge"]["n"] == 4
    assert got["progress"] == {"reviewed": 1, "total": 2}
    text = _kiig(tmp_path / "data", "review", "stats", "--db", str(mine))
    assert text.returncode == 0, text.stderr
    assert "1 of 2 chains reviewed" in text.stdout and "Cohen's kappa Dr A vs Dr B: knowledge 0.500" in text.stdout
    assert "KI vs knowledge" in text.stdout and "fewer than 10 steps" in text.stdout


def test_export_jsonl_and_csv_and_import_of_an_export(tmp_path):
    mine, other = tmp_path / "mine.kiig", tmp_path / "other.kiig"
    run = _session(mine)
    shutil.copyfile(mine, other)
    _review_a(mine, run)
    out = _kiig(tmp_path / "data", "review", "export", "--db", str(mine), "--output", str(tmp_path / "a.jsonl"), "--history")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 7 and {r["kind"] for r in rows} == {"step", "chain"}
    assert all(r["reviewer"] == "Dr A" and len(r["record_sha256"]) == 64 for r in rows)
    assert (tmp_path / "a.jsonl").stat().st_mode & 0o777 == 0o600
    csv_out = _kiig(tmp_path / "data", "review", "export", "--db", str(mine), "--output", str(tmp_path / "a.csv"))
    assert csv_out.returncode == 0, csv_out.stderr
    table = list(csv.DictReader((tmp_path / "a.csv").open(encoding="utf-8", newline="")))
    assert len(table) == 7
    assert [r["note"] for r in table if r["note"].startswith("'")] == ["'=HYPERLINK(\"x\")"]  # no formula in a spreadsheet
    imported = _kiig(tmp_path / "data", "review", "import", "--db", str(other), str(tmp_path / "a.jsonl"))
    assert imported.returncode == 0, imported.stderr
    assert "imported 7 reviews" in imported.stdout and "earlier version" not in imported.stdout
    with SessionStore.open(other, write=False) as s:
        assert len(reviews.step_reviews(s, run, history=True)) == 6 and reviews.progress(s, run) == {"reviewed": 2, "total": 2}


def test_a_bad_import_file_lists_every_bad_line_and_stores_nothing(tmp_path):
    mine = tmp_path / "mine.kiig"
    run = _session(mine)
    _review_a(mine, run)
    good = _kiig(tmp_path / "data", "review", "export", "--db", str(mine))
    lines = good.stdout.splitlines()
    bad = [json.loads(line) for line in lines[:3]]
    bad[1]["knowledge"] = "probably"
    bad[2]["chain_key"] = "q9"
    text = "\n".join([lines[0], "{not json", json.dumps(bad[1]), json.dumps(bad[2]), lines[3]]) + "\n"
    (tmp_path / "bad.jsonl").write_text(text, encoding="utf-8")
    with SessionStore.open(mine, write=False) as s:
        before = len(reviews.step_reviews(s, run, history=True))
    out = _kiig(tmp_path / "data", "review", "import", "--db", str(mine), str(tmp_path / "bad.jsonl"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "line 2" in out.stderr and "line 3" in out.stderr and "line 4" in out.stderr and "line 1:" not in out.stderr
    assert "knowledge must be one of correct, incorrect, cannot_tell" in out.stderr and "no chain 'q9'" in out.stderr
    with SessionStore.open(mine, write=False) as s:
        assert len(reviews.step_reviews(s, run, history=True)) == before


@pytest.mark.slow
def test_judge_check_from_reviews_on_the_embedded_model(tmp_path):
    mine = tmp_path / "mine.kiig"
    run = _session(mine)
    _review_a(mine, run)
    with SessionStore.open(mine) as s:  # the session's own reference corpus, as its KI would use
        add_documents(s.db, "clinical", [resource_path("corpus")])
    data = tmp_path / "data"
    missing = _kiig(data, "judge-check", "--model", "default", "--from-reviews", str(mine), "--corpus", "nope")
    assert missing.returncode == 2 and "nope" in missing.stderr and "Traceback" not in missing.stderr
    out = _kiig(data, "judge-check", "--model", "default", "--from-reviews", str(mine), "--corpus", "clinical", "--k", "1", "--json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    # the claims are q0's four reviewed steps (their knowledge text); q1's are "cannot tell" or have no knowledge text
    # and so use the step text: q1 step 0 is labelled correct too
    assert (r["n"], r["n_supported"], r["source"], r["session"]) == (5, 3, "reviews", str(mine))
    assert r["corpus"]["name"] == "clinical" and r["corpus"]["demo"] is False
    lo, hi = r["auroc_ci"]
    assert 0.0 <= lo <= r["auroc"] <= hi <= 1.0
    stored = json.loads((data / validation.FILE_NAME).read_text(encoding="utf-8"))
    assert [v["source"] for v in stored.values()] == ["reviews"]


def test_judge_check_from_reviews_needs_both_labels(tmp_path):
    mine = tmp_path / "mine.kiig"
    run = _session(mine)
    with SessionStore.open(mine) as s:
        reviews.review_step(s, run, "q0", 0, "Dr A", knowledge="correct")
    out = _kiig(tmp_path / "data", "judge-check", "--model", "default", "--from-reviews", str(mine))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "need steps judged correct and steps judged incorrect (found 1 correct, 0 incorrect)" in out.stderr


def test_every_ki_note_shows_the_check_on_reviewed_steps_beside_the_generic_one(tmp_path):
    sha = "a" * 64
    generic = {"model": {"path": "/m.gguf", "sha256": sha}, "method": 1, "claims_sha256": "c" * 64, "auroc": 0.55,
               "auroc_ci": [0.4, 0.7], "accuracy": 0.5, "accuracy_ci": [0.4, 0.6], "n": 64}
    validation.save(generic, data_dir=tmp_path)
    assert validation.lookup_reviews(sha, 1, data_dir=tmp_path) is None
    assert "clinician" not in validation.summary(generic, "m")["note"]
    for checked, auroc in (("2026-01-01T00:00:00", 0.6), ("2026-02-01T00:00:00", 0.81)):
        validation.save({**generic, "claims_sha256": checked[:7].replace("-", "") + "d" * 58, "source": "reviews",
                         "session": "/s.kiig", "auroc": auroc, "auroc_ci": [0.7, 0.9], "accuracy": 0.75, "n": 40,
                         "checked": checked}, data_dir=tmp_path)
    reviewed = validation.lookup_reviews(sha, 1, data_dir=tmp_path)
    assert reviewed["auroc"] == 0.81 and validation.lookup_reviews(sha, 2, data_dir=tmp_path) is None
    out = validation.summary(generic, "m", reviewed)
    assert "AUROC 0.55" in out["note"] and "On 40 clinician-reviewed steps: AUROC 0.81 (95% CI 0.70-0.90), accuracy 75%." in out["note"]
    assert out["reviews"]["n"] == 40 and out["warning"]  # the generic check still warns
