"""``kiig export``, ``kiig import`` and ``kiig sessions``: session files from the command line.

- ``kiig export --db FILE [--run ID] [--format csv|jsonl] [--output FILE]``: one row per step.
- ``kiig import --db FILE INPUT.jsonl``: a JSONL export (or ``kiig score`` output) into a session.
- ``kiig sessions --db FILE [--run ID] [--json] [--check] [--upgrade]``: runs, chains, health.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import InputError
from ..files import check_output
from ..store import SessionStore
from ..store.export import export_run, import_jsonl
from ._common import open_session_for_writing


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a run of a session as CSV or JSONL (one row per step)")
    p.add_argument("--db", required=True, type=Path, help="session file (.kiig)")
    p.add_argument("--run", type=int, help="run id (see `kiig sessions`); optional when the session has one run")
    p.add_argument("--format", choices=("csv", "jsonl"), help="default: from the --output extension")
    p.add_argument("--output", type=Path, help="output file (default: standard output)")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser("import", help="import a JSONL export (or kiig score output) into a session")
    p.add_argument("--db", required=True, type=Path, help="session file (.kiig), created if missing")
    p.add_argument("input", type=Path, help="JSONL file")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_import)

    p = subparsers.add_parser("sessions", help="list the runs and chains of a session file")
    p.add_argument("--db", required=True, type=Path, help="session file (.kiig)")
    p.add_argument("--run", type=int, help="list the chains of this run")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--check", action="store_true", help="verify integrity (exit 1 when problems are found)")
    p.add_argument("--upgrade", action="store_true", help="open for writing once to upgrade an older session format")
    p.set_defaults(func=cmd_sessions)


def _pick_run(store: SessionStore, run_id: int | None) -> int:
    if run_id is not None:
        store.get_run(run_id)
        return run_id
    runs = store.list_runs()
    if len(runs) == 1:
        return int(runs[0]["id"])
    if not runs:
        raise InputError(f"{store.path} has no runs to export")
    ids = ", ".join(str(r["id"]) for r in runs)
    raise InputError(f"{store.path} has {len(runs)} runs; choose one with --run ({ids})")


def cmd_export(args: argparse.Namespace) -> int:
    fmt = args.format
    if fmt is None:
        suffix = args.output.suffix.lower() if args.output else ""
        fmt = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}.get(suffix)
        if fmt is None:
            raise InputError("say which format to export: --format csv or --format jsonl")
    if args.output is not None:
        check_output(args.output, keep=(args.db,))  # refused before the session is opened
    with SessionStore.open(args.db, create=False, write=False) as store:
        run_id = _pick_run(store, args.run)
        n = export_run(store, run_id, fmt, args.output, sys.stdout)
    if args.output is not None:
        print(f"exported run {run_id}: {n} rows to {args.output}", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    if not args.input.is_file():
        raise InputError(f"no such file: {args.input}")
    with open_session_for_writing(args.db) as store:
        summary = import_jsonl(store, args.input)
    if args.json:
        print(json.dumps({"runs": summary}))
    else:
        for s in summary:
            if s["skipped"]:
                print(f"run {s['run_id']} is already in {args.db}; nothing imported for it")
            else:
                print(f"imported run {s['run_id']}: {s['chains']} chains into {args.db}")
    return 0


def _fmt(value: object, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _model_label(run: dict) -> str:
    parts = []
    for role, m in run["models"].items():
        name = m.get("name") or Path(m["path"]).name
        parts.append(f"{role}: {name}" + (f" ({m['quantization']})" if m.get("quantization") else ""))
    return "; ".join(parts) or "-"


def cmd_sessions(args: argparse.Namespace) -> int:
    if args.upgrade:
        with SessionStore.open(args.db, create=False, write=True) as store:
            print(f"{args.db}: session schema {store.schema_version}", file=sys.stderr)
    with SessionStore.open(args.db, create=False, write=False) as store:
        runs = store.list_runs()
        chains = store.chains_for_run(_pick_run(store, args.run)) if args.run is not None else None
        problems = store.check() if args.check else None
        version = store.schema_version
    if args.json:
        out: dict = {"path": str(store.path), "schema_version": version, "runs": runs}
        if chains is not None:
            out["chains"] = chains
        if problems is not None:
            out["problems"] = problems
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(f"{store.path}: session schema {version}, {len(runs)} run(s)")
        for r in runs:
            errors = f", {r['n_errors']} failed" if r["n_errors"] else ""
            print(f"  run {r['id']}: {r['kind']} {r['status']}, {r['n_chains']} chains{errors}, "
                  f"started {r['started']}, {_model_label(r)}")
        for c in chains or []:
            print(f"    {c['key']}: {c['status']}, {c['n_steps']} steps, info_gain_mean {_fmt(c['info_gain_mean'])}, "
                  f"delta_nll_mean {_fmt(c['delta_nll_mean'])}, ki_mean {_fmt(c['ki_mean'])}"
                  + (f", error: {c['error']}" if c["error"] else ""))
        if problems is not None:
            print("integrity: ok" if not problems else "integrity problems:\n  " + "\n  ".join(problems))
    return 1 if problems else 0
