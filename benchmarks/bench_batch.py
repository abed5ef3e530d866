"""Batch evaluation speed: items per minute on the sample datasets, split into generation, scoring and KI.

The embedded model is subject, scorer and judge (one shared worker), with the demo clinical corpus
for KI. Each sample set is one batch run in a fresh session; the script prints items/minute (wall
time of the run, model load included) and the median per-item seconds of each phase, then writes
the HTML report of each run and a PNG screenshot of it (headless chromium, when installed).

    python benchmarks/bench_batch.py [--limit N] [--max-tokens 384] [--models default] [--no-ki]
                                     [--out-dir out/batch-bench] [--json results.json]

Not a timed test: it prints numbers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import machine, save

from kiig_desktop import cli
from kiig_desktop.config import EngineOptions
from kiig_desktop.events import ItemDone
from kiig_desktop.reports.html import render_html
from kiig_desktop.reports.summary import load_chain_detail, summarize
from kiig_desktop.resources import resource_path
from kiig_desktop.runs.batch import BatchConfig, iter_batch
from kiig_desktop.store import SessionStore

SETS = ("clinical_mcq.jsonl", "arithmetic.jsonl")


def screenshot(html: Path, png: Path) -> bool:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return False
    with tempfile.TemporaryDirectory() as profile:
        r = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                            "--hide-scrollbars", "--window-size=1200,2600", f"--screenshot={png}", html.resolve().as_uri()],
                           capture_output=True, text=True, timeout=120)
    return r.returncode == 0 and png.exists()


def bench_set(name: str, args, out_dir: Path) -> dict:
    db = out_dir / f"{Path(name).stem}.kiig"
    db.unlink(missing_ok=True)
    if not args.no_ki:
        assert cli.main(["corpus", "add", "--db", str(db), "--name", "clinical", str(resource_path("corpus", "clinical_facts.jsonl"))]) == 0
    config = BatchConfig(max_tokens=args.max_tokens, limit=args.limit)
    records = []
    started = time.perf_counter()
    with SessionStore.open(db) as store:
        gen = iter_batch(store, resource_path("datasets", name), args.models, args.models[0],
                         judge=None if args.no_ki else args.models[0], corpus=None if args.no_ki else "clinical",
                         config=config, options=EngineOptions(n_threads=args.threads))
        for event in gen:
            if isinstance(event, ItemDone):
                records.append(event.result)
                t = event.result["timing"]
                print(f"  {event.result['id']:<8} gen {t['generation_s']:5.1f}s  score {t['scoring_s']:5.1f}s  "
                      f"ki {t['ki_s']:5.1f}s  {'correct' if event.result.get('correct') else 'wrong  '}  "
                      f"{event.result.get('error') or ''}", flush=True)
        wall = time.perf_counter() - started
        report = summarize(store)
        html = out_dir / f"{Path(name).stem}_report.html"
        html.write_text(render_html(report, {r.chain_id: load_chain_detail(store, r.chain_id) for r in report.items}),
                        encoding="utf-8")
    png = html.with_suffix(".png")
    shot = screenshot(html, png)
    med = {k: statistics.median(r["timing"][k] for r in records) for k in ("generation_s", "scoring_s", "ki_s", "total_s")}
    sums = {k: sum(r["timing"][k] for r in records) for k in ("generation_s", "scoring_s", "ki_s", "total_s")}
    m = report.models[0].metrics
    return {
        "dataset": name, "items": len(records), "errors": sum(1 for r in records if r.get("error")),
        "wall_s": wall, "items_per_min": 60 * len(records) / wall, "median_s": med, "total_s": sums,
        "generated_tokens": sum(r.get("n_generated_tokens") or 0 for r in records),
        "accuracy": m["accuracy"].to_dict(), "info_gain_mean": m["info_gain_mean"].to_dict(), "ki_mean": m["ki_mean"].to_dict(),
        "report": str(html), "screenshot": str(png) if shot else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["default"], help="subject models; the first is also scorer and judge")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--max-tokens", type=int, default=384)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-ki", action="store_true")
    ap.add_argument("--out-dir", default="out/batch-bench")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for name in SETS:
        print(f"{name}:", flush=True)
        results.append(bench_set(name, args, out_dir))
    print()
    print(f"{'dataset':<20} {'items':>5} {'items/min':>9} {'median gen s':>12} {'median score s':>14} {'median KI s':>11} "
          f"{'gen/score/KI share':>20}")
    for r in results:
        total = sum(r["total_s"][k] for k in ("generation_s", "scoring_s", "ki_s")) or 1.0
        share = "/".join(f"{100 * r['total_s'][k] / total:.0f}%" for k in ("generation_s", "scoring_s", "ki_s"))
        print(f"{r['dataset']:<20} {r['items']:>5} {r['items_per_min']:>9.2f} {r['median_s']['generation_s']:>12.2f} "
              f"{r['median_s']['scoring_s']:>14.2f} {r['median_s']['ki_s']:>11.2f} {share:>20}")
    for r in results:
        print(f"report: {r['report']}" + (f"  screenshot: {r['screenshot']}" if r["screenshot"] else ""))
    load = os.getloadavg()
    print(f"load average at the end (1/5/15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    save(args.json, {"max_tokens": args.max_tokens, "models": args.models, "ki": not args.no_ki, "results": results,
                     "load_average": load, "machine": machine()})


if __name__ == "__main__":
    sys.exit(main())
