"""Hooks the screenshot walkthrough uses on the live window: a batch held mid-run, a widget scrolled into view."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def held_batch(gate: threading.Event, after: int) -> Iterator[None]:
    """Batches started inside stop after their ``after``-th finished chain until ``gate`` is set (the
    batch is a generator pulled on its worker thread: the wait holds the run itself, not just its view)."""
    from kiig_desktop.events import ItemDone
    from kiig_desktop.gui.dashboard import batch_form

    original = batch_form.batch_work

    def held(session, engines, request):
        work = original(session, engines, request)

        def run(cancel):
            gen, done = work(cancel), 0
            try:
                while True:
                    try:
                        event = next(gen)
                    except StopIteration as stop:
                        return stop.value
                    yield event
                    done += isinstance(event, ItemDone)
                    if isinstance(event, ItemDone) and done == after:
                        gate.wait()
            finally:
                gen.close()

        return run

    batch_form.batch_work = held
    try:
        yield
    finally:
        batch_form.batch_work = original


def reveal(widget) -> None:
    """Scroll the scroll areas around ``widget`` until it shows in full."""
    from PySide6.QtWidgets import QScrollArea

    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QScrollArea):
            parent.ensureWidgetVisible(widget, 0, 8)
        parent = parent.parentWidget()
