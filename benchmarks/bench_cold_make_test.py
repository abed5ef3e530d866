"""One whole ``make test`` from a cold cache: a fresh clone and an empty HOME (no pip, wheel, compat,
Debian-root or vocab caches), timed end to end, with the stage times the build logs.

    sudo python benchmarks/bench_cold_make_test.py [--beside TEXT] [--out FILE]
    python benchmarks/bench_cold_make_test.py --from-log LOG --started HH:MM:SS --tests-started HH:MM:SS
        --ended HH:MM:SS --rc N --load LOADFILE [--beside TEXT] [--out FILE]

make test builds Debian roots, so it runs as root. Every line of its output is stamped as it
arrives; the tests start where ruff does (it runs just before pytest). /proc/loadavg is sampled
every 30 s, since a time on a shared 2-core machine means little without the load it ran under.
``--from-log`` rebuilds the report from a run made by hand (its log, its wall-clock times and a
file of "HH:MM:SS load1 load5 load15" samples). One measurement, not a median: a cold run takes
over an hour on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _util import machine, save

ROOT = Path(__file__).resolve().parents[1]
TESTS_START = re.compile(r"^\S*ruff check ")
STAGES = {  # stage -> the line its build step logs (seconds in the first group)
    "python_s": r"compat: python built in (\d+) s",
    "llama_compile_s": r"llama-cpp-python \S+ compiled in (\d+) s",
    "llama_wheel_s": r"compat: wheel built in (\d+) s",
    "root_venv_s": r"compat: venv built in (\d+) s",
    "archive_s": r"MB\) built in (\d+) s \(inputs",
}
SUMMARY = re.compile(r"^(?:=+ )?(.*\d+ (?:passed|failed).*) in ([\d.]+)s")


def parse_log(text: str) -> dict:
    """Stage seconds and the pytest summary of one make test log."""
    stages = {}
    for name, pattern in STAGES.items():
        found = re.findall(pattern, text)
        if found:
            stages[name] = int(found[0])
    counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
    pytest_s = None
    for line in text.splitlines():
        m = SUMMARY.match(line.strip())
        if m:
            pytest_s = float(m.group(2))
            for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)", m.group(1)):
                counts["errors" if word.startswith("error") else word] = int(n)
    return {"stages": stages, "pytest_s": pytest_s, **counts}


def load_summary(samples: list[float]) -> dict:
    if not samples:
        return {"samples": 0}
    return {"samples": len(samples), "mean": round(statistics.mean(samples), 2),
            "median": round(statistics.median(samples), 2), "min": min(samples), "max": max(samples)}


def report(log: str, total_s: float, before_tests_s: float | None, rc: int, loads: list[float], beside: str,
           commit: str) -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    return {"date": dt.date.today().isoformat(), "commit": commit, "cpu": cpu, **machine(),
            "beside": beside, "rc": rc, "total_s": round(total_s),
            "before_tests_s": None if before_tests_s is None else round(before_tests_s),
            **parse_log(log), "load_1min": load_summary(loads)}


def run_cold(beside: str) -> tuple[dict, str]:
    """Clone HEAD into a temporary folder and run make test there with an empty HOME."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="kiig-cold-") as tmp:
        clone, home = Path(tmp) / "clone", Path(tmp) / "home"
        home.mkdir()
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        loads: list[float] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(30):
                loads.append(float(Path("/proc/loadavg").read_text().split()[0]))

        threading.Thread(target=sample, daemon=True).start()
        env = {**os.environ, "HOME": str(home), "CI": "true"}
        start, tests_at, lines = time.monotonic(), None, []
        proc = subprocess.Popen(["make", "test"], cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            sys.stdout.write(line)
            lines.append(line)
            if tests_at is None and TESTS_START.match(line):
                tests_at = time.monotonic() - start
        rc = proc.wait()
        done.set()
        log = "".join(lines)
        return report(log, time.monotonic() - start, tests_at, rc, loads, beside, commit), log


def from_log(args: argparse.Namespace) -> dict:
    """The report of a cold run made by hand, from its log, clock times and load samples."""
    def seconds(a: str, b: str) -> float:
        t = [dt.datetime.strptime(x, "%H:%M:%S") for x in (a, b)]
        return (t[1] - t[0]).total_seconds() % 86400

    loads = [float(line.split()[1]) for line in Path(args.load).read_text().splitlines()
             if line.strip() and args.started <= line.split()[0] <= args.ended]
    log = Path(args.from_log).read_text(encoding="utf-8", errors="replace")
    return report(log, seconds(args.started, args.ended), seconds(args.started, args.tests_started), args.rc, loads,
                  args.beside, args.commit)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--beside", default="nothing else", help="what else ran on the machine meanwhile (goes in the report)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cold_make_test.json"))
    p.add_argument("--from-log", default=None, help="a make test log from a run made by hand")
    p.add_argument("--started")
    p.add_argument("--tests-started")
    p.add_argument("--ended")
    p.add_argument("--rc", type=int, default=0)
    p.add_argument("--load", help="a file of 'HH:MM:SS load1 load5 load15' lines")
    p.add_argument("--commit", default="")
    args = p.parse_args()
    if args.from_log:
        if not all((args.started, args.tests_started, args.ended, args.load)):
            p.error("--from-log needs --started, --tests-started, --ended and --load")
        result = from_log(args)
    else:
        result, _ = run_cold(args.beside)
    save(args.out, result)
    print(f"cold make test: {result['total_s'] / 60:.1f} min ({result['before_tests_s']} s before the tests), rc {result['rc']}, "
          f"{result['passed']} passed, {result['failed']} failed, {result['skipped']} skipped; load {result['load_1min']}")
    return result["rc"]


if __name__ == "__main__":
    sys.exit(main())
