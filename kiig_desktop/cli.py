"""The ``kiig`` command: a thin layer over the core library.

Each sub-command lives in ``kiig_desktop/commands/<name>.py`` and exposes ``register(subparsers)``,
which adds its parser and sets ``func(args) -> int``. Expected errors print one line on stderr and
exit with code 2; nothing the user can cause prints a traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys

from . import __version__
from .commands._common import new_session_guard
from .config import secure_data_dir
from .errors import Cancelled, KiigError, terminal_safe

COMMAND_MODULES = ["doctor", "models", "generate", "score", "corpus", "ki", "judge_check", "export", "run", "report", "review"]

EXIT_OK, EXIT_ITEM_ERRORS, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors also exit 2, without usage spam
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"kiig: error: {message}\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; with ``argv`` naming a command, only that command's module is imported.

    Each command module pulls in what it needs (the store, numpy, reports...): importing all of
    them cost half a second before `kiig models` could even start.
    """
    parser = _Parser(prog="kiig", description="KIIG Desktop: per-step InfoGain and Knowledge Index for local GGUF models, offline.")
    parser.add_argument("--version", action="version", version=f"kiig {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    first = next((a for a in argv or [] if not a.startswith("-")), None)
    for name in [first] if first in COMMAND_MODULES else COMMAND_MODULES:
        importlib.import_module(f"{__package__}.commands.{name}").register(sub)
    return parser


def _kept(args: argparse.Namespace) -> str:
    """What an interrupted long command kept, for its last line (never claims chains that are not there)."""
    if not hasattr(args, "db") or not (hasattr(args, "input") or hasattr(args, "dataset")):
        return ""
    if not args.db:
        return "; nothing was saved (with --db SESSION, finished chains are kept and a rerun resumes)"
    saved = _chains_of_stopped_run(args.db)
    if not saved:
        return f"; no chain had finished, so nothing was saved in {args.db}"
    return f"; {saved} finished chains are saved in {args.db}, and the same command resumes"


def _chains_of_stopped_run(db: str) -> int:
    """Chains stored by the run that stopped last in ``db`` (0 when there is no such session or run)."""
    from .store import SessionStore

    try:
        with SessionStore.open(db, create=False, write=False) as store:
            runs = store.list_runs()
    except KiigError:
        return 0
    # we held the writer lock until now, so a run still marked running is ours (any older one
    # was marked interrupted when we opened the session); else the one that stopped last
    running = [r for r in runs if r["status"] == "running"]
    stopped = running or sorted((r for r in runs if r["status"] in ("cancelled", "interrupted")), key=lambda r: r["finished"] or "")
    return int(stopped[-1]["n_chains"]) if stopped else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    secure_data_dir()  # a data folder left 0777 (cache/ included) is owner-only before anything reads it
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        with new_session_guard(getattr(args, "db", None)):  # a failed command leaves no new empty session
            return int(args.func(args) or 0)
    except Cancelled:
        print(f"kiig: cancelled{_kept(args)}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"\nkiig: interrupted{_kept(args)}", file=sys.stderr)
        return 130
    except KiigError as exc:
        print(f"kiig: error: {terminal_safe(exc, keep_newlines=True)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"kiig: error: no space left on device{terminal_safe(where)}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
