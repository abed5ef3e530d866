"""SessionStore.check() is the integrity oracle of many tests: here it is shown to report each problem
it knows, on session files damaged with plain sqlite3 (no foreign keys enforced, so nothing cascades)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from kiig_desktop.store import SessionStore
from kiig_desktop.store.schema import SCHEMA_VERSION
from tests.support.store_support import make_item, make_record, model_info


@pytest.fixture(scope="module")
def healthy(tmp_path_factory) -> Path:
    """A session with one finished run of three chains, each with its steps and token curve."""
    path = tmp_path_factory.mktemp("healthy") / "s.kiig"
    with SessionStore.open(path) as store:
        run, _ = store.find_or_create_run("score", {"mode": "answer"}, {"scorer": store.ensure_model(model_info())}, {}, seed=0)
        for i in range(3):
            store.save_chain(run, f"q{i}", make_record(i, n_steps=5, n_tokens=50), item=make_item(i))
        store.set_run_status(run, "finished")
        assert store.check() == []
    return path


def _damaged(healthy: Path, tmp_path: Path, *sql: str) -> list[str]:
    """check() of a copy of the healthy session after ``sql`` ran on it through a raw connection."""
    path = tmp_path / "damaged.kiig"
    shutil.copy(healthy, path)
    conn = sqlite3.connect(path)
    try:
        for statement in sql:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()
    with SessionStore.open(path, write=False) as store:
        return store.check()


def _chain_id(healthy: Path, key: str) -> int:
    with sqlite3.connect(f"file:{healthy}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT id FROM chains WHERE key = ?", (key,)).fetchone()[0]


def test_a_chain_missing_a_step_is_incomplete(healthy, tmp_path):
    cid = _chain_id(healthy, "q1")
    problems = _damaged(healthy, tmp_path, f"DELETE FROM steps WHERE chain_id = {cid} AND pos = 2")
    assert problems == [f"chain {cid}: 4 of 5 steps stored"]


def test_a_chain_whose_token_curve_is_gone(healthy, tmp_path):
    cid = _chain_id(healthy, "q2")
    assert _damaged(healthy, tmp_path, f"DELETE FROM token_curves WHERE chain_id = {cid}") == [f"chain {cid}: its token curve is missing"]


def test_chains_of_a_deleted_run_break_a_foreign_key(healthy, tmp_path):
    problems = _damaged(healthy, tmp_path, "DELETE FROM runs")
    assert len(problems) == 3 and all(p.startswith("foreign key: chains row ") and p.endswith("points to a missing runs row")
                                      for p in problems), problems


def test_an_index_that_disagrees_with_its_table_fails_the_integrity_check(healthy, tmp_path):
    problems = _damaged(healthy, tmp_path, "PRAGMA writable_schema = ON",
                        "UPDATE sqlite_master SET sql = 'CREATE INDEX items_by_key ON items(question)' WHERE name = 'items_by_key'")
    # the rewritten index is also not the one KIIG creates (store/schema_check.py): said too, never instead
    assert any(p.startswith("integrity: ") and "items_by_key" in p for p in problems), problems
    assert all(p.startswith("integrity: ") or p == "database objects KIIG did not create: index items_by_key"
               for p in problems), problems


def test_a_schema_version_changed_under_an_open_reader(healthy, tmp_path):
    path = tmp_path / "s.kiig"
    shutil.copy(healthy, path)
    with SessionStore.open(path, write=False) as store:
        with sqlite3.connect(path) as conn:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        assert store.check() == [f"schema version {SCHEMA_VERSION + 1}, expected {SCHEMA_VERSION}"]
