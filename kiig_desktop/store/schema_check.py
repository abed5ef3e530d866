"""Objects in a session file that KIIG did not create (a trigger, a view, a table, an index).

A session received from someone else may carry a trigger that rewrites or deletes rows whenever
KIIG writes (``AFTER INSERT ON chains ... DELETE FROM steps``). Such a file is refused for writing
and reported by ``kiig sessions --check``; reading it runs none of them. What KIIG creates is
rebuilt, not listed: every migration up to the file's version and the corpus DDL (with the FTS5
shadow tables it makes) applied to an in-memory database, then compared with ``sqlite_master``
by type, name, table and SQL text (whitespace aside).
"""

from __future__ import annotations

import functools
import re
import sqlite3

from . import corpus_schema, schema

# SQLite makes these itself (ANALYZE, AUTOINCREMENT); they run no code
_SQLITE_OWN_TABLES = ("sqlite_sequence", "sqlite_stat1", "sqlite_stat2", "sqlite_stat3", "sqlite_stat4")


def _norm(sql: str | None) -> str | None:
    return None if sql is None else re.sub(r"\s+", " ", sql).strip()


def expected_objects(version: int) -> dict[tuple[str, str], tuple[str, str | None]]:
    """``(type, name) -> (table, SQL)`` of what KIIG creates in a session of schema ``version``."""
    statements = [st for m in schema.MIGRATIONS if m.version <= version for st in m.statements]
    return _built(tuple(statements + list(corpus_schema.CORPUS_DDL)))


@functools.lru_cache(maxsize=8)
def _built(statements: tuple[str, ...]) -> dict[tuple[str, str], tuple[str, str | None]]:
    conn = sqlite3.connect(":memory:")
    try:
        for statement in statements:
            conn.execute(statement)
        rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    finally:
        conn.close()
    return {(t, n): (tbl, _norm(sql)) for t, n, tbl, sql in rows}


def foreign_objects(conn: sqlite3.Connection) -> list[str]:
    """``"trigger zz"``, ``"view v"``... for each object of the file KIIG did not create (or that differs)."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    expected = expected_objects(version)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'corpus_schema_version'").fetchone()
        old_corpus = row is not None and int(row[0]) < corpus_schema.CORPUS_SCHEMA_VERSION
    except (sqlite3.Error, ValueError):
        old_corpus = False
    found = []
    for kind, name, table, sql in conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"):
        if kind == "table" and name in _SQLITE_OWN_TABLES:
            continue
        if old_corpus and kind in ("table", "index") and (table == "corpora" or str(table).startswith("corpus_")):
            continue  # an older corpus layout: rebuilt when empty, refused with data (connection._apply_corpus)
        if kind == "table" and name.startswith("corpus_fts_") and (kind, name) in expected:
            continue  # an FTS5 shadow table: its DDL is FTS5's own and differs between SQLite versions
        if expected.get((kind, name)) != (table, _norm(sql)):
            found.append(f"{kind} {name if str(name).isprintable() else ascii(name)}")  # no terminal codes
    return found


def foreign_problem(conn: sqlite3.Connection) -> str | None:
    """One line naming the foreign objects, or None when the file holds only what KIIG creates."""
    found = foreign_objects(conn)
    if not found:
        return None
    shown = ", ".join(found[:10]) + (f" and {len(found) - 10} more" if len(found) > 10 else "")
    return f"database objects KIIG did not create: {shown}"


__all__ = ["expected_objects", "foreign_objects", "foreign_problem"]
