"""One batch item, or a group of them, through the stages of a batch run: generate, grade, score, judge.

:func:`_run_item` takes one item through every stage and returns its record for the run to commit;
:func:`_group_ahead` does the stages of a group of items at once (``--parallel``: one KV-cache
sequence per item, the numbers those of one at a time), leaving each item's result for its own
:func:`_run_item`. The run itself -- planning, resuming, committing -- is ``runs.batch``; the
cluster path runs the same stages on its nodes (``runs.cluster_node``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Generator
from dataclasses import dataclass, replace

from ..chains.answers import grade
from ..chains.datasets import DatasetItem
from ..chains.prompts import BATCH_PROMPT_VERSION, batch_messages
from ..engine.models import ModelInfo
from ..errors import Cancelled, ContextOverflow, InputError, KiigError
from ..events import CancelToken, Progress, offset_tokens
from .chain import generation_record, guarded, iter_generation
from .ki import ask_many
from .parallel import generate_group
from .provenance import judge_build
from .score import ScoreConfig, score_item, score_items


@dataclass
class BatchConfig:
    """Settings of a batch run; every field is part of the run's identity."""

    max_tokens: int = 384
    temperature: float = 0.0
    seed: int = 0
    split: str = "auto"
    mode: str = "answer"
    limit: int | None = None
    layout: str = "auto"  # dataset layout: auto | mcq | gsm8k | generic (mixed files need generic)
    ki_k: int | None = None  # None: the mode's default (3, or 12 for reasoningeval)
    ki_max_prompt_chars: int = 6000
    ki_mode: str = "probability"

    def generation(self) -> dict:
        return {"max_tokens": self.max_tokens, "temperature": self.temperature, "seed": self.seed, "prompt": BATCH_PROMPT_VERSION}


@dataclass
class BatchProgress(Progress):
    """Progress over all model x item chains; ``reloaded`` chains came from the store (resume).

    The ETA only counts chains done in this session, so a resumed run does not look faster than it is.
    """

    reloaded: int = 0
    phase: str = ""  # loading | generating | scoring | judging
    model: str = ""
    item_id: str = ""

    @property
    def eta_s(self) -> float | None:
        fresh = self.done - self.reloaded
        if not self.total or fresh <= 0:
            return None
        return self.elapsed / fresh * (self.total - self.done)



def build_messages(item: DatasetItem) -> list[dict]:
    """System + user messages asking for numbered reasoning steps and a fixed final-answer line."""
    return batch_messages(item.question, item.options, item.kind)


def item_seed(seed: int, item_id: str) -> int:
    """A per-item sampling seed derived from the run seed, independent of the order of work."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{item_id}".encode()).digest()[:4], "little") & 0x7FFFFFFF



@dataclass
class _Context:
    store: object
    run_id: int
    config: BatchConfig
    corpus: str | None
    cancel: CancelToken | None
    progress: BatchProgress


@dataclass
class _Ahead:
    """What was done for an item together with the rest of its group, and its share of the time.

    ``generation``: the engine's reply or the KiigError it got; ``scored`` / ``ki`` likewise for
    scoring and KI (None: not done ahead, the item's own stage runs them).
    """

    generation: object
    generation_s: float
    scored: object = None
    scoring_s: float = 0.0
    ki: object = None
    ki_s: float = 0.0


def _group_ahead(ctx: _Context, clients: dict, group: list[tuple[int, DatasetItem]]) -> Generator[BatchProgress, None, dict]:
    """Generate, score and judge a group of items at once, one KV-cache sequence per item in each
    model's worker (the numbers are those of one item at a time); by item index."""
    made = yield from _generate_ahead(ctx, clients["subject"], group)
    yield from _score_ahead(ctx, clients["scorer"], group, made)
    if "judge" in clients:
        ctx.progress.phase = "judging"
        yield ctx.progress
        _judge_ahead(ctx, clients["judge"], group, made, len(group))
    return made


def _generate_ahead(ctx: _Context, client, group: list[tuple[int, DatasetItem]]) -> Generator[BatchProgress, None, dict]:
    """The replies of a group of items generated at once, by item index (a result or a KiigError)."""
    ctx.progress.phase, ctx.progress.item_id = "generating", f"{group[0][1].id}..{group[-1][1].id}"
    requests = [{"messages": build_messages(it), "seed": item_seed(ctx.config.seed, it.id)} for _, it in group]
    started = time.perf_counter()
    out = yield from generate_group(client, requests, max_tokens=ctx.config.max_tokens, temperature=ctx.config.temperature,
                                    cancel=ctx.cancel, progress=ctx.progress)
    share = (time.perf_counter() - started) / len(group)
    return {i: _Ahead(r, share) for (i, _), r in zip(group, out, strict=True)}


def _score_ahead(ctx: _Context, client, group: list[tuple[int, DatasetItem]], made: dict[int, _Ahead]) -> Generator[BatchProgress, None, None]:
    """Score the group's replies at once (``runs.score.score_items``) into ``made``."""
    todo = [(i, it) for i, it in group if isinstance(made[i].generation, dict) and made[i].generation.get("stop") != "cancelled"]
    if not todo or (ctx.cancel is not None and ctx.cancel.cancelled):
        return
    ctx.progress.phase = "scoring"
    items = [replace(it, reasoning=made[i].generation["text"], steps=None) for i, it in todo]
    started = time.perf_counter()
    try:
        out = yield from offset_tokens(score_items(client, items, ScoreConfig(mode=ctx.config.mode, split=ctx.config.split), ctx.cancel),
                                       ctx.progress, ctx.progress.tokens)
    except Cancelled:
        raise
    except KiigError as exc:  # the whole call failed (a crashed worker): each item fails as it would alone
        out = [exc] * len(todo)
    share = (time.perf_counter() - started) / len(todo)
    for (i, _), scored in zip(todo, out, strict=True):
        made[i].scored, made[i].scoring_s = scored, share


def _judge_ahead(ctx: _Context, judge, group: list[tuple[int, DatasetItem]], made: dict[int, _Ahead], size: int) -> None:
    """Judge the KI of the group's scored chains at once (``knowledge.ki.chains_ki``) into ``made``,
    ``size`` judge prompts per call to the judge's worker."""
    from ..knowledge.ki import chains_ki, steps_to_judge, token_ids_of
    from ..knowledge.ki_rules import PIPELINE

    todo = [(i, it) for i, it in group if isinstance(made[i].scored, dict)]
    if not todo or ctx.config.ki_mode == PIPELINE or (ctx.cancel is not None and ctx.cancel.cancelled):
        return  # ReasoningEval's pipeline judges chain by chain (its stages depend on each other)
    cfg = ctx.config
    chains = [(steps_to_judge(made[i].scored["steps"]), it.prompt_text()) for i, it in todo]
    started = time.perf_counter()
    try:
        out = chains_ki(ctx.store.db, ctx.corpus, chains, ask_many(judge, cfg.ki_mode, size, ctx.cancel), k=cfg.ki_k,
                        token_ids=None if cfg.ki_mode == "passages-true-false" else token_ids_of(judge),
                        max_prompt_chars=cfg.ki_max_prompt_chars, mode=cfg.ki_mode)
    except Cancelled:
        raise
    except KiigError as exc:
        out = [exc] * len(todo)
    share = (time.perf_counter() - started) / len(todo)
    for (i, _), ki in zip(todo, out, strict=True):
        made[i].ki, made[i].ki_s = ki, share


def _run_item(ctx: _Context, clients: dict, subject: ModelInfo, subject_id: int, judge_id: int | None,
              item: DatasetItem, made: _Ahead | None = None) -> Generator[BatchProgress, None, tuple[dict, dict | None, dict | None, bool]]:
    """One chain: ``(record, generation, ki, keep)``; ``keep`` says whether ``save_chain`` should store it.

    A failure goes into the record's ``"error"``; :func:`~kiig_desktop.runs.chain.guarded` decides
    whether it is lasting (stored) or transient (retried by a rerun). ``made``: what was done for
    the item together with its group (:func:`_group_ahead`), and its share of that time.
    ``record["timing"]``: seconds of generation, scoring and KI (in a group, the item's equal share
    of each stage's group time), and ``total_s``: those shares plus the item's own time here, so
    never less than the sum of its parts.
    """
    sub_ref = {"path": subject.path, "sha256": subject.sha256(), "name": subject.name}
    record: dict = {"id": item.id, "mode": ctx.config.mode, "subject": sub_ref}
    timing = {"generation_s": 0.0, "scoring_s": 0.0, "ki_s": 0.0}
    out: dict = {"generation": None, "ki": None}
    started = time.perf_counter()
    _, failure = yield from guarded(_stages(ctx, clients, subject_id, judge_id, item, record, timing, out, made))
    if failure is not None:
        record["error"] = failure.message
    timing["total_s"] = time.perf_counter() - started + (_ahead_s(made) if made is not None else 0.0)
    parts = {k: round(v, 4) for k, v in timing.items() if k != "total_s"}
    record["timing"] = {**parts, "total_s": max(round(timing["total_s"], 4), round(sum(parts.values()), 4))}
    return record, out["generation"], out["ki"], failure is None or failure.lasting


def _ahead_s(made: _Ahead) -> float:
    """The item's share of the time its group spent on it ahead of its own stages."""
    return made.generation_s + made.scoring_s + made.ki_s


def _stages(ctx: _Context, clients: dict, subject_id: int, judge_id: int | None, item: DatasetItem, record: dict,
            timing: dict, out: dict, made: _Ahead | None = None) -> Generator[BatchProgress, None, None]:
    """Generate, score and judge one chain, filling ``record``, ``timing`` and ``out`` as each stage ends."""
    cfg, progress = ctx.config, ctx.progress
    started = time.perf_counter()
    progress.phase = "generating"
    yield progress
    generation = out["generation"] = yield from _generate(clients["subject"], item, cfg, ctx.cancel, progress,
                                                          made.generation if made else None)
    generation["model_id"] = subject_id
    timing["generation_s"] = made.generation_s if made else time.perf_counter() - started
    record.update(extracted_answer=generation["extracted_answer"], correct=generation["correct"],
                  n_generated_tokens=len(generation["tokens"]), stop=generation["stop"])
    progress.phase = "scoring"
    yield progress
    t = time.perf_counter()
    if made is not None and made.scored is not None:
        scored, timing["scoring_s"] = _done_ahead(made.scored), made.scoring_s
    else:
        scored = yield from _score(clients["scorer"], item, generation["text"], cfg, ctx.cancel, progress)
        timing["scoring_s"] = time.perf_counter() - t
    merged = {**scored, **record, "id": item.id}
    record.clear()
    record.update(merged)
    if "judge" in clients:
        progress.phase = "judging"
        yield progress
        t = time.perf_counter()
        ahead = made is not None and made.ki is not None
        out["ki"] = _judge(ctx, clients["judge"], judge_id, item, record, made.ki if ahead else None)
        timing["ki_s"] = made.ki_s if ahead else time.perf_counter() - t


def _done_ahead(result):
    """A result computed with the item's group, or the KiigError it got raised as the item's own."""
    if isinstance(result, KiigError):
        raise result
    return result


def _generate(client, item: DatasetItem, cfg: BatchConfig, cancel, progress: BatchProgress, made=None):
    """The item's generation record; ``made``: its reply already generated in a group (or the error it got)."""
    if made is not None:
        if isinstance(made, KiigError):
            raise made
        if made.get("stop") == "cancelled" or (cancel is not None and cancel.cancelled):
            raise Cancelled()
        result = made
    else:
        result = yield from _generate_one(client, item, cfg, cancel, progress)
    extracted, correct = grade(result["text"], item)
    return generation_record(result, extracted, correct, n_prompt_tokens=result.get("n_prompt_tokens"),
                             seed=item_seed(cfg.seed, item.id), prompt=BATCH_PROMPT_VERSION)


def _generate_one(client, item: DatasetItem, cfg: BatchConfig, cancel, progress: BatchProgress):
    stream = iter_generation(client, build_messages(item), cancel=cancel, max_tokens=cfg.max_tokens,
                             temperature=cfg.temperature, seed=item_seed(cfg.seed, item.id), top_k=0)
    n = 0
    while True:
        try:
            next(stream)
        except StopIteration as stop:
            return stop.value
        n += 1
        progress.tokens += 1
        if n % 8 == 0:
            yield progress


def _score(client, item: DatasetItem, text: str, cfg: BatchConfig, cancel, progress: BatchProgress):
    gen = score_item(client, replace(item, reasoning=text, steps=None), ScoreConfig(mode=cfg.mode, split=cfg.split), cancel)
    return (yield from offset_tokens(gen, progress, progress.tokens))


def _judge(ctx: _Context, judge, judge_id: int, item: DatasetItem, record: dict, ahead=None) -> dict | None:
    """KI of the record's steps (``ahead``: judged with the item's group); merged into the steps,
    returned as ``save_chain``'s ``ki``."""
    from ..knowledge.ki import KI_METHOD_VERSION, score_chain_ki, steps_to_judge

    steps = steps_to_judge(record["steps"])
    try:
        ki = _done_ahead(ahead) if ahead is not None else score_chain_ki(
            ctx.store.db, ctx.corpus, judge, steps, item.prompt_text(), k=ctx.config.ki_k, cancel=ctx.cancel,
            max_prompt_chars=ctx.config.ki_max_prompt_chars, mode=ctx.config.ki_mode)
    except (ContextOverflow, InputError) as exc:
        record["ki_error"] = exc.message
        record["ki_mean"] = None
        return None
    for step, ks in zip(record["steps"], ki["steps"], strict=True):
        step["applicable"], step["ki"] = ks["applicable"], ks["ki"]
    record["ki_mean"] = ki["ki_mean"]
    record["ki"] = {"corpus": ctx.corpus, "n_applicable": ki["n_applicable"], "n_judged": ki["n_judged"],
                    "mode": ctx.config.ki_mode, "k": ctx.config.ki_k}
    return {"judge_model_id": judge_id, "corpus": ctx.corpus, "steps": ki["steps"], "ki_mean": ki["ki_mean"],
            "mode": ctx.config.ki_mode, "k": ctx.config.ki_k, "method": KI_METHOD_VERSION, "build": judge_build(judge)}
