"""Export a run as CSV or JSONL (one row per step) and import JSONL into another session.

Every row carries its run and chain context and the step's metrics (a chain without steps, e.g.
an item that failed, gets one row with empty step fields). JSONL rows also carry, on the first row
of each run, ``run_data`` (settings, versions, models by role) and, on the first row of each chain,
``chain_data`` (the exact record with its token curve, the item, the generation and KI evidence):
``import_jsonl`` rebuilds the run from those with identical numbers. CSV is for spreadsheets: the
same flat columns, structures (options, option probabilities, evidence) as JSON text.

``evidence`` is the list of passages the step's KI was judged on (``store.ki_rows.step_evidence``),
each as stored: ``source``, ``chunk``, ``score``, ``chunk_id`` and, for KI scored since corpus
format 3, ``file``, ``page``/``page_end`` (PDF), ``title`` (heading path) and ``where``
("NG28.pdf, page 14"); empty for a step without KI.

``import_jsonl`` also accepts plain ``kiig score`` / ``kiig ki`` output lines (no ``kiig_export``
field): they become one run of kind ``import``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from ..errors import InputError, StoreError
from ..files import private_output, spreadsheet_writer
from ..strict_json import JSONProblem, bad_lines_error, dumps, jsonl_lines, loads
from .codec import canonical_json, now_iso, sha256_text
from .ki_rows import step_evidence
from .schema import RUN_KINDS, RUN_STATUSES
from .session import SessionStore, compute_run_key

EXPORT_FORMAT = 1
STEP_METRICS = ("answer_nll", "answer_ppl", "delta_nll", "info_gain", "seq_ppl", "entropy_bits", "p_correct")
COLUMNS = (
    "run_id", "run_uid", "run_kind", "run_name", "run_status", "run_started", "run_finished", "run_seed",
    "model_path", "model_sha256", "judge_path", "judge_sha256",
    "chain_key", "chain_status", "chain_error", "mode", "question", "answer", "answer_idx", "options",
    "n_steps", "n_tokens", "info_gain_mean", "delta_nll_mean", "paper_info_gain", "paper_mean", "ki_mean", "correct",
    "baseline_answer_nll", "baseline_answer_ppl", "baseline_seq_ppl", "baseline_entropy_bits", "baseline_p_correct",
    "step_index", "step_text", "step_start", "step_end", *STEP_METRICS, "option_probs", "applicable", "ki", "evidence",
)


def _model_ref(run: dict, record: dict) -> tuple[Any, Any, Any, Any]:
    rec_model = record.get("model") if isinstance(record.get("model"), dict) else None
    run_model = run["models"].get("scorer") or run["models"].get("subject") or run["models"].get("judge")
    model = rec_model or run_model or {}
    judge = run["models"].get("judge") or {}
    return model.get("path"), model.get("sha256"), judge.get("path"), judge.get("sha256")


def iter_rows(store: SessionStore, run_id: int, *, full: bool) -> Iterator[dict]:
    """Export rows of one run; ``full`` adds ``run_data``/``chain_data`` (JSONL round trip)."""
    run = store.get_run(run_id)
    first = True
    for light in store.chains_for_run(run_id):
        chain_id = light["id"]
        record = store.load_chain(chain_id, curve=full)
        item_data = store.load_item(chain_id)
        item = item_data or {}
        model_path, model_sha, judge_path, judge_sha = _model_ref(run, record)
        baseline = record.get("baseline") if isinstance(record.get("baseline"), dict) else {}
        evaluations = store.load_ki(chain_id)
        evidence = step_evidence(record, evaluations)
        base = {
            "kiig_export": EXPORT_FORMAT,
            "run_id": run["id"], "run_uid": run["uid"], "run_kind": run["kind"], "run_name": run["name"],
            "run_status": run["status"], "run_started": run["started"], "run_finished": run["finished"],
            "run_seed": run["seed"], "model_path": model_path, "model_sha256": model_sha,
            "judge_path": judge_path, "judge_sha256": judge_sha,
            "chain_key": light["key"], "chain_status": light["status"], "chain_error": record.get("error"),
            "mode": record.get("mode"), "question": item.get("question"), "answer": item.get("answer"),
            "answer_idx": item.get("answer_idx"), "options": item.get("options"),
            "n_steps": light["n_steps"], "n_tokens": record.get("n_tokens"),
            "info_gain_mean": record.get("info_gain_mean"), "delta_nll_mean": record.get("delta_nll_mean"),
            "paper_info_gain": record.get("paper_info_gain"), "paper_mean": record.get("paper_mean"),
            "ki_mean": record.get("ki_mean", light["ki_mean"]), "correct": light["correct"],
            **{f"baseline_{k}": baseline.get(k) for k in ("answer_nll", "answer_ppl", "seq_ppl", "entropy_bits", "p_correct")},
        }
        steps = [s if isinstance(s, dict) else {"text": s} for s in (record.get("steps") or [])] or [None]
        for pos, step in enumerate(steps):
            row = dict(base)
            s = step or {}
            row.update({
                "step_index": s.get("index", pos if step is not None else None),
                "step_text": s.get("text"), "step_start": s.get("start"), "step_end": s.get("end"),
                **{k: s.get(k) for k in STEP_METRICS},
                "option_probs": s.get("option_probs"), "applicable": s.get("applicable"), "ki": s.get("ki"),
                "evidence": evidence.get(s.get("index", pos)) if step is not None else None,
            })
            if full and first:
                row["run_data"] = _run_data(store, run)
                first = False
            if full and pos == 0:
                row["chain_data"] = {
                    "record": record,
                    "item": item_data,
                    "generation": _generation_data(store, chain_id),
                    "ki": [_ki_data(store, ev) for ev in evaluations],
                }
            yield row


def _model_data(store: SessionStore, model_id: int) -> dict:
    m = store.get_model(model_id)
    return {k: m[k] for k in ("path", "sha256", "name", "architecture", "quantization", "parameters",
                              "context_length", "size", "metadata")}


def _run_data(store: SessionStore, run: dict) -> dict:
    return {
        "uid": run["uid"], "run_key": run["run_key"], "kind": run["kind"], "name": run["name"],
        "status": run["status"], "settings": run["settings"], "versions": run["versions"], "seed": run["seed"],
        "started": run["started"], "finished": run["finished"], "origin": run["origin"],
        "models": {role: _model_data(store, m["id"]) for role, m in run["models"].items()},
    }


def _generation_data(store: SessionStore, chain_id: int) -> dict | None:
    gen = store.load_generation(chain_id)
    if gen is not None and gen.get("model_id") is not None:
        gen["model"] = _model_data(store, gen.pop("model_id"))
    return gen


def _ki_data(store: SessionStore, evaluation: dict) -> dict:
    return {"judge": _model_data(store, evaluation["judge_model_id"]), "corpus": evaluation["corpus"],
            "ki_mean": evaluation["ki_mean"], "steps": evaluation["steps"],
            **{k: evaluation[k] for k in ("mode", "k", "method", "build", "chain_sha256") if evaluation.get(k) is not None}}


# --------------------------------------------------------------------------- writing


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dict, list)):
        return dumps(value)
    return value


def write_rows(rows: Iterator[dict], fmt: str, out: IO[str], columns: Sequence[str] = COLUMNS,
               jsonl_row: Callable[[dict], dict] = lambda row: row) -> int:
    """Write rows as ``csv`` (``columns``) or ``jsonl`` (``jsonl_row`` of each row) to an open text
    stream; returns the number of rows. Every KIIG export of rows (runs, reviews) goes through it."""
    n = 0
    if fmt == "csv":
        writer = spreadsheet_writer(out)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_value(row.get(c)) for c in columns])
            n += 1
    elif fmt == "jsonl":
        for row in rows:
            out.write(dumps(jsonl_row(row)) + "\n")
            n += 1
    else:
        raise InputError(f"unknown export format {fmt!r}; use csv or jsonl")
    return n


def export_run(store: SessionStore, run_id: int, fmt: str, output: Path | None, stdout: IO[str]) -> int:
    """Export one run to ``output`` (created owner-only, replaced atomically) or to ``stdout``."""
    full = fmt == "jsonl"
    store.get_run(run_id)  # a clear error before any file is touched
    if output is None:
        return write_rows(iter_rows(store, run_id, full=full), fmt, stdout)
    with private_output(output, newline="", error=StoreError, keep=(store.path,)) as fh:
        return write_rows(iter_rows(store, run_id, full=full), fmt, fh)


# --------------------------------------------------------------------------- importing


def _read_jsonl(path: Path) -> list[dict]:
    """Every row of an import file, checked whole first: one InputError lists every bad line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None
    rows = []
    problems: list[tuple[int, str]] = []
    for n, line in jsonl_lines(text):
        if not line.strip():
            continue
        try:
            row = loads(line)
        except JSONProblem as exc:
            problems.append((n, str(exc)))
            continue
        problem = "expected a JSON object" if not isinstance(row, dict) else _row_problem(row)
        if problem:
            problems.append((n, problem))
        else:
            rows.append(row)
    if problems:
        raise bad_lines_error(path, problems)
    if not rows:
        raise InputError(f"{path} has no rows to import")
    return rows


_NUMBER_FIELDS = (*STEP_METRICS, "info_gain_mean", "delta_nll_mean", "paper_info_gain", "paper_mean", "ki_mean", "n_tokens", "ki")


def _type_problem(obj: dict, where: str) -> str | None:
    """Why a record or row has a field of the wrong type (what would break the session later), or None."""
    for key in _NUMBER_FIELDS:
        value = obj.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"{where}{key} must be a number or null, got {type(value).__name__}"
    for key in ("step_index", "index"):
        value = obj.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return f"{where}{key} must be a whole number or null, got {type(value).__name__}"
    if obj.get("options") is not None and not isinstance(obj["options"], dict):
        return f"{where}options must be an object or null, got {type(obj['options']).__name__}"
    steps = obj.get("steps")
    if steps is not None:
        if not isinstance(steps, list):
            return f"{where}steps must be a list, got {type(steps).__name__}"
        for i, step in enumerate(steps):
            if not isinstance(step, dict):
                return f"{where}steps[{i}] must be an object, got {type(step).__name__}"
            if (problem := _type_problem(step, f"{where}steps[{i}].")) is not None:
                return problem
    return None


def _row_problem(row: dict) -> str | None:
    """Type checks of one import row, before anything is written."""
    if (problem := _type_problem(row, "")) is not None:
        return problem
    for key in ("run_data", "chain_data"):
        if key in row and not isinstance(row[key], dict):
            return f"{key} must be an object"
    record = (row.get("chain_data") or {}).get("record")
    if isinstance(record, dict):
        return _type_problem(record, "chain_data.record.")
    return None


def import_jsonl(store: SessionStore, path: Path) -> list[dict]:
    """Import a JSONL export (or plain output lines) in ONE transaction; returns a summary per run."""
    rows = _read_jsonl(path)
    with store.transaction("import into"):
        if "kiig_export" in rows[0]:
            return _import_export_rows(store, rows, path)
        return [_import_output_lines(store, rows, path)]


def _ensure(store: SessionStore, model: dict | None) -> int | None:
    return None if not model else store.ensure_model(model)


def _import_export_rows(store: SessionStore, rows: list[dict], path: Path) -> list[dict]:
    runs: dict[str, dict] = {}  # uid -> summary
    for n, row in enumerate(rows, 1):
        if row.get("kiig_export") != EXPORT_FORMAT:
            raise InputError(f"{path}:{n}: not a row of a KIIG JSONL export (format {EXPORT_FORMAT})")
        try:
            _import_row(store, row, runs, path, n)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"{path}:{n}: malformed export row ({type(exc).__name__}: {exc})") from None
    return list(runs.values())


def _import_row(store: SessionStore, row: dict, runs: dict[str, dict], path: Path, n: int) -> None:
    """One export row: a run's first row creates the run, a chain's first row saves the chain."""
    uid = row.get("run_uid")
    if "run_data" in row:
        data = row["run_data"]
        exists = store.conn.execute("SELECT id FROM runs WHERE uid = ?", (data["uid"],)).fetchone()
        if exists:
            runs[data["uid"]] = {"run_id": exists[0], "uid": data["uid"], "chains": 0, "skipped": True}
            return
        if data["kind"] not in RUN_KINDS or data["status"] not in RUN_STATUSES:
            raise InputError(f"{path}:{n}: unknown run kind or status ({data['kind']!r}, {data['status']!r})")
        models = {role: store.ensure_model(m) for role, m in (data.get("models") or {}).items()}
        origin = dict(data.get("origin") or {})
        origin.setdefault("imported_from", path.name)
        origin.setdefault("imported", now_iso())
        run_id = store.insert_run(
            uid=data["uid"], run_key=data["run_key"], kind=data["kind"], name=data.get("name"),
            status=data["status"], settings=data["settings"], versions=data.get("versions") or {},
            seed=data.get("seed"), models=models, started=data["started"], finished=data.get("finished"),
            origin=origin,
        )
        runs[data["uid"]] = {"run_id": run_id, "uid": data["uid"], "chains": 0, "skipped": False}
    if uid not in runs:
        raise InputError(f"{path}:{n}: row of run {uid!r} comes before that run's first row (run_data)")
    summary = runs[uid]
    if summary["skipped"] or "chain_data" not in row:
        return
    data = row["chain_data"]
    if not isinstance(data.get("record"), dict):
        raise InputError(f"{path}:{n}: chain_data has no record")
    gen = data.get("generation")
    if gen is not None:
        gen = dict(gen)
        gen["model_id"] = _ensure(store, gen.pop("model", None))
    chain_id = store.save_chain(summary["run_id"], row["chain_key"], data["record"], item=data.get("item"), generation=gen)
    for ev in data.get("ki") or []:
        store.save_ki(chain_id, store.ensure_model(ev["judge"]), ev["corpus"], ev["steps"], ev["ki_mean"],
                      {k: ev[k] for k in ("mode", "k", "method", "build", "chain_sha256") if k in ev})
    summary["chains"] += 1


def _output_line_problem(row: dict) -> str | None:
    """Why ``row`` is not a ``kiig score`` / ``kiig ki`` output line (scored steps or an error), or None."""
    if isinstance(row.get("id"), bool) or not isinstance(row.get("id"), (str, int)):
        return "no \"id\""
    if isinstance(row.get("error"), str) and row["error"].strip():
        return None
    if not row.get("steps"):
        return "no scored \"steps\" and no \"error\""
    if "info_gain_mean" not in row and "ki_mean" not in row:
        return "neither \"info_gain_mean\" nor \"ki_mean\""
    return None


def _import_output_lines(store: SessionStore, rows: list[dict], path: Path) -> dict:
    """Plain ``kiig score``/``kiig ki`` output lines -> one run of kind ``import``."""
    problems = [(n, _output_line_problem(row)) for n, row in enumerate(rows, 1)]
    problems = [(n, why) for n, why in problems if why]
    if len(problems) == len(rows):  # e.g. a dataset: one line, not one per item
        raise InputError(f"{path}: neither a KIIG export row nor a kiig score / kiig ki output line (line {problems[0][0]}: "
                         f"{problems[0][1]}); nothing was imported (a dataset is scored with kiig run or kiig score)")
    if problems:
        raise bad_lines_error(path, problems)
    is_ki = all("ki_mean" in r and "info_gain_mean" not in r for r in rows)
    role = "judge" if is_ki else "scorer"
    model = next((r["model"] for r in rows if isinstance(r.get("model"), dict) and r["model"].get("sha256")), None)
    models = {role: store.ensure_model(model)} if model and model.get("path") else {}
    settings = {"source_file": path.name, "source_sha256": sha256_text(canonical_json(rows))}
    key = compute_run_key("import", settings, {role: model["sha256"]} if models else {}, None)
    existing = store.conn.execute("SELECT id FROM runs WHERE run_key = ?", (key,)).fetchone()
    if existing:
        return {"run_id": existing[0], "chains": 0, "skipped": True}
    run_id = store.insert_run(
        uid=uuid.uuid4().hex, run_key=key, kind="import", name=path.stem, status="finished", settings=settings,
        versions={}, seed=None, models=models, started=now_iso(), finished=now_iso(),
        origin={"imported_from": path.name, "format": "output lines"},
    )
    for row in rows:
        store.save_chain(run_id, str(row["id"]), row)
    return {"run_id": run_id, "chains": len(rows), "skipped": False}
