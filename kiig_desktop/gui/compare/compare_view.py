"""Compare: the same question run by several models (or quantizations), curves overlaid, side by side.

Chains come from a comparison run started here (each model generates its own reasoning, which
is split and scored, by the same scorer or by the model itself) or from the session browser.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...engine.build_info import build_groups, mixed_warning
from ...errors import InputError, KiigError
from ...events import CancelToken, ItemDone, Message, Progress
from ...runs.analysis import AnalysisResult, load_result
from ...runs.compare import CompareRequest, iter_compare
from ..shared.engines import Engines
from ..shared.figures import OverlayFigure
from ..shared.judge_note import show_validation, validation_label
from ..shared.metric_help import fmt_metric
from ..shared.model_combo import ModelCheckList
from ..shared.session_file import SessionFile, SessionHandle
from ..shared.task_ui import button_row, labelled_row, primary_button, progress_line, run_busy
from ..shared.theme import SERIES, theme
from ..shared.widgets import EmptyState, PlotFrame, compact_combo, plain_label, rich_tooltip
from ..shared.workers import Task, TaskManager

SUMMARY_COLUMNS = ("Chain", "Reasoning model", "Answer", "Correct?", "Mean InfoGain", "Mean KI", "Mean ΔNLL", "Steps",
                   "Tokens")
KI_COLUMN = SUMMARY_COLUMNS.index("Mean KI")
SUMMARY_KEYS = {SUMMARY_COLUMNS.index("Mean InfoGain"): "info_gain_mean", KI_COLUMN: "ki_mean",
                SUMMARY_COLUMNS.index("Mean ΔNLL"): "delta_nll_mean"}  # the columns fmt_metric writes


def chain_ki_mean(result: AnalysisResult) -> float | None:
    """The chain's mean KI: its latest KI evaluation made on the chain as it is (not on an earlier
    version of its record), else the record's (batch runs); None if absent."""
    current = [ev for ev in result.ki if ev.get("current", True)]
    if current:
        return current[-1].get("ki_mean")
    value = result.record.get("ki_mean")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def summary_row(label: str, result: AnalysisResult) -> list:
    """The side-by-side values of one chain (raw values; the table formats them)."""
    r = result.record
    run = result.run or {}
    subject = (run.get("models") or {}).get("subject")
    gen = result.generation or {}
    correct = r.get("correct", gen.get("correct"))
    return [label, Path(subject["path"]).stem if subject else "imported text",
            r.get("extracted_answer", gen.get("extracted_answer")) or "—",
            None if correct is None else bool(correct), r.get("info_gain_mean"), chain_ki_mean(result), r.get("delta_nll_mean"),
            len(r.get("steps") or []), r.get("n_tokens")]


class CompareView(QWidget):
    """Overlay and summary of several chains."""

    message = Signal(str, str)

    def __init__(self, engines: Engines, session: SessionFile, tasks: TaskManager, request: Callable[[], CompareRequest],
                 parent: QWidget | None = None) -> None:
        """``request()`` gives the question and settings to compare with (the Analyze screen's, in the window)."""
        super().__init__(parent)
        self.engines, self.session, self.tasks, self.request = engines, session, tasks, request
        self.results: list[tuple[str, AnalysisResult]] = []
        self.task: Task | None = None

        controls = QGroupBox("Run a comparison")
        c = QVBoxLayout(controls)
        c.addWidget(plain_label("Runs the question from the Analyze tab with every checked model: each one writes "
                                "its own reasoning, which is split and scored.", "muted", wrap=True))
        self.model_list = ModelCheckList()
        self.model_list.setMinimumHeight(90)
        self.model_list.setMaximumHeight(200)
        c.addWidget(self.model_list, 1)
        self.scorer = compact_combo(QComboBox())
        c.addLayout(labelled_row("Scorer", self.scorer))
        self.run_button = primary_button("Run comparison")
        self.cancel_button = QPushButton("Cancel")
        c.addLayout(button_row(self.run_button, self.cancel_button, stretch=False))
        self.progress, self.status = progress_line()
        c.addWidget(self.progress)
        c.addWidget(self.status)

        chains = QGroupBox("Chains in this comparison")
        ch = QVBoxLayout(chains)
        self.chain_list = QListWidget()
        self.chain_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        ch.addWidget(self.chain_list, 1)
        row = QHBoxLayout()
        self.remove_button = QPushButton("Remove")
        self.clear_button = QPushButton("Clear")
        row.addWidget(self.remove_button)
        row.addWidget(self.clear_button)
        row.addStretch(1)
        ch.addLayout(row)

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(controls)
        lv.addWidget(chains, 1)

        self.figure = OverlayFigure()
        self.plot_frame = PlotFrame("Answer uncertainty, overlaid",
                                    "Answer NLL after each prefix (lower = closer to the ground truth) and, for multiple "
                                    "choice, the probability of the correct option.", self.figure)
        self.plot_frame.export_requested.connect(self._export)
        self.table = QTableWidget(0, len(SUMMARY_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(SUMMARY_COLUMNS))
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        # the chain's name keeps a readable width; a narrow window scrolls the table sideways instead
        for col, width in enumerate((170, 190, 64, 76, 104, 76, 96, 52, 58)):
            self.table.setColumnWidth(col, width)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setDefaultSectionSize(26)
        self._fit_table()
        body = QWidget()
        bv = QVBoxLayout(body)
        bv.setContentsMargins(0, 0, 0, 0)
        bv.addWidget(plain_label("Side by side", "heading"))
        self.build_warning = validation_label()  # chains from different llama.cpp builds or backends
        bv.addWidget(self.build_warning)
        bv.addWidget(self.table)
        bv.addWidget(self.plot_frame, 1)
        self.stack = QStackedWidget()
        self.stack.addWidget(EmptyState("Nothing to compare yet",
                                        "Check two or more models on the left and run the Analyze tab's question with "
                                        "each, or select chains in the Sessions tab and choose “Compare”."))
        self.stack.addWidget(body)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.stack)
        self.splitter.setSizes([330, 900])
        self.splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 10)
        layout.addWidget(self.splitter)

        self.run_button.clicked.connect(self.run_comparison)
        self.cancel_button.clicked.connect(self.cancel)
        self.remove_button.clicked.connect(self._remove_selected)
        self.clear_button.clicked.connect(self.clear)
        engines.models_changed.connect(self._fill_models)
        theme().changed.connect(self._fill_table)
        session.opened.connect(self._session_opened)
        self._fill_models()
        self._set_busy(False)

    # ------------------------------------------------------------------ models

    def _fill_models(self) -> None:
        checked = set(self.checked_ids())
        scorer = self.scorer.currentData()
        self.model_list.fill(self.engines, checked)
        self.scorer.clear()
        self.scorer.addItem("Each model scores its own reasoning", None)
        for info in self.engines.models:
            if not info.error:
                self.scorer.addItem(f"Same scorer for all: {info.name}", info.id)
        index = self.scorer.findData(scorer)
        self.scorer.setCurrentIndex(max(0, index))

    def checked_ids(self) -> list[str]:
        return self.model_list.checked_ids()

    def set_checked(self, ids: list[str]) -> None:
        self.model_list.set_checked(ids)

    # ------------------------------------------------------------------ chains

    def add_result(self, result: AnalysisResult, label: str | None = None) -> None:
        if any(r.chain_id == result.chain_id for _, r in self.results):
            return
        if label is None:
            run = result.run or {}
            subject = (run.get("models") or {}).get("subject")
            who = subject.get("name") or Path(subject["path"]).stem if subject else "imported text"
            label = f"{who} (chain {result.chain_id})"
        self.results.append((label, result))
        self._refresh()

    def add_chains(self, pairs: list[tuple[int, int]]) -> None:
        """Load (run_id, chain_id) pairs from the session off-thread and add them."""
        def work(_c: CancelToken) -> list[AnalysisResult]:
            return self.session.read(lambda st: [load_result(st, run_id, chain_id) for run_id, chain_id in pairs])

        task = self.tasks.run("Loading chains to compare", work)
        task.succeeded.connect(lambda results: [self.add_result(r) for r in results])
        task.failed.connect(lambda text: self.message.emit(text, "error"))

    def set_ki(self, chain_id: int, ki: list[dict]) -> None:
        """New KI evaluations of a chain: its Mean KI cell follows (if it is in the comparison)."""
        for _label, result in self.results:
            if result.chain_id == chain_id:
                result.ki = list(ki)
        self._fill_table()

    def _remove_selected(self) -> None:
        rows = sorted({i.row() for i in self.chain_list.selectedIndexes()}, reverse=True)
        for row in rows:
            del self.results[row]
        self._refresh()

    def clear(self) -> None:
        self.results = []
        self._refresh()

    def _session_opened(self, _path: str) -> None:
        """Another session: the chains compared so far belong to the last one."""
        if self.task is None:
            self.status.setText("")
        self.clear()

    def _refresh(self) -> None:
        self.chain_list.clear()
        for i, (label, _r) in enumerate(self.results):
            item = QListWidgetItem(f"■ {label}")
            item.setForeground(QColor(SERIES[i % len(SERIES)]))
            self.chain_list.addItem(item)
        self.figure.set_series([(label, r.record) for label, r in self.results])
        self._fill_table()
        self.stack.setCurrentIndex(1 if self.results else 0)

    def _fit_table(self) -> None:
        rows = max(2, self.table.rowCount())
        height = self.table.horizontalHeader().sizeHint().height() + rows * self.table.verticalHeader().defaultSectionSize()
        bar = self.table.style().pixelMetric(self.table.style().PixelMetric.PM_ScrollBarExtent)
        self.table.setFixedHeight(min(height + 4, 240) + bar)  # room for the sideways scroll bar below the rows

    def _fill_table(self) -> None:
        self.table.setRowCount(len(self.results))
        groups = build_groups([r.record for _label, r in self.results])
        warning = mixed_warning({f"{label} (build {g})": r.record.get("build")
                                 for (label, r), g in zip(self.results, groups, strict=True)}, "chains")
        show_validation(self.build_warning, warning and {"note": warning, "warning": True})
        for row, (label, result) in enumerate(self.results):
            values = summary_row(label + (f" · build {groups[row]}" if warning else ""), result)
            for col, value in enumerate(values):
                if value is None:
                    text = "" if col == KI_COLUMN else "—"
                elif isinstance(value, bool):
                    text = "✓ yes" if value else "✗ no"
                elif isinstance(value, float):
                    text = fmt_metric(SUMMARY_KEYS.get(col, ""), value)
                else:
                    text = str(value)
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, value)
                if col == 0:
                    scorer = Path(str((result.record.get("model") or {}).get("path", "?"))).stem
                    item.setToolTip(rich_tooltip(f"{label}\nscored by {scorer}\nrun {result.run_id} · chain {result.chain_id}"))
                if isinstance(value, bool):
                    item.setForeground(theme().color("good" if value else "bad"))
                if col == 0:
                    item.setForeground(QColor(SERIES[row % len(SERIES)]))
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
        self._fit_table()

    # ------------------------------------------------------------------ running

    def _set_busy(self, busy: bool) -> None:
        self.run_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.model_list.setEnabled(not busy)
        self.scorer.setEnabled(not busy)
        self.progress.setVisible(busy)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def run_comparison(self) -> None:
        request = self.request()
        models = [m for m in (self.engines.find(i) for i in self.checked_ids()) if m is not None]
        fixed = self.engines.find(self.scorer.currentData())
        try:
            request.question.validate()
            if len(models) < 1:
                raise InputError("check at least one model to compare (two or more to see a difference)")
            session = self.session.hold()  # every chain goes where the comparison started
        except KiigError as exc:
            self.message.emit(str(exc), "error")
            return

        def work(cancel: CancelToken):
            return (yield from iter_compare(models, request, acquire=self.engines.acquire, save=session.write,
                                            scorer=fixed, cancel=cancel))

        self.progress.setRange(0, 0)
        task = run_busy(self.tasks, "Comparing models", work, self._set_busy, message=self.message, status=self.status,
                        cancelled_text="Comparison cancelled (finished chains are saved).", engines=self.engines)
        self.task = session.release_when_done(task)
        task.progress.connect(lambda event: self._event(event, models, session))
        task.succeeded.connect(lambda n: self.status.setText(
            f"Compared {n} models; every chain is saved in the session"
            + ("." if session.current else f" {session.name}, which is no longer open.")))

    def _event(self, event: object, models: list | None = None, session: SessionHandle | None = None) -> None:
        if isinstance(event, Message):
            self.status.setText(event.text)
        elif isinstance(event, ItemDone):
            if session is not None and not session.current:
                return  # saved in the session the comparison started on; the open one shows nothing of it
            result = event.result
            self.add_result(result, f"{models[event.index].name} (chain {result.chain_id})")
            self.session.notify_changed()
        elif isinstance(event, Progress):
            self.progress.setRange(0, event.total or 0)
            self.progress.setValue(event.done)

    def _export(self, fmt: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self, f"Export comparison as {fmt.upper()}", f"kiig-compare.{fmt}",
                                              "PNG image (*.png)" if fmt == "png" else "SVG drawing (*.svg)")
        if path:
            try:
                written = self.figure.export(path if path.lower().endswith("." + fmt) else path + "." + fmt)
            except KiigError as exc:  # an unwritable folder, a planted .part link
                self.message.emit(str(exc), "error")
                return
            self.message.emit(f"Plot saved to {written}", "info")
