"""The suite's one policy for missing prerequisites (tests/support/require.py), and that no test
module goes around it with a skip of its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.paths import ROOT
from tests.support.require import require, require_module

TESTS = ROOT / "tests"
# platform conditions only: on Linux, where `make test` runs, none of them skips
PLATFORM_SKIPS = {
    "test_bundle.py": 'not sys.platform.startswith("linux")',
    "test_x_libs.py": 'not sys.platform.startswith("linux")',
    "test_bundle_sbom.py": 'not sys.platform.startswith("linux")',
    "test_sbom.py": 'not sys.platform.startswith("linux")',
    "test_bundle_in_debian.py": 'not sys.platform.startswith("linux")',
    "test_glibc_floor.py": 'not sys.platform.startswith("linux")',
    "test_hardening_sessions.py": 'not Path("/proc/self/fd").is_dir()',
    "test_store_concurrency.py": 'not hasattr(os, "fork")',
}


def test_a_missing_prerequisite_fails_under_make_test(monkeypatch):
    monkeypatch.setenv("KIIG_REQUIRE_ALL", "1")
    with pytest.raises(pytest.fail.Exception, match=r"missing prerequisite: chromium \(apt-get install chromium\)"):
        require("chromium", False, "apt-get install chromium")
    with pytest.raises(pytest.fail.Exception, match="'no_such_module_kiig'"):
        require_module("no_such_module_kiig", "pip install it")
    require("present", True, "nothing to do")  # a present prerequisite does nothing


def test_a_missing_prerequisite_skips_naming_it_elsewhere(monkeypatch):
    monkeypatch.delenv("KIIG_REQUIRE_ALL", raising=False)
    monkeypatch.delenv("KIIG_REQUIRE_BUNDLE", raising=False)
    with pytest.raises(pytest.skip.Exception, match="missing prerequisite: Xvfb"):
        require("Xvfb", False, "apt-get install xvfb")


def test_no_test_module_skips_on_its_own():
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        if "support" in path.relative_to(TESTS).parts or path.name == Path(__file__).name:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"pytest\.skip\(|importorskip\(|mark\.skip\b|mark\.skipif\(", line):
                allowed = PLATFORM_SKIPS.get(path.name)
                if not (allowed and "skipif(" in line and allowed in line):
                    found.append(f"{path.relative_to(TESTS)}:{n}: {line.strip()}")
    assert found == [], "use tests/support/require.py:\n" + "\n".join(found)
