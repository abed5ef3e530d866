"""Run the ``kiig`` command line the way a user does: ``python -m kiig_desktop`` from the repository root."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support.paths import ROOT as REPO


def kiig_cmd(*args: object) -> list[str]:
    """The argv of one ``kiig`` call (arguments are turned into strings)."""
    return [sys.executable, "-m", "kiig_desktop", *map(str, args)]


def kiig(*args: object, timeout: float = 400, env: Mapping[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    """Run ``kiig ARGS`` to its end (``timeout`` only guards against a hang), capturing text output."""
    return subprocess.run(kiig_cmd(*args), capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env=dict(env) if env is not None else None, **kw)


def kiig_popen(*args: object, env: Mapping[str, str] | None = None, **kw) -> subprocess.Popen:
    """Start ``kiig ARGS`` in a session of its own (so the test can signal its whole process group)."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(kiig_cmd(*args), text=True, cwd=REPO, start_new_session=True,
                            env=dict(env) if env is not None else None, **kw)


def kiig_main(capsys, *argv: object) -> tuple[int, str, str]:
    """Run ``kiig ARGV`` in this process (so a test can monkeypatch it): exit code, stdout, stderr."""
    from kiig_desktop import cli

    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_clear_line(r: subprocess.CompletedProcess, *words: str) -> str:
    """The command failed with exit 2 and exactly one stderr line holding ``words``."""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and len(lines) == 1, r.stderr[-2000:]
    for w in words:
        assert w in lines[0], (w, lines[0][:500])
    return lines[0]


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSONL output file."""
    return [json.loads(line) for line in open(path, encoding="utf-8")]
