"""How clinician reviews agree: between two reviewers, and with the metrics (docs/metrics.md ("Clinician reviews and agreement")).

- Cohen's kappa between two reviewers, per verdict (knowledge, role), over the steps both judged,
  with a 95% percentile-bootstrap interval over steps (``stats.bootstrap_kappa_ci``).
- AUROC of step KI against the knowledge verdict (correct = positive, incorrect = negative,
  "cannot tell" left out), and of step InfoGain against the role verdict (helps = positive,
  misleading = negative, irrelevant left out), each with its stratified bootstrap interval and n.
- The judge's accuracy at 0.5: a step with KI >= 0.5 is called correct; with its bootstrap interval.

Only current reviews made on the chain's current record count (stale ones are counted apart). A
step reviewed by several reviewers counts once per reviewer. ``small`` flags an estimate that
rests on fewer than :data:`SMALL_SAMPLE` steps (the reports' rough-interval mark).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..store import SessionStore, reviews
from .stats import bootstrap_auroc_ci, bootstrap_kappa_ci, bootstrap_mean_ci

N_BOOT = 2000
SMALL_SAMPLE = 10


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _estimate(value: float, lo: float, hi: float, n: int, **extra: Any) -> dict:
    return {"value": value, "ci": [lo, hi], "n": n, **extra, "small": n < SMALL_SAMPLE}


def metric_agreement(steps: list[dict], n_boot: int = N_BOOT) -> dict:
    """``ki_auroc``, ``infogain_auroc`` and ``judge_accuracy`` over reviewed steps.

    ``steps``: one dict per (step, reviewer) with ``ki``, ``info_gain``, ``knowledge``, ``role``.
    """
    ki = [(s["ki"], s["knowledge"] == "correct") for s in steps
          if s.get("knowledge") in ("correct", "incorrect") and _num(s.get("ki"))]
    ig = [(s["info_gain"], s["role"] == "helps") for s in steps
          if s.get("role") in ("helps", "misleading") and _num(s.get("info_gain"))]
    out = {}
    for name, pairs, pos, neg in (("ki_auroc", ki, "n_correct", "n_incorrect"), ("infogain_auroc", ig, "n_helps", "n_misleading")):
        scores, labels = [p[0] for p in pairs], [p[1] for p in pairs]
        auc, lo, hi = bootstrap_auroc_ci(scores, labels, n_boot=n_boot)
        out[name] = _estimate(auc, lo, hi, len(pairs), **{pos: sum(labels), neg: len(labels) - sum(labels)})
    hits = [float((score >= 0.5) == label) for score, label in ki]
    acc, lo, hi = bootstrap_mean_ci(hits, n_boot=n_boot)
    out["judge_accuracy"] = _estimate(acc, lo, hi, len(hits))
    return out


def reviewer_agreement(a: list[dict], b: list[dict], n_boot: int = N_BOOT) -> dict:
    """Cohen's kappa of two reviewers' current step reviews, per verdict, over the steps both judged."""
    by_step = {(r["chain_key"], r["step_index"]): r for r in b}
    out = {}
    for field in ("knowledge", "role"):
        pairs = [(r[field], by_step[k][field]) for r in a
                 if (k := (r["chain_key"], r["step_index"])) in by_step and r[field] and by_step[k][field]]
        kappa, lo, hi = bootstrap_kappa_ci([p[0] for p in pairs], [p[1] for p in pairs], n_boot=n_boot)
        out[field] = _estimate(kappa, lo, hi, len(pairs), n_agree=sum(x == y for x, y in pairs))
    return out


def disagreements(a: list[dict], b: list[dict]) -> list[dict]:
    """Steps two reviewers judged differently: ``{"chain_key", "step_index", "a": review, "b": review}``."""
    by_step = {(r["chain_key"], r["step_index"]): r for r in b}
    out = []
    for r in a:
        other = by_step.get((r["chain_key"], r["step_index"]))
        if other and any(r[f] and other[f] and r[f] != other[f] for f in ("knowledge", "role")):
            out.append({"chain_key": r["chain_key"], "step_index": r["step_index"], "a": r, "b": other})
    return out


def step_values(store: SessionStore, run_id: int) -> dict[tuple[str, int], dict]:
    """(chain key, step index) -> ``{"ki", "info_gain", "text", "model"}`` from the run's records and KI.

    KI: the record's step ``ki`` when it has one, else the chain's latest KI evaluation (applicable steps).
    """
    out: dict[tuple[str, int], dict] = {}
    for key, record in store.load_run_records(run_id).items():
        model = record.get("model") if isinstance(record.get("model"), dict) else {}
        chain_id = store.chain_id(run_id, key)
        evaluations = store.load_ki(chain_id) if chain_id is not None else []
        judged = {s.get("index", i): s for i, s in enumerate(evaluations[-1]["steps"])} if evaluations else {}
        for pos, step in enumerate(record.get("steps") or []):
            s = step if isinstance(step, dict) else {"text": step}
            ki = s.get("ki")
            if not _num(ki):
                j = judged.get(s.get("index", pos), {})
                ki = j.get("ki") if j.get("applicable") else None
            out[(key, pos)] = {"ki": ki, "info_gain": s.get("info_gain"), "text": s.get("text"),
                               "model": Path(str(model.get("path") or "")).name or None}
    return out


def run_review_stats(store: SessionStore, run_id: int, *, reviewer: str | None = None,
                     pair: tuple[str, str] | None = None, n_boot: int = N_BOOT) -> dict:
    """Everything ``kiig review stats`` prints, the Dashboard and the HTML report show, for one run.

    Kappa is computed for ``pair`` or, when the run has exactly two reviewers, for those two.
    """
    names = reviews.reviewers(store, run_id)
    current = reviews.step_reviews(store, run_id, reviewer=reviewer)
    fresh = [r for r in current if not r["stale"]]
    values = step_values(store, run_id) if fresh else {}
    joined = [{**values.get((r["chain_key"], r["step_index"]), {}), **r} for r in fresh]
    out: dict = {"run_id": run_id, "progress": reviews.progress(store, run_id, reviewer), "reviewers": names,
                 "n_step_reviews": len(fresh), "n_stale": len(current) - len(fresh), **metric_agreement(joined, n_boot)}
    models = sorted({j["model"] for j in joined if j.get("model")})
    if len(models) > 1:
        out["by_model"] = {m: metric_agreement([j for j in joined if j.get("model") == m], n_boot) for m in models}
    if pair is None and len(names) == 2:
        pair = (names[0], names[1])
    out["kappa"] = None
    if pair is not None:
        a, b = ([r for r in reviews.step_reviews(store, run_id, reviewer=name) if not r["stale"]] for name in pair)
        out["kappa"] = {"reviewers": list(pair), **reviewer_agreement(a, b, n_boot), "n_disagreements": len(disagreements(a, b))}
    return out


QUEUE_FILTERS = {
    "unreviewed": "Unreviewed chains, in order",
    "wrong": "Wrong answers",
    "lowest_infogain": "Lowest InfoGain first",
    "lowest_ki": "Lowest KI first",
    "disagree": "KI and reviewer disagree",
}


def _disagrees(ki: Any, knowledge: str | None) -> bool:
    return _num(ki) and knowledge in ("correct", "incorrect") and (ki >= 0.5) != (knowledge == "correct")


def review_queue(store: SessionStore, run_id: int, reviewer: str | None, mode: str = "unreviewed") -> list[dict]:
    """The chains to review next, in order: light chain rows (``chains_for_run``) of finished chains with steps.

    ``unreviewed``, ``wrong`` (graded wrong), ``lowest_infogain`` and ``lowest_ki`` list the chains the
    reviewer has not finished; ``disagree`` lists the chains where a step's KI (at 0.5) and the
    reviewer's knowledge verdict disagree, reviewed or not.
    """
    if mode not in QUEUE_FILTERS:
        raise ValueError(f"unknown review queue {mode!r}; expected one of {', '.join(QUEUE_FILTERS)}")
    chains = [c for c in store.chains_for_run(run_id) if c["status"] == "finished" and c["n_steps"]]
    if mode == "disagree":
        values = step_values(store, run_id)
        keys = {r["chain_key"] for r in reviews.step_reviews(store, run_id, reviewer=reviewer)
                if not r["stale"] and _disagrees(values.get((r["chain_key"], r["step_index"]), {}).get("ki"), r["knowledge"])}
        return [c for c in chains if c["key"] in keys]
    done = reviews.reviewed_chains(store, run_id, reviewer)
    pending = [c for c in chains if c["key"] not in done]
    if mode == "wrong":
        return [c for c in pending if c["correct"] is False]
    column = {"lowest_infogain": "info_gain_mean", "lowest_ki": "ki_mean"}.get(mode)
    if column:
        pending.sort(key=lambda c: (not _num(c[column]), c[column] if _num(c[column]) else 0.0))
    return pending
