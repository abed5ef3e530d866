"""Knowledge Index evidence in the session: one evaluation per (chain, judge, corpus), its steps
and the passages each step was judged against. SQL only; ``session.py`` owns the transactions."""

from __future__ import annotations

import sqlite3

from . import rows as R
from .chain_rows import digest_of
from .codec import dumps_opt, loads, now_iso, opt_float, opt_int

# KI modes renamed since they were stored: old name -> new name (the passage mode was misnamed
# after ReasoningEval, whose pipeline is another mode; knowledge/ki_rules.py)
RENAMED_MODES = {"reasoningeval": "passages-true-false"}


def stored_mode(mode: str | None) -> str:
    """A mode as stored, under its current name (NULL: probability)."""
    return RENAMED_MODES.get(mode or "probability", mode or "probability")


def write_ki(conn: sqlite3.Connection, chain_id: int, judge_model_id: int, corpus: str, steps: list[dict], ki_mean: float | None,
             how: dict | None = None) -> None:
    """Replace this judge's evaluation of the chain (inside the caller's transaction).

    ``how``: ``{"mode", "k", "method", "build", "chain_sha256"}`` of the KI pass (absent keys are
    stored as NULL; ``chain_sha256`` -- the record it was made on -- defaults to the chain's now).
    """
    how = how or {}
    made_on = how.get("chain_sha256") or digest_of(conn, chain_id)
    conn.execute("DELETE FROM ki_evaluations WHERE chain_id = ? AND judge_model_id = ? AND corpus = ?", (chain_id, judge_model_id, corpus))
    cur = conn.execute(
        "INSERT INTO ki_evaluations (chain_id, judge_model_id, corpus, ki_mean, created, mode, k, method, build, chain_sha256) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (chain_id, judge_model_id, corpus, opt_float(ki_mean), now_iso(), how.get("mode"), opt_int(how.get("k")),
         opt_int(how.get("method")), dumps_opt(how.get("build")), made_on),
    )
    evaluation_id = int(cur.lastrowid)
    for pos, step in enumerate(steps):
        step_cur = conn.execute(
            "INSERT INTO ki_steps (evaluation_id, idx, applicable, ki, judge_p, reason, extra) VALUES (?, ?, ?, ?, ?, ?, ?)",
            R.ki_step_row(evaluation_id, pos, step),
        )
        conn.executemany(
            "INSERT INTO ki_evidence (ki_step_id, rank, source, chunk, score, extra) VALUES (?, ?, ?, ?, ?, ?)",
            R.evidence_rows(int(step_cur.lastrowid), step.get("evidence") or []),
        )
    conn.execute("UPDATE chains SET ki_mean = ? WHERE id = ?", (opt_float(ki_mean), chain_id))


def read_ki(conn: sqlite3.Connection, chain_id: int) -> list[dict]:
    """Every evaluation of a chain, oldest first, with steps and evidence; ``current`` is False for one
    made on an earlier version of the chain's record (``chain_sha256`` differs from the chain's now)."""
    out = []
    now = digest_of(conn, chain_id)
    evaluations = conn.execute(
        "SELECT e.id, e.judge_model_id, e.corpus, e.ki_mean, e.created, m.path, m.sha256, e.mode, e.k, e.method, e.build, "
        "e.chain_sha256 FROM ki_evaluations e JOIN models m ON m.id = e.judge_model_id WHERE e.chain_id = ? ORDER BY e.id",
        (chain_id,),
    ).fetchall()
    for ev_id, judge_model_id, corpus, ki_mean, created, path, sha, mode, k, method, build, made_on in evaluations:
        steps = []
        for step_row in conn.execute(
            "SELECT id, idx, applicable, ki, judge_p, reason, extra FROM ki_steps WHERE evaluation_id = ? ORDER BY idx", (ev_id,)
        ).fetchall():
            evidence = [R.evidence_from_row(r) for r in conn.execute(
                "SELECT source, chunk, score, extra FROM ki_evidence WHERE ki_step_id = ? ORDER BY rank", (step_row[0],))]
            steps.append(R.ki_step_from_row(step_row[1:], evidence))
        out.append({
            "judge_model_id": judge_model_id, "judge": {"path": path, "sha256": sha}, "corpus": corpus,
            "ki_mean": ki_mean, "created": created, "steps": steps,
            "mode": stored_mode(mode), "k": k, "method": method or 1, "build": loads(build) if build else None,
            "chain_sha256": made_on, "current": made_on is None or made_on == now,
        })
    return out


def record_evaluation(record: dict, evaluations: list[dict]) -> dict | None:
    """The evaluation behind a chain record's step KI: the latest made with the corpus of the record's
    own KI (a batch run's), else the latest (the one the Results view shows first); None without KI."""
    own = record.get("ki") if isinstance(record.get("ki"), dict) else {}
    same = [e for e in evaluations if own.get("corpus") is not None and e.get("corpus") == own.get("corpus")]
    return (same or evaluations or [None])[-1]


def step_evidence(record: dict, evaluations: list[dict]) -> dict[int, list[dict]]:
    """Step index -> the evidence passages of :func:`record_evaluation` for that step, best first."""
    ev = record_evaluation(record, evaluations) or {}
    return {int(s["index"]): list(s.get("evidence") or []) for s in ev.get("steps") or []
            if isinstance(s.get("index"), int) and not isinstance(s.get("index"), bool)}
