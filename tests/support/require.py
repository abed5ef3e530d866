"""One policy for prerequisites a test cannot run without (Ray, chromium, root, a built bundle, ...).

``require(name, condition, how_to_get)`` does nothing when ``condition`` holds. Otherwise:

- under ``make test`` (which sets ``KIIG_REQUIRE_ALL=1``) the test FAILS, naming the prerequisite and
  how to get it -- ``make test`` installs everything the suite needs, so a missing piece is a broken
  setup, never a reason for a green run;
- in a bare ``pytest`` run the test is skipped with the same message, so a developer without, say,
  chromium can still run the rest (``-ra`` lists every skip).

``KIIG_REQUIRE_BUNDLE=1`` (older name, bundle tests only) is honoured as well.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def strict() -> bool:
    """Whether a missing prerequisite fails (``make test``) rather than skips."""
    return os.environ.get("KIIG_REQUIRE_ALL") == "1" or os.environ.get("KIIG_REQUIRE_BUNDLE") == "1"


def require(name: str, condition: bool, how_to_get: str) -> None:
    """Fail (under ``make test``) or skip unless ``condition``; the message names ``name``."""
    if condition:
        return
    msg = f"missing prerequisite: {name} ({how_to_get})"
    if strict():
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg, allow_module_level=True)


def require_module(module: str, how_to_get: str) -> ModuleType:
    """Import ``module``, or fail/skip by :func:`require` naming it (a broken install fails too)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        require(f"Python module {module!r} ({exc})", False, how_to_get)
        raise  # not reached: require() fails or skips


RAY_HOW = "`make install-cluster`; make test installs it"
