"""What every screen that runs long work shares: form rows, the Run / Cancel row, the thin
progress bar with its status line, and starting a task with the screen marked busy until it ends.

One place for these so the screens (Analyze, Compare, the Knowledge Index panel, the Models
panel) look and behave alike: the same row spacing, the same primary-button style, and the same
order of what happens when a task fails, is cancelled or finishes.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import SignalInstance
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from .engines import Engines
from .widgets import plain_label
from .workers import Task, TaskManager, Work


def labelled_row(label: str, widget: QWidget, *more: QWidget, tip: str = "") -> QHBoxLayout:
    """A form row: ``label``, then ``widget`` taking the spare width, then ``more`` at their size."""
    row = QHBoxLayout()
    caption = plain_label(label)
    if tip:
        caption.setToolTip(tip)
    row.addWidget(caption)
    row.addWidget(widget, 1)
    for w in more:
        row.addWidget(w)
    return row


def primary_button(text: str, tip: str = "") -> QPushButton:
    """The screen's main command (drawn in the accent colour by the theme)."""
    button = QPushButton(text)
    button.setProperty("role", "primary")
    if tip:
        button.setToolTip(tip)
    return button


def button_row(*widgets: QWidget, stretch: bool = True) -> QHBoxLayout:
    """Buttons side by side, packed to the left unless ``stretch`` is False (then they share the row)."""
    row = QHBoxLayout()
    for w in widgets:
        row.addWidget(w)
    if stretch:
        row.addStretch(1)
    return row


def progress_line(height: int = 8) -> tuple[QProgressBar, QLabel]:
    """A thin progress bar without text, and the muted, wrapping status line below it."""
    bar = QProgressBar()
    bar.setTextVisible(False)
    bar.setMaximumHeight(height)
    return bar, plain_label("", "muted", wrap=True)


def run_busy(tasks: TaskManager, title: str, work: Work, set_busy: Callable[[bool], None], *,
             message: SignalInstance | None = None, status: QLabel | None = None, failed_text: str = "",
             cancelled_text: str = "", engines: Engines | None = None) -> Task:
    """Start ``work`` with the screen busy (``set_busy(True)``) until the task ends.

    A failure goes to ``message`` as an error (one line) and ``failed_text`` to ``status``; a cancel
    writes ``cancelled_text`` there; at the end the screen is idle again and, with ``engines``, the
    model list is re-synced (the work may have loaded a model).
    """
    set_busy(True)
    task = tasks.run(title, work)
    if message is not None:
        task.failed.connect(lambda text: message.emit(text, "error"))
    if status is not None and failed_text:
        task.failed.connect(lambda _text: status.setText(failed_text))
    if status is not None and cancelled_text:
        task.cancelled.connect(lambda: status.setText(cancelled_text))
    task.finished.connect(lambda: set_busy(False))
    if engines is not None:
        task.finished.connect(engines.sync)
    return task
