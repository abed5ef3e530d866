"""The question form: question text, optional multiple-choice options, the ground-truth answer."""

from __future__ import annotations

import string

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ...chains.datasets import load_dataset
from ...errors import KiigError
from ...resources import resource_path
from ...runs.analysis import Question
from ..shared.widgets import compact_combo, plain_label

LETTERS = string.ascii_uppercase[:8]
EXAMPLE_FILES = (("Clinical multiple choice", "clinical_mcq.jsonl"), ("Arithmetic word problems", "arithmetic.jsonl"))


def option_label(letter: str, text: str) -> str:
    """How the Correct option list names an option: "B. Metformin" (the letter alone while it has no text)."""
    text = " ".join(text.split())
    return f"{letter}. {text}" if text else letter


class QuestionForm(QWidget):
    """Edits one Question; ``changed`` fires on every edit."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        top = QHBoxLayout()
        top.addWidget(plain_label("Question"))
        top.addStretch(1)
        self.examples = QToolButton()
        self.examples.setText("Examples")
        self.examples.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.examples.setMenu(self._examples_menu())
        top.addWidget(self.examples)
        layout.addLayout(top)
        self.question_edit = QPlainTextEdit()
        self.question_edit.setPlaceholderText("Type or paste the question the model should reason about…")
        lines = self.question_edit.fontMetrics().lineSpacing()
        self.question_edit.setMinimumHeight(3 * lines + 14)
        self.question_edit.setMaximumHeight(5 * lines + 14)  # a question is short: the reasoning below gets the height
        self.question_edit.setTabChangesFocus(True)  # Tab moves on to the options; a question needs no tab characters
        layout.addWidget(self.question_edit)

        self.mcq = QCheckBox("Multiple choice")
        layout.addWidget(self.mcq)
        self.options = QTableWidget(0, 1)
        self.options.horizontalHeader().hide()
        self.options.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.options.verticalHeader().setDefaultSectionSize(24)
        self.options.setVerticalScrollMode(QTableWidget.ScrollMode.ScrollPerPixel)
        self.options.setTabKeyNavigation(False)  # Tab leaves the table (arrows move between options)
        # The +/− buttons stand beside the options, never below them: stacked under a fixed-height
        # table they were drawn over options C and D when the form got less height than it asked.
        opt_buttons = QVBoxLayout()
        self.add_option = QToolButton()
        self.add_option.setText("+ Option")
        self.add_option.setToolTip("Add an option row")
        self.remove_option = QToolButton()
        self.remove_option.setText("− Option")
        self.remove_option.setToolTip("Remove the selected option (the last one when none is selected)")
        for button in (self.add_option, self.remove_option):
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            button.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
            opt_buttons.addWidget(button)
        opt_buttons.addStretch(1)
        self.options_box = QWidget()
        box = QHBoxLayout(self.options_box)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.options, 1)
        box.addLayout(opt_buttons)
        layout.addWidget(self.options_box)

        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        self.correct = compact_combo(QComboBox(), 16)  # "B. Metformin": the letter and its text
        self.answer_edit = QLineEdit()
        self.answer_edit.setPlaceholderText("The ground-truth answer InfoGain is measured against")
        form.addRow(plain_label("Correct option"), self.correct)
        form.addRow(plain_label("Ground truth"), self.answer_edit)
        layout.addLayout(form)
        self._form = form

        self.add_option.clicked.connect(lambda: self._add_option(""))
        self.remove_option.clicked.connect(self._remove_option)
        self.mcq.toggled.connect(self._mcq_toggled)
        self.correct.currentIndexChanged.connect(self._sync_answer)
        self.options.itemChanged.connect(self._sync_answer)
        self.options.itemChanged.connect(self._label_option)
        for sig in (self.question_edit.textChanged, self.answer_edit.textChanged, self.mcq.toggled,
                    self.correct.currentIndexChanged, self.options.itemChanged):
            sig.connect(self.changed)
        self._mcq_toggled(False)

    # ------------------------------------------------------------------ options

    def _add_option(self, text: str) -> None:
        row = self.options.rowCount()
        if row >= len(LETTERS):
            return
        self.options.insertRow(row)
        self.options.setVerticalHeaderItem(row, QTableWidgetItem(LETTERS[row]))
        self.options.setItem(row, 0, QTableWidgetItem(text))
        self.correct.addItem(option_label(LETTERS[row], text), LETTERS[row])
        self._fit_options()

    def _label_option(self, item: QTableWidgetItem) -> None:
        if item.column() == 0 and item.row() < self.correct.count():
            self.correct.setItemText(item.row(), option_label(LETTERS[item.row()], item.text()))

    def _remove_option(self) -> None:
        row = self.options.rowCount() - 1
        if row >= 0:
            self.options.removeRow(row)
            self.correct.removeItem(row)
            self._fit_options()
            self._sync_answer()

    def _fit_options(self) -> None:
        rows = max(2, self.options.rowCount())
        self.options.setFixedHeight(min(rows, 6) * self.options.verticalHeader().defaultSectionSize() + 4)
        self._keep_height()

    def _keep_height(self) -> None:
        """Never be laid out lower than the form needs: a width-for-height estimate of the wrapped
        labels once let the +/− Option buttons overlap the last options."""
        self.setMinimumHeight(0)
        self.setMinimumHeight(self.layout().totalMinimumSize().height())

    def _mcq_toggled(self, on: bool) -> None:
        self.options_box.setVisible(on)
        self._keep_height()
        self._form.setRowVisible(0, on)
        self.answer_edit.setReadOnly(on)
        if on and self.options.rowCount() == 0:
            for _ in range(4):
                self._add_option("")
        self._sync_answer()

    def _sync_answer(self, *_args) -> None:
        if self.mcq.isChecked():
            row = self.correct.currentIndex()
            item = self.options.item(row, 0) if row >= 0 else None
            self.answer_edit.setText(item.text() if item else "")

    def option_dict(self) -> dict[str, str] | None:
        if not self.mcq.isChecked():
            return None
        out = {}
        for row in range(self.options.rowCount()):
            item = self.options.item(row, 0)
            out[LETTERS[row]] = item.text().strip() if item else ""
        return out

    # ------------------------------------------------------------------ API

    def question(self) -> Question:
        options = self.option_dict()
        letter = self.correct.currentData() if options else None
        return Question(self.question_edit.toPlainText().strip(), self.answer_edit.text().strip(), options, letter)

    def set_question(self, q: Question) -> None:
        self.blockSignals(True)
        try:
            self.question_edit.setPlainText(q.question)
            self.options.setRowCount(0)
            self.correct.clear()
            if q.options:
                for text in list(q.options.values())[: len(LETTERS)]:
                    self._add_option(text)
                self.mcq.setChecked(True)
                letter = q.correct_letter()
                if letter and letter in LETTERS:
                    self.correct.setCurrentIndex(LETTERS.index(letter))
                self._mcq_toggled(True)
            else:
                self.mcq.setChecked(False)
                self._mcq_toggled(False)
                self.answer_edit.setText(q.answer)
        finally:
            self.blockSignals(False)
        self.changed.emit()

    def _examples_menu(self) -> QMenu:
        menu = QMenu(self)
        for title, name in EXAMPLE_FILES:
            sub = menu.addMenu(title)
            try:
                items = load_dataset(resource_path("datasets", name)).items
            except (KiigError, OSError):
                items = []
            for item in items[:12]:
                q = Question(item.question, item.answer, item.options, item.answer_idx)
                label = item.question if len(item.question) <= 70 else item.question[:67] + "…"
                action = sub.addAction(label)
                action.triggered.connect(lambda _=False, q=q: self.set_question(q))
            sub.setEnabled(bool(items))
        return menu
