"""The offline bundle's targets: archive size (<= 250 MB) and first window after launch (<= 3 s warm).

    python benchmarks/bench_bundle.py [--archive dist/kiig-desktop-*.tar.gz] [--repeats 3] [--out FILE]

Unpacks the archive into a temporary folder, starts ``kiig-desktop`` on a fresh Xvfb display with
an empty environment and a fresh HOME, and times launch -> the main window mapped on the display
(polled with xwininfo every 20 ms). The first launch fills the page cache; the report gives the
warm median of the following ones.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def first_window(app: Path, display: str, home: Path) -> float:
    env = {"HOME": str(home), "PATH": "/nonexistent", "DISPLAY": display}
    started = time.perf_counter()
    proc = subprocess.Popen([str(app / "kiig-desktop")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - started < 60:
            tree = subprocess.run(["xwininfo", "-root", "-tree", "-display", display], capture_output=True, text=True).stdout
            if "KIIG Desktop" in tree:
                return time.perf_counter() - started
            time.sleep(0.02)
        raise SystemExit("no window within 60 s")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--archive", default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    archive = Path(args.archive) if args.archive else max((ROOT / "dist").glob("kiig-desktop-*-linux-x86_64.tar.gz"), key=lambda q: q.stat().st_mtime)
    size_mb = archive.stat().st_size / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="tar")
        app = next(Path(tmp).iterdir())
        unpacked_mb = sum(f.stat().st_size for f in app.rglob("*") if f.is_file()) / 1e6
        display = ":97"
        xvfb = subprocess.Popen([shutil.which("Xvfb") or "Xvfb", display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        try:
            times = [first_window(app, display, Path(tmp) / f"home{i}") for i in range(args.repeats + 1)]
        finally:
            xvfb.terminate()
    warm = statistics.median(times[1:]) if len(times) > 1 else times[0]
    print(f"archive {archive.name}: {size_mb:.0f} MB (target <= 250), unpacked {unpacked_mb:.0f} MB")
    print(f"first window: cold {times[0]:.2f} s, warm median {warm:.2f} s (target <= 3 s), runs {[round(t, 2) for t in times]}")
    if args.out:
        Path(args.out).write_text(json.dumps({"archive_mb": size_mb, "unpacked_mb": unpacked_mb, "first_window_s": times, "warm_median_s": warm}, indent=1), encoding="utf-8")
    return 0 if size_mb <= 250 and warm <= 3 else 1


if __name__ == "__main__":
    sys.exit(main())
