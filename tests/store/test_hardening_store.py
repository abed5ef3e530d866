"""Issue 28 (E, G, H, N), through the real ``kiig`` command on real session files: JSONL is split
only at line feeds, a received session with objects KIIG did not create is refused for writing,
a dataset is not an export, and given steps are scored and stored verbatim."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kiig_desktop.chains.dataset_files import iter_jsonl
from kiig_desktop.errors import StoreError
from kiig_desktop.resources import resource_path
from kiig_desktop.store import SessionStore
from tests.support.store_support import make_item, make_record, model_info

ODD = "\u2028line\u2029para\u0085next\u000bvt\u000cff\u001cfs"  # what str.splitlines splits at, JSON keeps raw


def kiig(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kiig_desktop", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def refused(r: subprocess.CompletedProcess, *words: str) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and len(lines) == 1, r.stderr[-2000:]
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def session_with(path: Path, records: list[dict], items: list[dict | None] | None = None) -> Path:
    with SessionStore.open(path) as store:
        scorer = store.ensure_model(model_info())
        run_id, _ = store.find_or_create_run("score", {"input": path.name}, {"scorer": scorer}, {"kiig": "test"}, seed=0)
        for i, rec in enumerate(records):
            store.save_chain(run_id, str(rec["id"]), rec, item=(items or [None] * len(records))[i])
        store.set_run_status(run_id, "finished")
    return path


def snapshot(path: Path) -> list:
    with SessionStore.open(path, write=False) as store:
        (run,) = store.list_runs()
        return [(store.load_chain(c["id"]), store.load_item(c["id"])) for c in store.chains_for_run(run["id"])]


# ------------------------------------------------------------------------------ E: JSONL lines


def test_an_export_holding_unicode_line_separators_imports_back_identical(tmp_path):
    records, items = [], []
    for i in range(3):
        rec = make_record(i, n_steps=3, n_tokens=60, curve=False)
        rec["steps"][1]["text"] = f"step{ODD} with separators {i}"
        item = make_item(i, question=f"Question{ODD} {i}?")
        item["options"]["A"] = f"Drug{ODD}"
        records.append(rec)
        items.append(item)
    src = session_with(tmp_path / "src.kiig", records, items)
    export = tmp_path / "run.jsonl"
    r = kiig("export", "--db", src, "--format", "jsonl", "--output", export)
    assert r.returncode == 0, r.stderr
    assert "\u2028" in export.read_text(encoding="utf-8")  # written raw: the importer must not split there
    dst = tmp_path / "dst.kiig"
    r = kiig("import", "--db", dst, export)
    assert r.returncode == 0, r.stderr
    assert snapshot(dst) == snapshot(src)


def test_every_jsonl_reader_splits_only_at_line_feeds(tmp_path):
    """Score and run inputs in UTF-16 go through the same line reader as UTF-8 ones."""
    rows = [{"id": f"a{i}", "question": f"Q{ODD}?", "answer": "4", "steps": [f"s{ODD}"]} for i in range(2)]
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    for encoding in ("utf-8", "utf-16"):
        path = tmp_path / f"in.{encoding}.jsonl"
        path.write_text(text, encoding=encoding)
        assert list(iter_jsonl(path, encoding)) == [(1, rows[0]), (2, rows[1])]


# ------------------------------------------------------------------------------ G: foreign objects

FOREIGN = {
    "trigger zz": "CREATE TRIGGER zz AFTER INSERT ON chains BEGIN DELETE FROM steps WHERE chain_id<>NEW.id; END",
    "view vv": "CREATE VIEW vv AS SELECT key FROM chains",
    "table extra": "CREATE TABLE extra (x)",
    "index steps_by_text": "CREATE INDEX steps_by_text ON steps(text)",
    "trigger corpus_chunks_ai": "DROP TRIGGER corpus_chunks_ai; CREATE TRIGGER corpus_chunks_ai AFTER INSERT ON "
                                "corpus_chunks BEGIN DELETE FROM chains; END",  # one of KIIG's names, other code
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FOREIGN))
def test_a_received_session_with_objects_kiig_did_not_create_is_refused_for_writing(tmp_path, name):
    db = session_with(tmp_path / "received.kiig", [make_record(i, n_steps=3, n_tokens=60, curve=False) | {"id": f"q{i}"}
                                                   for i in range(3)])
    con = sqlite3.connect(db)
    con.executescript(FOREIGN[name])
    con.close()
    before = snapshot(db)
    other = session_with(tmp_path / "other.kiig", [make_record(9, n_steps=2, n_tokens=40, curve=False) | {"id": "new"}])
    export = tmp_path / "other.jsonl"
    assert kiig("export", "--db", other, "--format", "jsonl", "--output", export).returncode == 0
    digest = db.read_bytes()

    r = kiig("sessions", "--db", db, "--check")  # reading runs none of them; the check names them
    assert r.returncode == 1 and name in r.stdout and "Traceback" not in r.stderr, r.stdout + r.stderr
    refused(kiig("import", "--db", db, export), str(db), name, "did not create")
    assert db.read_bytes() == digest and snapshot(db) == before
    with pytest.raises(StoreError, match=name):
        SessionStore.open(db)  # the desktop app opens sessions the same way


def test_sessions_kiig_made_pass_the_check_with_corpora_and_after_writes(tmp_path):
    db = tmp_path / "mine.kiig"
    docs = tmp_path / "facts.txt"
    docs.write_text("Metformin is first-line therapy for type 2 diabetes.\n", encoding="utf-8")
    assert kiig("corpus", "add", "--db", db, "--name", "c", docs).returncode == 0  # FTS5 shadow tables, triggers
    src = session_with(tmp_path / "src.kiig", [make_record(1, n_steps=2, n_tokens=40, curve=False) | {"id": "a"}])
    export = tmp_path / "src.jsonl"
    assert kiig("export", "--db", src, "--format", "jsonl", "--output", export).returncode == 0
    assert kiig("import", "--db", db, export).returncode == 0
    r = kiig("sessions", "--db", db, "--check")
    assert r.returncode == 0 and "integrity: ok" in r.stdout, r.stdout + r.stderr


# ------------------------------------------------------------------------------ H: not an export


def test_importing_a_dataset_is_refused_with_one_line_and_stores_nothing(tmp_path):
    db = tmp_path / "x.kiig"
    dataset = resource_path("datasets", "clinical_mcq.jsonl")
    refused(kiig("import", "--db", db, dataset), str(dataset), "neither a KIIG export row", "nothing was imported")
    assert not db.exists()
    session_with(db, [make_record(1, n_steps=2, n_tokens=40, curve=False) | {"id": "a"}])
    before = snapshot(db)
    refused(kiig("import", "--db", db, dataset), "nothing was imported")
    assert snapshot(db) == before


def test_check_flags_finished_chains_without_steps(tmp_path):
    db = session_with(tmp_path / "s.kiig", [{"id": "empty", "mode": "answer", "info_gain_mean": None}])
    r = kiig("sessions", "--db", db, "--check")
    assert r.returncode == 1 and "finished with no steps" in r.stdout, r.stdout + r.stderr


# ------------------------------------------------------------------------------ N: given steps verbatim


@pytest.mark.slow
def test_given_steps_and_options_are_scored_and_stored_verbatim(tmp_path):
    steps = ["  Metformin lowers hepatic glucose output.\u2028", "\tIt is first-line in type 2 diabetes.  "]
    options = {"A": " Insulin glargine", "B": "Metformin\u2029", "C": "Gliclazide  "}
    line = {"id": "verbatim", "question": "Which drug is started first in type 2 diabetes?", "options": options,
            "answer_idx": "B", "answer": "Metformin", "steps": steps}
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(line, ensure_ascii=False) + "\n", encoding="utf-8")
    out, db = tmp_path / "out.jsonl", tmp_path / "s.kiig"
    r = kiig("score", "--model", "default", "--input", src, "--output", out, "--db", db)
    assert r.returncode == 0, r.stderr
    (scored,) = [json.loads(x) for x in out.read_text(encoding="utf-8").split("\n") if x]
    assert [s["text"] for s in scored["steps"]] == steps
    assert scored["options"] == options
    with SessionStore.open(db, write=False) as store:
        (chain,) = store.chains_for_run(1)
        assert [s["text"] for s in store.load_chain(chain["id"])["steps"]] == steps
        assert store.load_item(chain["id"])["options"] == options
