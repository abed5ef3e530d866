"""Numbers from different llama.cpp builds or backends are never pooled silently.

A batch run can hold chains computed by different builds (a session resumed on another machine,
another llama.cpp version, GPU offload switched on). :func:`split_by_build` keeps each model's
chains of each build in a group of their own and returns a warning that names what differs
(``engine.build_info.differences``); the dashboard and the HTML report show it above their tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..engine.build_info import build_id, mixed_warning, short_label

Meta = tuple[str, str, str, str]  # (key, name, path, sha256) of a model group


def record_build(record: dict) -> dict | None:
    """The build a stored chain record names (None for chains stored before builds were recorded)."""
    build = record.get("build")
    return build if isinstance(build, dict) else None


def split_by_build(results: Sequence, meta: Sequence[Meta], builds: dict[str | None, dict | None]) -> tuple[list, list[Meta], str | None]:
    """``(results, meta, warning)`` with one group per (model, build) when the run holds several builds.

    ``results`` are ItemResults whose ``build`` is a build id (or None); ``builds`` maps those ids to
    the build dicts. With a single build everything is returned unchanged and the warning is None.
    """
    used = list(dict.fromkeys(r.build for r in results))
    if len(used) < 2:
        return list(results), list(meta), None
    number = {bid: n for n, bid in enumerate(used, 1)}
    out_meta: list[Meta] = []
    regroup: dict[tuple[str, str | None], str] = {}
    for key, name, path, sha in meta:
        mine = list(dict.fromkeys(r.build for r in results if r.model == key)) or [None]
        for bid in mine:
            new_key = key if len(mine) == 1 else f"{key}@{bid or 'unknown'}"
            new_name = name if len(mine) == 1 else f"{name} [build {number.get(bid, '?')}]"
            regroup[(key, bid)] = new_key
            out_meta.append((new_key, new_name, path, sha))
    out = [replace(r, model=regroup.get((r.model, r.build), r.model)) for r in results]
    labelled = {f"build {number[bid]} ({short_label(builds.get(bid))})": builds.get(bid) for bid in used}
    return out, out_meta, mixed_warning(labelled, "results")


def chain_build_id(record: dict) -> str | None:
    return build_id(record_build(record))
