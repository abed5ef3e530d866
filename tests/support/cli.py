"""Run the ``kiig`` command line the way a user does: ``python -m kiig_desktop`` from the repository root."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


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
