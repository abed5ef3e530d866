"""The status bar's view of the running work: the newest task's title, a busy bar, and Cancel."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QProgressBar, QToolButton, QWidget

from .widgets import fit_text, plain_label
from .workers import TaskManager


class TaskIndicator(QWidget):
    """Status-bar widget: the running task's title, a busy bar and a cancel button."""

    def __init__(self, tasks: TaskManager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tasks = tasks
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = plain_label("")
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)
        self.bar.setMaximumWidth(120)
        self.bar.setMaximumHeight(12)
        self.cancel = QToolButton()
        self.cancel.setText("Cancel")
        self.cancel.setAutoRaise(True)
        self.cancel.clicked.connect(self._cancel)
        for w in (self.label, self.bar, self.cancel):
            layout.addWidget(w)
        tasks.started.connect(self.update_state)
        tasks.ended.connect(self.update_state)
        self.update_state()

    def _shown(self) -> list:
        return [t for t in self.tasks.active() if not t.quiet]

    def _cancel(self) -> None:
        shown = self._shown()
        if shown:
            shown[-1].cancel()

    def update_state(self, *_args) -> None:
        active = self._shown()
        self.setVisible(bool(active))
        if active:
            more = f" (+{len(active) - 1})" if len(active) > 1 else ""
            fit_text(self.label, active[-1].title + "…" + more)
