"""Knowledge Index passes: a file of chains (``kiig ki``) and one stored chain (the KI panel).

Both judge the same steps (:func:`~kiig_desktop.knowledge.ki.steps_to_judge`) with the same
settings (:func:`ki_settings`, version :data:`KI_METHOD_VERSION`), as a batch run's KI stage does.
Neither needs Qt: the CLI and the GUI only drive these generators.

A file pass is a run of kind ``ki``: each chain is committed as soon as it is judged, and running
the same input again reuses the chains already judged (same step texts) and yields the same records.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

from .. import __version__
from ..chains.dataset_files import read_checked_jsonl
from ..chains.prompts import question_text
from ..errors import Cancelled, InputError, KiigError
from ..events import CancelToken, ItemDone, Message, Progress, run_to_end
from ..knowledge.corpus import corpus_fingerprint
from ..knowledge.ki import (
    NO_CANDIDATES,
    YES_CANDIDATES,
    AskMany,
    build_query,
    iter_chain_ki,
    judge_model_ref,
    ki_items,
    parse_ki_item,
    step_claim,
    steps_to_judge,
)
from ..knowledge.ki_rules import DEFAULT_MODE, KI_METHOD_VERSION, PIPELINE, TRUE_FALSE_MAX_TOKENS
from ..knowledge.ki_rules import settings as mode_settings
from ..knowledge.search import corpus_id
from .analysis import Question
from .provenance import judge_build, stamp, worker_build


def ki_settings(db, corpus: str, k: int | None, max_prompt_chars: int, mode: str = DEFAULT_MODE) -> dict:
    """What makes two KI passes the same work: the corpus (and its content), the mode, k (None: the
    mode's default), the prompt budget, the method."""
    return {"corpus": corpus, "corpus_fingerprint": corpus_fingerprint(db, corpus),
            "max_prompt_chars": max_prompt_chars, **mode_settings(mode, k)}


def evaluation_how(settings: dict) -> dict:
    """The ``mode``, ``k`` and ``method`` a KI evaluation is stored with, from its :func:`ki_settings`."""
    return {"mode": settings.get("mode", DEFAULT_MODE), "k": settings["k"], "method": settings["method"]}


# ------------------------------------------------------------------------------ a file of chains


def read_ki_input(path: str) -> list[dict]:
    """Parse and validate the whole input file first, so a bad line stops before any model loads.

    Every bad line is listed (one InputError, exit 2), as for ``kiig score``, ``run`` and ``import``.
    """

    def parse(obj: dict, line_no: int) -> dict:
        item = parse_ki_item(obj, line_no)
        item["_source"] = obj
        return item

    items = read_checked_jsonl(path, parse, lambda item: item["id"])
    if not items:
        raise InputError(f"{path} holds no input lines")
    return items


def _stored_item(src: dict) -> dict | None:
    """The input item as the session keeps it (only when the line carries a question)."""
    if not isinstance(src.get("question"), str):
        return None
    keep = ("id", "question", "answer", "options", "answer_idx")
    return {k: src[k] for k in keep if k in src}


def _reusable(record: dict, item: dict) -> bool:
    """A stored record answers this input line only if it judged the same step texts."""
    if item.get("error"):
        return bool(record.get("error")) and not record.get("steps")
    return [s.get("text") for s in record.get("steps") or []] == [s["text"] for s in item["steps"]]


def calibrate_record(record: dict, calibration: dict | None) -> dict:
    """Add the calibrated KI (``metrics.calibration``) beside the raw one: ``ki_calibrated`` per step,
    ``ki_calibrated_mean`` (over the same steps as ``ki_mean``) and ``calibration`` (which fit). The
    raw ``ki`` is never replaced: stored numbers say which they are. Returns the record."""
    from ..knowledge.ki_rules import chain_mean
    from ..metrics.calibration import apply

    if not calibration or record.get("error") or record.get("ki_mode", DEFAULT_MODE) != DEFAULT_MODE:
        return record
    a, b = float(calibration["a"]), float(calibration["b"])
    for step in record.get("steps") or []:
        step["ki_calibrated"] = apply(step.get("ki"), a, b)
    values = [{"applicable": s.get("applicable"), "ki": s.get("ki_calibrated")} for s in record.get("steps") or []]
    record["ki_calibrated_mean"] = chain_mean(values, DEFAULT_MODE)
    record["calibration"] = {k: calibration.get(k) for k in ("method", "a", "b", "n", "folds", "claims_sha256",
                                                              "fitted", "brier_before", "brier_after")}
    return record


@dataclass
class KiSummary:
    run_id: int
    reused: int = 0
    errors: int = 0


def check_corpus(store, corpus: str) -> None:
    """InputError unless the session holds a non-empty corpus of that name."""
    cid = corpus_id(store.db, corpus)
    if not store.db.execute("SELECT 1 FROM corpus_chunks WHERE corpus_id = ? LIMIT 1", [cid]).fetchone():
        raise InputError(f"corpus {corpus!r} is empty")


def iter_ki_file(store, corpus: str, judge, items: list[dict], *, k: int | None = None, max_prompt_chars: int = 6000,
                 cancel: CancelToken | None = None, mode: str = DEFAULT_MODE, rag=None,
                 calibration: dict | None = None) -> Generator[Progress | ItemDone | Message, None, KiSummary]:
    """Judge every item of :func:`read_ki_input` (or resume), yielding each record as ``ItemDone(index in items)``.

    Reused records come first (``skipped=True``), then the others as they are judged; each is
    committed before it is yielded. Cancel marks the run ``cancelled`` (``interrupted`` for Ctrl+C).
    ``rag``: ReasoningEval's pipeline's query and RAG-answer model (None: the judge); part of the
    run's identity and of every record's ``build`` (``rag_model``). ``calibration``: a stored Platt
    fit whose calibrated KI is added beside the raw one (:func:`calibrate_record`).
    """
    settings = ki_settings(store.db, corpus, k, max_prompt_chars, mode)
    rag_ref = judge_model_ref(rag) if rag is not None else None
    if rag_ref is not None:
        settings["rag_model"] = rag_ref.get("sha256")
    k = settings["k"]
    judge_id = store.ensure_model(judge_model_ref(judge))
    run_id, created = store.find_or_create_run("ki", settings, {"judge": judge_id},
                                               {"kiig": __version__, "build": judge_build(judge)})
    stored = {} if created else store.load_run_records(run_id)
    summary = KiSummary(run_id)
    reused = [i for i, it in enumerate(items) if it["id"] in stored and _reusable(stored[it["id"]], it)]
    summary.reused = len(reused)
    if reused:
        yield Message(f"{len(reused)} chains already done in this session; skipping them")
    for i in reused:
        summary.errors += bool(stored[items[i]["id"]].get("error"))
        yield ItemDone(i, calibrate_record(stored[items[i]["id"]], calibration), skipped=True)
    done = set(reused)
    todo = [i for i in range(len(items)) if i not in done]
    try:
        if todo:
            for event in ki_items(store.db, corpus, judge, [items[i] for i in todo], k=k, cancel=cancel,
                                  max_prompt_chars=max_prompt_chars, mode=mode, rag=rag):
                if isinstance(event, ItemDone):
                    record, item = stamp(event.result, judge, judge=True), items[todo[event.index]]
                    if rag_ref is not None and isinstance(record.get("build"), dict):
                        record["build"]["rag_model"] = {**rag_ref, "build": judge_build(rag)}
                    calibrate_record(record, calibration)
                    ki = None if record.get("error") else {
                        "judge_model_id": judge_id, "corpus": corpus, "steps": record["steps"], "ki_mean": record["ki_mean"],
                        **evaluation_how(settings), "build": record.get("build")}
                    store.save_chain(run_id, item["id"], record, item=_stored_item(item["_source"]), ki=ki)
                    summary.errors += bool(record.get("error"))
                    event = ItemDone(todo[event.index], record)
                yield event
    except (Cancelled, GeneratorExit):
        store.set_run_status(run_id, "cancelled")
        raise
    except KeyboardInterrupt:
        store.set_run_status(run_id, "interrupted")
        raise
    store.set_run_status(run_id, "finished")
    return summary


def ask_many(client, mode: str, size: int, cancel: CancelToken | None = None) -> AskMany:
    """The AskMany of :func:`~kiig_desktop.knowledge.ki.chains_ki` over an engine client: ``size``
    judge prompts at a time read at once (``judge_many``; greedy replies through ``generate_many``
    in ReasoningEval's mode), each its own KV-cache sequence, with the numbers of one at a time."""

    def ask(prompts: list[list[dict]]) -> list:
        out: list = []
        for g in range(0, len(prompts), max(1, size)):
            part = prompts[g : g + max(1, size)]
            if mode == "passages-true-false":
                replies = run_to_end(client.generate_many([{"messages": m} for m in part], cancel=cancel,
                                                          max_tokens=TRUE_FALSE_MAX_TOKENS, temperature=0.0, top_k=0))
                if cancel is not None and cancel.cancelled:
                    raise Cancelled()
                out += [r if isinstance(r, KiigError) else r["text"] for r in replies]
            else:
                out += run_to_end(client.judge_many(part, [*YES_CANDIDATES, *NO_CANDIDATES], cancel=cancel))
        return out

    return ask


# ------------------------------------------------------------------------------ one stored chain


def step_query(ks: dict, step: dict | None, question: str | None) -> tuple[str, str]:
    """(claim, retrieval query) of a KI step: as stored, else rebuilt exactly as scoring built them."""
    claim, query = ks.get("claim"), ks.get("query")
    if isinstance(claim, str) and isinstance(query, str):
        return claim, query
    if "query_reply" in ks:  # ReasoningEval's pipeline: the query is what its LLM wrote (none: "None")
        return str(claim or ""), str(query or "")
    text = str(ks.get("text") or (step or {}).get("text") or "")
    knowledge = (step or {}).get("knowledge")
    return step_claim(text, knowledge, question)[2], build_query(text, knowledge, question)


class CancellableJudge:
    """The Judge protocol over an engine client, with one cancel token on every call."""

    def __init__(self, client, cancel: CancelToken | None) -> None:
        self.client, self.cancel = client, cancel

    @property
    def model_ref(self) -> dict:
        return self.client.model_ref()

    def next_token_logprobs(self, messages: list[dict], candidates: list[str]) -> dict[str, float]:
        return self.client.next_token_logprobs(messages, candidates, cancel=self.cancel)

    def first_token_ids(self, candidates: list[str]) -> dict[str, int]:
        return self.client.first_token_ids(candidates)

    def reply(self, messages: list[dict], max_tokens: int = 8) -> str:
        return self.client.reply(messages, max_tokens, cancel=self.cancel)

    def build(self) -> dict | None:
        return worker_build(self.client)

    @property
    def info(self) -> dict | None:
        return self.client.info

    @property
    def options(self):
        return self.client.options


def chain_question(item: dict | None) -> str | None:
    """``Q`` of a stored chain's item, as the judge reads it (None when the chain has no question)."""
    q = Question.from_item(item)
    return None if q is None else question_text(q.question, q.options)


def iter_stored_chain_ki(db, corpus: str, judge, record: dict, item: dict | None, *, k: int | None = None,
                         cancel: CancelToken | None = None, mode: str = DEFAULT_MODE) -> Generator[Progress, None, dict]:
    """KI of one stored chain's steps, each step with the claim and query it was judged by."""
    steps, question = steps_to_judge(record.get("steps") or []), chain_question(item)
    k = mode_settings(mode, k)["k"]
    out = yield from iter_chain_ki(db, corpus, judge, steps, question, k=k, cancel=cancel, mode=mode)
    if mode == PIPELINE:
        out["build"] = judge_build(judge)
        return out  # every stage is already in the steps
    out["build"] = judge_build(judge)
    for ks, step in zip(out["steps"], steps, strict=True):
        ks["claim"], ks["query"] = step_query(ks, step, question)
    return out


def save_chain_ki(store, chain_id: int, judge_row: dict, corpus: str, out: dict) -> list[dict]:
    """Store a chain's KI evaluation; return all of the chain's evaluations as stored."""
    how = {"mode": out.get("ki_mode", DEFAULT_MODE), "k": out.get("ki_k"), "method": KI_METHOD_VERSION, "build": out.get("build")}
    store.save_ki(chain_id, store.ensure_model(judge_row), corpus, out["steps"], out["ki_mean"], how)
    return store.load_ki(chain_id)
