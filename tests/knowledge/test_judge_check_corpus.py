"""Judge-check for the user's domain: labelled claims checked against the user's own corpus in a
session (`kiig judge-check --claims FILE --corpus NAME --db FILE`), kept apart from the demo check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlite_utils

from kiig_desktop.events import run_to_end
from kiig_desktop.knowledge import corpus as corpus_mod
from kiig_desktop.runs import judge_check as jc
from kiig_desktop.store import SessionStore, corpus_schema
from kiig_desktop.store import judge_validation as validation
from tests.support.judge import FakeJudge
from tests.support.paths import ROOT

DOCS = [{"id": "zeta-1", "text": "Zorvaline is cleared by the kidneys and accumulates in renal failure."},
        {"id": "zeta-2", "text": "Quintrexate toxicity is reversed with folinic acid rescue."},
        {"id": "zeta-3", "text": "Brantomycin causes ototoxicity at high trough levels."},
        {"id": "zeta-4", "text": "Pellagrin deficiency presents with dermatitis, diarrhoea and dementia."}]
CLAIMS = [{"id": "s1", "claim": "Zorvaline accumulates in renal failure.", "label": True},
          {"id": "s2", "claim": "Brantomycin causes ototoxicity.", "label": True},
          {"id": "u1", "claim": "Quintrexate toxicity is reversed with vitamin K.", "label": False},
          {"id": "u2", "claim": "Pellagrin deficiency presents with hair loss.", "label": False}]


def _files(tmp_path: Path) -> tuple[Path, Path]:
    docs, claims = tmp_path / "domain.jsonl", tmp_path / "claims.jsonl"
    docs.write_text("".join(json.dumps(d) + "\n" for d in DOCS), encoding="utf-8")
    claims.write_text("".join(json.dumps(c) + "\n" for c in CLAIMS), encoding="utf-8")
    return docs, claims


def test_claims_are_checked_against_the_users_corpus(tmp_path):
    docs, claims_file = _files(tmp_path)
    db = sqlite_utils.Database(tmp_path / "s.db")
    corpus_schema.apply(db)
    corpus_mod.add_documents(db, "mine", [docs])
    claims = jc.load_claims(claims_file)
    sha = jc.claims_fingerprint(claims_file)
    result = run_to_end(jc.iter_judge_check(FakeJudge(), claims, k=1, claims_sha256=sha, db=db, corpus="mine"))
    assert result["auroc"] == 1.0  # the evidence is in the user's corpus, not in the demo one
    assert {r["top_source"] for r in result["claims"]} <= {d["id"] for d in DOCS}
    fingerprint = corpus_mod.corpus_fingerprint(db, "mine")
    assert result["corpus"] == {"name": "mine", "fingerprint": fingerprint, "demo": False}
    assert result["claims_file_sha256"] == sha and result["claims_sha256"] == jc.check_set_id(sha, fingerprint) != sha
    demo = run_to_end(jc.iter_judge_check(FakeJudge(), claims, k=1, claims_sha256=sha))
    assert demo["corpus"]["demo"] and demo["claims_sha256"] == sha and demo["auroc"] < 1.0
    validation.save(result, data_dir=tmp_path)
    validation.save(demo, data_dir=tmp_path)
    assert validation.lookup_for_corpus("f" * 64, 1, fingerprint, data_dir=tmp_path)["auroc"] == 1.0
    assert "against corpus 'mine'" in validation.note(result)
    db.close()


def _kiig(data_dir: Path, *argv) -> subprocess.CompletedProcess:
    env = {**os.environ, "KIIG_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "kiig_desktop", *map(str, argv)], capture_output=True, text=True,
                          env=env, timeout=900, cwd=ROOT)


@pytest.mark.slow
def test_judge_check_on_the_users_corpus_with_the_embedded_model(tmp_path):
    docs, claims = _files(tmp_path)
    db, data = tmp_path / "s.kiig", tmp_path / "data"
    assert _kiig(data, "corpus", "add", "--db", db, "--name", "mine", docs).returncode == 0
    alone = _kiig(data, "judge-check", "--model", "default", "--claims", claims, "--corpus", "mine")
    assert alone.returncode == 2 and "--corpus and --db go together" in alone.stderr
    unknown = _kiig(data, "judge-check", "--model", "default", "--claims", claims, "--corpus", "theirs", "--db", db)
    assert unknown.returncode == 2 and "theirs" in unknown.stderr and "Traceback" not in unknown.stderr
    done = _kiig(data, "judge-check", "--model", "default", "--claims", claims, "--corpus", "mine", "--db", db, "--json", "--k", "1")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    with SessionStore.open(db, create=False, write=False) as store:
        fingerprint = corpus_mod.corpus_fingerprint(store.db, "mine")
    assert result["corpus"] == {"name": "mine", "fingerprint": fingerprint, "demo": False} and result["n"] == 4
    again = _kiig(data, "judge-check", "--model", "default", "--claims", claims, "--corpus", "mine", "--db", db, "--k", "1")
    assert again.returncode == 0 and "against corpus 'mine'" in again.stdout and "(stored result)" in again.stdout
