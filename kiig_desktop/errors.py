"""Expected errors: each carries one clear message for the user (and an optional hint).

Anything raised as a ``KiigError`` is an anticipated failure -- bad input, a broken model file,
a crashed worker -- and is shown as text, never as a traceback.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls and the Unicode line/paragraph separators: the bytes a terminal acts on
# (ESC sequences retitle the window or clear the screen; CR and LF forge lines)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def terminal_safe(text: object, *, keep_newlines: bool = False) -> str:
    """``text`` with every control character shown as a visible escape (``\\x1b``), for anything
    printed on a terminal that may hold text from a file, a model or another user.
    ``keep_newlines``: a multi-line message keeps the line breaks of its indented continuation lines
    (bad lines listed, a hint), so no text can start a line of its own that looks like ours."""

    def visible(m: re.Match) -> str:
        c = m.group()
        if keep_newlines and c == "\n" and m.string.startswith("  ", m.end()):
            return c
        return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"

    return _CONTROL.sub(visible, str(text))


class KiigError(Exception):
    """Base for all expected errors; ``str(err)`` is the user-facing message."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class ModelFileError(KiigError):
    """A model path that is missing, unreadable, not GGUF, truncated or unsupported."""


class ModelNotFound(KiigError):
    """A model name or id that matches no discovered model."""


class EngineError(KiigError):
    """The engine worker reported a failure (load failed, context overflow, ...)."""


class WorkerCrashed(EngineError):
    """The worker process died (signal, abort, out of memory); the next call starts a new one."""


class ContextOverflow(EngineError):
    """A request needs more tokens than the loaded context holds (``needed`` and ``n_ctx`` when known)."""

    def __init__(self, message: str, hint: str | None = None, *, needed: int | None = None,
                 n_ctx: int | None = None) -> None:
        super().__init__(message, hint)
        self.needed, self.n_ctx = needed, n_ctx


class Cancelled(KiigError):
    """The user cancelled a long operation."""

    def __init__(self, message: str = "cancelled") -> None:
        super().__init__(message)


class InputError(KiigError):
    """Invalid user input (a malformed dataset line, a bad option value)."""


class StoreError(KiigError):
    """A session file that cannot be opened, written or migrated."""
