"""Schema versions and forward migrations, from every session format this project ever wrote.

``tests/data/session_v<N>.kiig`` is a real session file written by the version that introduced
schema N, with ``session_v<N>.expected.json`` describing what it holds. When the schema changes:
add a Migration in ``store/schema.py``, bump SCHEMA_VERSION, and write the new fixture with
``python tests/store/test_store_migrations.py`` (it never overwrites an existing fixture).

The reference-corpus tables have their own layout version (``store/corpus_schema.py``
CORPUS_SCHEMA_VERSION, kept in ``meta``). ``tests/data/corpus_v<N>.kiig`` is a session holding a
corpus written by the version that introduced corpus format N (``corpus_v<N>.expected.json``: its
passages and a search); when the corpus tables change, add the migration to
``corpus_schema.CORPUS_MIGRATIONS``, bump CORPUS_SCHEMA_VERSION and write the new fixture with
``python tests/store/test_store_migrations.py --corpus``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from kiig_desktop.errors import StoreError
from kiig_desktop.store import SCHEMA_VERSION, SessionStore, connection, corpus_schema, reviews, schema, session
from tests.support.paths import DATA
from tests.support.store_support import (
    SHA_A,
    SHA_J,
    make_generation,
    make_item,
    make_ki_steps,
    make_record,
    model_info,
    without_curve,
)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_fixture(version: int = SCHEMA_VERSION) -> Path:
    """Write session_v<version>.kiig with the current code (run once per schema version)."""
    path = DATA / f"session_v{version}.kiig"
    if path.exists():
        raise SystemExit(f"{path} exists; fixtures of released versions are never rewritten")
    DATA.mkdir(exist_ok=True)
    expected: dict = {"schema_version": version, "runs": []}
    with SessionStore.open(path) as s:
        scorer = s.ensure_model(model_info())
        judge = s.ensure_model(model_info(SHA_J, "/models/judge.gguf"))
        run, _ = s.find_or_create_run("score", {"input_sha256": "f" * 64, "mode": "answer"}, {"scorer": scorer},
                                      {"kiig": "0.1.0"}, seed=0, name="fixture")
        chains = []
        for i in range(3):
            record = make_record(i, n_steps=3, n_tokens=24)
            cid = s.save_chain(run, f"q{i}", record, item=make_item(i), generation=make_generation(i, scorer, 5))
            chains.append({"key": f"q{i}", "record": without_curve(record), "item": make_item(i),
                           "curve": s.load_chain(cid)["token_curve"]})
        s.save_chain(run, "bad", {"id": "bad", "error": "too long"})
        chains.append({"key": "bad", "record": {"id": "bad", "error": "too long"}, "item": None, "curve": None})
        s.save_ki(s.chain_id(run, "q0"), judge, "demo", make_ki_steps(0, 3), 0.5)
        s.set_run_status(run, "finished")
        expected["runs"].append({"kind": "score", "status": "finished", "chains": chains,
                                 "ki": {"q0": s.load_ki(s.chain_id(run, "q0"))[0]["steps"]}})
        if version >= 3:
            expected["runs"][0]["reviews"] = _fixture_reviews(s, run)
        s.conn.execute("VACUUM")
    (DATA / f"session_v{version}.expected.json").write_text(json.dumps(expected, indent=1) + "\n", encoding="utf-8")
    return path


CORPUS_FILES = {
    "guide.md": "# Dosing\n\n## Adults\n\nMetformin 500 mg twice daily with meals.\n\n## Children\n\n"
                "Not licensed below ten years of age.\n",
    "notes.txt": "Insulin is started when HbA1c stays above target despite two oral agents.\n",
    "refs.jsonl": '{"id": "r1", "title": "Statins", "text": "Atorvastatin 20 mg for primary prevention."}\n',
}


def write_corpus_fixture(version: int = corpus_schema.CORPUS_SCHEMA_VERSION) -> Path:
    """Write corpus_v<version>.kiig: a session with corpus 'guides' of three files, and a PDF from format 3 on."""
    import tempfile

    from kiig_desktop.knowledge import corpus

    path = DATA / f"corpus_v{version}.kiig"
    if path.exists():
        raise SystemExit(f"{path} exists; fixtures of released versions are never rewritten")
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in CORPUS_FILES.items():
            (Path(tmp) / name).write_text(text, encoding="utf-8")
        pages = ""
        if version >= 3:  # pages: a two-page PDF from Ghostscript
            from tests.support.documents import facts, ghostscript, guideline_pages, ps_page

            two = guideline_pages(facts()[:3], lines_per_page=12)[:2]
            ghostscript("%!PS\n" + "\n".join(ps_page(p, n, 2) for n, p in enumerate(two, 1)), Path(tmp) / "leaflet.pdf")
            pages = ", k.page, k.page_end"
        with SessionStore.open(path) as s:
            corpus.add_documents(s.db, "guides", [tmp], max_chunk_chars=200, overlap_chars=20)
            rows = s.conn.execute(f"SELECT d.source, k.chunk, k.title, k.text, k.char_start, k.char_end{pages} FROM corpus_chunks k "
                                  "JOIN corpus_documents d ON d.id = k.document_id ORDER BY d.source, k.chunk").fetchall()
            hits = [[p.source, p.chunk] for p in corpus.search(s.db, "guides", "metformin dose for adults", k=3)]
            s.conn.execute("VACUUM")
    expected = {"corpus_schema_version": version, "chunks": [list(r) for r in rows], "search": hits}
    (DATA / f"corpus_v{version}.expected.json").write_text(json.dumps(expected, indent=1) + "\n", encoding="utf-8")
    return path


def _fixture_reviews(s: SessionStore, run: int) -> dict:
    """Reviews (schema 3 on): a step review changed once (two rows of history) and a chain review."""
    reviews.review_step(s, run, "q0", 0, "Dr A", knowledge="correct", role="helps")
    reviews.review_step(s, run, "q0", 0, "Dr A", role="misleading", note="overstates the effect")
    reviews.review_step(s, run, "q1", 2, "Dr B", knowledge="cannot_tell")
    reviews.review_chain(s, run, "q0", "Dr A", verdict="flawed", note="step 1 misleads")
    return {"steps": reviews.step_reviews(s, run, history=True), "chains": reviews.chain_reviews(s, run, history=True)}


def _fixtures() -> list[int]:
    return sorted(int(p.stem.split("_v")[1]) for p in DATA.glob("session_v*.kiig"))


def test_a_fixture_exists_for_every_schema_version():
    assert _fixtures() == list(range(1, SCHEMA_VERSION + 1)), "write the new fixture: python tests/store/test_store_migrations.py"
    assert [m.version for m in schema.MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))


def _schema_sql(path: Path) -> set[tuple[str, str]]:
    conn = sqlite3.connect(path)
    try:
        return {(n, " ".join(sql.split())) for n, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL")}
    finally:
        conn.close()


@pytest.mark.parametrize("version", _fixtures())
def test_every_old_version_migrates_to_the_current_schema(tmp_path, version):
    path = tmp_path / "old.kiig"
    shutil.copyfile(DATA / f"session_v{version}.kiig", path)
    expected = json.loads((DATA / f"session_v{version}.expected.json").read_text(encoding="utf-8"))
    with SessionStore.open(path, create=False) as s:
        assert s.schema_version == SCHEMA_VERSION
        assert s.check() == []
        assert [r[0] for r in s.conn.execute("SELECT version FROM schema_version ORDER BY version")] == list(range(1, SCHEMA_VERSION + 1))
        [run] = s.list_runs()
        assert (run["kind"], run["status"]) == (expected["runs"][0]["kind"], expected["runs"][0]["status"])
        assert run["models"]["scorer"]["sha256"] == SHA_A
        for chain in expected["runs"][0]["chains"]:
            cid = s.chain_id(run["id"], chain["key"])
            loaded = s.load_chain(cid)
            assert json.dumps(without_curve(loaded)) == json.dumps(chain["record"])
            assert loaded.get("token_curve") == chain["curve"]
            assert s.load_item(cid) == chain["item"]
        assert s.load_ki(s.chain_id(run["id"], "q0"))[0]["steps"] == expected["runs"][0]["ki"]["q0"]
        if "reviews" in expected["runs"][0]:
            assert reviews.step_reviews(s, run["id"], history=True) == expected["runs"][0]["reviews"]["steps"]
            assert reviews.chain_reviews(s, run["id"], history=True) == expected["runs"][0]["reviews"]["chains"]
        else:  # an older file gets the review tables, empty
            assert reviews.step_reviews(s, run["id"]) == [] and reviews.progress(s, run["id"]) == {"reviewed": 0, "total": 3}
        # the migrated session keeps working
        s.save_chain(run["id"], "new", make_record(99, n_steps=2, n_tokens=8))
    fresh = tmp_path / "fresh.kiig"
    SessionStore.open(fresh).close()
    assert _schema_sql(path) == _schema_sql(fresh)


def _future_migration(monkeypatch, func) -> None:
    step = schema.Migration(SCHEMA_VERSION + 1, "test: chain notes", ("ALTER TABLE chains ADD COLUMN note TEXT",), func)
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, step])
    monkeypatch.setattr(connection, "MIGRATIONS", schema.MIGRATIONS)
    monkeypatch.setattr(connection, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setattr(session, "SCHEMA_VERSION", SCHEMA_VERSION + 1)


def test_a_new_migration_runs_once_with_its_data_step(tmp_path, monkeypatch):
    path = tmp_path / "old.kiig"
    shutil.copyfile(DATA / "session_v1.kiig", path)

    def fill(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE chains SET note = 'migrated ' || key")

    _future_migration(monkeypatch, fill)
    with SessionStore.open(path) as s:
        assert s.schema_version == SCHEMA_VERSION + 1
        assert sorted(r[0] for r in s.conn.execute("SELECT note FROM chains")) == ["migrated bad", "migrated q0", "migrated q1", "migrated q2"]
        versions = [r[0] for r in s.conn.execute("SELECT version FROM schema_version ORDER BY version")]
        assert versions == list(range(1, SCHEMA_VERSION + 2))
    with SessionStore.open(path) as s:  # not applied twice
        assert [r[0] for r in s.conn.execute("SELECT count(*) FROM schema_version")] == [SCHEMA_VERSION + 1]


def test_a_failing_migration_leaves_the_file_untouched(tmp_path, monkeypatch):
    path = tmp_path / "old.kiig"
    shutil.copyfile(DATA / "session_v1.kiig", path)
    before = _sha(path)

    def boom(conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("simulated failure half-way through a migration")

    _future_migration(monkeypatch, boom)
    with pytest.raises(StoreError, match="simulated failure"):
        SessionStore.open(path)
    assert _sha(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.kiig"]
    monkeypatch.undo()
    with SessionStore.open(path) as s:
        assert s.schema_version == SCHEMA_VERSION and len(s.chains_for_run(1)) == 4


def test_readers_do_not_migrate(tmp_path, monkeypatch):
    path = tmp_path / "old.kiig"
    shutil.copyfile(DATA / "session_v1.kiig", path)
    before = _sha(path)
    _future_migration(monkeypatch, None)
    with pytest.raises(StoreError, match="older session format") as err:
        SessionStore.open(path, write=False)
    assert "--upgrade" in str(err.value)
    assert _sha(path) == before


def test_a_newer_schema_is_refused_untouched(tmp_path):
    path = tmp_path / "newer.kiig"
    shutil.copyfile(DATA / "session_v1.kiig", path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = _sha(path)
    for write in (True, False):
        with pytest.raises(StoreError, match="newer version of KIIG Desktop"):
            SessionStore.open(path, write=write)
    assert _sha(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["newer.kiig"]


def _set_corpus_version(path: Path, value: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'corpus_schema_version'", (str(value),))
    conn.commit()
    conn.close()


def test_corpus_tables_are_created_and_versioned(tmp_path):
    with SessionStore.open(tmp_path / "s.kiig") as s:
        for table in corpus_schema.CORPUS_TABLES:
            assert s.conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone(), table
        stored = s.conn.execute("SELECT value FROM meta WHERE key = 'corpus_schema_version'").fetchone()[0]
        assert int(stored) == corpus_schema.CORPUS_SCHEMA_VERSION


def test_empty_corpus_tables_of_an_older_corpus_format_are_rebuilt(tmp_path):
    path = tmp_path / "s.kiig"
    SessionStore.open(path).close()
    conn = sqlite3.connect(path)  # the first corpus layout, before corpus_files existed
    for t in reversed(corpus_schema.CORPUS_TABLES):
        conn.execute(f"DROP TABLE {t}")
    conn.execute("CREATE TABLE corpora (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created TEXT NOT NULL)")
    conn.execute("CREATE TABLE corpus_documents (id INTEGER PRIMARY KEY, corpus_id INTEGER, source TEXT)")
    conn.commit()
    conn.close()
    _set_corpus_version(path, 1)  # the first draft layout: no migration steps lead from it
    with SessionStore.open(path) as s:
        cols = [r[1] for r in s.conn.execute("PRAGMA table_info(corpus_documents)")]
        assert "file_id" in cols
        assert int(s.conn.execute("SELECT value FROM meta WHERE key = 'corpus_schema_version'").fetchone()[0]) == corpus_schema.CORPUS_SCHEMA_VERSION


def test_corpus_data_in_an_older_or_newer_format_is_refused_untouched(tmp_path):
    path = tmp_path / "s.kiig"
    SessionStore.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO corpora (name, created) VALUES ('demo', 'x')")
    conn.commit()
    conn.close()
    _set_corpus_version(path, 1)  # the first draft layout: no migration steps lead from it
    before = _sha(path)
    with pytest.raises(StoreError, match="older format"):
        SessionStore.open(path)
    assert _sha(path) == before
    _set_corpus_version(path, corpus_schema.CORPUS_SCHEMA_VERSION + 1)
    before = _sha(path)
    for write in (True, False):
        with pytest.raises(StoreError, match="newer version"):
            SessionStore.open(path, write=write)
    assert _sha(path) == before


def _corpus_fixtures() -> list[int]:
    return sorted(int(p.stem.split("_v")[1]) for p in DATA.glob("corpus_v*.kiig"))


def test_a_corpus_fixture_exists_for_every_corpus_format_with_migrations():
    assert _corpus_fixtures() == list(range(2, corpus_schema.CORPUS_SCHEMA_VERSION + 1)), \
        "write the new fixture: python tests/store/test_store_migrations.py --corpus"
    assert sorted(corpus_schema.CORPUS_MIGRATIONS) == list(range(3, corpus_schema.CORPUS_SCHEMA_VERSION + 1))


@pytest.mark.parametrize("version", _corpus_fixtures())
def test_a_session_keeps_its_corpus_through_corpus_format_migrations(tmp_path, version):
    from kiig_desktop.knowledge import corpus

    path = tmp_path / "old.kiig"
    shutil.copyfile(DATA / f"corpus_v{version}.kiig", path)
    expected = json.loads((DATA / f"corpus_v{version}.expected.json").read_text(encoding="utf-8"))
    with SessionStore.open(path) as s:
        assert s.check() == []
        stored = s.conn.execute("SELECT value FROM meta WHERE key = 'corpus_schema_version'").fetchone()[0]
        assert int(stored) == corpus_schema.CORPUS_SCHEMA_VERSION
        rows = s.conn.execute("SELECT d.source, k.chunk, k.title, k.text, k.char_start, k.char_end, k.page, k.page_end "
                              "FROM corpus_chunks k JOIN corpus_documents d ON d.id = k.document_id "
                              "ORDER BY d.source, k.chunk").fetchall()
        width = len(expected["chunks"][0])  # 8 (with the pages) from corpus format 3 on
        assert [list(r[:width]) for r in rows] == expected["chunks"]
        assert all(r[6:] == (None, None) for r in rows if not r[0].endswith(".pdf"))  # text files have no pages
        assert version < 3 or {r[6] for r in rows if r[0].endswith(".pdf")} == {1, 2}
        hits = corpus.search(s.db, "guides", "metformin dose for adults", k=3)
        assert [[p.source, p.chunk] for p in hits] == expected["search"]
        assert hits[0].where() == ("guide.md > Dosing / Adults" if version < 3 else "guide.md > Dosing > Adults")
        assert hits[0].page is None
    fresh = tmp_path / "fresh.kiig"
    SessionStore.open(fresh).close()
    assert _schema_sql(path) == _schema_sql(fresh)


def test_a_file_left_blank_by_a_crash_during_creation_is_initialised(tmp_path):
    empty = tmp_path / "empty.kiig"
    empty.touch(mode=0o600)
    with SessionStore.open(empty) as s:
        assert s.schema_version == SCHEMA_VERSION
    blank = tmp_path / "blank.kiig"
    conn = sqlite3.connect(blank)
    conn.execute("PRAGMA journal_mode = WAL")  # what a creation killed before its first commit leaves
    conn.close()
    with pytest.raises(StoreError, match="empty database"):
        SessionStore.open(blank, write=False)
    with SessionStore.open(blank) as s:
        assert s.schema_version == SCHEMA_VERSION


if __name__ == "__main__":
    sys.exit(print(write_corpus_fixture() if "--corpus" in sys.argv[1:] else write_fixture()))
