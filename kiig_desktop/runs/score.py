"""Long work as generators of events: scoring a file of chains, with resume from a session file.

The CLI drives these generators with a progress line; the GUI drives the same ones from a worker
thread. Cancel is cooperative (a CancelToken) and reaches into the engine worker.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..chains.dataset_files import read_checked_jsonl
from ..chains.datasets import DatasetItem, parse_score_line
from ..chains.steps import split_reasoning
from ..chains.steps_llm import split_with_model
from ..engine.models import ModelInfo
from ..errors import Cancelled, InputError, KiigError
from ..events import CancelToken, ItemDone, Message, Progress, offset_tokens
from ..metrics import infogain
from .chain import guarded
from .provenance import stamp, worker_build

OUTPUT_KEYS = (
    "id", "question", "options", "answer_idx", "mode", "model", "n_tokens", "baseline", "steps", "info_gain_mean",
    "delta_nll_mean", "paper_info_gain", "paper_mean", "paper_excluded", "error",
)
# "knowledge": what a decomposition says the step relies on, so `kiig ki` on this output checks it
STEP_KEYS = ("index", "text", "knowledge", "answer_nll", "answer_ppl", "delta_nll", "info_gain", "seq_ppl", "option_probs", "entropy_bits", "p_correct")


@dataclass
class ScoreJob:
    """One input line: an item to score, or the error that line gave."""

    line: int
    key: str
    item: DatasetItem | None = None
    error: str | None = None
    raw_id: str | None = None


@dataclass
class ScoreConfig:
    mode: str = "answer"  # which numbers the GUI and reports lead with; both are always computed
    split: str = "auto"


@dataclass
class RunSummary:
    done: int = 0
    skipped: int = 0
    errors: int = 0
    tokens: int = 0
    run_id: int | None = None
    records: list[dict] = field(default_factory=list)


def read_score_input(path: str | Path) -> list[ScoreJob]:
    """Parse and check a whole ``kiig score`` input file before any model work (docs/cli.md).

    Every bad line -- invalid or hostile JSON, a missing field, an empty given step, a repeated id --
    is listed in one InputError, and nothing is scored.
    """
    return read_checked_jsonl(path, _score_job_of_line, lambda job: job.key)


def _score_job_of_line(obj: dict, line: int) -> ScoreJob:
    item = parse_score_line(obj, line)
    if item.steps is None and not (item.reasoning or "").strip():
        raise InputError("needs 'steps' or a non-empty 'reasoning'")
    if item.steps is not None and not all(s.strip() for s in item.steps):
        raise InputError(f"step {next(i for i, s in enumerate(item.steps) if not s.strip()) + 1} is empty")
    return ScoreJob(line, item.id, item=item, raw_id=item.id)


def output_line(record: dict) -> dict:
    """The docs/cli.md output line of a stored or fresh record (extras left out)."""
    out = {k: record[k] for k in OUTPUT_KEYS if k in record}
    if "steps" in out:
        out["steps"] = [{k: s[k] for k in STEP_KEYS if k in s} for s in out["steps"]]
    return out


def split_item(item: DatasetItem, mode: str, client=None, cancel: CancelToken | None = None) -> tuple[list[dict], dict]:
    """The steps to score (``{"text", "start"?, "end"?, ...}``) and notes on how they were split."""
    if item.steps is not None:
        return item.given_steps(), {"split": "given"}
    if mode == "llm":
        result = split_with_model(client, item.reasoning or "", item.question, cancel)
    else:
        result = split_reasoning(item.reasoning or "", mode)
    steps = []
    for s in result.steps:
        entry = {"text": s.text, "start": s.start, "end": s.end}
        if s.planning is not None:
            entry["planning"] = s.planning
        if s.knowledge is not None:
            entry["knowledge"] = s.knowledge
        steps.append(entry)
    notes = {"split": result.mode, "final_answer": result.final_answer}
    if result.fallback_reason:
        notes["split_fallback"] = result.fallback_reason
    return steps, notes


def score_item(client, item: DatasetItem, config: ScoreConfig, cancel: CancelToken | None = None) -> Generator[Progress, None, dict]:
    """Split and score one item; returns the full record (output fields plus curve and offsets)."""
    steps, notes, chain = _prepare(client, item, config, cancel)
    scored = yield from infogain.iter_score_chain(client, cancel=cancel, **chain)
    return _finish(client, item, config, steps, notes, scored)


def score_items(client, items: list[DatasetItem], config: ScoreConfig,
                cancel: CancelToken | None = None) -> Generator[Progress, None, list]:
    """:func:`score_item` for several items at once (one KV-cache sequence each, the same numbers);
    per item its record, or the KiigError it failed with (splitting or scoring)."""
    prepared: list = []
    for item in items:
        try:
            prepared.append(_prepare(client, item, config, cancel))
        except Cancelled:
            raise
        except KiigError as exc:
            prepared.append(exc)
    todo = [i for i, p in enumerate(prepared) if not isinstance(p, KiigError)]
    scored = yield from infogain.iter_score_chains(client, [prepared[i][2] for i in todo], cancel=cancel)
    out = list(prepared)
    for i, result in zip(todo, scored, strict=True):
        out[i] = result if isinstance(result, KiigError) else _finish(client, items[i], config, *prepared[i][:2], result)
    return out


def _prepare(client, item: DatasetItem, config: ScoreConfig, cancel) -> tuple[list[dict], dict, dict]:
    """The item's steps, the notes on how they were split, and ``iter_score_chain``'s arguments."""
    steps, notes = split_item(item, config.split, client, cancel)
    if not steps or not any(s["text"].strip() for s in steps):
        raise InputError(f"item {item.id!r}: the reasoning has no steps to score")
    if any(not s["text"].strip() for s in steps):
        raise InputError(f"item {item.id!r}: step {next(i for i, s in enumerate(steps) if not s['text'].strip()) + 1} is empty")
    knowledge = [s.get("knowledge") for s in steps]
    chain = {"question": item.question, "answer": item.answer, "steps": [s["text"] for s in steps], "options": item.options,
             "correct_letter": item.answer_idx, "knowledge": knowledge if any(knowledge) else None}
    return steps, notes, chain


def _finish(client, item: DatasetItem, config: ScoreConfig, steps: list[dict], notes: dict, scored: dict) -> dict:
    for st, extra in zip(scored["steps"], steps, strict=True):
        st.update({k: v for k, v in extra.items() if k != "text"})
    record = {"id": item.id, "question": item.question}
    if item.options is not None:
        record.update(options=item.options, answer_idx=item.answer_idx)
    record.update(mode=config.mode, model=client.model_ref())
    record.update(scored)
    record["split"] = notes
    return stamp(record, client)


def score_settings(client, config: ScoreConfig, input_sha256: str) -> dict:
    """What makes two runs comparable; a change in any of these starts a new run."""
    o = client.options
    return {
        "method": infogain.METHOD_VERSION, "mode": config.mode, "split": config.split, "input_sha256": input_sha256,
        "n_ctx": o.n_ctx, "n_batch": o.n_batch, "n_gpu_layers": o.n_gpu_layers, "flash_attn": o.flash_attn, "repack": o.repack,
    }


def versions(client=None) -> dict:
    info = (client.info if client is not None else None) or {}
    return {"kiig": __version__, "llama_cpp_python": info.get("llama_cpp_python"), "system_info": info.get("system_info"),
            "build": worker_build(client)}


def model_row(m: ModelInfo, ref: dict | None = None) -> dict:
    """What the session records about a model file; ``ref`` (path, sha256) when already known."""
    h = m.header
    ref = ref or {"path": m.path, "sha256": m.sha256()}
    return {
        "path": ref["path"], "sha256": ref["sha256"], "name": m.name, "size": m.size,
        "architecture": h.architecture if h else None, "quantization": h.quantization if h else None,
        "parameters": h.parameters if h else None, "context_length": h.context_length if h else None,
        "metadata": dict(h.metadata) if h else {},
    }


def _error_record(job: ScoreJob, config: ScoreConfig, model: dict | None, message: str) -> dict:
    record = {"id": job.raw_id, "mode": config.mode}
    if model is not None:
        record["model"] = model
    record["error"] = message
    return record


def iter_score_file(
    client,
    jobs: Iterable[ScoreJob],
    config: ScoreConfig,
    *,
    store=None,
    input_sha256: str | None = None,
    cancel: CancelToken | None = None,
) -> Generator[Progress | ItemDone | Message, None, RunSummary]:
    """Score every job in order, yielding progress, each finished record and messages.

    With ``store``, each chain is committed as it completes and a rerun with the same input, model
    and settings reloads the finished chains instead of scoring them again.
    """
    jobs = list(jobs)
    summary = RunSummary()
    done_records: dict[str, dict] = {}
    run_id = None
    if store is not None:
        client.start(cancel=cancel)
        model_id = store.ensure_model(model_row(client.model, client.model_ref()))
        run_id, created = store.find_or_create_run("score", score_settings(client, config, input_sha256 or ""), {"scorer": model_id}, versions(client), seed=client.options.seed)
        summary.run_id = run_id
        if not created:
            done_records = store.load_run_records(run_id)
            already = sum(1 for j in jobs if j.key in done_records)
            if already:
                yield Message(f"resuming run {run_id}: {already} of {len(jobs)} chains already scored, skipping them")
    progress = Progress(0, len(jobs))
    tokens_before = 0
    try:
        for index, job in enumerate(jobs):
            if cancel is not None:
                cancel.check()
            progress.message = job.raw_id or job.key
            if job.key in done_records:
                record = done_records[job.key]
                summary.skipped += 1
                skipped = True
            elif job.error is not None:
                record = _error_record(job, config, client.model_ref() if store is not None else None, job.error)
                skipped = False
            else:
                skipped = False
                record, keep = yield from _score_job(client, job, config, cancel, progress, tokens_before)
                if "error" not in record:
                    tokens_before = progress.tokens
                if store is not None and keep:
                    store.save_chain(run_id, job.key, record, item=item_row(job.item))
            if record.get("error") is not None:
                summary.errors += 1
            else:
                summary.done += 1
            progress.done = index + 1
            yield progress
            yield ItemDone(index, record, skipped=skipped)
    except Cancelled:
        if store is not None:
            store.set_run_status(run_id, "cancelled")
        raise
    if store is not None:
        store.set_run_status(run_id, "finished")
    summary.tokens = progress.tokens
    return summary


def _score_job(client, job: ScoreJob, config: ScoreConfig, cancel, progress: Progress, tokens_before: int):
    """``(record, keep)``: the scored record, or its error record; ``keep`` when the session should store it."""
    record, failure = yield from guarded(offset_tokens(score_item(client, job.item, config, cancel), progress, tokens_before))
    if failure is None:
        return record, True
    return _error_record(job, config, client.model_ref(), failure.message), failure.lasting


def item_row(item: DatasetItem | None) -> dict | None:
    """What the session records about a dataset item."""
    if item is None:
        return None
    row = {"id": item.id, "question": item.question, "answer": item.answer, "kind": item.kind}
    if item.options is not None:
        row["options"] = item.options
        row["answer_idx"] = item.answer_idx
    return row
