"""``kiig report``: the model comparison of a batch run as HTML (self-contained), JSON or CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InputError
from ..files import check_output, write_private_text
from ..reports.html import CSV_TABLES
from ._common import seed_value


def register(sub) -> None:
    p = sub.add_parser("report", help="compare the models of a batch run: HTML report, JSON or CSV summary")
    p.add_argument("--db", required=True, help="session file holding the batch run")
    p.add_argument("--run", type=int, default=None, help="batch run id (default: the latest batch run)")
    p.add_argument("--format", choices=("html", "json", "csv"), default="html")
    p.add_argument("--table", choices=CSV_TABLES, default="models", help="which table --format csv writes")
    p.add_argument("--output", default=None, help="file to write (default: standard output)")
    p.add_argument("--models", nargs="+", default=None, metavar="M", help="only these models (name or sha256 prefix), in this order")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=seed_value, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--no-chains", action="store_true", help="HTML without the per-chain drill-down")
    p.set_defaults(func=run)


def build(args: argparse.Namespace) -> str:
    from ..reports.html import render_csv, render_html, render_json
    from ..reports.summary import chain_details, summarize
    from ..store import SessionStore

    if not Path(args.db).expanduser().is_file():
        raise InputError(f"no session file {args.db}")
    if args.n_boot < 1:
        raise InputError(f"--n-boot must be at least 1, got {args.n_boot}")
    with SessionStore.open(args.db, create=False, write=False) as store:
        report = summarize(store, args.run, models=args.models, n_boot=args.n_boot, seed=args.seed)
        if args.format == "json":
            return render_json(report)
        if args.format == "csv":
            return render_csv(report, args.table)
        details = None if args.no_chains else chain_details(store, report)
        return render_html(report, details)


def run(args: argparse.Namespace) -> int:
    if args.output is not None:
        check_output(args.output, keep=(args.db,))  # refused before the statistics are computed
    text = build(args)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    out = write_private_text(args.output, text, keep=(args.db,))
    print(f"kiig: wrote {out}", file=sys.stderr)
    return 0
