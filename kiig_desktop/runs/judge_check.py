"""Judge validation: can a judge model tell supported claims from unsupported ones at all?

The bundled labelled claims (``resources/judge_check/claims.jsonl``, clinical and arithmetic,
balanced) are checked exactly as KI checks a step: the claim is turned into a retrieval query,
the top ``k`` passages of the demo corpus (``resources/corpus/``), or of the user's own corpus in a
session (``kiig judge-check --claims FILE --corpus NAME --db FILE``), are retrieved with the same FTS5
search, and the judge is asked the same Yes/No question (probability mode). Its ``p(yes)`` per
claim gives the AUROC (how well it ranks supported above unsupported claims; 0.5 = chance) and,
at 0.5, the accuracy, each with a 95% bootstrap interval (``reports.stats``). The result is
stored per judge model file (SHA-256) and KI method in the data folder
(``store.judge_validation``), where every KI view finds it.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from ..chains.dataset_files import read_checked_jsonl
from ..errors import InputError
from ..events import CancelToken, Progress
from ..files import file_sha256
from ..knowledge import corpus as corpus_mod
from ..knowledge.ki import KI_METHOD_VERSION, Judge, build_query, judge_claim, judge_model_ref
from ..knowledge.search import search
from ..reports.stats import bootstrap_auroc_ci, bootstrap_mean_ci
from ..resources import resource_path
from ..store import corpus_schema
from ..store import judge_validation as validation
from .provenance import engine_options_used, worker_build

CORPUS_NAME = "demo"
DEFAULT_K = 3
N_BOOT = 2000


def _claim(obj: dict, n: int) -> dict:
    if not isinstance(obj.get("claim"), str) or not isinstance(obj.get("label"), bool):
        raise InputError(f"line {n}: needs a \"claim\" (text) and a \"label\" (true or false)")
    return {"id": str(obj.get("id", n)), "claim": obj["claim"], "label": obj["label"], "kind": str(obj.get("kind") or "other")}


def load_claims(path: str | Path | None = None) -> list[dict]:
    """The labelled claims: ``{"id", "claim", "label": bool, "kind"}`` per line, ids unique.

    The whole-file policy of every input reader (docs/cli.md): the file is streamed line by line
    (a line has the readers' length limit) and every bad line is listed in one InputError.
    """
    path = Path(path) if path else validation.claims_path()
    claims = read_checked_jsonl(path, _claim, key=lambda c: c["id"])
    labels = {c["label"] for c in claims}
    if labels != {True, False}:
        raise InputError(f"{path}: needs both supported (true) and unsupported (false) claims")
    return claims


def _demo_corpus(folder: Path) -> sqlite_utils.Database:
    db = sqlite_utils.Database(folder / "judge_check.db")
    corpus_schema.apply(db)
    corpus_mod.add_documents(db, CORPUS_NAME, [resource_path("corpus")])
    return db


def _estimates(scores: list[float], labels: list[bool]) -> dict:
    auc, auc_lo, auc_hi = bootstrap_auroc_ci(scores, labels, n_boot=N_BOOT)
    hits = [float((s >= 0.5) == y) for s, y in zip(scores, labels, strict=True)]
    acc, acc_lo, acc_hi = bootstrap_mean_ci(hits, n_boot=N_BOOT)
    return {"auroc": auc, "auroc_ci": [auc_lo, auc_hi], "accuracy": acc, "accuracy_ci": [acc_lo, acc_hi],
            "n": len(labels), "n_supported": sum(labels)}


def check_set_id(claims_sha256: str, corpus_fingerprint: str | None = None) -> str:
    """What a stored check is kept under: the claims file, and the user's corpus when one is named
    (the same claims against another corpus are another check)."""
    if corpus_fingerprint is None:
        return claims_sha256
    return hashlib.sha256(f"{claims_sha256}:{corpus_fingerprint}".encode()).hexdigest()


@contextmanager
def _evidence_db(db, corpus: str | None) -> Iterator[tuple[object, str]]:
    """The database and corpus name the claims are checked against: the user's, or the demo corpus
    built in a scratch folder."""
    if db is not None and corpus is not None:
        yield db, corpus
        return
    with tempfile.TemporaryDirectory(prefix="kiig-judge-check-") as tmp:
        demo = _demo_corpus(Path(tmp))
        try:
            yield demo, CORPUS_NAME
        finally:
            demo.close()


def iter_judge_check(judge: Judge, claims: list[dict], *, k: int = DEFAULT_K, claims_sha256: str = "",
                     cancel: CancelToken | None = None, db=None, corpus: str | None = None) -> Generator[Progress, None, dict]:
    """Judge every claim, yielding progress; returns the result that :func:`store_result` keeps.

    ``db`` and ``corpus``: check against the user's corpus (a session's) instead of the demo one;
    the result then names the corpus and its fingerprint and is kept under :func:`check_set_id`.
    A claim the judge gives no Yes/No probability at all scores 0.5 (no opinion), never dropped:
    dropping it would flatter the judge.
    """
    started = time.monotonic()
    rows = []
    fingerprint = corpus_mod.corpus_fingerprint(db, corpus) if db is not None and corpus is not None else None
    with _evidence_db(db, corpus) as (db, name):
        yield Progress(done=0, total=len(claims), message="", started=started)
        for n, c in enumerate(claims, 1):
            if cancel is not None:
                cancel.check()
            passages = search(db, name, build_query(c["claim"]), k)
            ki, _, _ = judge_claim(judge, c["claim"], passages)
            rows.append({"id": c["id"], "kind": c["kind"], "label": c["label"], "p_yes": ki,
                         "top_source": passages[0].source if passages else None})
            yield Progress(done=n, total=len(claims), message=c["id"], started=started)
    scores = [0.5 if r["p_yes"] is None else float(r["p_yes"]) for r in rows]
    labels = [r["label"] for r in rows]
    result = {"model": judge_model_ref(judge), "method": KI_METHOD_VERSION, "mode": "probability", "k": k,
              "claims_sha256": check_set_id(claims_sha256, fingerprint), "claims_file_sha256": claims_sha256,
              "corpus": {"name": corpus or CORPUS_NAME, "fingerprint": fingerprint, "demo": fingerprint is None},
              "checked": datetime.now(UTC).isoformat(timespec="seconds"),
              "engine_options": engine_options_used(judge), "build": worker_build(judge),
              **_estimates(scores, labels), "by_kind": {}, "claims": rows}
    for kind in sorted({r["kind"] for r in rows}):
        idx = [i for i, r in enumerate(rows) if r["kind"] == kind]
        if len({labels[i] for i in idx}) == 2:
            result["by_kind"][kind] = _estimates([scores[i] for i in idx], [labels[i] for i in idx])
    return result


def add_calibration(result: dict, folds: int = 5) -> dict:
    """Fit the Platt calibration of the result's p(yes) (``metrics.calibration``, k-fold
    cross-validated) into ``result["calibration"]``; each claim row gets its out-of-sample
    calibrated probability (``p_calibrated``). InputError when the claims are too few."""
    from ..metrics import calibration as cal

    rows = result.get("claims") or []
    scores = [0.5 if r.get("p_yes") is None else float(r["p_yes"]) for r in rows]
    labels = [bool(r.get("label")) for r in rows]
    try:
        fit = cal.calibrate(scores, labels, k=folds)
    except ValueError as exc:
        raise InputError(f"cannot calibrate on these claims: {exc}") from None
    held_out = cal.cross_validated(scores, labels, fit["folds"], fit["seed"])
    for row, p in zip(rows, held_out, strict=True):
        row["p_calibrated"] = p
    result["calibration"] = {**fit, "fitted": datetime.now(UTC).isoformat(timespec="seconds")}
    return result


def claims_fingerprint(path: str | Path | None = None) -> str:
    return file_sha256(Path(path) if path else validation.claims_path())


def store_result(result: dict) -> None:
    validation.save(result)


def stored_result(sha256: str, claims_sha256: str | None = None) -> dict | None:
    """The stored result for this judge file, current KI method and claims (None: never checked)."""
    return validation.lookup(sha256, KI_METHOD_VERSION, claims_sha256=claims_sha256)
