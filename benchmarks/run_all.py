"""Run every CPU benchmark in turn and keep their output in benchmarks/results/ (make bench).

Each script prints its own table; the JSON files hold the raw numbers behind the README.
Usage: python benchmarks/run_all.py [--quick]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def main() -> int:
    quick = "--quick" in sys.argv
    RESULTS.mkdir(exist_ok=True)
    runs = [
        ["bench_generation.py", "--repeats", "3" if quick else "7", "--out", str(RESULTS / "generation.json")],
        ["bench_infogain.py", "--repeats", "1" if quick else "3", "--out", str(RESULTS / "infogain.json")],
        ["bench_store.py", "--repeats", "10" if quick else "30"],
        ["bench_corpus.py", "--queries", "200" if quick else "1000"],
        ["bench_documents.py", "--out", str(RESULTS / "documents.json")] + (["--pages", "200", "--docs", "50"] if quick else []),
        ["bench_batch.py", "--json", str(RESULTS / "batch.json")] + (["--limit", "5"] if quick else []),
        ["bench_latency.py", "--repeats", "2" if quick else "5", "--out", str(RESULTS / "latency.json")],
    ]
    failed = 0
    for args in runs:
        print(f"\n## {args[0]}\n", flush=True)
        log = RESULTS / (Path(args[0]).stem + ".log")
        with open(log, "w", encoding="utf-8") as fh:
            proc = subprocess.Popen([sys.executable, str(HERE / args[0]), *args[1:]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=HERE.parent)
            for line in proc.stdout:
                sys.stdout.write(line)
                fh.write(line)
            failed += proc.wait() != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
