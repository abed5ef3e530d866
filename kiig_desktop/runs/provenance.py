"""Provenance of stored numbers: the llama.cpp build of the worker that computed them.

Each engine worker reports its build once (``engine.build_info``, collected inside the worker);
runs record it in the run's versions and in every chain record (``record["build"]``), so a view
can tell when numbers come from different builds or backends (``engine.build_info.differences``).
"""

from __future__ import annotations


def worker_build(client) -> dict | None:
    """The build dict of a started engine client (None for clients that do not report one)."""
    build = getattr(client, "build", None)
    value = build() if callable(build) else None
    return value if isinstance(value, dict) else None


def stamp(record: dict, client) -> dict:
    """Put ``client``'s build into ``record["build"]`` (left alone when unknown); returns the record."""
    build = worker_build(client)
    if build is not None:
        record["build"] = build
    return record
