"""``kiig score``: InfoGain for every chain in a JSONL file (docs/cli.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..chains.steps import MODES as SPLIT_MODES
from ..engine.client import EngineClient
from ..errors import InputError, StoreError
from ..events import CancelToken, ItemDone, Message, Progress
from ..files import check_output, file_sha256, private_output
from ..metrics.infogain import MODES
from ..runs.score import ScoreConfig, iter_score_file, output_line, read_score_input
from ..strict_json import dumps
from ._common import add_engine_args, engine_options, open_session_for_writing, print_engine_warnings, seed_value
from ._progress import ProgressLine, drive, say


def register(sub) -> None:
    p = sub.add_parser("score", help="score the InfoGain of reasoning chains in a JSONL file")
    p.add_argument("--model", required=True, help="scorer model: a .gguf path, an id/name from `kiig models`, or `default`")
    p.add_argument("--input", required=True, help="JSONL, one chain per line (see docs/cli.md)")
    p.add_argument("--output", required=True, help="JSONL written when the run completes")
    p.add_argument("--mode", choices=MODES, default="answer", help="which numbers the GUI and reports lead with (both are computed): answer = answer perplexity, as the paper "
                   "defines it; paper = whole-sequence perplexity, as ReasoningEval's code computes it")
    p.add_argument("--split", choices=SPLIT_MODES, default="auto", help="how `reasoning` is split into steps (`steps` are used verbatim)")
    p.add_argument("--db", default=None, help="session file: commit each chain as it completes; a rerun resumes")
    p.add_argument("--seed", type=seed_value, default=None)
    add_engine_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    input_path = Path(args.input)
    jobs = read_score_input(input_path)  # missing/binary files raise InputError: exit 2
    if not jobs:
        raise InputError(f"{input_path} has no lines to score")
    output = check_output(args.output, keep=(input_path, args.db))  # refused before any session or model is opened
    cancel = CancelToken()
    store = None
    if args.db:
        store = open_session_for_writing(args.db)
    bar = ProgressLine("scoring")
    summary = None
    try:
        # the output appears only when the run completes: a killed run leaves no half file
        with private_output(output, keep=(input_path, args.db)) as out, EngineClient(args.model, engine_options(args)) as client:
            client.start(cancel=cancel)
            print_engine_warnings(client)
            gen = iter_score_file(client, jobs, ScoreConfig(mode=args.mode, split=args.split), store=store, input_sha256=file_sha256(input_path), cancel=cancel)

            def on_event(event) -> None:
                if isinstance(event, Progress):
                    bar.update(event)
                elif isinstance(event, ItemDone):
                    out.write(dumps(output_line(event.result)) + "\n")
                    if event.result.get("error"):
                        bar.close()
                        say(f"kiig: item {event.result.get('id') or '?'}: {event.result['error']}")
                elif isinstance(event, Message):
                    bar.close()
                    say(f"kiig: {event.text}")

            summary = drive(gen, cancel, on_event)
        bar.close()
    finally:
        if store is not None:
            try:
                store.close()
            except StoreError:
                pass
    skipped = f", {summary.skipped} reloaded from the session" if summary.skipped else ""
    print(f"kiig: scored {summary.done - summary.skipped} chains{skipped}, {summary.errors} errors -> {output}", file=sys.stderr)
    return 1 if summary.errors else 0
