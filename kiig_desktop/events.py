"""Typed progress events and cooperative cancellation for long work.

Long operations are plain generators yielding these events; the CLI drives them with a progress
bar on stderr, the GUI wraps them in a worker thread that turns each event into a Qt signal. These
dataclasses are the whole vocabulary: Progress (how far), Token (a generated token), Message (what
happens now, warnings) and ItemDone (a finished unit). The engine client turns its worker's wire
messages into them, so nothing above the engine sees a tuple or a dict as an event.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import Cancelled


class CancelToken:
    """A thread-safe flag checked between units of work; ``check()`` raises Cancelled once set."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._callbacks: list = []

    def cancel(self) -> None:
        self._event.set()
        for cb in list(self._callbacks):
            try:
                cb()
            except Exception:  # noqa: BLE001 - a failing listener must not stop cancellation
                pass

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()

    def on_cancel(self, callback) -> None:
        """Call ``callback()`` when cancel() is called (e.g. to interrupt the engine worker)."""
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        if self._event.is_set():
            callback()


@dataclass
class Progress:
    """How far a long operation has come. ``total`` may be None when unknown."""

    done: int
    total: int | None
    message: str = ""
    tokens: int = 0  # tokens processed so far, for tokens/s
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        if not self.total or self.done <= 0:
            return None
        return self.elapsed / self.done * (self.total - self.done)


@dataclass
class ItemDone:
    """One unit (a chain, a dataset item, a compared model) finished; ``result`` is its output record."""

    index: int
    result: Any  # the output record (a dict); a comparison yields the saved AnalysisResult
    skipped: bool = False  # True when it was already stored and only reloaded (resume)


@dataclass
class Message:
    """Something to tell the user (what happens now, resume counts, warnings) without stopping the work."""

    text: str
    level: str = "info"


@dataclass
class Token:
    """One generated token as it streams: its text, log-probability, entropy (bits) and top alternatives."""

    id: int
    text: str
    logprob: float
    entropy_bits: float
    top: list[dict[str, Any]] = field(default_factory=list)  # [{"id", "text", "logprob"}], most likely first


def run_to_end(gen, on_event=None):
    """Drive a generator of events to its return value, passing each event to ``on_event``."""
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_event is not None:
            on_event(event)


def offset_tokens(gen, progress: Progress, before: int):
    """Re-yield ``progress`` for each Progress of ``gen``, counting its tokens on top of ``before``."""
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            return stop.value
        progress.tokens = before + p.tokens
        yield progress
