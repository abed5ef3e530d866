"""The offline archive runs on every Linux since 2020: no bundled file needs a glibc symbol newer
than GLIBC_2.31 (Debian 11, Ubuntu 20.04) nor a libstdc++ newer than bullseye's (GLIBCXX_3.4.28,
GCC 10), which the archive carries itself.

Reads the archive ``make bundle`` leaves in dist/ (built in Debian 11 by packaging/compat/build.py);
under ``make test`` a missing archive fails (tests/support/require.py).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.support.bundle import dist_archive
from tests.support.require import require

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("glibc_floor", ROOT / "packaging" / "glibc_floor.py")
glibc_floor = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(glibc_floor)

GLIBC_FLOOR = "2.31"  # Debian 11 bullseye, Ubuntu 20.04
GLIBCXX_FLOOR = "3.4.28"  # libstdc++ of GCC 10 (bullseye)
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the bundle is built on Linux")


@pytest.fixture(scope="module")
def per_file() -> dict[str, dict[str, str]]:
    return glibc_floor.floors(dist_archive())


@pytest.mark.slow
def test_no_bundled_file_needs_a_glibc_newer_than_2_31(per_file):
    assert len(per_file) > 50  # the archive's libraries were read (Python, Qt, llama.cpp, ...)
    assert glibc_floor.above(per_file, "GLIBC_", GLIBC_FLOOR) == {}


def test_no_bundled_file_needs_a_libstdcxx_newer_than_gcc_10s(per_file):
    assert glibc_floor.above(per_file, "GLIBCXX_", GLIBCXX_FLOOR) == {}


@pytest.mark.slow
def test_the_versions_read_are_those_objdump_lists(tmp_path, per_file):
    """The ELF parser agrees with binutils on the archive's libpython and Qt core library."""
    objdump = shutil.which("objdump")
    require("objdump", objdump is not None, "apt-get install binutils")
    with tarfile.open(dist_archive()) as tar:
        names = [m for m in tar.getmembers() if m.name.endswith(("/libpython3.11.so.1.0", "/libQt6Core.so.6"))
                 and m.isfile()]
        assert len(names) == 2, [m.name for m in names]
        tar.extractall(tmp_path, members=names, filter="tar")
    for member in names:
        text = subprocess.run([objdump, "-p", str(tmp_path / member.name)], capture_output=True, text=True,
                              check=True).stdout
        refs = text.split("Version References:", 1)[1]
        listed = {w for w in refs.split() if w.startswith(glibc_floor.PREFIXES)}
        needed = glibc_floor.needed_versions((tmp_path / member.name).read_bytes())
        assert {v for v in needed if v.startswith(glibc_floor.PREFIXES)} == listed, member.name
        assert per_file[member.name] == glibc_floor.highest(listed)
