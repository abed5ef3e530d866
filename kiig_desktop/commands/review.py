"""``kiig review export|import|stats --db SESSION``: clinician reviews from the command line.

- ``export [--run ID] [--format jsonl|csv] [--output FILE] [--history]``: the current reviews (or
  every row of their history), one row per review.
- ``import FILE``: another reviewer's reviews, from a JSONL export or their session file; checked
  whole first (every bad line listed, exit 2, nothing stored); reviews made on an earlier version
  of a chain are stored and listed as stale.
- ``stats [--run ID] [--reviewer NAME] [--reviewers A B] [--json]``: review progress, Cohen's kappa
  between two reviewers, AUROC of step KI and InfoGain against the verdicts, judge accuracy.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ..errors import InputError
from ..store import SessionStore
from ..strict_json import dumps
from ._common import open_session_for_writing, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("review", help="export, import and measure clinician reviews of steps and chains")
    sub = p.add_subparsers(dest="review_command", metavar="ACTION")
    sub.required = True

    e = sub.add_parser("export", help="export the reviews of a session as JSONL or CSV")
    e.add_argument("--db", required=True, type=Path, help="session file (.kiig)")
    e.add_argument("--run", type=int, help="only this run (default: every run)")
    e.add_argument("--format", choices=("csv", "jsonl"), help="default: from the --output extension, else jsonl")
    e.add_argument("--output", type=Path, help="output file (default: standard output)")
    e.add_argument("--history", action="store_true", help="every change, not only the current reviews")
    e.set_defaults(func=cmd_export)

    i = sub.add_parser("import", help="import another reviewer's reviews (a JSONL export or a session file)")
    i.add_argument("--db", required=True, type=Path, help="session file (.kiig) holding the reviewed runs")
    i.add_argument("input", type=Path, help="a JSONL file from `kiig review export`, or a .kiig session file")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")
    i.set_defaults(func=cmd_import)

    s = sub.add_parser("stats", help="review progress, kappa between reviewers, AUROC of KI and InfoGain against reviews")
    s.add_argument("--db", required=True, type=Path, help="session file (.kiig)")
    s.add_argument("--run", type=int, help="only this run (default: every run with reviews)")
    s.add_argument("--reviewer", help="count only this reviewer's reviews against the metrics")
    s.add_argument("--reviewers", nargs=2, metavar=("A", "B"), help="the two reviewers to compare (default: the two there are)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_stats)


def cmd_export(args: argparse.Namespace) -> int:
    from ..store.review_files import export_reviews

    fmt = args.format or ("csv" if args.output and args.output.suffix.lower() == ".csv" else "jsonl")
    with SessionStore.open(args.db, create=False, write=False) as store:
        if args.run is not None:
            store.get_run(args.run)
        n = export_reviews(store, None if args.run is None else [args.run], fmt, args.output, sys.stdout, history=args.history)
    if args.output is not None:
        print(f"exported {n} reviews to {args.output}", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from ..store.review_files import import_reviews

    if not args.db.is_file():
        raise InputError(f"no such session: {args.db}")
    with open_session_for_writing(args.db, create=False) as store:
        summary = import_reviews(store, args.input)
    if args.json:
        print_json(summary)
        return 0
    print(f"imported {summary['added']} reviews into {args.db}"
          + (f" ({summary['already']} already there)" if summary["already"] else ""))
    if summary["stale"]:
        print(f"{len(summary['stale'])} of them were made on an earlier version of their chain (record hash differs; "
              "shown as stale, left out of the statistics):")
        for r in summary["stale"]:
            where = f"step {r['step_index']}" if r["kind"] == "step" else "chain review"
            print(f"  run {r['run_id']} {r['chain_key']} {where} by {r['reviewer']}")
    return 0


def _ci(e: dict, fmt: str) -> str:
    if not isinstance(e.get("value"), float) or math.isnan(e["value"]):
        return f"- (n = {e['n']})"
    lo, hi = e["ci"]
    ci = "" if any(v is None or math.isnan(v) for v in (lo, hi)) else f" (95% CI {lo:{fmt}}-{hi:{fmt}})"
    return f"{e['value']:{fmt}}{ci}, n = {e['n']}" + (" \u26a0 fewer than 10 steps: a rough interval" if e["small"] else "")


def _print_stats(run: dict, st: dict) -> None:
    p = st["progress"]
    who = ", ".join(st["reviewers"]) or "nobody yet"
    print(f"run {run['id']} ({run['kind']}{', ' + run['name'] if run.get('name') else ''}): "
          f"{p['reviewed']} of {p['total']} chains reviewed; {st['n_step_reviews']} step reviews by {who}"
          + (f" ({st['n_stale']} stale, left out)" if st["n_stale"] else ""))
    ki, ig = st["ki_auroc"], st["infogain_auroc"]
    print(f"  KI vs knowledge (correct {ki['n_correct']} / incorrect {ki['n_incorrect']}): AUROC {_ci(ki, '.3f')}")
    print(f"  InfoGain vs role (helps {ig['n_helps']} / misleading {ig['n_misleading']}): AUROC {_ci(ig, '.3f')}")
    print(f"  judge accuracy at 0.5: {_ci(st['judge_accuracy'], '.3f')}")
    for model, m in (st.get("by_model") or {}).items():
        print(f"  {model}: KI AUROC {_ci(m['ki_auroc'], '.3f')}; InfoGain AUROC {_ci(m['infogain_auroc'], '.3f')}")
    if st["kappa"]:
        a, b = st["kappa"]["reviewers"]
        print(f"  Cohen's kappa {a} vs {b}: knowledge {_ci(st['kappa']['knowledge'], '.3f')}; "
              f"role {_ci(st['kappa']['role'], '.3f')}; {st['kappa']['n_disagreements']} steps judged differently")


def cmd_stats(args: argparse.Namespace) -> int:
    from ..reports.review_stats import run_review_stats
    from ..store import reviews

    with SessionStore.open(args.db, create=False, write=False) as store:
        if args.run is not None:
            runs = [store.get_run(args.run)]
        else:
            runs = [r for r in store.list_runs() if reviews.reviewers(store, r["id"])]
            if not runs:
                raise InputError(f"{args.db} has no reviews yet (review chains in the app, or `kiig review import`)")
        pair = tuple(args.reviewers) if args.reviewers else None
        results = [(r, run_review_stats(store, r["id"], reviewer=args.reviewer, pair=pair)) for r in runs]
    if args.json:
        print(dumps({"runs": [st for _, st in results]}, ensure_ascii=False, indent=2))  # NaN -> null
        return 0
    for run, st in results:
        _print_stats(run, st)
    return 0
