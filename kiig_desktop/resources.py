"""Locate files shipped in the project's ``resources/`` folder (sample data, demo corpus, icons) and
its ``docs/`` (the metric definitions the app's help shows)."""

from __future__ import annotations

import os
from pathlib import Path

_ROOT_CANDIDATES = (
    Path(__file__).resolve().parent / "_resources",  # a frozen/bundled build copies them here
    Path(__file__).resolve().parent.parent / "resources",  # a source checkout (editable install)
)


def resources_dir() -> Path:
    env = os.environ.get("KIIG_RESOURCES_DIR")
    if env:
        return Path(env)
    for candidate in _ROOT_CANDIDATES:
        if candidate.is_dir():
            return candidate
    return _ROOT_CANDIDATES[-1]


def resource_path(*parts: str) -> Path:
    """Path of a shipped resource, e.g. ``resource_path("datasets", "clinical_mcq.jsonl")``."""
    return resources_dir().joinpath(*parts)


_DOCS_CANDIDATES = (
    Path(__file__).resolve().parent / "_docs",  # wheels and the frozen build (kiig_desktop/_docs links to docs/)
    Path(__file__).resolve().parent.parent / "docs",  # a source checkout
)


def docs_path(name: str) -> Path:
    """Path of a shipped document, e.g. ``docs_path("metrics.md")`` (it may be missing: check ``exists()``)."""
    env = os.environ.get("KIIG_DOCS_DIR")
    if env:
        return Path(env) / name
    for candidate in _DOCS_CANDIDATES:
        if (candidate / name).is_file():
            return candidate / name
    return _DOCS_CANDIDATES[0] / name
