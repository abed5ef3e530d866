"""Every test file the project names (``tests/.../test_x.py`` in the README, the docs, the code, the
Makefile) exists: tests move between folders, and a stale path sends a reader to nothing."""

from __future__ import annotations

import re

from tests.support.paths import ROOT

NAMED = re.compile(r"(?<![\w/.])tests/[\w/]+\.py\b")
WHERE = ("README.md", "Makefile", "pyproject.toml", "docs/**/*.md", "docs/*.json", "kiig_desktop/**/*.py",
         "benchmarks/*.py", "packaging/**/*.py", "packaging/**/*.sh", "packaging/**/*.md", "tests/**/*.py")


def named_test_paths(text: str) -> list[str]:
    return NAMED.findall(text)


def test_the_pattern_finds_a_test_path_in_prose_and_code():
    assert named_test_paths("see `tests/store/test_store_crash.py` and (tests/support/cli.py).") == [
        "tests/store/test_store_crash.py", "tests/support/cli.py"]
    assert named_test_paths("kiig_desktop/tests/x.py and mytests/y.py") == []


def test_every_named_test_file_exists():
    missing = []
    for pattern in WHERE:
        for path in sorted(ROOT.glob(pattern)):
            if "_resources" in path.parts or not path.is_file():
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                missing += [f"{path.relative_to(ROOT)}:{n}: {name}" for name in named_test_paths(line)
                            if not (ROOT / name).is_file()]
    assert missing == [], "no such file:\n" + "\n".join(missing)
