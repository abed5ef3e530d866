"""Strict JSON in and out, for every file KIIG reads from or writes for the user.

Reading: hostile text (nesting thousands deep, integers of thousands of digits, ``NaN`` and
``Infinity``, lone UTF-16 surrogates such as ``"\\ud800"``) becomes a :class:`JSONProblem` with one
readable reason instead of a RecursionError, a ValueError or a value that breaks the session file
later. Writing: output is always valid JSON (RFC 8259 has no NaN); a non-finite float is written as
``null``. Whole files of lines are checked first and refused with every bad line listed
(:func:`bad_lines_error`), so no command starts model work on a file it will reject later.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import InputError

MAX_INT_DIGITS = 19  # integers beyond 64 bits cannot be stored in a session (SQLite INTEGER)
MAX_LISTED_LINES = 200  # a refused file lists this many bad lines, then counts the rest
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


class JSONProblem(ValueError):
    """Text that is not strictly valid JSON; ``str()`` is the reason, without the file or line."""


def _no_constant(name: str) -> Any:
    raise JSONProblem(f"{name} is not a JSON number (write null for a missing value)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONProblem(f"the number {text[:20]}{'...' if len(text) > 20 else ''} is too large")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JSONProblem(f"an integer of {len(text.lstrip('-'))} digits is too large (at most {MAX_INT_DIGITS})")
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise JSONProblem(f"the integer {text} is too large (at most 64 bits)")
    return value


def _strings(obj: Any) -> Iterable[str]:
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def loads(text: str) -> Any:
    """Parse one JSON text strictly; raise :class:`JSONProblem` with a one-line reason."""
    try:
        obj = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_bounded_int)
    except JSONProblem:
        raise
    except RecursionError:
        raise JSONProblem("not valid JSON: nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise JSONProblem(f"not valid JSON ({exc.msg}, column {exc.colno})") from None
    except ValueError as exc:  # e.g. Python's own limit on integer digits
        raise JSONProblem(f"not valid JSON ({str(exc).splitlines()[0][:120]})") from None
    if _SURROGATE_ESCAPE.search(text) and any(_has_lone_surrogate(s) for s in _strings(obj)):
        raise JSONProblem("a string holds a lone UTF-16 surrogate (an escape such as \\ud800 that is not valid text)")
    return obj


def jsonl_lines(text: str) -> Iterator[tuple[int, str]]:
    """Number the lines of JSON Lines text, as every KIIG reader of JSONL must split them.

    Only ``\\n`` ends a line (a ``\\r`` before it is dropped): ``str.splitlines`` would also split at
    U+2028, U+2029, U+0085 and other characters that JSON strings hold unescaped.
    """
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line starts no line of its own
    for n, line in enumerate(lines, 1):
        yield n, line.removesuffix("\r")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` (non-ASCII kept) that never writes NaN or Infinity: they become ``null``."""
    kwargs.setdefault("ensure_ascii", False)
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError:
        return json.dumps(_finite(obj), allow_nan=False, **kwargs)


def bad_lines_error(path: str | Path, problems: list[tuple[int, str]]) -> InputError:
    """One InputError that names the file and lists every bad line (``(line, reason)``; line 0 = file)."""
    problems = sorted(problems, key=lambda p: p[0])

    def one(line: int, reason: str) -> str:
        return f"line {line}: {reason}" if line else reason

    if len(problems) == 1:
        return InputError(f"{path}: {one(*problems[0])} (nothing was run or stored)")
    shown = [f"  {one(*p)}" for p in problems[:MAX_LISTED_LINES]]
    if len(problems) > MAX_LISTED_LINES:
        shown.append(f"  ... and {len(problems) - MAX_LISTED_LINES} more")
    return InputError(f"{path}: {len(problems)} bad lines (nothing was run or stored):\n" + "\n".join(shown))


__all__ = ["JSONProblem", "bad_lines_error", "dumps", "jsonl_lines", "loads"]
