"""``kiig ki``: the Knowledge Index of each reasoning step, from a reference corpus and a local judge.

Input lines: ``kiig score`` output lines, or input lines with ``"steps"`` (strings or objects with
``"text"`` and optionally ``"knowledge"``). Output, one line per input line in the same order:
``{"id", "steps": [{"index", "text", "applicable", "ki", "reason", "judge_p_yes", "judge_p_no",
"evidence": [{"source", "chunk", "score", "chunk_id", "file"?, "page"?, "page_end"?, "title"?, "where"}]}], "ki_mean", "model": {"path", "sha256"},
"n_applicable", "n_judged", "error"?}``.

Every chain is committed to the session (a run of kind ``ki``) as soon as it is judged; running
the same command again skips the chains already done and writes the same output. The pass itself is
:func:`kiig_desktop.runs.ki.iter_ki_file`; this module parses arguments and writes the output.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from ..errors import InputError, KiigError
from ..events import CancelToken, ItemDone, Message, Progress
from ..files import check_output, private_output
from ..strict_json import dumps
from ._common import (
    KI_MODE_CHOICES,
    add_engine_args,
    engine_options,
    ki_mode,
    open_session_for_writing,
    print_engine_warnings,
)
from ._progress import ProgressLine, say


def register(sub) -> None:
    p = sub.add_parser("ki", help="Knowledge Index: check each step against a reference corpus with a local judge model")
    p.add_argument("--model", required=True, help="judge model: a .gguf path, a model id/name from `kiig models`, or `default`")
    p.add_argument("--db", required=True, help="the session file holding the corpus (results are stored there too)")
    p.add_argument("--corpus", required=True, help="name of the reference corpus (see `kiig corpus list`)")
    p.add_argument("--input", required=True, help="JSONL: `kiig score` output, or lines with \"steps\"")
    p.add_argument("--output", required=True, help="JSONL file to write, one line per input line")
    p.add_argument("--ki-mode", choices=KI_MODE_CHOICES, default="probability",
                   help="probability: p(yes) from the judge's log-probabilities, N/A steps left out (default); "
                        "passages-true-false: the judge reads the passages and answers True/False (first line exactly "
                        "True = 1; N/A steps count 1.0; mean over all steps; called 'reasoningeval' before); "
                        "reasoningeval-pipeline: ReasoningEval's RetrievalScorer stage by stage (an LLM writes the query "
                        "or None, 12 passages, a RAG answer, the judge's True/False against it, reply.lower() == 'true')")
    p.add_argument("--rag-model", default=None,
                   help="reasoningeval-pipeline: the model that writes the queries and the RAG answers (default: the judge), "
                        "loaded with the same engine options")
    p.add_argument("--k", type=int, default=None, help="passages retrieved per step (default 3; 12 for the True/False modes)")
    p.add_argument("--calibrated", action="store_true",
                   help="probability mode: also give each step's calibrated KI (ki_calibrated, ki_calibrated_mean) from the "
                        "judge's stored calibration (`kiig judge-check --calibrate`); the raw ki stays as it is")
    p.add_argument("--max-prompt-chars", type=int, default=6000,
                   help="judge prompt budget in characters (default 6000, for a 2048-token context)")
    add_engine_args(p)  # the judge's load options, as the scorer's
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..knowledge import ki_rules
    from ..runs.ki import check_corpus, read_ki_input

    args.ki_mode = ki_mode(args.ki_mode)
    if args.rag_model is not None and args.ki_mode != ki_rules.PIPELINE:
        raise InputError("--rag-model is only for --ki-mode reasoningeval-pipeline")
    if args.calibrated and args.ki_mode != ki_rules.PROBABILITY:
        raise InputError("--calibrated is only for --ki-mode probability (the True/False modes give no probability)")
    if args.k is None:
        args.k = ki_rules.default_k(args.ki_mode)
    if not 1 <= args.k <= ki_rules.MAX_K:
        raise InputError(f"--k must be between 1 and 20, got {args.k}")
    if args.max_prompt_chars < 1000:
        raise InputError(f"--max-prompt-chars must be at least 1000, got {args.max_prompt_chars}")
    options = engine_options(args)
    items = read_ki_input(args.input)
    check_output(args.output, keep=(args.input, args.db))  # refused before the session or the judge is opened
    if not Path(args.db).expanduser().exists():
        raise InputError(f"no session file {args.db}", hint="import a corpus first: kiig corpus add --db FILE --name NAME PATH")
    with open_session_for_writing(args.db, create=False) as store:
        check_corpus(store, args.corpus)
        # the output appears complete or not at all; what was judged is already in the session
        with private_output(args.output, keep=(args.input, args.db)) as out:
            return _judge_all(args, store, items, out, options)


def _judge_all(args, store, items: list[dict], out, options) -> int:
    from ..knowledge.corpus import corpus_fingerprint
    from ..knowledge.ki import KI_METHOD_VERSION, judge_model_ref
    from ..runs.ki import iter_ki_file
    from ..store import judge_validation as validation

    try:
        from ..knowledge.judge import open_judge
    except ImportError as exc:
        raise KiigError(f"the judge engine is not available in this build ({exc})") from None
    with open_judge(args.model, options) as judge, contextlib.ExitStack() as more:
        print_engine_warnings(judge)
        rag = more.enter_context(open_judge(args.rag_model, options)) if args.rag_model else None
        sha = judge_model_ref(judge).get("sha256")
        checked = (validation.lookup_for_corpus(sha, KI_METHOD_VERSION, corpus_fingerprint(store.db, args.corpus))
                   or validation.lookup(sha, KI_METHOD_VERSION))  # a check on this corpus first: the user's domain
        # every output line says how far the judge can be trusted (and how it agrees with clinicians, once checked)
        shown = validation.summary(checked, args.model, validation.lookup_reviews(sha, KI_METHOD_VERSION))
        print(f"kiig ki: {shown['note']}", file=sys.stderr)
        calibration = None
        if args.calibrated:
            calibration = validation.latest_calibration(judge_model_ref(judge).get("sha256"), KI_METHOD_VERSION)
            if calibration is None:
                raise InputError("no calibration is stored for this judge",
                                 hint=f"run `kiig judge-check --model {args.model} --claims FILE --calibrate` first")
        results: dict[int, dict] = {}
        written = 0
        line = ProgressLine("ki")
        events = iter_ki_file(store, args.corpus, judge, items, k=args.k, max_prompt_chars=args.max_prompt_chars,
                              cancel=CancelToken(), mode=args.ki_mode, rag=rag, calibration=calibration)
        try:
            while True:
                try:
                    event = next(events)
                except StopIteration as stop:
                    summary = stop.value
                    break
                if isinstance(event, Message):
                    say(f"kiig ki: {event.text}")
                elif isinstance(event, Progress):
                    line.update(event, force=event.done == event.total)
                elif isinstance(event, ItemDone):
                    results[event.index] = event.result
                    while written < len(items) and written in results:  # in input order, as soon as ready
                        out.write(dumps({**results[written], "judge_validation": shown}) + "\n")
                        written += 1
                    out.flush()
        except KeyboardInterrupt:
            with contextlib.suppress(KeyboardInterrupt, StopIteration):
                events.throw(KeyboardInterrupt)  # the run is marked interrupted
            raise
        finally:
            line.close()
    print(f"kiig ki: {len(items)} chains, {summary.errors} with errors -> {args.output}", file=sys.stderr)
    return 1 if summary.errors else 0
