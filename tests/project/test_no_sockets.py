"""The local paths open no network socket: only `kiig run --cluster` does (README, "Running on a Ray cluster").

Two independent checks on real `kiig run` and `kiig score` processes (and their engine workers):

- a ``sitecustomize`` on PYTHONPATH (inherited by the engine worker) makes creating any socket but
  AF_UNIX an error and logs it, so even a short-lived socket fails the run;
- while they run, every socket the processes hold (``/proc/PID/fd`` -> ``socket:[inode]``) is looked
  up in ``/proc/net/{tcp,tcp6,udp,udp6,raw,raw6}``: a socket opened by C code (llama.cpp) shows up there.

The model worker's AF_UNIX socket pairs are allowed and counted: they are the honest exception.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.support.sample_data import write_samples

GUARD = textwrap.dedent(
    """
    import os, socket
    _LOG = os.environ["KIIG_SOCKET_LOG"]
    _Base = socket.socket

    class _Guarded(_Base):
        def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
            fam = socket.AF_INET if family == -1 and fileno is None else family
            if fileno is None and fam != socket.AF_UNIX:
                with open(_LOG, "a") as fh:
                    fh.write(f"{os.getpid()} family={fam}\\n")
                raise OSError("network sockets are blocked in this test")
            super().__init__(family, type, proto, fileno)

    socket.socket = _Guarded
    """
)
NET_TABLES = ("tcp", "tcp6", "udp", "udp6", "raw", "raw6")


@pytest.fixture()
def guarded_env(tmp_path) -> dict:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(GUARD)
    log = tmp_path / "sockets.log"
    log.touch()
    env = dict(os.environ, KIIG_SOCKET_LOG=str(log))
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the CLI and its engine workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def _socket_inodes(pids: list[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    return inodes


def _net_inodes() -> set[str]:
    found = set()
    for table in NET_TABLES:
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        found.update(line.split()[9] for line in lines if len(line.split()) > 9)
    return found


def _unix_inodes() -> set[str]:
    return {line.split()[6] for line in Path("/proc/net/unix").read_text().splitlines()[1:] if len(line.split()) > 6}


def _watch(args: list[str], env: dict) -> tuple[subprocess.CompletedProcess, set[str], set[str]]:
    """Run ``kiig ARGS``; return it, the network sockets its process tree held, and the Unix ones."""
    proc = subprocess.Popen([sys.executable, "-m", "kiig_desktop", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    network, unix = set(), set()
    while proc.poll() is None:
        held = _socket_inodes(_tree(proc.pid))
        network |= held & _net_inodes()
        unix |= held & _unix_inodes()
        time.sleep(0.02)
    out, err = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), network, unix


def test_the_guard_catches_a_network_socket(guarded_env):
    r = subprocess.run([sys.executable, "-c", "import socket; socket.socket(socket.AF_INET6, socket.SOCK_STREAM)"],
                       env=guarded_env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "blocked in this test" in r.stderr
    assert "family=" in Path(guarded_env["KIIG_SOCKET_LOG"]).read_text()


@pytest.mark.slow
def test_local_run_and_score_open_no_network_socket(guarded_env, tmp_path):
    data = write_samples(tmp_path / "one.jsonl", slice(1))
    r, network, unix = _watch(["run", "--dataset", str(data), "--models", "default", "--scorer", "default",
                               "--db", str(tmp_path / "s.kiig"), "--max-tokens", "16"], guarded_env)
    assert r.returncode == 0, r.stderr
    assert network == set()
    assert unix  # the engine worker's socket pairs were seen: the watch really looks at the processes
    chain = tmp_path / "chain.jsonl"
    chain.write_text(json.dumps({"id": "c1", "question": "What is 2 + 3?", "answer": "5", "steps": ["2 + 3 = 5."]}) + "\n")
    r, network, _ = _watch(["score", "--model", "default", "--input", str(chain), "--output", str(tmp_path / "out.jsonl")],
                           guarded_env)
    assert r.returncode == 0, r.stderr
    assert network == set()
    assert Path(guarded_env["KIIG_SOCKET_LOG"]).read_text() == ""
