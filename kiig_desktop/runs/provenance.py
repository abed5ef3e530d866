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


OPTION_FIELDS = ("n_ctx", "n_gpu_layers", "n_threads", "n_batch")


def engine_options_used(client) -> dict | None:
    """How a started client's model is loaded, as its worker reports it (``n_ctx``, GPU layers,
    threads, batch, chat template, CPU variant); None for clients that do not report it (fakes)."""
    info = getattr(client, "info", None)
    if not isinstance(info, dict):
        return None
    out = {key: info.get(key) for key in OPTION_FIELDS}
    options = getattr(client, "options", None)
    out["chat_template"] = getattr(options, "chat_template", None)  # the requested one; None: the GGUF's own
    used = info.get("chat_template_used")  # ("jinja", the GGUF's template) | ("builtin", name) | ("plain", ...)
    if isinstance(used, list | tuple) and used:
        out["chat_template_used"] = str(used[0]) if used[0] != "builtin" else f"builtin:{used[1] if len(used) > 1 else '?'}"
    else:
        out["chat_template_used"] = None
    out["cpu_variant"] = (info.get("build") or {}).get("cpu_variant")
    return out


def judge_build(client) -> dict | None:
    """The judge's build with the options it was loaded with (``"engine_options"``): the provenance
    of every KI number (``ki_evaluations.build``, the output's ``build``)."""
    build = worker_build(client)
    options = engine_options_used(client)
    if build is None or options is None:
        return build
    return {**build, "engine_options": options}


def stamp(record: dict, client, *, judge: bool = False) -> dict:
    """Put ``client``'s build (a judge's: with its engine options) into ``record["build"]`` (left
    alone when unknown); returns the record."""
    build = judge_build(client) if judge else worker_build(client)
    if build is not None:
        record["build"] = build
    return record
