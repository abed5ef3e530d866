"""The Dashboard's tables: per-model estimates, paired differences, and the per-item results.

Every cell is plain text (model answers, questions and model names are untrusted); tooltips go
through ``rich_tooltip``. ``Qt.UserRole`` holds the raw value of a cell (an ``Estimate``, a
``PairDiff``, or for the item table the chain id), so tests compare them with ``dashboard.summarize``.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QTableWidget, QTableWidgetItem

from ...reports.summary import METRICS, BatchReport, ItemResult, PairDiff, fmt_estimate, fmt_value, letter
from ..shared.theme import SERIES, theme
from ..shared.widgets import rich_tooltip

Index = QModelIndex | QPersistentModelIndex
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
DASH = "\u2013"
RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
DIRECTION_TEXT = {"higher": "▲ higher", "lower": "▼ lower", "unclear": "≈ unclear"}
SMALL_SAMPLE = 10  # fewer paired items than this: the bootstrap interval is too rough to lean on
SMALL_SAMPLE_NOTE = (f"fewer than {SMALL_SAMPLE} items: a bootstrap interval from so few is rough and usually "
                     "too narrow; run more items before reading a difference into it")


def small_sample(n: int) -> bool:
    """Whether an interval rests on fewer than SMALL_SAMPLE (but at least one) items."""
    return 0 < n < SMALL_SAMPLE


def swatch(color: str, size: int = 10) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(QColor(color))
    return QIcon(pix)


def direction_color(direction: str) -> QColor:
    return theme().color("good" if direction == "higher" else "bad" if direction == "lower" else "muted")


def _item(text: str, value: Any = None, tip: str | None = None, align_right: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    if value is not None:
        item.setData(Qt.ItemDataRole.UserRole, value)
    if tip:
        item.setToolTip(rich_tooltip(tip))
    if align_right:
        item.setTextAlignment(RIGHT)
    return item


class _FixedTable(QTableWidget):
    """A read-only table sized to its rows."""

    def __init__(self, columns: list[str], parent=None) -> None:
        super().__init__(0, len(columns), parent)
        self.setHorizontalHeaderLabels(columns)
        self.verticalHeader().hide()
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setWordWrap(False)
        self.verticalHeader().setDefaultSectionSize(26)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setTabKeyNavigation(False)  # Tab moves on to the next control; arrows move between cells

    def fit(self, max_rows: int = 8) -> None:
        rows = max(1, min(self.rowCount(), max_rows))
        height = self.horizontalHeader().sizeHint().height() + rows * self.verticalHeader().defaultSectionSize()
        self.setFixedHeight(height + 2 * self.frameWidth() + 2)


class ModelsTable(_FixedTable):
    """Per-model estimates: one column per model (A, B, ...), one row per metric of ``dashboard.METRICS``,
    each cell "mean [lo, hi]"; the header names the model with its items and errors."""

    def __init__(self, parent=None) -> None:
        super().__init__(["Metric"], parent)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
        header = self.horizontalHeader()
        header.setMinimumSectionSize(60)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setRowCount(len(METRICS))
        for row, m in enumerate(METRICS):
            self.setItem(row, 0, _item(f"{m.label} ({m.unit})", m.key, f"{m.label} ({m.unit}): {m.description}"))
        self.setColumnWidth(0, 190)
        self.report: BatchReport | None = None

    @staticmethod
    def metric_row(key: str) -> int:
        return [m.key for m in METRICS].index(key)

    def set_report(self, report: BatchReport | None) -> None:
        self.report = report
        models = report.models if report is not None else []
        self.setColumnCount(1 + len(models))
        level = f"{100 * report.level:.0f}%" if report is not None else ""
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        for col, m in enumerate(models, start=1):
            errors = f" · {m.n_errors} error{'s' if m.n_errors != 1 else ''}" if m.n_errors else ""
            short = f" · {m.n_paper_excluded} short" if m.n_paper_excluded else ""
            head = QTableWidgetItem(f"{letter(col - 1)} · {m.name}\n{m.n_chains} items{errors}{short}")
            head.setIcon(swatch(SERIES[(col - 1) % len(SERIES)]))
            head.setToolTip(rich_tooltip(f"{m.name}\n{m.path}\nsha256 {m.sha256}\n{m.n_chains} chains, {m.n_errors} with errors\n"
                                         f"{m.n_paper_excluded} of 2 steps or fewer: left out of the paper-mode numbers"))
            head.setData(Qt.ItemDataRole.UserRole, m.key)
            self.setHorizontalHeaderItem(col, head)
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Stretch)
            for row, mt in enumerate(METRICS):
                e = m.metrics[mt.key]
                tip = (f"{m.name}, {mt.label}: mean {fmt_value(mt.key, e.mean)} over {e.n} items, {level} bootstrap "
                       f"interval [{fmt_value(mt.key, e.lo)}, {fmt_value(mt.key, e.hi)}]" if e.n else f"{mt.label}: no values")
                text = fmt_estimate(mt.key, e)
                if small_sample(e.n):
                    text, tip = f"{text} ⚠", f"{tip}\n⚠ {SMALL_SAMPLE_NOTE}"
                self.setItem(row, col, _item(text, e, tip, align_right=True))
        self.fit(len(METRICS))


class PairsTable(_FixedTable):
    """The paired differences of one pair of models (B − A), one row per metric, direction coloured."""

    def __init__(self, parent=None) -> None:
        super().__init__(["Metric", "B − A [95% interval]", "Items", "Direction"], parent)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for col, width in enumerate((112, 0, 46, 92)):
            if width:
                self.setColumnWidth(col, width)
        self.pairs: list[PairDiff] = []

    def set_pairs(self, pairs: list[PairDiff], level: float = 0.95) -> None:
        self.pairs = list(pairs)
        self.horizontalHeaderItem(1).setText(f"B − A [{100 * level:.0f}% interval]")
        self.setRowCount(len(pairs))
        for row, p in enumerate(pairs):
            m = next(mt for mt in METRICS if mt.key == p.metric)
            self.setItem(row, 0, _item(m.label, p.metric, m.description))
            self.setItem(row, 1, _item(fmt_estimate(p.metric, p.diff, True), p, align_right=True))
            few = small_sample(p.diff.n)
            self.setItem(row, 2, _item(f"{p.diff.n} ⚠" if few else str(p.diff.n), p.diff.n,
                                       f"⚠ {SMALL_SAMPLE_NOTE}" if few else None, align_right=True))
            tip = "the interval excludes 0" if p.direction != "unclear" else "the interval includes 0"
            direction = _item(DIRECTION_TEXT[p.direction] + (" (few items)" if few else ""), p.direction,
                              f"{tip}\n⚠ {SMALL_SAMPLE_NOTE}" if few else tip)
            direction.setForeground(direction_color(p.direction))
            self.setItem(row, 3, direction)
        self.fit(len(METRICS))


# ------------------------------------------------------------------------------------ per item

ITEM_FIXED = ("Item", "Question", "Gold")
PER_MODEL = ("Answer", "InfoGain", "KI", "Steps")


def _num(v: float | int | None) -> float:
    return -math.inf if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


class ItemsModel(QAbstractTableModel):
    """Rows: the run's items; columns: item, question, gold, then answer/InfoGain/KI/steps per model."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.report: BatchReport | None = None
        self.item_ids: list[str] = []
        self.first: dict[str, ItemResult] = {}
        self.cells: dict[tuple[str, str], ItemResult] = {}

    def set_report(self, report: BatchReport | None) -> None:
        self.beginResetModel()
        self.report = report
        self.item_ids = report.item_ids() if report is not None else []
        self.cells = {(r.item_id, r.model): r for r in report.items} if report is not None else {}
        self.first = {}
        for r in report.items if report is not None else []:
            self.first.setdefault(r.item_id, r)
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(self.item_ids)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        n = len(self.report.models) if self.report is not None else 0
        return 0 if parent.isValid() else len(ITEM_FIXED) + len(PER_MODEL) * n

    def model_of(self, column: int) -> tuple[int, str] | None:
        """``(model index, field)`` of a per-model column, else None."""
        if column < len(ITEM_FIXED) or self.report is None:
            return None
        i, f = divmod(column - len(ITEM_FIXED), len(PER_MODEL))
        return i, PER_MODEL[f]

    def result(self, row: int, column: int) -> ItemResult | None:
        """The chain a cell belongs to (the first model's for the item columns)."""
        if self.report is None or not 0 <= row < len(self.item_ids):
            return None
        where = self.model_of(column)
        if where is None:
            return self.first.get(self.item_ids[row])
        return self.cells.get((self.item_ids[row], self.report.models[where[0]].key))

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if orientation != Qt.Orientation.Horizontal or self.report is None:
            return None
        where = self.model_of(section)
        if role == Qt.ItemDataRole.DisplayRole:
            return ITEM_FIXED[section] if where is None else f"{letter(where[0])} · {where[1]}"
        if where is not None and where[1] == PER_MODEL[0] and role == Qt.ItemDataRole.DecorationRole:
            return swatch(SERIES[where[0] % len(SERIES)])
        if where is not None and role == Qt.ItemDataRole.ToolTipRole:
            return rich_tooltip(f"{letter(where[0])} = {self.report.models[where[0]].name}")
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or self.report is None:
            return None
        row, col = index.row(), index.column()
        where = self.model_of(col)
        r = self.result(row, col)
        if role == Qt.ItemDataRole.UserRole:
            return r.chain_id if r is not None else None
        if where is None:
            first = self.first.get(self.item_ids[row])
            text = [self.item_ids[row], " ".join(str(first.question or "").split()), str(first.gold or "")][col]
            if role in (Qt.ItemDataRole.DisplayRole, SORT_ROLE):
                return text if role == Qt.ItemDataRole.DisplayRole else text.lower()
            if role == Qt.ItemDataRole.ToolTipRole and col == 1:
                return rich_tooltip(str(first.question or ""))
            return None
        return self._model_cell(r, where[1], role)

    def _model_cell(self, r: ItemResult | None, field: str, role: int) -> Any:
        if r is None:
            return "not run" if role == Qt.ItemDataRole.DisplayRole else None
        if field == "Answer":
            if role == Qt.ItemDataRole.DisplayRole:
                mark = "✓" if r.correct else "✗" if r.correct is False else "·"
                return f"{mark} {DASH if r.extracted_answer is None else r.extracted_answer}" + (" (error)" if r.error else "")
            if role == SORT_ROLE:
                return f"{-1 if r.correct is None else int(r.correct)} {r.extracted_answer or ''}"
            if role == Qt.ItemDataRole.ForegroundRole and r.correct is not None:
                return theme().color("good" if r.correct else "bad")
            if role == Qt.ItemDataRole.ToolTipRole:
                text = f"Answer: {r.extracted_answer}\nGold: {r.gold}" + (f"\nError: {r.error}" if r.error else "")
                return rich_tooltip(text + "\nDouble-click to open the chain in Results")
            return None
        value = {"InfoGain": r.info_gain_mean, "KI": r.ki_mean, "Steps": r.n_steps}[field]
        if role == Qt.ItemDataRole.DisplayRole:
            if value is None:
                return DASH
            return str(value) if field == "Steps" else fmt_value("ki_mean" if field == "KI" else "info_gain_mean", value)
        if role == SORT_ROLE:
            return _num(value)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(RIGHT)
        if role == Qt.ItemDataRole.ForegroundRole and field == "InfoGain" and value is not None and abs(value) >= 5e-4:
            return theme().color("good" if value > 0 else "bad")
        return None


class ItemsTable(QTableView):
    """The per-item table, sortable; double-click a cell to open its chain (``chain_activated``)."""

    chain_activated = Signal(int)  # chain id

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.items_model = ItemsModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.items_model)
        self.proxy.setSortRole(SORT_ROLE)
        self.setModel(self.proxy)
        self.setSortingEnabled(True)
        self.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # dataset order until a header is clicked
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(26)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.horizontalHeader().setHighlightSections(False)
        self.setTabKeyNavigation(False)
        self.doubleClicked.connect(self._activated)

    def set_report(self, report: BatchReport | None) -> None:
        self.items_model.set_report(report)
        widths = [64, 220, 56] + [92, 80, 52, 66] * (len(report.models) if report is not None else 0)
        for col, width in enumerate(widths):
            self.setColumnWidth(col, width)

    def source_index(self, row: int, column: int) -> QModelIndex:
        """The view's (sorted) cell ``(row, column)`` in the model's terms."""
        return self.proxy.mapToSource(self.proxy.index(row, column))

    def chain_at(self, row: int, column: int) -> int | None:
        src = self.source_index(row, column)
        r = self.items_model.result(src.row(), src.column())
        return r.chain_id if r is not None else None

    def _activated(self, index: QModelIndex) -> None:
        chain = self.chain_at(index.row(), index.column())
        if chain is not None:
            self.chain_activated.emit(chain)
