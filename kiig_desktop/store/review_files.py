"""Reviews out of and into a session: JSONL / CSV export, import of another reviewer's reviews.

An exported row is one review row (``--history``: every row; else the current ones):
``{"kiig_review": 1, "kind": "step"|"chain", "run_uid", "run_key", "run_id", "chain_key",
"step_index", "reviewer", "knowledge", "role", "verdict", "note", "record_sha256", "created",
"stale"}``. Import reads such a JSONL file or another session file (all its review rows) and
matches each row to a run of this session by ``run_uid`` (else the latest run with the same
``run_key``), then by chain key and step index. The file is checked whole first: every row that
is malformed or matches nothing is listed with its line, and nothing is stored. A row whose
``record_sha256`` differs from the chain's current record is stored and reported as stale (made
on an earlier version of the chain). Rows already in the session are not added twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..errors import InputError, KiigError, StoreError
from ..files import private_output
from ..strict_json import JSONProblem, bad_lines_error, loads
from . import export, reviews
from .session import SessionStore

REVIEW_FORMAT = 1
COLUMNS = ("kind", "run_uid", "run_key", "run_id", "chain_key", "step_index", "reviewer", "knowledge", "role", "verdict",
           "note", "record_sha256", "created", "stale")
_SHA = re.compile(r"[0-9a-f]{64}")


def iter_rows(store: SessionStore, run_ids: list[int] | None = None, *, history: bool = False) -> Iterator[dict]:
    """Export rows of the runs (default: every run), step reviews then chain reviews per run."""
    for run in store.list_runs():
        if run_ids is not None and run["id"] not in run_ids:
            continue
        base = {"kiig_review": REVIEW_FORMAT, "run_uid": run["uid"], "run_key": run["run_key"], "run_id": run["id"]}
        for r in reviews.step_reviews(store, run["id"], history=history):
            yield {**base, "kind": "step", **{k: r.get(k) for k in COLUMNS if k in r and k != "run_id"}, "verdict": None}
        for r in reviews.chain_reviews(store, run["id"], history=history):
            yield {**base, "kind": "chain", **{k: r.get(k) for k in COLUMNS if k in r and k != "run_id"},
                   "step_index": None, "knowledge": None, "role": None}


def write_rows(rows: Iterator[dict], fmt: str, out: IO[str]) -> int:
    """Review rows as CSV (:data:`COLUMNS`) or JSONL (the format marker first), through the one row writer."""
    return export.write_rows(rows, fmt, out, COLUMNS,
                             lambda row: {"kiig_review": row["kiig_review"], **{c: row.get(c) for c in COLUMNS}})


def export_reviews(store: SessionStore, run_ids: list[int] | None, fmt: str, output: Path | None, stdout: IO[str],
                   *, history: bool = False) -> int:
    """Write the reviews to ``output`` (owner-only, replaced atomically) or ``stdout``; returns the row count."""
    if output is None:
        return write_rows(iter_rows(store, run_ids, history=history), fmt, stdout)
    with private_output(output, newline="", error=StoreError, keep=(store.path,)) as fh:
        return write_rows(iter_rows(store, run_ids, history=history), fmt, fh)


# --------------------------------------------------------------------------- importing


def _read_source(path: Path) -> list[tuple[int, dict | str]]:
    """(line, row or why it is bad) for a JSONL file, or (n, row) for every review of a session file."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head.startswith(b"SQLite format 3"):
        try:
            with SessionStore.open(path, create=False, write=False) as other:
                return list(enumerate(iter_rows(other, history=True), 1))
        except KiigError as exc:
            raise InputError(f"cannot read the reviews of {path}: {exc}") from None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None
    out: list[tuple[int, dict | str]] = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                row = loads(line)
            except JSONProblem as exc:
                out.append((n, str(exc)))
                continue
            out.append((n, row if isinstance(row, dict) else "expected a JSON object"))
    return out


def _row_problem(row: dict) -> str | None:
    if row.get("kiig_review") != REVIEW_FORMAT:
        return f"not a KIIG review row (\"kiig_review\": {REVIEW_FORMAT})"
    if row.get("kind") not in ("step", "chain"):
        return "kind must be \"step\" or \"chain\""
    for key in ("chain_key", "created"):
        if not isinstance(row.get(key), str) or not row[key]:
            return f"{key} must be text"
    if not isinstance(row.get("record_sha256"), str) or not _SHA.fullmatch(row["record_sha256"]):
        return "record_sha256 must be 64 lowercase hex digits"
    if row["kind"] == "step":
        idx = row.get("step_index")
        if isinstance(idx, bool) or not isinstance(idx, int) or idx < 0:
            return "step_index must be a whole number >= 0"
    fields = ("knowledge", "role", "note") if row["kind"] == "step" else ("verdict", "note")
    try:
        reviews.check_reviewer(row.get("reviewer"))
        for f in fields:
            reviews.check_value(f, row.get(f))
    except InputError as exc:
        return str(exc)
    return None


def _match(store: SessionStore, row: dict, runs: list[dict], hashes: dict[int, dict]) -> tuple[int, str] | str:
    """(run id, current record hash) for a row, or why it matches nothing in this session."""
    run = next((r for r in runs if r["uid"] == row.get("run_uid")), None)
    run = run or next((r for r in reversed(runs) if r["run_key"] == row.get("run_key")), None)
    if run is None:
        return f"its run ({str(row.get('run_uid'))[:12]}) is not in this session"
    if run["id"] not in hashes:
        hashes[run["id"]] = reviews.chain_hashes(store, run["id"])
    chain = hashes[run["id"]].get(row["chain_key"])
    if chain is None:
        return f"run {run['id']} has no chain {row['chain_key']!r}"
    if row["kind"] == "step" and row["step_index"] >= chain[1]:
        return f"chain {row['chain_key']!r} has no step {row['step_index']} (it has {chain[1]})"
    return run["id"], chain[0]


def _exists(store: SessionStore, run_id: int, row: dict) -> bool:
    if row["kind"] == "step":
        return store._one("SELECT 1 FROM step_reviews WHERE run_id = ? AND chain_key = ? AND step_index = ? AND reviewer = ? "
                          "AND created = ?", (run_id, row["chain_key"], row["step_index"], row["reviewer"], row["created"])) is not None
    return store._one("SELECT 1 FROM chain_reviews WHERE run_id = ? AND chain_key = ? AND reviewer = ? AND created = ?",
                      (run_id, row["chain_key"], row["reviewer"], row["created"])) is not None


def import_reviews(store: SessionStore, path: Path) -> dict:
    """Import review rows in ONE transaction; returns ``{"added", "already", "stale": [rows]}``."""
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    source = _read_source(path)
    runs = store.list_runs()
    hashes: dict[int, dict] = {}
    problems: list[tuple[int, str]] = []
    matched: list[tuple[dict, int, str]] = []
    for n, row in source:
        problem = row if isinstance(row, str) else _row_problem(row)
        if problem is None:
            found = _match(store, row, runs, hashes)
            if isinstance(found, str):
                problem = found
            else:
                matched.append((row, *found))
        if problem is not None:
            problems.append((n, problem))
    if problems:
        raise bad_lines_error(path, problems)
    if not matched:
        raise InputError(f"{path} has no reviews to import")
    summary: dict = {"added": 0, "already": 0, "stale": []}
    with store.transaction("import reviews into"):
        for row, run_id, current in matched:
            if _exists(store, run_id, row):
                summary["already"] += 1
                continue
            data = {**row, "run_id": run_id, "reviewer": row["reviewer"].strip(), "note": reviews.check_value("note", row.get("note")),
                    "origin": path.name}
            (reviews.insert_step_row if row["kind"] == "step" else reviews.insert_chain_row)(store.conn, data)
            summary["added"] += 1
            if row["record_sha256"] != current:
                summary["stale"].append({k: row.get(k) for k in ("kind", "chain_key", "step_index", "reviewer")} | {"run_id": run_id})
    return summary
