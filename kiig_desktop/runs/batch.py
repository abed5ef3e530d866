"""Batch evaluation: for every subject model and dataset item, generate, grade, split, score, judge.

One batch run (kind ``batch``) covers several subject models on one dataset. Per model and item:

1. the subject model writes its reasoning with its own chat template (``runs.batch_stages.build_messages``),
   greedy by default, seeded per item when sampling so the result never depends on run order;
2. the final answer is extracted and graded (:func:`kiig_desktop.chains.answers.grade`);
3. the text is split into steps and the scorer model scores InfoGain (``runs.score.score_item``);
4. with a judge and a corpus, each step's Knowledge Index is judged.

Each chain is committed as it completes (its generation, steps, curve and KI evidence in one
transaction) under the key ``"<subject sha256[:12]>:<item id>"``. The run's identity is the dataset
(sha256), the subject models (sha256, in order), scorer, judge, corpus fingerprint and every setting
that changes numbers, so running the same command again resumes it. Run-level model roles hold the
scorer and judge (and the subject when there is only one); each chain's generation names its
subject model. ``record["timing"]`` splits the seconds of each item into generation, scoring and KI
(with ``--parallel``, each item of a group gets an equal share of the group's time per stage) and
``total_s``, those plus the item's own time (never less than the sum of its parts).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import __version__
from ..chains.datasets import DatasetItem, load_dataset
from ..config import EngineOptions
from ..engine.client import EngineClient
from ..engine.models import ModelInfo, resolve_model
from ..errors import Cancelled, InputError
from ..events import CancelToken, ItemDone, Message
from ..files import file_sha256
from ..metrics import infogain
from ..strict_json import bad_lines_error
from .batch_stages import BatchConfig, BatchProgress, _Ahead, _Context, _group_ahead, _run_item
from .ki import ki_settings
from .parallel import check_parallel, default_parallel
from .score import item_row, model_row

BATCH_METHOD = "kiig-batch-1"


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
