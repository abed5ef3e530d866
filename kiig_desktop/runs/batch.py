"""Batch evaluation: for every subject model and dataset item, generate, grade, split, score, judge.

One batch run (kind ``batch``) covers several subject models on one dataset. Per model and item:

1. the subject model writes its reasoning with its own chat template (:func:`build_messages`),
   greedy by default, seeded per item when sampling so the result never depends on run order;
2. the final answer is extracted and graded (:func:`kiig_desktop.chains.answers.grade`);
3. the text is split into steps and the scorer model scores InfoGain (``runs.score.score_item``);
4. with a judge and a corpus, each step's Knowledge Index is judged.

Each chain is committed as it completes (its generation, steps, curve and KI evidence in one
transaction) under the key ``"<subject sha256[:12]>:<item id>"``. The run's identity is the dataset
(sha256), the subject models (sha256, in order), scorer, judge, corpus fingerprint and every setting
that changes numbers, so running the same command again resumes it. Run-level model roles hold the
scorer and judge (and the subject when there is only one); each chain's generation names its
subject model. ``record["timing"]`` splits the seconds of each item into generation, scoring and KI.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import __version__
from ..chains.answers import grade
from ..chains.datasets import DatasetItem, load_dataset
from ..chains.prompts import BATCH_PROMPT_VERSION, batch_messages
from ..config import EngineOptions
from ..engine.client import EngineClient
from ..engine.models import ModelInfo, resolve_model
from ..errors import Cancelled, ContextOverflow, InputError, KiigError
from ..events import CancelToken, ItemDone, Message, Progress, offset_tokens
from ..files import file_sha256
from ..metrics import infogain
from ..strict_json import bad_lines_error
from .chain import generation_record, guarded, iter_generation
from .ki import ask_many, ki_settings
from .parallel import check_parallel, default_parallel, generate_group
from .provenance import worker_build
from .score import ScoreConfig, item_row, model_row, score_item, score_items

BATCH_METHOD = "kiig-batch-1"


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


@dataclass
class BatchSummary:
    """What a batch did: ``done`` chains now, ``reloaded`` from the store; ``errors`` counts both kinds."""

    run_id: int
    total: int
    reloaded: int = 0
    done: int = 0
    errors: int = 0
    error_keys: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------ helpers


def build_messages(item: DatasetItem) -> list[dict]:
    """System + user messages asking for numbered reasoning steps and a fixed final-answer line."""
    return batch_messages(item.question, item.options, item.kind)


def item_seed(seed: int, item_id: str) -> int:
    """A per-item sampling seed derived from the run seed, independent of the order of work."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{item_id}".encode()).digest()[:4], "little") & 0x7FFFFFFF


def batch_key(model_sha256: str, item_id: str) -> str:
    """A batch chain's key in its run: the subject model's SHA-256 prefix and the item id."""
    return f"{model_sha256[:12]}:{item_id}"


def load_items(dataset: str | Path, limit: int | None = None, layout: str = "auto") -> tuple[list[DatasetItem], str]:
    """The dataset's first ``limit`` items and the file's sha256; any bad row is an InputError."""
    ds = load_dataset(dataset, layout)
    if ds.errors:  # the one policy of docs/cli.md: every bad line listed, nothing run
        raise bad_lines_error(dataset, [(e.line, e.message) for e in ds.errors])
    if not ds.items:
        raise InputError(f"{dataset} holds no items")
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    return (ds.items[:limit] if limit else ds.items), file_sha256(dataset)


def batch_settings(config: BatchConfig, dataset_sha256: str, n_items: int, subjects: Sequence[str],
                   options: EngineOptions, ki: dict | None) -> dict:
    """What makes two batch runs the same work (see the module docstring)."""
    return {
        "method": BATCH_METHOD, "infogain": infogain.METHOD_VERSION, "dataset_sha256": dataset_sha256,
        "limit": config.limit, "layout": config.layout, "n_items": n_items, "subjects": list(subjects), "generation": config.generation(),
        "mode": config.mode, "split": config.split, "ki": ki,
        "engine": {"n_ctx": options.n_ctx, "n_batch": options.n_batch, "n_gpu_layers": options.n_gpu_layers,
                   "flash_attn": options.flash_attn},
    }


class _Workers:
    """Engine workers of one batch; the same model file (scorer = subject, say) shares one worker."""

    def __init__(self, factory: Callable[[ModelInfo, EngineOptions], object], options: EngineOptions) -> None:
        self.factory, self.options = factory, options
        self.open: dict[str, object] = {}

    def get(self, info: ModelInfo):
        key = str(Path(info.path).resolve())
        if key not in self.open:
            self.open[key] = self.factory(info, self.options)
        return self.open[key]

    def release(self, info: ModelInfo, keep: Sequence[ModelInfo | None]) -> None:
        """Close ``info``'s worker unless a model in ``keep`` uses the same file."""
        key = str(Path(info.path).resolve())
        if key in {str(Path(k.path).resolve()) for k in keep if k is not None} or key not in self.open:
            return
        self.open.pop(key).close()

    def close_all(self) -> None:
        while self.open:
            self.open.popitem()[1].close()


@dataclass
class BatchPlan:
    """A batch run as found or created in the session: its items, models, keys and what is stored already.

    The local run and the cluster run (``runs.cluster``) both start from it and both commit through
    :func:`commit_chain`, so they store the same rows and resume the same way.
    """

    store: object
    config: BatchConfig
    items: list[DatasetItem]
    subjects: list[ModelInfo]
    subject_ids: list[int]
    scorer: ModelInfo
    judge: ModelInfo | None
    roles: dict
    run_id: int
    keys: list[list[str]]  # keys[model index][item index]
    stored: dict[str, str]  # key -> status of chains already in the session
    summary: BatchSummary
    progress: BatchProgress
    resume_note: str | None = None

    def pending(self, m: int) -> list[tuple[int, DatasetItem]]:
        """Items of subject ``m`` not yet in the session, by item index."""
        return [(i, it) for i, it in enumerate(self.items) if self.keys[m][i] not in self.stored]


def plan_batch(store, dataset: str | Path, models: Sequence[str | ModelInfo], scorer: str | ModelInfo, *,
               judge: str | ModelInfo | None, corpus: str | None, config: BatchConfig, options: EngineOptions,
               name: str | None) -> BatchPlan:
    """Check the arguments, find or create the run and see which chains are done (raises KiigError)."""
    if not models:
        raise InputError("name at least one subject model")
    if (judge is None) != (corpus is None):
        raise InputError("KI needs both a judge model and a corpus (or neither)")
    items, dataset_sha = load_items(dataset, config.limit, config.layout)
    subjects = [m if isinstance(m, ModelInfo) else resolve_model(str(m)) for m in models]
    scorer_info = scorer if isinstance(scorer, ModelInfo) else resolve_model(str(scorer))
    judge_info = judge if judge is None or isinstance(judge, ModelInfo) else resolve_model(str(judge))
    shas = [s.sha256() for s in subjects]
    if len(set(shas)) != len(shas):
        raise InputError("the same model file is named twice in --models")
    ki_config = None
    if corpus is not None:
        ki_config = ki_settings(store.db, corpus, config.ki_k, config.ki_max_prompt_chars, config.ki_mode)
        config = replace(config, ki_k=ki_config["k"])
    subject_ids = [store.ensure_model(model_row(s)) for s in subjects]
    roles = {"scorer": store.ensure_model(model_row(scorer_info))}
    if judge_info is not None:
        roles["judge"] = store.ensure_model(model_row(judge_info))
    if len(subjects) == 1:
        roles["subject"] = subject_ids[0]
    settings = batch_settings(config, dataset_sha, len(items), shas, options, ki_config)
    run_id, _ = store.find_or_create_run("batch", settings, roles, {"kiig": __version__}, seed=config.seed,
                                         name=name or Path(dataset).name)
    stored = {c["key"]: c["status"] for c in store.chains_for_run(run_id)}
    keys = [[batch_key(sha, it.id) for it in items] for sha in shas]
    reloaded = [k for row in keys for k in row if k in stored]
    total = len(subjects) * len(items)
    failed_before = [k for k in reloaded if stored[k] == "error"]
    summary = BatchSummary(run_id, total, reloaded=len(reloaded), errors=len(failed_before), error_keys=failed_before)
    note = None
    if reloaded:
        note = (f"resuming run {run_id}: {len(reloaded)} of {total} chains already done, skipping them"
                + (f" ({len(failed_before)} of them failed; delete the run to retry)" if failed_before else ""))
    return BatchPlan(store, config, items, subjects, subject_ids, scorer_info, judge_info, roles, run_id, keys, stored,
                     summary, BatchProgress(len(reloaded), total, reloaded=len(reloaded)), note)


def commit_chain(plan: BatchPlan, m: int, i: int, record: dict, generation: dict | None, ki: dict | None, keep: bool) -> None:
    """Store one finished chain (subject ``m``, item ``i``) when ``keep``, and count it: the one commit of a batch."""
    key = plan.keys[m][i]
    if keep:
        plan.store.save_chain(plan.run_id, key, record, item=item_row(plan.items[i]), generation=generation, ki=ki)
    if record.get("error"):
        plan.summary.errors += 1
        plan.summary.error_keys.append(key)
    plan.summary.done += 1
    plan.progress.done += 1
    plan.progress.phase = "done"


# ------------------------------------------------------------------------------------ the run


def iter_batch(
    store,
    dataset: str | Path,
    models: Sequence[str | ModelInfo],
    scorer: str | ModelInfo,
    *,
    judge: str | ModelInfo | None = None,
    corpus: str | None = None,
    config: BatchConfig | None = None,
    options: EngineOptions | None = None,
    cancel: CancelToken | None = None,
    client_factory: Callable[[ModelInfo, EngineOptions], object] = EngineClient,
    name: str | None = None,
    parallel: int | None = None,
) -> Generator[BatchProgress | ItemDone | Message, None, BatchSummary]:
    """Run (or resume) a batch, yielding progress, each new chain's record and messages.

    ``parallel``: items whose replies are generated at once (None: :func:`~.parallel.default_parallel`);
    it changes speed, not results, and is not part of the run's identity.
    ``store`` is a writable SessionStore (used from this thread only). Expected problems (bad
    dataset, unknown model or corpus) raise KiigError before any model loads; a failing item becomes
    a record with ``"error"`` and the batch goes on. Cancel (or closing the generator) marks the run
    ``cancelled``; calling again with the same arguments resumes it.
    """
    config = config or BatchConfig()
    options = options or EngineOptions()
    plan = plan_batch(store, dataset, models, scorer, judge=judge, corpus=corpus, config=config, options=options, name=name)
    config, items, subjects, subject_ids, scorer_info, judge_info, roles, run_id, keys, stored, summary, progress = (
        plan.config, plan.items, plan.subjects, plan.subject_ids, plan.scorer, plan.judge, plan.roles, plan.run_id,
        plan.keys, plan.stored, plan.summary, plan.progress)
    if plan.resume_note:
        yield Message(plan.resume_note)
    workers = _Workers(client_factory, options)
    ctx = _Context(store, run_id, config, corpus, cancel, progress)
    try:
        for m, (subject, subject_id) in enumerate(zip(subjects, subject_ids, strict=True)):
            pending = [(i, it) for i, it in enumerate(items) if keys[m][i] not in stored]
            if not pending:
                continue
            progress.model, progress.phase, progress.item_id = subject.name, "loading", ""
            yield progress
            clients = {"subject": workers.get(subject), "scorer": workers.get(scorer_info)}
            if judge_info is not None:
                clients["judge"] = workers.get(judge_info)
            for client in clients.values():
                client.start(cancel=cancel)
            group_size = check_parallel(parallel) if parallel is not None else default_parallel(subject, options.n_ctx)
            made: dict[int, _Ahead] = {}
            for g, (i, item) in enumerate(pending):
                if cancel is not None:
                    cancel.check()
                if group_size > 1 and g % group_size == 0:
                    made = yield from _group_ahead(ctx, clients, pending[g : g + group_size])
                progress.item_id = item.id
                record, generation, ki, keep = yield from _run_item(ctx, clients, subject, subject_id, roles.get("judge"), item,
                                                                    made.pop(i, None))
                commit_chain(plan, m, i, record, generation, ki, keep)
                yield progress
                yield ItemDone(m * len(items) + i, record)
            workers.release(subject, [scorer_info, judge_info])
    except (Cancelled, GeneratorExit, KeyboardInterrupt):
        store.set_run_status(run_id, "cancelled")
        raise
    except BaseException:
        store.set_run_status(run_id, "failed")
        raise
    finally:
        workers.close_all()
    store.set_run_status(run_id, "finished")
    return summary


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

    todo = [(i, it) for i, it in group if isinstance(made[i].scored, dict)]
    if not todo or (ctx.cancel is not None and ctx.cancel.cancelled):
        return
    cfg = ctx.config
    chains = [(steps_to_judge(made[i].scored["steps"]), it.prompt_text()) for i, it in todo]
    started = time.perf_counter()
    try:
        out = chains_ki(ctx.store.db, ctx.corpus, chains, ask_many(judge, cfg.ki_mode, size, ctx.cancel), k=cfg.ki_k,
                        token_ids=None if cfg.ki_mode == "reasoningeval" else token_ids_of(judge),
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
    """
    sub_ref = {"path": subject.path, "sha256": subject.sha256(), "name": subject.name}
    record: dict = {"id": item.id, "mode": ctx.config.mode, "subject": sub_ref}
    timing = {"generation_s": 0.0, "scoring_s": 0.0, "ki_s": 0.0}
    out: dict = {"generation": None, "ki": None}
    started = time.perf_counter()
    _, failure = yield from guarded(_stages(ctx, clients, subject_id, judge_id, item, record, timing, out, made))
    if failure is not None:
        record["error"] = failure.message
    timing["total_s"] = time.perf_counter() - started
    record["timing"] = {k: round(v, 4) for k, v in timing.items()}
    return record, out["generation"], out["ki"], failure is None or failure.lasting


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
            "mode": ctx.config.ki_mode, "k": ctx.config.ki_k, "method": KI_METHOD_VERSION, "build": worker_build(judge)}
