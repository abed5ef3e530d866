"""``kiig run``: evaluate subject models on a dataset (answers, InfoGain, KI), stored as it goes.

Running the same command again resumes the run: chains already in the session are skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..chains.datasets import LAYOUTS
from ..chains.steps import MODES as SPLIT_MODES
from ..errors import InputError, StoreError
from ..events import CancelToken, ItemDone, Message, Progress
from ..metrics.infogain import MODES
from ..runs.batch import BatchConfig, iter_batch
from ..runs.parallel import check_parallel
from ._common import (
    KI_MODE_CHOICES,
    add_engine_args,
    engine_options,
    finite_float,
    ki_mode,
    open_session_for_writing,
    seed_value,
)
from ._progress import ProgressLine, drive, say


def register(sub) -> None:
    p = sub.add_parser("run", help="batch evaluation: generate, grade and score every item of a dataset with each model")
    p.add_argument("--dataset", required=True, help="dataset file: .jsonl/.json/.ndjson, .csv or .tsv; MedQA-style MCQ, GSM8K-style or generic (docs/datasets.md)")
    p.add_argument("--models", required=True, nargs="+", metavar="M", help="subject models: .gguf paths, ids/names, or `default`")
    p.add_argument("--scorer", required=True, help="the model that scores InfoGain (often the same as a subject)")
    p.add_argument("--judge", default=None, help="judge model for the Knowledge Index (needs --corpus)")
    p.add_argument("--corpus", default=None, help="reference corpus in the session for KI (see `kiig corpus add`)")
    p.add_argument("--db", required=True, help="session file: every chain is committed as it completes; a rerun resumes")
    p.add_argument("--limit", type=int, default=None, help="only the first N items")
    p.add_argument("--layout", choices=("auto", *LAYOUTS), default="auto", help="dataset layout (mixed MCQ/numeric files: generic)")
    p.add_argument("--seed", type=seed_value, default=0, help="sampling seed (each item derives its own; default 0)")
    p.add_argument("--max-tokens", type=int, default=384, help="longest reasoning to generate, in tokens (default 384)")
    p.add_argument("--temperature", type=finite_float, default=0.0, help="0 = greedy, deterministic (default)")
    p.add_argument("--split", choices=SPLIT_MODES, default="auto", help="how the reasoning is split into steps")
    p.add_argument("--mode", choices=MODES, default="answer", help="which InfoGain numbers reports lead with")
    p.add_argument("--ki-mode", choices=KI_MODE_CHOICES, default="probability",
                   help="KI rule: probability (default), passages-true-false or reasoningeval-pipeline; see `kiig ki --help`")
    p.add_argument("--k", type=int, default=None, help="passages retrieved per step for KI (default 3; 12 for the True/False modes)")
    p.add_argument("--parallel", type=int, default=None, metavar="N",
                   help="items generated, scored and judged at once, one KV-cache sequence each (default: from cores and "
                        "memory); changes speed only, never the results, so a run resumes with any N")
    p.add_argument("--name", default=None, help="a name for the run (default: the dataset's file name)")
    c = p.add_argument_group("Ray cluster (make install-cluster)",
                             "with --cluster, --parallel N is the number of items each actor takes and generates at once (default 1)")
    c.add_argument("--cluster", default=None, metavar="HOST:PORT",
                   help="run the units on the Ray cluster whose head listens there (`ray start --head`); results and "
                        "resume are the same as a local run's. Ray has no authentication by default: see the README")
    c.add_argument("--cluster-workers", type=int, default=None, metavar="N",
                   help="actors per subject model, each with its own engine workers (default: the cluster's CPUs / --cpus-per-worker)")
    c.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="C", help="CPUs each actor declares to Ray (default 1)")
    c.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G",
                   help="GPUs each actor declares to Ray (default 0; use with --n-gpu-layers)")
    c.add_argument("--node-models", action="append", default=[], metavar="DIR",
                   help="a folder on the nodes where model files are looked for by SHA-256 (repeatable), besides each "
                        "node's own models (KIIG_MODELS_DIR)")
    c.add_argument("--cluster-bind", default=None, metavar="IP",
                   help="the address this driver's Ray process listens on (default: the one Ray picks to reach the head)")
    add_engine_args(p)
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    args.ki_mode = ki_mode(args.ki_mode)
    if (args.judge is None) != (args.corpus is None):
        raise InputError("--judge and --corpus go together: KI needs a judge model and a reference corpus")
    if args.max_tokens < 1:
        raise InputError(f"--max-tokens must be at least 1, got {args.max_tokens}")
    if args.temperature < 0:
        raise InputError(f"--temperature must not be negative, got {args.temperature}")
    if args.parallel is not None:
        check_parallel(args.parallel)
    if args.cluster is None and (args.cluster_workers is not None or args.node_models or args.cluster_bind):
        raise InputError("--cluster-workers, --node-models and --cluster-bind need --cluster")
    if args.cluster_workers is not None and args.cluster_workers < 1:
        raise InputError(f"--cluster-workers must be at least 1, got {args.cluster_workers}")
    if args.cpus_per_worker <= 0 or args.gpus_per_worker < 0:
        raise InputError("--cpus-per-worker must be positive and --gpus-per-worker not negative")
    if args.k is not None and not 1 <= args.k <= 20:
        raise InputError(f"--k must be between 1 and 20, got {args.k}")
    if not Path(args.dataset).is_file():
        raise InputError(f"no dataset file {args.dataset}")
    if args.corpus is not None and not Path(args.db).expanduser().exists():
        raise InputError(f"no session file {args.db}", hint="import the corpus first: kiig corpus add --db FILE --name NAME PATH")


def run(args: argparse.Namespace) -> int:
    _check(args)

    config = BatchConfig(max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed, split=args.split,
                         mode=args.mode, limit=args.limit, layout=args.layout, ki_k=args.k, ki_mode=args.ki_mode)
    options = engine_options(args)
    options.seed = args.seed
    cancel = CancelToken()
    bar = ProgressLine("run")
    with open_session_for_writing(args.db) as store:
        if args.cluster:
            from ..runs.cluster import ClusterConfig, iter_cluster_batch

            cluster = ClusterConfig(args.cluster, workers=args.cluster_workers, cpus_per_worker=args.cpus_per_worker,
                                    gpus_per_worker=args.gpus_per_worker, node_models=args.node_models, bind=args.cluster_bind,
                                    parallel=args.parallel or 1)
            gen = iter_cluster_batch(store, args.dataset, args.models, args.scorer, cluster=cluster, judge=args.judge,
                                     corpus=args.corpus, config=config, options=options, cancel=cancel, name=args.name)
        else:
            gen = iter_batch(store, args.dataset, args.models, args.scorer, judge=args.judge, corpus=args.corpus,
                             config=config, options=options, cancel=cancel, name=args.name, parallel=args.parallel)

        def on_event(event) -> None:
            if isinstance(event, Progress):
                phase = getattr(event, "phase", "")
                event.message = " ".join(x for x in (getattr(event, "node", ""), getattr(event, "model", ""), getattr(event, "item_id", ""), phase) if x)
                bar.update(event, force=phase == "done" and event.done == event.total)
            elif isinstance(event, ItemDone) and event.result.get("error"):
                bar.close()
                say(f"kiig: item {event.result.get('id')} ({event.result['subject']['name']}): {event.result['error']}")
            elif isinstance(event, Message):
                bar.close()
                say(f"kiig: {event.text}")

        try:
            summary = drive(gen, cancel, on_event)
        finally:
            bar.close()
        _print_summary(store, summary, args.db)
    return 1 if summary.errors else 0


def _print_summary(store, summary, db: str) -> None:
    from ..reports.summary import fmt_estimate, summarize

    try:
        report = summarize(store, summary.run_id, n_boot=1000)
    except StoreError:
        return
    fresh = summary.done
    print(f"kiig: run {summary.run_id}: {fresh} chains done now, {summary.reloaded} reloaded, {summary.errors} errors",
          file=sys.stderr)
    width = max(len(m.name) for m in report.models)
    print(f"{'model':<{width}}  {'accuracy':>24}  {'mean InfoGain':>26}  {'mean KI':>22}")
    for m in report.models:
        print(f"{m.name:<{width}}  {fmt_estimate('accuracy', m.metrics['accuracy']):>24}  "
              f"{fmt_estimate('info_gain_mean', m.metrics['info_gain_mean']):>26}  {fmt_estimate('ki_mean', m.metrics['ki_mean']):>22}")
    if report.judge_validation:
        print(f"kiig: KI {report.judge_validation['note']}", file=sys.stderr)
    if report.build_warning:
        print(f"kiig: warning: {report.build_warning}", file=sys.stderr)
    print(f"kiig: full report: kiig report --db {db} --run {summary.run_id} --format html --output report.html", file=sys.stderr)
