"""DDL of the reference-corpus tables, applied as part of the session schema.

Owned by the corpus module; ``store/`` applies these statements when it creates or migrates a
session file, and ``apply()`` lets corpus code prepare a bare database in tests. Every statement
is idempotent (``IF NOT EXISTS``), so applying the list again is harmless.

Layout:

- ``corpora``: one row per named corpus; a session can hold several.
- ``corpus_files``: one row per imported file (its name inside the corpus, SHA-256, size, chunking
  settings, decode warnings). Re-importing a file with the same SHA-256 and settings is a no-op.
- ``corpus_documents``: what a search result names as ``source``: the file name for ``.txt`` and
  ``.md`` files, the record ``id`` for each line of a ``.jsonl`` file.
- ``corpus_chunks``: the passages, with character offsets into the decoded document; ``title`` is
  the heading path of the section (``"Dosing > Adults"``) or the file's stem; since corpus format
  3 ``page``/``page_end`` are the 1-based first and last page a passage of a paged file (PDF)
  covers, NULL for other files.
- ``corpus_fts``: a *contentless* FTS5 index over the chunks (the text is stored once, in
  ``corpus_chunks``), kept in sync by triggers. Its first column holds a tag ``c<corpus id>`` so a
  search is restricted to one corpus inside the index; BM25 gives that column weight 0. Because
  the index is contentless, the delete trigger must pass the exact values that were indexed.
"""

from __future__ import annotations

# Version 1 was the first draft layout (corpora, corpus_documents, corpus_chunks, no FTS index).
# Increment when the tables change and add the step to CORPUS_MIGRATIONS: store/ applies the steps
# from the file's version on; with no path of steps it rebuilds empty older tables and refuses data.
CORPUS_SCHEMA_VERSION = 3

# version -> statements that take a file from ``version - 1`` to ``version``. An ADD COLUMN puts
# the column after the last column definition, so CORPUS_DDL lists it there too: a migrated file
# and a new one then hold the same CREATE TABLE text (store/schema_check.py compares them).
CORPUS_MIGRATIONS: dict[int, tuple[str, ...]] = {
    3: ("ALTER TABLE corpus_chunks ADD COLUMN page INTEGER",
        "ALTER TABLE corpus_chunks ADD COLUMN page_end INTEGER"),
}
FTS_TOKENIZE = "porter unicode61 remove_diacritics 2"  # knowledge.search highlights words the same way

CORPUS_DDL: list[str] = [
    """CREATE TABLE IF NOT EXISTS corpora (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS corpus_files (
        id INTEGER PRIMARY KEY,
        corpus_id INTEGER NOT NULL REFERENCES corpora(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        path TEXT,
        kind TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        encoding TEXT,
        settings TEXT NOT NULL,
        imported TEXT NOT NULL,
        n_documents INTEGER NOT NULL DEFAULT 0,
        n_chunks INTEGER NOT NULL DEFAULT 0,
        warnings TEXT,
        UNIQUE (corpus_id, name)
    )""",
    """CREATE TABLE IF NOT EXISTS corpus_documents (
        id INTEGER PRIMARY KEY,
        corpus_id INTEGER NOT NULL REFERENCES corpora(id) ON DELETE CASCADE,
        file_id INTEGER NOT NULL REFERENCES corpus_files(id) ON DELETE CASCADE,
        source TEXT NOT NULL,
        title TEXT,
        n_chunks INTEGER NOT NULL DEFAULT 0,
        UNIQUE (corpus_id, source)
    )""",
    "CREATE INDEX IF NOT EXISTS corpus_documents_file ON corpus_documents(file_id)",
    """CREATE TABLE IF NOT EXISTS corpus_chunks (
        id INTEGER PRIMARY KEY,
        corpus_id INTEGER NOT NULL REFERENCES corpora(id) ON DELETE CASCADE,
        document_id INTEGER NOT NULL REFERENCES corpus_documents(id) ON DELETE CASCADE,
        chunk INTEGER NOT NULL,
        title TEXT,
        text TEXT NOT NULL,
        char_start INTEGER,
        char_end INTEGER,
        page INTEGER,
        page_end INTEGER,
        UNIQUE (document_id, chunk)
    )""",
    "CREATE INDEX IF NOT EXISTS corpus_chunks_corpus ON corpus_chunks(corpus_id)",
    """CREATE VIRTUAL TABLE IF NOT EXISTS corpus_fts USING fts5(
        corpus_tag, title, text,
        content='',
        tokenize='""" + FTS_TOKENIZE + """'
    )""",
    """CREATE TRIGGER IF NOT EXISTS corpus_chunks_ai AFTER INSERT ON corpus_chunks BEGIN
        INSERT INTO corpus_fts(rowid, corpus_tag, title, text)
        VALUES (new.id, 'c' || new.corpus_id, coalesce(new.title, ''), new.text);
    END""",
    """CREATE TRIGGER IF NOT EXISTS corpus_chunks_ad AFTER DELETE ON corpus_chunks BEGIN
        INSERT INTO corpus_fts(corpus_fts, rowid, corpus_tag, title, text)
        VALUES ('delete', old.id, 'c' || old.corpus_id, coalesce(old.title, ''), old.text);
    END""",
    """CREATE TRIGGER IF NOT EXISTS corpus_chunks_au AFTER UPDATE ON corpus_chunks BEGIN
        INSERT INTO corpus_fts(corpus_fts, rowid, corpus_tag, title, text)
        VALUES ('delete', old.id, 'c' || old.corpus_id, coalesce(old.title, ''), old.text);
        INSERT INTO corpus_fts(rowid, corpus_tag, title, text)
        VALUES (new.id, 'c' || new.corpus_id, coalesce(new.title, ''), new.text);
    END""",
]

CORPUS_TABLES = ("corpora", "corpus_files", "corpus_documents", "corpus_chunks", "corpus_fts")


def apply(db) -> None:
    """Create the corpus tables on a sqlite_utils.Database (idempotent)."""
    for statement in CORPUS_DDL:
        db.execute(statement)
