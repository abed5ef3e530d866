"""Judge validation results, kept in the data folder so every session and view sees them.

``kiig judge-check`` measures how well a judge model separates supported from unsupported claims
(AUROC and accuracy on the bundled labelled claims). A result is stored per judge model file
(SHA-256), per KI method version (the judge prompt and candidates: a new prompt needs a new
check) and per claims file (its SHA-256), in ``<data dir>/judge_validation.json``:

    {"<model sha256>:m<method>:<claims sha256[:12]>": {"auroc", "auroc_ci", "accuracy",
     "accuracy_ci", "n", "n_supported", "k", "model", "checked", ...}}

Every KI view shows :func:`note` for the judge behind its numbers: the score when known, a
warning below :data:`AUROC_WARN`, or "not validated" with the command to run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..config import Settings, require_free_space, write_private_file
from ..files import file_sha256
from ..resources import resource_path

AUROC_WARN = 0.7
FILE_NAME = "judge_validation.json"
DEFAULT_METHOD = 1  # KI results stored before the method was recorded used the first judge prompt


def claims_path() -> Path:
    """The bundled labelled claims (``resources/judge_check/claims.jsonl``)."""
    return resource_path("judge_check", "claims.jsonl")


def _cache_file(data_dir: Path | None = None) -> Path:
    return (data_dir or Settings.load().data_dir) / FILE_NAME


def _key(sha256: str, method: int, claims_sha256: str) -> str:
    return f"{sha256}:m{int(method)}:{claims_sha256[:12]}"


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save(result: dict, *, data_dir: Path | None = None) -> None:
    """Store one judge-check result (it names ``model.sha256``, ``method`` and ``claims_sha256``)."""
    path = _cache_file(data_dir)
    data = _read(path)
    data[_key(result["model"]["sha256"], result["method"], result["claims_sha256"])] = result
    write_private_file(path, json.dumps(data, indent=1, sort_keys=True))


def require_room(n_claims: int, *, data_dir: Path | None = None) -> None:
    """StoreError before a judge check starts when the data folder's disk cannot take its result
    (the file is rewritten whole: its size now plus about 1 KB a claim)."""
    path = _cache_file(data_dir)
    folder = path.parent if path.parent.is_dir() else path.parent.parent
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    require_free_space(folder, size + 4096 + 1024 * n_claims, path)


def lookup(sha256: str | None, method: int | None = None, *, claims_sha256: str | None = None,
           data_dir: Path | None = None) -> dict | None:
    """The stored result for a judge model (SHA-256) and KI method, on the bundled claims; None if unknown."""
    if not sha256:
        return None
    if claims_sha256 is None:
        try:
            claims_sha256 = file_sha256(claims_path())
        except OSError:
            return None
    return _read(_cache_file(data_dir)).get(_key(sha256, method or DEFAULT_METHOD, claims_sha256))


def lookup_reviews(sha256: str | None, method: int | None = None, *, data_dir: Path | None = None) -> dict | None:
    """The latest ``kiig judge-check --from-reviews`` result for a judge model and KI method (None: none)."""
    if not sha256:
        return None
    found = [r for r in _read(_cache_file(data_dir)).values()
             if isinstance(r, dict) and r.get("source") == "reviews" and (r.get("model") or {}).get("sha256") == sha256
             and r.get("method") == (method or DEFAULT_METHOD)]
    return max(found, key=lambda r: str(r.get("checked") or "")) if found else None


def reviews_note(result: dict | None) -> str:
    """The judge's agreement with clinicians, for beside the generic note ("" when never checked on reviews)."""
    if not result:
        return ""
    lo, hi = result.get("auroc_ci") or (math.nan, math.nan)
    return (f"On {result.get('n')} clinician-reviewed steps: AUROC {result['auroc']:.2f} (95% CI {lo:.2f}-{hi:.2f}), "
            f"accuracy {result.get('accuracy', math.nan):.0%}.")
def lookup_for_corpus(sha256: str | None, method: int | None, corpus_fingerprint: str | None, *,
                      data_dir: Path | None = None) -> dict | None:
    """The latest check of a judge model and KI method against this corpus (``kiig judge-check --corpus``):
    the user's own domain, which KI views prefer to the demo claims. None when there is none."""
    if not sha256 or not corpus_fingerprint:
        return None
    prefix = f"{sha256}:m{int(method or DEFAULT_METHOD)}:"
    found = [r for key, r in _read(_cache_file(data_dir)).items() if key.startswith(prefix) and isinstance(r, dict)
             and isinstance(r.get("corpus"), dict) and r["corpus"].get("fingerprint") == corpus_fingerprint]
    return max(found, key=lambda r: str(r.get("checked") or "")) if found else None


def latest_calibration(sha256: str | None, method: int | None = None, *, data_dir: Path | None = None) -> dict | None:
    """The most recent calibration stored for a judge model and KI method (on any claims file), with
    the ``claims_sha256`` and ``checked`` time of the validation it came from; None when there is none."""
    if not sha256:
        return None
    prefix = f"{sha256}:m{int(method or DEFAULT_METHOD)}:"
    found = [r for key, r in _read(_cache_file(data_dir)).items()
             if key.startswith(prefix) and isinstance(r, dict) and isinstance(r.get("calibration"), dict)]
    if not found:
        return None
    best = max(found, key=lambda r: str(r["calibration"].get("fitted") or r.get("checked") or ""))
    return {**best["calibration"], "claims_sha256": best.get("claims_sha256")}


def is_weak(result: dict | None) -> bool:
    """True when the judge was checked and its AUROC is below :data:`AUROC_WARN` (or undefined)."""
    if not result:
        return False
    value = result.get("auroc")
    return not isinstance(value, int | float) or not math.isfinite(value) or value < AUROC_WARN


def command_hint(model: str | None = None) -> str:
    return f"kiig judge-check --model {model or 'JUDGE'}"


def note(result: dict | None, model: str | None = None) -> str:
    """One line for every KI view: the judge's validation score, a warning, or how to get one."""
    if not result:
        return f"Judge not validated: its KI cannot be trusted until checked (run `{command_hint(model)}`)."
    lo, hi = result.get("auroc_ci") or (math.nan, math.nan)
    acc = result.get("accuracy")
    corpus = result.get("corpus") if isinstance(result.get("corpus"), dict) else {}
    where = f" against corpus {corpus.get('name')!r}" if corpus.get("fingerprint") else ""
    text = (f"Judge validation: AUROC {result['auroc']:.2f} (95% CI {lo:.2f}-{hi:.2f}), accuracy "
            f"{acc:.0%} on {result.get('n')} labelled claims{where}.")
    if is_weak(result):
        text = (f"Warning: this judge barely tells supported from unsupported claims (AUROC {result['auroc']:.2f} "
                f"< {AUROC_WARN}, 95% CI {lo:.2f}-{hi:.2f}, {result.get('n')} claims{where}): treat its KI as noise.")
    return text


def summary(result: dict | None, model: str | None = None, reviewed: dict | None = None) -> dict:
    """What output lines and reports carry: the scores, whether to warn, and the :func:`note` line.

    ``validated`` is False (and ``warning`` True) for a judge never checked. ``reviewed``: the
    judge's check on clinician-reviewed steps (:func:`lookup_reviews`), shown beside the generic one.
    """
    text = " ".join(t for t in (note(result, model), reviews_note(reviewed)) if t)
    out: dict = {"validated": bool(result), "warning": is_weak(result) or not result, "note": text}
    if reviewed:
        out["reviews"] = {k: reviewed.get(k) for k in ("auroc", "auroc_ci", "accuracy", "accuracy_ci", "n", "session")}
    if result:
        out.update({k: result.get(k) for k in ("auroc", "auroc_ci", "accuracy", "accuracy_ci", "n", "method")})
    return out
