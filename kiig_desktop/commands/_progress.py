"""A compact progress line on stderr for long CLI commands (items, tokens/s, ETA), and :func:`say`
for their messages. Both print text from files and models (item ids, errors) through
:func:`terminal_safe`, so an id holding escape codes cannot retitle the window, clear the screen or
forge lines."""

from __future__ import annotations

import sys
import time

from ..errors import terminal_safe
from ..events import Progress


def say(text: str, stream=None) -> None:
    """One message line on stderr (``kiig: item X: ...``), control characters made visible."""
    print(terminal_safe(text), file=stream or sys.stderr)


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "--:--"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


class ProgressLine:
    """Redraws one status line on a terminal; on a pipe, prints at most one line every few seconds."""

    def __init__(self, label: str, stream=None, min_interval: float = 0.1) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.min_interval = min_interval if self.tty else 5.0
        self._last = 0.0
        self._width = 0

    def update(self, p: Progress, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        total = p.total if p.total is not None else "?"
        bar = ""
        if p.total:
            filled = int(20 * p.done / p.total)
            bar = "[" + "#" * filled + "." * (20 - filled) + "] "
        text = f"{self.label}: {bar}{p.done}/{total}"
        if p.tokens:
            text += f" | {p.tokens_per_s:,.0f} tok/s"
        text += f" | {_fmt_seconds(p.elapsed)} elapsed, ETA {_fmt_seconds(p.eta_s)}"
        if p.message:
            text += f" | {p.message}"
        text = terminal_safe(text)
        if self.tty:
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()


def drive(gen, cancel, on_event):
    """Run a generator of runs/ from the CLI: Ctrl-C cancels it cleanly, then re-raises."""
    from ..events import run_to_end

    try:
        return run_to_end(gen, on_event)
    except KeyboardInterrupt:
        cancel.cancel()
        gen.close()
        raise
