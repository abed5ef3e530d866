"""The offline archive `make bundle` leaves in dist/, for the tests that run or inspect it."""

from __future__ import annotations

import tarfile
from pathlib import Path

from tests.support.paths import ROOT
from tests.support.require import require


def dist_archive() -> Path:
    """The newest dist/kiig-desktop-*-linux-x86_64.tar.gz; a missing one fails (or skips) naming it."""
    found = sorted((ROOT / "dist").glob("kiig-desktop-*-linux-x86_64.tar.gz"), key=lambda p: p.stat().st_mtime)
    require("the bundle dist/kiig-desktop-*-linux-x86_64.tar.gz", bool(found), "run `make bundle`")
    return found[-1]


def unpack(dest: Path) -> Path:
    """The archive unpacked into ``dest``; returns ``dest`` (which holds kiig-desktop-VERSION-linux-x86_64/)."""
    with tarfile.open(dist_archive()) as tar:
        tar.extractall(dest, filter="tar")
    return dest
