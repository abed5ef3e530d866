"""Writing a chain: a new one, or a re-save of a key its run already has. SQL only; ``session.py``
owns the transactions.

A re-save never deletes the chain row, so nothing keyed by the chain (KI evaluations and their
evidence, and any later table that points at ``chains.id``) is lost by a cascade:

- same record (same :func:`record_digest`): the chain, its steps and curve stay as they are; only
  the item and the generation are replaced, when given;
- changed record: the chain row, its steps (updated in place by position, so step rows keep their
  ids) and its curve are rewritten; KI evaluations stay, and since each names the digest of the
  record it was made on (``ki_evaluations.chain_sha256``), they read back as made on an earlier
  version (``current: False``).
"""

from __future__ import annotations

import hashlib
import sqlite3

from . import rows as R
from .codec import canonical_json, loads, now_iso

_STEP_UPDATE = ", ".join(f"{c} = excluded.{c}" for c in (
    "idx", "text", "start_char", "end_char", *R.STEP_FLOAT_KEYS, "option_probs", "applicable", "ki", "planning", "knowledge"))
STEP_UPSERT = R.STEP_INSERT + f" ON CONFLICT (chain_id, pos) DO UPDATE SET {_STEP_UPDATE}"
_CURVE_COLUMNS = ("n_tokens", "token_ids", "pieces", "surprisal_bits", "entropy_bits", "step", "extra")
CURVE_UPSERT = (
    f"INSERT INTO token_curves (chain_id, {', '.join(_CURVE_COLUMNS)}) VALUES ({', '.join('?' * (1 + len(_CURVE_COLUMNS)))}) "
    f"ON CONFLICT (chain_id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _CURVE_COLUMNS)}"
)


def record_digest(record_text: str, curve: tuple | None) -> str:
    """SHA-256 of the canonical JSON (UTF-8, odd token pieces' lone surrogates passed through) of the
    record as ``load_chain`` returns it (its curve in float32).

    ``record_text``: the stored record JSON; ``curve``: its token_curves row from ``token_ids`` on
    (None when it has none).
    """
    record = loads(record_text)
    if curve is not None and R.has_curve_placeholder(record):
        record["token_curve"] = R.curve_from_row(curve)
    return hashlib.sha256(canonical_json(record).encode("utf-8", "surrogatepass")).hexdigest()


def fill_digests(conn: sqlite3.Connection) -> None:
    """Migration 3: every chain's digest, and every KI evaluation marked as made on its chain as it is
    now (until then a re-save deleted a chain's KI, so what is left was made on the current record)."""
    rows = conn.execute(
        "SELECT c.id, c.record, t.token_ids, t.pieces, t.surprisal_bits, t.entropy_bits, t.step, t.extra "
        "FROM chains c LEFT JOIN token_curves t ON t.chain_id = c.id").fetchall()
    for chain_id, text, *curve in rows:
        digest = record_digest(text, None if curve[-1] is None else tuple(curve))
        conn.execute("UPDATE chains SET record_sha256 = ? WHERE id = ?", (digest, chain_id))
    conn.execute("UPDATE ki_evaluations SET chain_sha256 = (SELECT record_sha256 FROM chains WHERE chains.id = chain_id)")


def write_chain(conn: sqlite3.Connection, run_id: int, key: str, record: dict, correct: object, item_id: int | None,
                generation_id: int | None) -> int:
    """Insert the chain, or re-save the run's chain of that key keeping what hangs off it; returns its id.

    ``generation_id``: a generation row just inserted for it (replaces the old one), or None (the
    old one is kept when the record is unchanged and removed when it changed).
    """
    text, curve = R.record_json(record)
    curve_row = None if curve is None else R.curve_row(0, curve)
    digest = record_digest(text, None if curve_row is None else curve_row[2:])
    cols = R.chain_columns(record, correct)
    steps = record.get("steps") or []
    old = conn.execute("SELECT id, generation_id, record_sha256 FROM chains WHERE run_id = ? AND key = ?", (run_id, key)).fetchone()
    if old is None:
        names = ["run_id", "key", "item_id", "generation_id", *cols, "record", "record_sha256", "saved"]
        cur = conn.execute(f"INSERT INTO chains ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                           (run_id, key, item_id, generation_id, *cols.values(), text, digest, now_iso()))
        chain_id = int(cur.lastrowid)
        conn.executemany(R.STEP_INSERT, R.step_rows(chain_id, steps))
        if curve_row is not None:
            conn.execute(CURVE_UPSERT, (chain_id, *curve_row[1:]))
        return chain_id
    chain_id, old_generation, same = int(old[0]), old[1], old[2] == digest
    if generation_id is None and same:
        generation_id = old_generation
    if same:
        conn.execute("UPDATE chains SET item_id = COALESCE(?, item_id), generation_id = ? WHERE id = ?",
                     (item_id, generation_id, chain_id))
    else:
        sets = ", ".join(f"{k} = ?" for k in ["item_id", "generation_id", *cols, "record", "record_sha256", "saved"])
        conn.execute(f"UPDATE chains SET {sets} WHERE id = ?",
                     (item_id, generation_id, *cols.values(), text, digest, now_iso(), chain_id))
        conn.executemany(STEP_UPSERT, R.step_rows(chain_id, steps))
        conn.execute("DELETE FROM steps WHERE chain_id = ? AND pos >= ?", (chain_id, len(steps)))
        if curve_row is None:
            conn.execute("DELETE FROM token_curves WHERE chain_id = ?", (chain_id,))
        else:
            conn.execute(CURVE_UPSERT, (chain_id, *curve_row[1:]))
    if old_generation is not None and old_generation != generation_id:
        conn.execute("DELETE FROM generations WHERE id = ?", (old_generation,))
    return chain_id


def digest_of(conn: sqlite3.Connection, chain_id: int) -> str | None:
    row = conn.execute("SELECT record_sha256 FROM chains WHERE id = ?", (chain_id,)).fetchone()
    return None if row is None else row[0]

