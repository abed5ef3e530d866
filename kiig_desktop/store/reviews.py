"""Clinician reviews in the session: per step (knowledge, role, note) and per chain (verdict, note).

Reviews are append-only (see ``schema.py``): a change adds a row, and the current review of a
step (or chain) by a reviewer is its latest row. Rows are keyed by run id + chain key + step
index, never by ``chains.id``: re-saving a chain replaces its row, and its reviews must survive
that. Each row carries the hash of the chain record it was made on (``rows.record_hash``); a row
whose hash differs from the chain's current record is *stale* (made on an earlier version).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ..errors import InputError, StoreError
from .codec import now_iso
from .rows import record_hash
from .schema import CHAIN_VERDICTS, KNOWLEDGE_VERDICTS, ROLE_VERDICTS
from .session import SessionStore

UNCHANGED: Any = object()
STEP_FIELDS = ("knowledge", "role", "note")
CHAIN_FIELDS = ("verdict", "note")
_CHOICES = {"knowledge": KNOWLEDGE_VERDICTS, "role": ROLE_VERDICTS, "verdict": CHAIN_VERDICTS}
_STEP_COLS = "id, run_id, chain_key, step_index, reviewer, knowledge, role, note, record_sha256, created, origin"
_CHAIN_COLS = "id, run_id, chain_key, reviewer, verdict, note, record_sha256, created, origin"


def check_value(field: str, value: Any) -> str | None:
    """A verdict or note as stored (None clears it); InputError names the allowed values."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"{field} must be text or null, got {type(value).__name__}")
    if field in _CHOICES and value not in _CHOICES[field]:
        raise InputError(f"{field} must be one of {', '.join(_CHOICES[field])} (or null), got {value[:40]!r}")
    return value if field != "note" else (value.strip() or None)


def check_reviewer(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InputError("a review needs a reviewer name")
    return name.strip()


_HASHES: dict[tuple, str] = {}  # (session path, chain id, stored digest) -> record hash
_HASHES_MAX = 100_000


def chain_hashes(store: SessionStore, run_id: int) -> dict[str, tuple[str, int]]:
    """chain key -> (record hash, number of steps) for every chain of a run.

    Every save stores the record's digest with the chain (``chains.record_sha256``), so a hash is
    remembered per (file, chain id, digest): reviewing step after step does not hash every record of
    the run again, and a chain re-scored in place (same id, same second) is never mistaken for the
    old version. A chain saved before digests existed (NULL) is hashed each time.
    """
    out = {}
    for chain_id, key, digest, n in store.conn.execute(
            "SELECT id, key, record_sha256, n_steps FROM chains WHERE run_id = ?", (run_id,)).fetchall():
        cache_key = (str(store.path), int(chain_id), digest)
        if digest is None or cache_key not in _HASHES:
            if len(_HASHES) >= _HASHES_MAX:
                _HASHES.clear()
            text = store.conn.execute("SELECT record FROM chains WHERE id = ?", (chain_id,)).fetchone()[0]
            _HASHES[cache_key] = record_hash(text)
        out[key] = (_HASHES[cache_key], int(n))
    return out


def _current_hash(store: SessionStore, run_id: int, chain_key: str, step_index: int | None) -> str:
    row = store.conn.execute("SELECT record, n_steps FROM chains WHERE run_id = ? AND key = ?", (run_id, chain_key)).fetchone()
    if row is None:
        raise StoreError(f"no chain {chain_key!r} in run {run_id} of {store.path}")
    if step_index is not None and not 0 <= step_index < int(row[1]):
        raise StoreError(f"chain {chain_key!r} has no step {step_index} (it has {row[1]})")
    return record_hash(row[0])


def chain_key(store: SessionStore, chain_id: int) -> str | None:
    """The key of a chain row (what reviews are keyed by), or None when it is gone."""
    row = store._one("SELECT key FROM chains WHERE id = ?", (chain_id,))
    return None if row is None else str(row[0])


def _latest(store: SessionStore, table: str, cols: str, where: str, params: tuple) -> dict | None:
    rows = store._all(f"SELECT {cols} FROM {table} WHERE {where} ORDER BY id DESC LIMIT 1", params)
    return rows[0] if rows else None


def review_step(store: SessionStore, run_id: int, chain_key: str, step_index: int, reviewer: str, *,
                knowledge: Any = UNCHANGED, role: Any = UNCHANGED, note: Any = UNCHANGED) -> dict:
    """Change a reviewer's review of one step: fields left UNCHANGED keep their current value.

    Adds a row (made on the chain's current record) unless nothing changes; returns the current review.
    """
    reviewer = check_reviewer(reviewer)
    asked = {k: check_value(k, v) for k, v in (("knowledge", knowledge), ("role", role), ("note", note)) if v is not UNCHANGED}
    with store.transaction("save a review to"):
        sha = _current_hash(store, run_id, chain_key, step_index)
        where, params = "run_id = ? AND chain_key = ? AND step_index = ? AND reviewer = ?", (run_id, chain_key, step_index, reviewer)
        old = _latest(store, "step_reviews", _STEP_COLS, where, params)
        values = {k: (old or {}).get(k) for k in STEP_FIELDS} | asked
        if old is None or any(values[k] != old[k] for k in STEP_FIELDS) or old["record_sha256"] != sha:
            insert_step_row(store.conn, {"run_id": run_id, "chain_key": chain_key, "step_index": step_index,
                                         "reviewer": reviewer, **values, "record_sha256": sha, "created": now_iso()})
        return _latest(store, "step_reviews", _STEP_COLS, where, params) or {}


def review_chain(store: SessionStore, run_id: int, chain_key: str, reviewer: str, *,
                 verdict: Any = UNCHANGED, note: Any = UNCHANGED) -> dict:
    """Change a reviewer's overall review of a chain (as :func:`review_step`)."""
    reviewer = check_reviewer(reviewer)
    asked = {k: check_value(k, v) for k, v in (("verdict", verdict), ("note", note)) if v is not UNCHANGED}
    with store.transaction("save a review to"):
        sha = _current_hash(store, run_id, chain_key, None)
        where, params = "run_id = ? AND chain_key = ? AND reviewer = ?", (run_id, chain_key, reviewer)
        old = _latest(store, "chain_reviews", _CHAIN_COLS, where, params)
        values = {k: (old or {}).get(k) for k in CHAIN_FIELDS} | asked
        if old is None or any(values[k] != old[k] for k in CHAIN_FIELDS) or old["record_sha256"] != sha:
            insert_chain_row(store.conn, {"run_id": run_id, "chain_key": chain_key, "reviewer": reviewer, **values,
                                          "record_sha256": sha, "created": now_iso()})
        return _latest(store, "chain_reviews", _CHAIN_COLS, where, params) or {}


def insert_step_row(conn: sqlite3.Connection, row: dict) -> None:
    """Low level (import): append one step review row as given (inside the caller's transaction)."""
    conn.execute(
        "INSERT INTO step_reviews (run_id, chain_key, step_index, reviewer, knowledge, role, note, record_sha256, created, origin) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (row["run_id"], row["chain_key"], row["step_index"], row["reviewer"], row.get("knowledge"), row.get("role"),
         row.get("note"), row["record_sha256"], row["created"], row.get("origin")),
    )


def insert_chain_row(conn: sqlite3.Connection, row: dict) -> None:
    """Low level (import): append one chain review row as given."""
    conn.execute(
        "INSERT INTO chain_reviews (run_id, chain_key, reviewer, verdict, note, record_sha256, created, origin) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (row["run_id"], row["chain_key"], row["reviewer"], row.get("verdict"), row.get("note"), row["record_sha256"],
         row["created"], row.get("origin")),
    )


def _mark_stale(store: SessionStore, run_id: int, rows: list[dict]) -> list[dict]:
    hashes = chain_hashes(store, run_id)
    for r in rows:
        current = hashes.get(r["chain_key"])
        r["stale"] = current is None or current[0] != r["record_sha256"]
    return rows


def step_reviews(store: SessionStore, run_id: int, *, history: bool = False, reviewer: str | None = None) -> list[dict]:
    """Step reviews of a run (current ones, or every row with ``history``), each with ``stale``."""
    where, params = "run_id = ?", (run_id,)
    if reviewer is not None:
        where, params = where + " AND reviewer = ?", (*params, reviewer)
    if not history:
        where = (f"id IN (SELECT max(id) FROM step_reviews WHERE {where} "
                 "GROUP BY chain_key, step_index, reviewer)")
    with store._read():
        rows = store._all(f"SELECT {_STEP_COLS} FROM step_reviews WHERE {where} ORDER BY id", params)
        return _mark_stale(store, run_id, rows)


def chain_reviews(store: SessionStore, run_id: int, *, history: bool = False, reviewer: str | None = None) -> list[dict]:
    """Chain reviews of a run (current ones, or every row with ``history``), each with ``stale``."""
    where, params = "run_id = ?", (run_id,)
    if reviewer is not None:
        where, params = where + " AND reviewer = ?", (*params, reviewer)
    if not history:
        where = f"id IN (SELECT max(id) FROM chain_reviews WHERE {where} GROUP BY chain_key, reviewer)"
    with store._read():
        rows = store._all(f"SELECT {_CHAIN_COLS} FROM chain_reviews WHERE {where} ORDER BY id", params)
        return _mark_stale(store, run_id, rows)


def reviewed_chains(store: SessionStore, run_id: int, reviewer: str | None = None) -> set[str]:
    """Keys of the chains whose every step has a current knowledge and role verdict (not stale)."""
    with store._read():
        hashes = chain_hashes(store, run_id)
        done: dict[str, set[int]] = {}
        for r in step_reviews(store, run_id, reviewer=reviewer):
            if r["knowledge"] and r["role"] and not r["stale"]:
                done.setdefault(r["chain_key"], set()).add(r["step_index"])
    return {k for k, steps in done.items() if k in hashes and len(steps) >= hashes[k][1] > 0}


def progress(store: SessionStore, run_id: int, reviewer: str | None = None) -> dict:
    """``{"reviewed", "total"}``: chains reviewed (:func:`reviewed_chains`) of the run's chains with steps."""
    total = store._one("SELECT count(*) FROM chains WHERE run_id = ? AND n_steps > 0", (run_id,))
    return {"reviewed": len(reviewed_chains(store, run_id, reviewer)), "total": int(total[0]) if total else 0}


def reviewers(store: SessionStore, run_id: int | None = None) -> list[str]:
    """Every reviewer name with a review (of the run, or of the session), sorted."""
    where, params = ("WHERE run_id = ?", (run_id,)) if run_id is not None else ("", ())
    rows = store._all(f"SELECT reviewer FROM step_reviews {where} UNION SELECT reviewer FROM chain_reviews {where}",
                      params + params)
    return sorted(r["reviewer"] for r in rows)


def review_claims(store: SessionStore, run_id: int | None = None) -> list[dict]:
    """The reviewed steps as labelled claims for ``kiig judge-check --from-reviews``.

    One claim per step with a current, not stale knowledge verdict of correct (label True) or
    incorrect (False); the claim is the step's ``knowledge`` text when the record has one, else
    its text. A step the reviewers label differently is left out (no agreed label).
    """
    runs = [run_id] if run_id is not None else [r["id"] for r in store.list_runs()]
    claims = []
    for rid in runs:
        uid = store.get_run(rid)["uid"]
        labels: dict[tuple[str, int], set[bool]] = {}
        for r in step_reviews(store, rid):
            if r["knowledge"] in ("correct", "incorrect") and not r["stale"]:
                labels.setdefault((r["chain_key"], r["step_index"]), set()).add(r["knowledge"] == "correct")
        records = store.load_run_records(rid) if labels else {}
        for (key, pos), found in sorted(labels.items()):
            steps = records.get(key, {}).get("steps") or []
            step = steps[pos] if pos < len(steps) and isinstance(steps[pos], dict) else {}
            text = step.get("knowledge") if isinstance(step.get("knowledge"), str) and step["knowledge"].strip() else step.get("text")
            if len(found) == 1 and isinstance(text, str) and text.strip():
                claims.append({"id": f"{uid}:{key}:{pos}", "claim": text, "label": found.pop(), "kind": "reviewed"})
    return claims
