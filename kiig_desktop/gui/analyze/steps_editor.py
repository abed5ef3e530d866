"""Editable list of steps before scoring: edit text, add, delete, merge, reorder."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ...runs.analysis import StepDraft
from ..shared.widgets import plain_label

OFFSETS = Qt.ItemDataRole.UserRole


class StepsEditor(QWidget):
    """Rows are steps (numbered by the vertical header); cells are edited as plain text."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(0, 1)
        self.table.horizontalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setWordWrap(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
                                   | QAbstractItemView.EditTrigger.AnyKeyPressed)
        self.table.setToolTip("Double-click a step to edit it")
        buttons = QHBoxLayout()
        self.buttons: dict[str, QToolButton] = {}
        for key, text, tip in (("add", "+ Step", "Add an empty step after the selected one"),
                               ("delete", "Delete", "Delete the selected step"),
                               ("merge", "Merge ↓", "Join the selected step with the next one"),
                               ("up", "↑", "Move the selected step up"), ("down", "↓", "Move the selected step down")):
            b = QToolButton()
            b.setText(text)
            b.setToolTip(tip)
            buttons.addWidget(b)
            self.buttons[key] = b
        buttons.addStretch(1)
        self.hint = plain_label("Steps appear here after splitting the reasoning. Double-click a step to edit it; "
                                "use the buttons below to add, delete, merge or reorder steps.", "empty", wrap=True)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.hint)
        self.stack.addWidget(self.table)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack, 1)
        layout.addLayout(buttons)
        self.changed.connect(self._update_stack)
        self.buttons["add"].clicked.connect(self._add)
        self.buttons["delete"].clicked.connect(self._delete)
        self.buttons["merge"].clicked.connect(self._merge)
        self.buttons["up"].clicked.connect(lambda: self._move(-1))
        self.buttons["down"].clicked.connect(lambda: self._move(1))
        self.table.itemChanged.connect(self._edited)
        self.table.currentCellChanged.connect(lambda *_: self._update_buttons())
        self._loading = False
        self._update_buttons()

    def _update_stack(self) -> None:
        rows = self.table.rowCount()
        self.stack.setCurrentIndex(1 if rows else 0)
        self._update_buttons()

    def _update_buttons(self) -> None:
        """Delete, merge and move need a selected step (merge and moves a neighbour too)."""
        rows, row = self.table.rowCount(), self.table.currentRow()
        selected = 0 <= row < rows
        self.buttons["delete"].setEnabled(selected)
        self.buttons["merge"].setEnabled(selected and row + 1 < rows)
        self.buttons["up"].setEnabled(selected and row > 0)
        self.buttons["down"].setEnabled(selected and row + 1 < rows)

    def _item(self, draft: StepDraft) -> QTableWidgetItem:
        item = QTableWidgetItem(draft.text)
        item.setData(OFFSETS, (draft.start, draft.end) if draft.start is not None else None)
        return item

    def set_steps(self, steps: list[StepDraft]) -> None:
        self._loading = True
        try:
            self.table.setRowCount(0)
            for draft in steps:
                row = self.table.rowCount()
                self.table.insertRow(row)
                self.table.setItem(row, 0, self._item(draft))
        finally:
            self._loading = False
        self.changed.emit()

    def steps(self) -> list[StepDraft]:
        out = []
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is None:
                continue
            offsets = item.data(OFFSETS)
            start, end = offsets if offsets else (None, None)
            out.append(StepDraft(item.text(), start, end))
        return out

    def _edited(self, item: QTableWidgetItem) -> None:
        if self._loading:
            return
        self._loading = True
        item.setData(OFFSETS, None)  # edited text: offsets are found again when scoring
        self._loading = False
        self.changed.emit()

    def _current(self) -> int:
        return self.table.currentRow()

    def _add(self) -> None:
        row = self._current() + 1 if self._current() >= 0 else self.table.rowCount()
        self.table.insertRow(row)
        self._loading = True
        self.table.setItem(row, 0, self._item(StepDraft("")))
        self._loading = False
        self.table.setCurrentCell(row, 0)
        self.table.editItem(self.table.item(row, 0))
        self.changed.emit()

    def _delete(self) -> None:
        row = self._current()
        if row >= 0:
            self.table.removeRow(row)
            self.changed.emit()

    def _merge(self) -> None:
        row = self._current()
        if not 0 <= row < self.table.rowCount() - 1:
            return
        steps = self.steps()
        a, b = steps[row], steps[row + 1]
        merged = StepDraft(a.text.rstrip() + " " + b.text.lstrip())
        steps[row : row + 2] = [merged]
        self.set_steps(steps)
        self.table.setCurrentCell(row, 0)

    def _move(self, delta: int) -> None:
        row = self._current()
        target = row + delta
        if row < 0 or not 0 <= target < self.table.rowCount():
            return
        steps = self.steps()
        steps[row], steps[target] = steps[target], steps[row]
        self.set_steps(steps)
        self.table.setCurrentCell(target, 0)
