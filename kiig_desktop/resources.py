"""Locate files shipped in the project's ``resources/`` folder (sample data, demo corpus, icons)."""

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
