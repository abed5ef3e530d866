"""Conversions between API dictionaries and table rows (items, generations, steps, curves, KI).

Pure functions with no connection: ``session.py`` runs the SQL. See ``schema.py`` for the tables.
"""

from __future__ import annotations

import json
from typing import Any

from .codec import (
    canonical_json,
    dumps,
    dumps_opt,
    loads,
    opt_bool_int,
    opt_float,
    opt_int,
    pack_f32,
    pack_i32,
    sha256_text,
    to_sql_value,
    unpack_f32,
    unpack_i32,
)

# Where the record JSON keeps a token curve's place (key order) while the arrays live in token_curves.
CURVE_PLACEHOLDER = {"stored_in": "token_curves"}
CURVE_KEYS = ("token_ids", "pieces", "surprisal_bits", "entropy_bits", "step")
STEP_FLOAT_KEYS = ("answer_nll", "answer_ppl", "delta_nll", "info_gain", "seq_ppl", "entropy_bits", "p_correct")

ITEM_KEYS = ("id", "question", "answer", "options", "answer_idx", "kind")
GENERATION_KEYS = ("text", "tokens", "model_id", "extracted_answer", "correct")
KI_STEP_KEYS = ("index", "applicable", "ki", "reason", "evidence", "judge_p")
EVIDENCE_KEYS = ("source", "chunk", "score")


def record_json(record: dict) -> tuple[str, dict | None]:
    """The record as stored (curve replaced by a placeholder) and the curve, if any."""
    curve = record.get("token_curve")
    if curve is None:
        return dumps(record), None
    if not isinstance(curve, dict):
        raise ValueError("record['token_curve'] must be a dict of equal-length arrays")
    stored = dict(record)
    stored["token_curve"] = CURVE_PLACEHOLDER
    return dumps(stored), curve


def record_hash(stored: str | dict) -> str:
    """The canonical hash of a chain record as stored (token curve as its placeholder).

    sha256 of the record's canonical JSON: the same record gives the same hash in every session
    (an exported and imported chain included); a chain re-scored or edited later gets another.
    """
    text = stored if isinstance(stored, str) else record_json(stored)[0]
    return sha256_text(canonical_json(json.loads(text)))


def has_curve_placeholder(record: dict) -> bool:
    return record.get("token_curve") == CURVE_PLACEHOLDER


def chain_columns(record: dict, correct: Any) -> dict:
    """Query columns of a chain, copied from its record."""
    steps = record.get("steps") or []
    baseline = record.get("baseline") if isinstance(record.get("baseline"), dict) else {}
    return {
        "status": "error" if record.get("error") else "finished",
        "error": None if not record.get("error") else str(record["error"]),
        "mode": record.get("mode") if isinstance(record.get("mode"), str) else None,
        "n_steps": len(steps),
        "n_tokens": opt_int(record.get("n_tokens")),
        "info_gain_mean": opt_float(record.get("info_gain_mean")),
        "delta_nll_mean": opt_float(record.get("delta_nll_mean")),
        "paper_info_gain": opt_float(record.get("paper_info_gain")),
        "paper_mean": opt_float(record.get("paper_mean")),
        "ki_mean": opt_float(record.get("ki_mean")),
        "correct": opt_bool_int(correct),
        "baseline_answer_nll": opt_float(baseline.get("answer_nll")),
        "baseline_answer_ppl": opt_float(baseline.get("answer_ppl")),
    }


def step_rows(chain_id: int, steps: list) -> list[tuple]:
    rows = []
    for pos, step in enumerate(steps):
        s = step if isinstance(step, dict) else {"text": step}
        rows.append(
            (
                chain_id,
                pos,
                opt_int(s.get("index")),
                "" if s.get("text") is None else str(s.get("text")),
                opt_int(s.get("start")),
                opt_int(s.get("end")),
                *(opt_float(s.get(k)) for k in STEP_FLOAT_KEYS),
                dumps_opt(s.get("option_probs")),
                opt_bool_int(s.get("applicable")),
                opt_float(s.get("ki")),
                to_sql_value(s.get("planning")),
                to_sql_value(s.get("knowledge")),
            )
        )
    return rows


STEP_INSERT = (
    "INSERT INTO steps (chain_id, pos, idx, text, start_char, end_char, "
    + ", ".join(STEP_FLOAT_KEYS)
    + ", option_probs, applicable, ki, planning, knowledge) VALUES ("
    + ", ".join("?" * (11 + len(STEP_FLOAT_KEYS)))
    + ")"
)


def curve_row(chain_id: int, curve: dict) -> tuple:
    lengths = {len(curve[k]) for k in CURVE_KEYS if curve.get(k) is not None}
    if len(lengths) > 1:
        raise ValueError(f"token_curve arrays differ in length: { {k: len(curve[k]) for k in CURVE_KEYS if curve.get(k) is not None} }")
    n = lengths.pop() if lengths else 0
    extra = {"order": list(curve), "other": {k: v for k, v in curve.items() if k not in CURVE_KEYS}}
    pieces = curve.get("pieces")
    return (
        chain_id,
        n,
        pack_i32(curve.get("token_ids")),
        None if pieces is None else json.dumps(list(pieces)),  # ASCII escapes keep odd byte pieces safe
        pack_f32(curve.get("surprisal_bits")),
        pack_f32(curve.get("entropy_bits")),
        pack_i32(curve.get("step")),
        dumps(extra),
    )


def curve_from_row(row: tuple) -> dict:
    """(token_ids, pieces, surprisal_bits, entropy_bits, step, extra) -> the curve dict."""
    token_ids, pieces, surprisal, entropy, step, extra_json = row
    values = {
        "token_ids": unpack_i32(token_ids),
        "pieces": loads(pieces),
        "surprisal_bits": unpack_f32(surprisal),
        "entropy_bits": unpack_f32(entropy),
        "step": unpack_i32(step),
    }
    extra = loads(extra_json) or {}
    other = extra.get("other", {})
    order = extra.get("order") or [k for k in CURVE_KEYS if values[k] is not None]
    return {k: values[k] if k in values else other.get(k) for k in order}


def item_row(item: dict) -> tuple:
    if "question" not in item:
        raise ValueError("an item needs a 'question'")
    extra = {k: v for k, v in item.items() if k not in ITEM_KEYS}
    return (
        "" if item.get("id") is None else str(item["id"]),
        sha256_text(canonical_json(item)),
        item.get("kind"),
        str(item["question"]),
        None if item.get("answer") is None else str(item["answer"]),
        dumps_opt(item.get("options")),
        None if item.get("answer_idx") is None else str(item["answer_idx"]),
        dumps(extra) if extra else None,
    )


def item_from_row(row: tuple) -> dict:
    key, kind, question, answer, options, answer_idx, extra = row
    item: dict[str, Any] = {"id": key, "question": question, "answer": answer}
    if options is not None:
        item["options"] = loads(options)
    if answer_idx is not None:
        item["answer_idx"] = answer_idx
    if kind is not None:
        item["kind"] = kind
    item.update(loads(extra) or {})
    return item


def generation_row(gen: dict, model_id: int | None, created: str) -> tuple:
    tokens = gen.get("tokens") or []
    extra = {k: v for k, v in gen.items() if k not in GENERATION_KEYS}
    return (
        model_id,
        str(gen.get("text", "")),
        len(tokens),
        json.dumps([str(t.get("text", "")) for t in tokens]),
        pack_f32([t.get("logprob") for t in tokens]),
        pack_f32([t.get("entropy_bits") for t in tokens]),
        gen.get("extracted_answer"),
        opt_bool_int(gen.get("correct")),
        dumps(extra) if extra else None,
        created,
    )


def generation_from_row(row: tuple) -> dict:
    model_id, text, token_text, logprob, entropy, extracted, correct, extra = row
    pieces = loads(token_text) or []
    lps = unpack_f32(logprob) or []
    ents = unpack_f32(entropy) or []
    gen: dict[str, Any] = {
        "text": text,
        "tokens": [{"text": p, "logprob": lp, "entropy_bits": e} for p, lp, e in zip(pieces, lps, ents, strict=False)],
        "model_id": model_id,
        # always present: a generation with no answer found reads back as None, like the chain record
        "extracted_answer": extracted,
        "correct": None if correct is None else bool(correct),
    }
    gen.update(loads(extra) or {})
    return gen


def ki_step_row(evaluation_id: int, pos: int, step: dict) -> tuple:
    """A KI step; ``extra`` keeps the key order and any fields without a column."""
    extra = {"order": list(step), "other": {k: v for k, v in step.items() if k not in KI_STEP_KEYS}}
    index = opt_int(step.get("index"))
    return (
        evaluation_id,
        pos if index is None else index,
        1 if step.get("applicable") else 0,
        opt_float(step.get("ki")),
        opt_float(step.get("judge_p")),
        None if step.get("reason") is None else str(step["reason"]),
        dumps(extra),
    )


def evidence_rows(ki_step_id: int, evidence: list) -> list[tuple]:
    rows = []
    for rank, ev in enumerate(evidence or []):
        extra = {k: v for k, v in ev.items() if k not in EVIDENCE_KEYS}
        rows.append((ki_step_id, rank, str(ev.get("source", "")), opt_int(ev.get("chunk")), opt_float(ev.get("score")), dumps(extra) if extra else None))
    return rows


def ki_step_from_row(row: tuple, evidence: list[dict]) -> dict:
    idx, applicable, ki, judge_p, reason, extra_json = row
    values: dict[str, Any] = {"index": idx, "applicable": bool(applicable), "ki": ki, "reason": reason,
                              "evidence": evidence, "judge_p": judge_p}
    extra = loads(extra_json) or {}
    order = extra.get("order") or [k for k in KI_STEP_KEYS if values[k] is not None]
    other = extra.get("other", {})
    step = {k: values[k] if k in values else other.get(k) for k in order}
    step.setdefault("evidence", evidence)
    return step


def evidence_from_row(row: tuple) -> dict:
    source, chunk, score, extra = row
    ev: dict[str, Any] = {"source": source, "chunk": chunk, "score": score}
    ev.update(loads(extra) or {})
    return ev
