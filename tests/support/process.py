"""Waiting on subprocesses by what they do (a row saved, a process gone), never by how long they take.

A test that kills a run "part way" waits for an event (a chain row in the session file), then freezes
the run's whole process group with SIGSTOP before it looks, so nothing moves between looking and
killing. ``HANG_GUARD_S`` only turns a hung test into a failure; it is no speed limit (a correct run
on a slow machine never comes near it).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

HANG_GUARD_S = 1800.0


def wait_until(condition: Callable[[], object], what: str, proc: subprocess.Popen | None = None, poll: float = 0.02) -> None:
    """Poll ``condition`` until it is true; fail naming ``what`` if ``proc`` ends first (or on a hang)."""
    guard = time.monotonic() + HANG_GUARD_S
    while not condition():
        if proc is not None and proc.poll() is not None:
            if condition():
                return
            err = proc.stderr.read() if proc.stderr is not None and not proc.stderr.closed else ""
            pytest.fail(f"the process ended (exit {proc.returncode}) before {what}: {str(err)[-2000:]}")
        if time.monotonic() > guard:
            pytest.fail(f"hung: no {what} after {HANG_GUARD_S:.0f} s")
        time.sleep(poll)


def freeze(proc: subprocess.Popen) -> None:
    """Stop ``proc``'s whole process group (it was started with start_new_session=True)."""
    os.killpg(proc.pid, signal.SIGSTOP)


def thaw(proc: subprocess.Popen) -> None:
    """Let a frozen process group go on (a signal sent meanwhile is handled first)."""
    os.killpg(proc.pid, signal.SIGCONT)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc``'s whole process group (the CLI and its model worker) and reap it."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def count_rows(db: Path, sql: str = "SELECT COUNT(*) FROM chains") -> int:
    """A count read from the session file without writing to it; 0 while the file or table does not exist."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute(sql).fetchone()[0]
    except sqlite3.Error:
        return 0


def ray_actors_alive() -> int:
    """Processes of kiig's Ray actors on this machine (Ray names them ``ray::RayNodeWorker...``)."""
    n = 0
    for proc in Path("/proc").iterdir():
        try:
            n += proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::RayNodeWorker")
        except OSError:
            continue
    return n
