"""Arguments and helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..config import EngineOptions, Settings, check_threads, max_threads
from ..errors import InputError

KI_MODE_CHOICES = ("probability", "passages-true-false", "reasoningeval-pipeline", "reasoningeval")  # the last: old name
MIN_N_CTX = 256  # smaller contexts abort inside llama.cpp with a chat prompt
SEED_MAX = 2**32 - 1  # llama.cpp seeds are 32-bit; a larger one cannot be stored or used


def seed_value(text: str) -> int:
    """argparse type for --seed: a whole number llama.cpp and the session can hold."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text[:40]!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be between 0 and {SEED_MAX}, got {text[:40]}")
    return value


def finite_float(text: str) -> float:
    """argparse type for real-valued options: ``nan`` and ``inf`` would reach the session and exports."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text[:40]!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text[:40]}")
    return value


def add_engine_args(p: argparse.ArgumentParser) -> None:
    """--n-ctx, --n-gpu-layers, --threads, --n-batch: how a model is loaded."""
    g = p.add_argument_group("engine options")
    d = EngineOptions()
    g.add_argument("--n-ctx", type=int, default=None, help=f"context size in tokens (default {d.n_ctx})")
    g.add_argument("--n-gpu-layers", type=int, default=None, help="layers to offload to the GPU (default 0; -1 = all)")
    g.add_argument("--threads", type=int, default=None, help=f"CPU threads, 1 to {max_threads()} (4 per core, at most 256; default: the cores available, up to 8)")
    g.add_argument("--n-batch", type=int, default=None, help=f"tokens per decode batch (default {d.n_batch})")
    g.add_argument("--chat-template", default=None, help="llama.cpp template name (e.g. chatml, gemma, llama3) or a Jinja template, for models whose GGUF has none")
    g.add_argument("--fast-not-exact", action="store_true", default=None,
                   help="where the load-time self-test finds this build's batches not invariant, score incrementally "
                        "anyway (faster; every number is marked not exact) instead of each prefix from scratch")


def ki_mode(name: str) -> str:
    """A --ki-mode value under its current name; an old name says on stderr what it became."""
    from ..knowledge.ki_rules import RENAME_NOTE, RENAMED

    if name in RENAMED:
        print(f"kiig: note: {RENAME_NOTE}; using {RENAMED[name]}", file=sys.stderr)
    return RENAMED.get(name, name)


def engine_options(args: argparse.Namespace, settings: Settings | None = None) -> EngineOptions:
    base = (settings or Settings.load()).engine
    opts = EngineOptions(**base.to_dict())
    for attr, name in (("n_ctx", "n_ctx"), ("n_gpu_layers", "n_gpu_layers"), ("threads", "n_threads"), ("n_batch", "n_batch"), ("chat_template", "chat_template")):
        value = getattr(args, attr, None)
        if value is not None:
            setattr(opts, name, value)
    if getattr(args, "seed", None) is not None:
        opts.seed = args.seed
    if getattr(args, "fast_not_exact", None):
        opts.fast_not_exact = True
    # values llama.cpp would abort on (a crashed worker) are refused here with the limit
    for value, flag, low in ((opts.n_ctx, "--n-ctx", MIN_N_CTX), (opts.n_batch, "--n-batch", 1)):
        if value < low:
            raise InputError(f"{flag} must be at least {low}, got {value}")
    check_threads(opts.n_threads, "--threads" if getattr(args, "threads", None) is not None else "the threads setting (settings.json)")
    return opts


@contextmanager
def new_session_guard(db: str | None) -> Iterator[None]:
    """If this command created the session ``db`` and then fails before storing anything, remove it.

    "Created" is decided by the store under the writer lock, never by whether the file existed
    when the command started: another process may have created it meanwhile and be writing it.
    """
    try:
        yield
    except BaseException:
        if db:
            from ..store.connection import created_here, discard_if_blank

            path = Path(db).expanduser()
            if created_here(path):
                discard_if_blank(path)
        raise


def open_session_for_writing(db: str | Path, *, create: bool = True):
    """The session ``db`` opened for writing; an existing one must pass SQLite's quick check first."""
    from ..store import SessionStore

    store = SessionStore.open(db, create=create, write=True)
    if not store.created:
        try:
            store.require_intact()
        except BaseException:
            store.close()
            raise
    return store


def print_json(data, stream=None) -> None:
    stream = stream or sys.stdout
    json.dump(data, stream, ensure_ascii=False, indent=2)
    stream.write("\n")


def print_engine_warnings(client) -> None:
    """Tell the user on stderr what the loaded engine could not honour (e.g. GPU layers)."""
    for warning in (getattr(client, "info", None) or {}).get("warnings", []):
        print(f"kiig: warning: {warning}", file=sys.stderr)
