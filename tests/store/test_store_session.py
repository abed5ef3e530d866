"""SessionStore API on real session files: runs, resume identity, exact round trips, KI, status."""

from __future__ import annotations

import json
import math
import sqlite3

import pytest

from kiig_desktop.errors import StoreError
from kiig_desktop.store import APPLICATION_ID, SCHEMA_VERSION, SessionStore
from kiig_desktop.store import schema as schema_mod
from tests.support.store_support import (
    SHA_A,
    SHA_B,
    SHA_J,
    f32,
    make_generation,
    make_item,
    make_ki_steps,
    make_record,
    model_info,
    without_curve,
)

SETTINGS = {"input_sha256": "1" * 64, "mode": "answer", "split": "lines", "engine": {"n_ctx": 4096, "n_gpu_layers": 0}}


@pytest.fixture
def store(tmp_path):
    s = SessionStore.open(tmp_path / "s.kiig")
    yield s
    s.close()


def _run(store: SessionStore, settings: dict = SETTINGS, sha: str = SHA_A, seed: int | None = 0) -> tuple[int, bool]:
    model = store.ensure_model(model_info(sha))
    return store.find_or_create_run("score", settings, {"scorer": model}, {"kiig": "0.1.0", "llama_cpp": "0.3.36"}, seed=seed)


def test_new_session_is_identified_and_versioned(tmp_path):
    with SessionStore.open(tmp_path / "new.kiig") as s:
        assert s.created
        assert s.schema_version == SCHEMA_VERSION
    raw = sqlite3.connect(tmp_path / "new.kiig")
    assert raw.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [r[0] for r in raw.execute("SELECT version FROM schema_version")] == list(range(1, SCHEMA_VERSION + 1))
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"models", "runs", "items", "generations", "chains", "steps", "token_curves", "ki_evaluations",
            "ki_steps", "ki_evidence", "corpora", "corpus_documents", "corpus_chunks"} <= tables
    raw.close()


def test_every_table_and_view_is_documented(store):
    doc = schema_mod.__doc__
    names = [r[0] for r in store.conn.execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' "
        "AND name != 'corpora' AND name NOT LIKE 'corpus_%'")]  # documented by corpus_schema
    for name in names:
        assert name in doc, f"table {name} is missing from the schema documentation"


def test_foreign_keys_are_enforced(store):
    with pytest.raises(StoreError):
        with store.transaction():
            store.conn.execute("INSERT INTO chains (run_id, key, status, n_steps, record, saved) VALUES (999, 'k', 'finished', 0, '{}', 'now')")
    assert store.conn.execute("SELECT count(*) FROM chains").fetchone()[0] == 0


def test_ensure_model_upserts_by_sha_and_path(store):
    a = store.ensure_model({"path": "/m/a.gguf", "sha256": SHA_A})
    assert store.ensure_model({"path": "/m/a.gguf", "sha256": SHA_A, "quantization": "Q4_1", "metadata": {"k": 1}}) == a
    m = store.get_model(a)
    assert m["quantization"] == "Q4_1" and m["metadata"] == {"k": 1}
    assert store.ensure_model({"path": "/elsewhere/a.gguf", "sha256": SHA_A}) != a
    assert store.ensure_model({"path": "/m/a.gguf", "sha256": SHA_B}) != a
    with pytest.raises(ValueError):
        store.ensure_model({"path": "/m/x.gguf"})


def test_run_identity_resume_and_separation(store):
    run, created = _run(store)
    assert created
    again, created = _run(store, settings=json.loads(json.dumps(SETTINGS, sort_keys=True)))  # key order is irrelevant
    assert (again, created) == (run, False)
    other_settings, created = _run(store, settings={**SETTINGS, "split": "sentences"})
    assert created and other_settings != run
    other_model, created = _run(store, sha=SHA_B)  # a different model FILE (sha256) is a new run
    assert created and other_model not in (run, other_settings)
    other_seed, created = _run(store, seed=1)
    assert created and other_seed not in (run, other_settings, other_model)
    # moving the same model file elsewhere keeps the run
    moved = store.ensure_model(model_info(SHA_A, path="/moved/model.gguf"))
    assert store.find_or_create_run("score", SETTINGS, {"scorer": moved}, {}, seed=0) == (run, False)
    with pytest.raises(ValueError):
        store.find_or_create_run("nonsense", SETTINGS, {}, {})
    with pytest.raises(ValueError):
        store.find_or_create_run("score", SETTINGS, {"driver": moved}, {})


def test_saved_chain_round_trips_exactly(store):
    run, _ = _run(store)
    record = make_record(7)
    line = json.dumps(without_curve(record))
    chain = store.save_chain(run, "q7", record, item=make_item(7), generation=make_generation(7, 1))
    loaded = store.load_chain(chain)
    assert json.dumps(without_curve(loaded)) == line  # byte for byte, key order included
    curve = loaded["token_curve"]
    assert list(curve) == ["token_ids", "pieces", "surprisal_bits", "entropy_bits", "step"]
    assert curve["token_ids"] == record["token_curve"]["token_ids"]
    assert curve["step"] == record["token_curve"]["step"]
    assert curve["surprisal_bits"] == f32(record["token_curve"]["surprisal_bits"])
    assert all(type(v) is float for v in curve["entropy_bits"])
    assert json.dumps(store.load_chain(chain, curve=False)) == line
    assert json.dumps(store.load_run_records(run)["q7"]) == line
    assert store.load_run_records(run, curves=True)["q7"]["token_curve"] == curve
    assert store.load_item(chain) == make_item(7)
    gen = store.load_generation(chain)
    expected = make_generation(7, 1)
    assert gen["text"] == expected["text"] and gen["correct"] is expected["correct"]
    assert [t["logprob"] for t in gen["tokens"]] == f32([t["logprob"] for t in expected["tokens"]])
    # a curve of 600 tokens is stored in 4 bytes a float
    blob = store.conn.execute("SELECT surprisal_bits FROM token_curves WHERE chain_id = ?", (chain,)).fetchone()[0]
    assert len(blob) == 4 * 600


def test_special_values_round_trip(store):
    run, _ = _run(store)
    record = {"id": "odd", "steps": [{"index": 0, "text": "ünïcödé \u2028 step", "info_gain": float("nan"),
                                       "delta_nll": float("inf"), "planning": True, "knowledge": ["x"]}],
              "info_gain_mean": -0.0, "big": 2**62, "tiny": 5e-324, "nested": {"z": 1, "a": [1.1, None]}}
    record["token_curve"] = {"pieces": ["\udcff", "é"], "surprisal_bits": [1.5, 2.25], "extra_series": [1, 2]}
    chain = store.save_chain(run, "odd", record)
    loaded = store.load_chain(chain)
    assert json.dumps(without_curve(loaded)) == json.dumps(without_curve(record))
    assert loaded["token_curve"] == {"pieces": ["\udcff", "é"], "surprisal_bits": [1.5, 2.25], "extra_series": [1, 2]}
    row = store.conn.execute("SELECT info_gain, planning, knowledge FROM steps WHERE chain_id = ?", (chain,)).fetchone()
    assert row == (None, 1, '["x"]')  # NaN is NULL in SQL; the record keeps it
    assert math.isnan(loaded["steps"][0]["info_gain"])


def test_mismatched_curve_is_rejected_and_nothing_saved(store):
    run, _ = _run(store)
    record = make_record(1, n_tokens=10)
    record["token_curve"]["step"] = record["token_curve"]["step"][:5]
    with pytest.raises(ValueError):
        store.save_chain(run, "q1", record)
    assert store.completed_chain_keys(run) == set()
    assert store.conn.execute("SELECT count(*) FROM steps").fetchone()[0] == 0


def test_chain_columns_and_light_rows(store):
    run, _ = _run(store)
    record = make_record(3)
    store.save_chain(run, "q3", record, generation=make_generation(3, 1))
    store.save_chain(run, "bad", {"id": "bad", "error": "context overflow: 9000 tokens > 4096"})
    rows = store.chains_for_run(run)
    assert [r["key"] for r in rows] == ["q3", "bad"]
    assert rows[0]["status"] == "finished" and rows[0]["n_steps"] == 12
    assert rows[0]["info_gain_mean"] == record["info_gain_mean"]
    assert rows[0]["correct"] is False  # item 3: 3 % 3 == 0
    assert rows[1]["status"] == "error" and rows[1]["error"].startswith("context overflow")
    # errors count as done (resume reproduces the same output instead of retrying forever)
    assert store.completed_chain_keys(run) == {"q3", "bad"}
    steps = store.conn.execute("SELECT pos, idx, start_char, end_char, info_gain FROM steps ORDER BY pos").fetchall()
    assert steps[1] == (1, 1, 80, 159, record["steps"][1]["info_gain"])
    view = store.conn.execute("SELECT count(*), min(question IS NULL) FROM step_metrics").fetchone()
    assert view == (12, 1)


def test_saving_a_key_again_replaces_the_chain(store):
    run, _ = _run(store)
    store.save_chain(run, "q1", make_record(1), generation=make_generation(1, 1))
    second = store.save_chain(run, "q1", make_record(2, n_steps=3), generation=make_generation(2, 1))
    assert len(store.chains_for_run(run)) == 1
    assert store.load_chain(second)["steps"][0]["text"].startswith("Step 1 of item 2")
    assert store.conn.execute("SELECT count(*) FROM steps").fetchone()[0] == 3
    assert store.conn.execute("SELECT count(*) FROM generations").fetchone()[0] == 1
    assert store.conn.execute("SELECT count(*) FROM token_curves").fetchone()[0] == 1


def test_items_are_shared_between_runs(store):
    a, _ = _run(store)
    b, _ = _run(store, sha=SHA_B)
    store.save_chain(a, "q1", make_record(1), item=make_item(1))
    store.save_chain(b, "q1", make_record(1, model_sha=SHA_B), item=make_item(1))
    assert store.conn.execute("SELECT count(*) FROM items").fetchone()[0] == 1
    store.delete_run(a)
    assert store.conn.execute("SELECT count(*) FROM items").fetchone()[0] == 1
    store.delete_run(b)
    assert store.conn.execute("SELECT count(*) FROM items").fetchone()[0] == 0  # no question text left behind
    assert store.conn.execute("SELECT count(*) FROM steps").fetchone()[0] == 0
    assert store.check() == []


def test_ki_evidence_round_trip_and_replacement(store):
    run, _ = _run(store)
    judge = store.ensure_model(model_info(SHA_J, "/models/judge.gguf"))
    chain = store.save_chain(run, "q1", make_record(1))
    steps = make_ki_steps(1)
    store.save_ki(chain, judge, "demo", steps, 0.625)
    [ev] = store.load_ki(chain)
    assert ev["corpus"] == "demo" and ev["ki_mean"] == 0.625 and ev["judge"]["sha256"] == SHA_J
    assert ev["steps"] == steps  # same keys, same order, floats exact
    assert store.chains_for_run(run)[0]["ki_mean"] == 0.625
    store.save_ki(chain, judge, "demo", steps[:2], 0.25)  # same judge + corpus: replaced
    store.save_ki(chain, judge, "other", steps[:1], None)
    evs = store.load_ki(chain)
    assert [(e["corpus"], len(e["steps"])) for e in evs] == [("demo", 2), ("other", 1)]
    assert store.conn.execute("SELECT count(*) FROM ki_evidence").fetchone()[0] == 3 + 0  # step 0 has no evidence
    with pytest.raises(StoreError, match="no chain"):
        store.save_ki(9999, judge, "demo", steps, 0.5)


def test_chain_with_ki_is_one_transaction(store):
    run, _ = _run(store)
    bad_ki = {"judge_model_id": 12345, "corpus": "demo", "steps": make_ki_steps(1), "ki_mean": 0.5}  # unknown judge
    with pytest.raises(StoreError):
        store.save_chain(run, "q1", make_record(1), item=make_item(1), ki=bad_ki)
    assert store.chains_for_run(run) == []
    for table in ("steps", "token_curves", "items", "ki_evaluations", "ki_steps"):
        assert store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table


def test_run_status_and_listing(store, tmp_path):
    run, _ = _run(store)
    store.save_chain(run, "q1", make_record(1, n_steps=2, n_tokens=20))
    store.save_chain(run, "q2", {"id": "q2", "error": "boom"})
    [info] = store.list_runs()
    assert info["status"] == "running" and info["finished"] is None
    assert info["n_chains"] == 2 and info["n_errors"] == 1
    assert info["settings"] == SETTINGS and info["versions"]["llama_cpp"] == "0.3.36"
    assert info["models"]["scorer"]["sha256"] == SHA_A
    store.set_run_status(run, "finished")
    got = store.get_run(run)
    assert got["status"] == "finished" and got["finished"].endswith("Z")
    with pytest.raises(ValueError):
        store.set_run_status(run, "exploded")
    with pytest.raises(StoreError, match="no run"):
        store.get_run(42)
    # reusing a finished run keeps it finished, also when the rerun stops or fails (issue 14)
    assert _run(store) == (run, False)
    assert store.get_run(run)["status"] == "finished"
    store.set_run_status(run, "interrupted")
    assert store.get_run(run)["status"] == "finished"
    # an unfinished run is put back to running
    store.conn.execute("UPDATE runs SET status = 'cancelled' WHERE id = ?", (run,))
    assert _run(store) == (run, False)
    assert store.get_run(run)["status"] == "running"


def test_a_run_left_running_by_a_dead_process_is_marked_interrupted(tmp_path):
    path = tmp_path / "s.kiig"
    with SessionStore.open(path) as s:
        run, _ = _run(s)
    with SessionStore.open(path) as s:
        assert s.get_run(run)["status"] == "interrupted"
        assert _run(s) == (run, False)


def test_read_only_store_refuses_writes_and_reader_sees_commits(store):
    run, _ = _run(store)
    reader = store.reader()
    try:
        assert reader.chains_for_run(run) == []
        store.save_chain(run, "q1", make_record(1, n_tokens=30))
        assert [c["key"] for c in reader.chains_for_run(run)] == ["q1"]
        with pytest.raises(StoreError, match="read-only"):
            reader.save_chain(run, "q2", make_record(2))
        with pytest.raises(sqlite3.OperationalError):
            reader.db.execute("DELETE FROM chains")
    finally:
        reader.close()
    assert store.check() == []


def test_missing_ids_give_store_errors(store):
    with pytest.raises(StoreError, match="no chain"):
        store.load_chain(1)
    with pytest.raises(StoreError, match="no run"):
        store.save_chain(5, "k", {"id": "k"})
    with pytest.raises(StoreError, match="no run"):
        store.set_run_status(5, "finished")
    assert store.load_item(1) is None and store.load_generation(1) is None and store.load_ki(1) == []


def test_discard_if_blank_removes_only_sessions_without_content(tmp_path):
    from kiig_desktop.knowledge.corpus import add_documents
    from kiig_desktop.resources import resource_path
    from kiig_desktop.store.connection import discard_if_blank

    blank = tmp_path / "blank.kiig"
    SessionStore.open(blank).close()
    assert discard_if_blank(blank) and not blank.exists()
    models_only = tmp_path / "models-only.kiig"
    with SessionStore.open(models_only) as s:
        s.ensure_model(model_info())
    assert discard_if_blank(models_only) and not models_only.exists()
    used = tmp_path / "used.kiig"
    with SessionStore.open(used) as s:
        s.find_or_create_run("score", {}, {"scorer": s.ensure_model(model_info())}, {})
    assert not discard_if_blank(used) and used.exists()
    corpus = tmp_path / "corpus.kiig"
    with SessionStore.open(corpus) as s:
        add_documents(s.db, "refs", [resource_path("corpus", "clinical_facts.jsonl")])
    assert not discard_if_blank(corpus) and corpus.exists()
    other = tmp_path / "notes.txt"
    other.write_text("not a session")
    assert not discard_if_blank(other) and other.exists()


def test_generation_without_an_answer_reads_back_as_none(store):
    """A generation in which no answer was found keeps its keys: the batch and the views read them."""
    run, _ = _run(store)
    gen = {**make_generation(3, 1), "extracted_answer": None, "correct": None}
    chain = store.save_chain(run, "k-none", make_record(3), generation=gen)
    loaded = store.load_generation(chain)
    assert loaded["extracted_answer"] is None and loaded["correct"] is None
    chain = store.save_chain(run, "k-wrong", make_record(4), generation={**make_generation(4, 1), "correct": False})
    assert store.load_generation(chain)["correct"] is False
