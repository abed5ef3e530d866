"""SessionStore: one analysis session file (runs, chains, steps, curves, KI evidence).

Threading: a SessionStore is one SQLite connection; use it from one thread at a time. A viewer in
another thread calls ``reader()`` for its own read-only connection (WAL lets it read while the
writer commits). Only one process (and one SessionStore) may hold a file open for writing.

Crash safety: every chain -- its steps, metrics, token curve and KI evidence -- is committed in one
transaction (``synchronous=FULL``); a chain row exists only once all of it is on disk.

Errors: a chain whose record carries ``"error"`` is stored with status ``error`` and counts as
done for resume, so a resumed run writes the same output as an uninterrupted one and does not
retry an item that failed deterministically (e.g. longer than the context). Delete the run (or
use a new one) to retry.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from ..errors import StoreError
from . import rows as R
from .chain_rows import write_chain
from .codec import canonical_json, dumps, dumps_opt, loads, now_iso, opt_int, sha256_text
from .connection import Opened, close_opened, open_reader, open_writer, translate
from .ki_rows import read_ki, write_ki
from .schema import MODEL_ROLES, RUN_KINDS, RUN_STATUSES, SCHEMA_VERSION
from .schema_check import foreign_problem

_RUN_INSERT = (
    "uid, run_key, kind, name, status, settings, versions, seed, subject_model_id, "
    "scorer_model_id, judge_model_id, started, finished, origin"
)
_RUN_COLUMNS = "id, " + _RUN_INSERT
_CHAIN_LIGHT = (
    "id, key, status, n_steps, info_gain_mean, delta_nll_mean, paper_info_gain, ki_mean, correct, mode, error, saved"
)


def compute_run_key(kind: str, settings: dict, model_sha256: dict[str, str], seed: int | None) -> str:
    """The identity of a run: same key = same work, whose completed chains may be reused."""
    return sha256_text(canonical_json({"kind": kind, "settings": settings, "models": model_sha256, "seed": seed}))


def _dicts(cursor: sqlite3.Cursor) -> list[dict]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class SessionStore:
    """A session file opened for writing (one per process) or for reading (any number)."""

    db: sqlite_utils.Database
    path: Path

    def __init__(self, path: Path, opened: Opened, writable: bool) -> None:
        self.path = path
        self._opened = opened
        self.writable = writable
        self.created = opened.created
        self.db = sqlite_utils.Database(opened.conn, execute_plugins=False)
        self._closed = False
        self._savepoints = 0

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True, write: bool = True) -> SessionStore:
        """Create (0600) or open and migrate a session; ``write=False`` opens it read-only."""
        p = Path(path).expanduser().absolute()
        opened = open_writer(p, create) if write else open_reader(p)
        return cls(p, opened, write)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            close_opened(self._opened)

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reader(self) -> SessionStore:
        """A new read-only connection to the same file, for another thread."""
        return SessionStore.open(self.path, create=False, write=False)

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self, action: str = "write to") -> Iterator[SessionStore]:
        """All writes inside happen in one transaction (nested blocks become savepoints)."""
        if not self.writable:
            raise StoreError(f"cannot {action} {self.path}: the session is open read-only")
        conn = self.conn
        nested = conn.in_transaction
        self._savepoints += 1
        savepoint = f"kiig_{self._savepoints}"
        try:
            conn.execute(f"SAVEPOINT {savepoint}" if nested else "BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                if conn.in_transaction:  # an error such as SQLITE_FULL may have ended it already
                    conn.execute(f"ROLLBACK TO {savepoint}" if nested else "ROLLBACK")
                    if nested:
                        conn.execute(f"RELEASE {savepoint}")
                raise
            conn.execute(f"RELEASE {savepoint}" if nested else "COMMIT")
        except (sqlite3.Error, OSError) as exc:
            if not nested and conn.in_transaction:
                conn.execute("ROLLBACK")  # e.g. COMMIT failed on a full disk
            raise translate(exc, self.path, action) from exc

    @contextmanager
    def _read(self) -> Iterator[None]:
        """A consistent snapshot for several SELECTs (no-op inside a transaction)."""
        if self.conn.in_transaction:
            yield
            return
        try:
            self.conn.execute("BEGIN")
            try:
                yield
            finally:
                if self.conn.in_transaction:
                    self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise translate(exc, self.path, "read") from exc

    def _one(self, sql: str, params: tuple = ()) -> tuple | None:
        try:
            return self.conn.execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            raise translate(exc, self.path, "read") from exc

    def _all(self, sql: str, params: tuple = ()) -> list[dict]:
        try:
            return _dicts(self.conn.execute(sql, params))
        except sqlite3.Error as exc:
            raise translate(exc, self.path, "read") from exc

    # ------------------------------------------------------------------ models

    def ensure_model(self, info: dict) -> int:
        """Insert a model or return the row with the same sha256 and path (filling missing fields)."""
        if not info.get("path") or not info.get("sha256"):
            raise ValueError("a model needs 'path' and 'sha256'")
        path, sha = str(info["path"]), str(info["sha256"])
        fields = {
            "name": info.get("name"),
            "architecture": info.get("architecture"),
            "quantization": info.get("quantization"),
            "parameters": opt_int(info.get("parameters")),
            "context_length": opt_int(info.get("context_length")),
            "size": opt_int(info.get("size")),
        }
        metadata = info.get("metadata")
        with self.transaction("save a model to"):
            row = self.conn.execute("SELECT id FROM models WHERE sha256 = ? AND path = ?", (sha, path)).fetchone()
            if row:
                sets = ", ".join(f"{k} = COALESCE({k}, ?)" for k in fields)
                params: list[Any] = list(fields.values())
                if metadata:
                    sets += ", metadata = ?"
                    params.append(dumps(metadata))
                self.conn.execute(f"UPDATE models SET {sets} WHERE id = ?", (*params, row[0]))
                return int(row[0])
            cur = self.conn.execute(
                "INSERT INTO models (path, sha256, name, architecture, quantization, parameters, context_length, "
                "size, metadata, added) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (path, sha, *fields.values(), dumps(metadata or {}), now_iso()),
            )
            return int(cur.lastrowid)

    def get_model(self, model_id: int) -> dict:
        rows = self._all("SELECT * FROM models WHERE id = ?", (model_id,))
        if not rows:
            raise StoreError(f"no model {model_id} in {self.path}")
        rows[0]["metadata"] = loads(rows[0]["metadata"])
        return rows[0]

    # ------------------------------------------------------------------ runs

    def find_or_create_run(
        self,
        kind: str,
        settings: dict,
        models: dict[str, int],
        versions: dict,
        seed: int | None = None,
        name: str | None = None,
    ) -> tuple[int, bool]:
        """Reuse the run with the same kind, settings, seed and model files (sha256), or start one.

        Returns ``(run_id, created)``; a reused run is set back to ``running`` unless it had
        finished (a finished run stays finished: a rerun only reloads or retries its chains).
        """
        if kind not in RUN_KINDS:
            raise ValueError(f"unknown run kind {kind!r}; expected one of {RUN_KINDS}")
        shas = {}
        for role, model_id in sorted(models.items()):
            if role not in MODEL_ROLES:
                raise ValueError(f"unknown model role {role!r}; expected one of {MODEL_ROLES}")
            row = self._one("SELECT sha256 FROM models WHERE id = ?", (model_id,))
            if row is None:
                raise ValueError(f"no model {model_id} in this session (call ensure_model first)")
            shas[role] = row[0]
        key = compute_run_key(kind, settings, shas, seed)
        with self.transaction("start a run in"):
            row = self.conn.execute("SELECT id FROM runs WHERE run_key = ? ORDER BY id DESC LIMIT 1", (key,)).fetchone()
            if row:
                self.conn.execute("UPDATE runs SET status = 'running', finished = NULL WHERE id = ? AND status <> 'finished'", (row[0],))
                return int(row[0]), False
            run_id = self.insert_run(
                uid=uuid.uuid4().hex, run_key=key, kind=kind, name=name, status="running", settings=settings,
                versions=versions, seed=seed, models=models, started=now_iso(), finished=None, origin=None,
            )
            return run_id, True

    def insert_run(self, *, uid: str, run_key: str, kind: str, name: str | None, status: str, settings: dict,
                   versions: dict, seed: int | None, models: dict[str, int], started: str, finished: str | None,
                   origin: dict | None) -> int:
        """Low level (import): add a run with a given identity; ``find_or_create_run`` is the normal way."""
        with self.transaction("add a run to"):
            cur = self.conn.execute(
                f"INSERT INTO runs ({_RUN_INSERT}) VALUES ({', '.join('?' * 14)})",
                (uid, run_key, kind, name, status, dumps(settings), dumps(versions or {}), seed,
                 models.get("subject"), models.get("scorer"), models.get("judge"), started, finished, dumps_opt(origin)),
            )
            return int(cur.lastrowid)

    def set_run_status(self, run_id: int, status: str) -> None:
        """Mark a run running/finished/cancelled/failed/interrupted (stamps ``finished`` when it ends)."""
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}; expected one of {RUN_STATUSES}")
        finished = None if status == "running" else now_iso()
        with self.transaction("update a run in"):
            row = self.conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise StoreError(f"no run {run_id} in {self.path}")
            if row[0] == "finished" and status != "finished":
                return  # a finished run stays finished when a rerun over it stops or fails
            self.conn.execute("UPDATE runs SET status = ?, finished = ? WHERE id = ?", (status, finished, run_id))

    def _run_dicts(self, where: str, params: tuple) -> list[dict]:
        runs = self._all(
            f"SELECT {_RUN_COLUMNS}, (SELECT count(*) FROM chains c WHERE c.run_id = runs.id) AS n_chains, "
            "(SELECT count(*) FROM chains c WHERE c.run_id = runs.id AND c.status = 'error') AS n_errors "
            f"FROM runs {where} ORDER BY id",
            params,
        )
        model_ids = {r[f"{role}_model_id"] for r in runs for role in MODEL_ROLES} - {None}
        models = {}
        if model_ids:
            marks = ", ".join("?" * len(model_ids))
            for m in self._all(f"SELECT id, path, sha256, name, quantization FROM models WHERE id IN ({marks})", tuple(model_ids)):
                models[m["id"]] = m
        for r in runs:
            r["settings"] = loads(r["settings"])
            r["versions"] = loads(r["versions"])
            r["origin"] = loads(r["origin"])
            r["models"] = {role: models[r[f"{role}_model_id"]] for role in MODEL_ROLES if r[f"{role}_model_id"]}
        return runs

    def list_runs(self) -> list[dict]:
        """Every run with its settings, models by role and chain counts, oldest first."""
        return self._run_dicts("", ())

    def get_run(self, run_id: int) -> dict:
        runs = self._run_dicts("WHERE id = ?", (run_id,))
        if not runs:
            raise StoreError(f"no run {run_id} in {self.path}")
        return runs[0]

    def delete_run(self, run_id: int) -> None:
        """Remove a run with its chains, steps, curves, generations, KI, and items no chain uses."""
        with self.transaction("delete a run from"):
            gens = [r[0] for r in self.conn.execute(
                "SELECT generation_id FROM chains WHERE run_id = ? AND generation_id IS NOT NULL", (run_id,))]
            if self.conn.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount == 0:
                raise StoreError(f"no run {run_id} in {self.path}")
            self.conn.executemany("DELETE FROM generations WHERE id = ?", [(g,) for g in gens])
            self.conn.execute("DELETE FROM items WHERE id NOT IN (SELECT item_id FROM chains WHERE item_id IS NOT NULL)")

    # ------------------------------------------------------------------ chains

    def completed_chain_keys(self, run_id: int) -> set[str]:
        """Keys of chains stored for the run (finished or error: both count as done)."""
        try:
            return {r[0] for r in self.conn.execute("SELECT key FROM chains WHERE run_id = ?", (run_id,))}
        except sqlite3.Error as exc:
            raise translate(exc, self.path, "read") from exc

    def save_chain(self, run_id: int, key: str, record: dict, *, item: dict | None = None,
                   generation: dict | None = None, ki: dict | None = None) -> int:
        """Store one finished chain in ONE transaction; returns the chain id.

        ``ki`` (optional): ``{"judge_model_id", "corpus", "steps", "ki_mean", "mode"?, "k"?, "method"?}`` as for ``save_ki``.
        Saving a key the run already has re-saves that chain under the same id (``chain_rows.write_chain``):
        what hangs off it -- KI evaluations, their evidence -- is kept, and marked as made on an earlier
        version when the record changed.
        """
        if not isinstance(record, dict):
            raise TypeError("record must be a dict")
        steps = record.get("steps") or []
        if not isinstance(steps, list):
            raise ValueError("record['steps'] must be a list")
        correct = generation.get("correct") if generation and "correct" in generation else record.get("correct")
        with self.transaction("save a chain to"):
            if self.conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise StoreError(f"no run {run_id} in {self.path}")
            item_id = self._item_id(item) if item is not None else None
            gen_id = None
            if generation is not None:
                gen_cur = self.conn.execute(
                    "INSERT INTO generations (model_id, text, n_tokens, token_text, logprob, entropy_bits, "
                    "extracted_answer, correct, extra, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    R.generation_row(generation, opt_int(generation.get("model_id")), now_iso()),
                )
                gen_id = int(gen_cur.lastrowid)
            chain_id = write_chain(self.conn, run_id, str(key), record, correct, item_id, gen_id)
            if ki is not None:
                self._save_ki(chain_id, int(ki["judge_model_id"]), str(ki["corpus"]), ki.get("steps") or [], ki.get("ki_mean"),
                              {k: ki[k] for k in ("mode", "k", "method", "build") if k in ki})
            return chain_id

    def _item_id(self, item: dict) -> int:
        row = R.item_row(item)
        self.conn.execute(
            "INSERT OR IGNORE INTO items (key, sha256, kind, question, answer, options, answer_idx, extra) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )
        return int(self.conn.execute("SELECT id FROM items WHERE sha256 = ?", (row[1],)).fetchone()[0])

    def _chain_record(self, chain_id: int) -> dict:
        row = self._one("SELECT record FROM chains WHERE id = ?", (chain_id,))
        if row is None:
            raise StoreError(f"no chain {chain_id} in {self.path}")
        return loads(row[0])

    def _curve(self, chain_id: int) -> dict | None:
        row = self._one(
            "SELECT token_ids, pieces, surprisal_bits, entropy_bits, step, extra FROM token_curves WHERE chain_id = ?",
            (chain_id,),
        )
        return None if row is None else R.curve_from_row(row)

    def load_chain(self, chain_id: int, *, curve: bool = True) -> dict:
        """The record exactly as saved (its token curve in float32 precision, or left out)."""
        with self._read():
            record = self._chain_record(chain_id)
            if R.has_curve_placeholder(record):
                if curve:
                    record["token_curve"] = self._curve(chain_id)
                else:
                    del record["token_curve"]
        return record

    def chain_id(self, run_id: int, key: str) -> int | None:
        row = self._one("SELECT id FROM chains WHERE run_id = ? AND key = ?", (run_id, str(key)))
        return None if row is None else int(row[0])

    def chains_for_run(self, run_id: int) -> list[dict]:
        """Light rows (no record, no curve) in save order, for tables and summaries."""
        rows = self._all(f"SELECT {_CHAIN_LIGHT} FROM chains WHERE run_id = ? ORDER BY id", (run_id,))
        for r in rows:
            r["correct"] = None if r["correct"] is None else bool(r["correct"])
        return rows

    def load_run_records(self, run_id: int, *, curves: bool = False) -> dict[str, dict]:
        """key -> record for every chain of a run, in save order (curves left out by default)."""
        out: dict[str, dict] = {}
        with self._read():
            for chain_id, key, text in self.conn.execute(
                "SELECT id, key, record FROM chains WHERE run_id = ? ORDER BY id", (run_id,)
            ).fetchall():
                record = loads(text)
                if R.has_curve_placeholder(record):
                    if curves:
                        record["token_curve"] = self._curve(chain_id)
                    else:
                        del record["token_curve"]
                out[key] = record
        return out

    def load_item(self, chain_id: int) -> dict | None:
        row = self._one(
            "SELECT i.key, i.kind, i.question, i.answer, i.options, i.answer_idx, i.extra "
            "FROM chains c JOIN items i ON i.id = c.item_id WHERE c.id = ?",
            (chain_id,),
        )
        return None if row is None else R.item_from_row(row)

    def load_generation(self, chain_id: int) -> dict | None:
        row = self._one(
            "SELECT g.model_id, g.text, g.token_text, g.logprob, g.entropy_bits, g.extracted_answer, g.correct, "
            "g.extra FROM chains c JOIN generations g ON g.id = c.generation_id WHERE c.id = ?",
            (chain_id,),
        )
        return None if row is None else R.generation_from_row(row)

    # ------------------------------------------------------------------ knowledge index

    def save_ki(self, chain_id: int, judge_model_id: int, corpus: str, steps: list[dict], ki_mean: float | None,
                how: dict | None = None) -> None:
        """Store (or replace) one judge's KI evidence for a chain, in one transaction (``how``: mode, k, method)."""
        with self.transaction("save KI evidence to"):
            if self.conn.execute("SELECT 1 FROM chains WHERE id = ?", (chain_id,)).fetchone() is None:
                raise StoreError(f"no chain {chain_id} in {self.path}")
            self._save_ki(chain_id, judge_model_id, corpus, steps, ki_mean, how)

    def _save_ki(self, chain_id: int, judge_model_id: int, corpus: str, steps: list[dict], ki_mean: float | None,
                 how: dict | None = None) -> None:
        write_ki(self.conn, chain_id, judge_model_id, corpus, steps, ki_mean, how)

    def load_ki(self, chain_id: int) -> list[dict]:
        """Every KI evaluation of a chain: ``[{"judge_model_id", "judge", "corpus", "ki_mean", "created", "steps", "mode", "k", "method", "build"}]``."""
        with self._read():
            return read_ki(self.conn, chain_id)

    # ------------------------------------------------------------------ integrity

    def require_intact(self) -> None:
        """Refuse to write into a damaged session: SQLite's quick check (seconds even for large files)."""
        try:
            with self._read():
                result = [r[0] for r in self.conn.execute("PRAGMA quick_check").fetchall()]
        except sqlite3.DatabaseError as exc:
            result = [str(exc)]
        if result != ["ok"]:
            raise StoreError(f"{self.path} is damaged (SQLite reports: {result[0]}); nothing was written to it",
                             hint="`kiig sessions --db FILE --check` lists the problems; restore it from a backup or "
                                  "salvage it with `sqlite3 FILE .recover`")

    def check(self) -> list[str]:
        """Problems found (empty: healthy): SQLite integrity, foreign keys, incomplete chains, finished chains without steps, objects KIIG did not create."""
        problems: list[str] = []
        with self._read():
            result = [r[0] for r in self.conn.execute("PRAGMA integrity_check").fetchall()]
            if result != ["ok"]:
                problems += [f"integrity: {r}" for r in result]
            for table, rowid, parent, _ in self.conn.execute("PRAGMA foreign_key_check").fetchall():
                problems.append(f"foreign key: {table} row {rowid} points to a missing {parent} row")
            for chain_id, n_steps, found in self.conn.execute(
                "SELECT c.id, c.n_steps, (SELECT count(*) FROM steps s WHERE s.chain_id = c.id) FROM chains c"
            ).fetchall():
                if n_steps != found:
                    problems.append(f"chain {chain_id}: {found} of {n_steps} steps stored")
            for (chain_id,) in self.conn.execute("SELECT id FROM chains WHERE status = 'finished' AND n_steps = 0"):
                problems.append(f"chain {chain_id}: finished with no steps (KIIG stores such a chain as an error)")
            for (chain_id,) in self.conn.execute(
                "SELECT id FROM chains WHERE json_extract(record, '$.token_curve.stored_in') IS NOT NULL "
                "AND id NOT IN (SELECT chain_id FROM token_curves)"
            ).fetchall():
                problems.append(f"chain {chain_id}: its token curve is missing")
            if foreign := foreign_problem(self.conn):
                problems.append(foreign)
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                problems.append(f"schema version {version}, expected {SCHEMA_VERSION}")
        return problems
