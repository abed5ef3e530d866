"""packaging/x_libs.sh (make run): on a machine without Qt's X libraries a non-root user gets the one
apt-get line; with them present it says nothing. ldconfig and id are stand-ins on PATH."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


def _run(tmp_path: Path, libs: str) -> subprocess.CompletedProcess:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "ldconfig").write_text(f"#!/bin/sh\nprintf '%b' '{libs}'\n")
    (fake / "id").write_text("#!/bin/sh\necho 1000\n")  # not root: never installs anything
    for f in fake.iterdir():
        f.chmod(0o755)
    env = {"PATH": f"{fake}:/usr/bin:/bin"}
    return subprocess.run(["sh", str(ROOT / "packaging" / "x_libs.sh")], env=env, capture_output=True, text=True, timeout=30)


def test_missing_libraries_give_one_apt_get_line(tmp_path):
    r = _run(tmp_path, "\\tlibxcb-cursor.so.0 (libc6,x86-64) => /usr/lib/libxcb-cursor.so.0\\n")
    assert r.returncode == 1
    line = [ln for ln in r.stderr.splitlines() if "apt-get" in ln]
    assert len(line) == 1 and "libxcb-icccm4" in line[0] and "libgl1" in line[0] and "libxcb-cursor0" not in line[0]


def test_nothing_missing_says_nothing(tmp_path):
    sonames = ("libxcb-cursor.so.0 libxcb-icccm.so.4 libxcb-keysyms.so.1 libxcb-image.so.0 libxcb-render-util.so.0 "
               "libxcb-xkb.so.1 libxkbcommon-x11.so.0 libxcb-shape.so.0 libEGL.so.1 libGL.so.1").split()
    r = _run(tmp_path, "".join(f"\\t{s} (libc6,x86-64) => /usr/lib/{s}\\n" for s in sonames))
    assert r.returncode == 0 and r.stdout == r.stderr == ""
