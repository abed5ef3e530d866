"""The steps table: one row per scored step, metric columns with a colour scale, TSV copy.

Columns are declared in ``COLUMNS`` (later features add theirs with :func:`register_column`); a
column whose values are all missing for a chain (no options, no KI data) is hidden by the view.
``Qt.UserRole`` returns the raw stored number of a cell, DisplayRole its formatted text.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QMenu, QTableView

from ..shared.metric_help import METRICS, metric_tip
from ..shared.theme import diverging_color, sequential_color, sign_symbol, theme
from ..shared.widgets import rich_tooltip

Index = QModelIndex | QPersistentModelIndex
TEXT_MIN_WIDTH = 200  # px: below this the Step column reads "1. T…"
MAX_ROW_LINES = 3  # a long step wraps onto up to three lines; its tooltip shows all of it


@dataclass
class Column:
    """One table column: how to get a step's value, format it and colour it."""

    key: str
    title: str
    get: Callable[[dict, dict], Any]  # (step, context) -> value
    fmt: str = "{:.4f}"
    scale: str | None = None  # "diverging" | "sequential" | "probability" (diverging around 0.5) | None
    tip: str = ""
    optional: bool = True  # hidden when the chain has no value for it
    width: int = 60  # at least; the header and the widest value widen it (_number_width)
    shown: bool = True  # False: hidden until the user turns it on (header context menu)

    def display(self, value: Any) -> str:
        """The cell text: formatted, and for a signed (diverging) metric led by ▲ or ▼, so the
        sign never rests on colour alone."""
        text = self.fmt.format(value)
        symbol = sign_symbol(value) if self.scale == "diverging" else ""
        return f"{symbol} {text}" if symbol else text


def _key(name: str) -> Callable[[dict, dict], Any]:
    return lambda step, _ctx: step.get(name)


def _ki(step: dict, ctx: dict) -> Any:
    ki = (ctx.get("ki") or {}).get(step.get("index"))
    if ki is None:
        return None
    return ki.get("ki") if ki.get("applicable") else "n/a"


COLUMNS: list[Column] = [
    Column("index", "#", lambda s, _c: int(s.get("index", 0)) + 1, "{}", optional=False, width=34),
    Column("text", "Step", _key("text"), "{}", optional=False, width=240),
    Column("delta_nll", "ΔNLL", _key("delta_nll"), "{:+.4f}", "diverging",
           "ΔNLL (nats): how much the step lowered the answer's negative log-likelihood (positive = closer to the answer)"),
    Column("info_gain", "InfoGain", _key("info_gain"), "{:+.3f}", "diverging",
           "InfoGain: answer perplexity before the step minus after it (the paper's unit)"),
    Column("ki", "KI", _ki, "{:.2f}", "probability",
           "Knowledge Index of the step (judge probability the knowledge is supported); n/a: no factual claim", width=56),
    Column("answer_ppl", "Ans. PPL", _key("answer_ppl"), "{:.3f}", "sequential", "Answer perplexity after this step"),
    Column("answer_nll", "Ans. NLL", _key("answer_nll"), "{:.4f}", None,
           "Mean negative log-likelihood (nats) of the answer tokens after this step", shown=False),
    Column("entropy_bits", "Opt. H", _key("entropy_bits"), "{:.3f}", "sequential",
           "Option entropy (bits) of the option-letter distribution after this step"),
    Column("p_correct", "P(corr.)", _key("p_correct"), "{:.3f}", None, "Probability of the correct option letter"),
    Column("seq_ppl", "Seq PPL", _key("seq_ppl"), "{:.3f}", None, "Whole-sequence perplexity, as ReasoningEval's code computes it (paper mode)"),
]


def register_column(column: Column, after: str | None = None) -> None:
    """Add a column for every steps table (e.g. a later feature's metric)."""
    keys = [c.key for c in COLUMNS]
    if column.key in keys:
        COLUMNS[keys.index(column.key)] = column
    elif after in keys:
        COLUMNS.insert(keys.index(after) + 1, column)
    else:
        COLUMNS.append(column)


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


class StepsModel(QAbstractTableModel):
    """Steps of one chain record (plus KI by step index when the session has it)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.steps: list[dict] = []
        self.context: dict = {}
        self.columns: list[Column] = list(COLUMNS)
        self.hovered_row: int | None = None
        self._ranges: dict[str, tuple[float, float]] = {}
        self.judge_validation: dict | None = None  # store.judge_validation.summary of the KI judge

    def set_record(self, record: dict | None, ki_by_step: dict[int, dict] | None = None, paper: bool = False) -> None:
        self.beginResetModel()
        self.steps = list((record or {}).get("steps") or [])
        self.context = {"ki": ki_by_step, "paper": paper}
        self.columns = list(COLUMNS)
        self._ranges = {}
        for col in self.columns:
            values = [v for v in (_finite(col.get(s, self.context)) for s in self.steps) if v is not None]
            if values:
                self._ranges[col.key] = (min(values), max(values))
        self.hovered_row = None
        self.endResetModel()

    def has_values(self, key: str) -> bool:
        col = next((c for c in self.columns if c.key == key), None)
        if col is None:
            return False
        if key == "seq_ppl" and not self.context.get("paper"):
            return False
        if key == "ki":
            return bool(self.context.get("ki"))
        return any(col.get(s, self.context) is not None for s in self.steps)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(self.steps)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.columns):
            return None
        col = self.columns[section]
        jv = self.judge_validation if col.key == "ki" else None
        if role == Qt.ItemDataRole.DisplayRole:
            return col.title + (" ⚠" if jv and jv.get("warning") else "")
        if role == Qt.ItemDataRole.ToolTipRole and col.key in METRICS:
            return metric_tip(col.key, jv["note"] if jv else "")
        if role == Qt.ItemDataRole.ToolTipRole and (col.tip or jv):
            return rich_tooltip("\n\n".join(t for t in (col.tip, jv and jv["note"]) if t))
        return None

    def set_judge_validation(self, summary: dict | None) -> None:
        """The KI judge's validation: the KI header warns (⚠) and its tooltip says the score."""
        self.judge_validation = summary
        ki = next((i for i, c in enumerate(self.columns) if c.key == "ki"), None)
        if ki is not None:
            self.headerDataChanged.emit(Qt.Orientation.Horizontal, ki, ki)

    def raw(self, row: int, key: str) -> Any:
        col = next(c for c in self.columns if c.key == key)
        return col.get(self.steps[row], self.context)

    def text(self, row: int, column: int) -> str:
        col = self.columns[column]
        value = col.get(self.steps[row], self.context)
        if value is None:
            return "—"
        if isinstance(value, str) and col.key != "text":
            return value
        try:
            return col.fmt.format(value).replace("\n", " ⏎ ") if col.key == "text" else col.display(value)
        except (ValueError, TypeError):
            return str(value)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, col = index.row(), self.columns[index.column()]
        step = self.steps[row]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.text(row, index.column())
        if role == Qt.ItemDataRole.UserRole:
            return col.get(step, self.context)
        if role == Qt.ItemDataRole.ToolTipRole and col.key == "text":
            # Escaped and wrapped: a tooltip would otherwise render markup found in model output.
            return rich_tooltip(str(step.get("text", "")))
        if role == Qt.ItemDataRole.ToolTipRole and col.key == "ki":
            return self._ki_tip(step)
        if role == Qt.ItemDataRole.TextAlignmentRole and col.key != "text":
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.BackgroundRole:
            return self._background(row, col, step)
        return None

    def _ki_tip(self, step: dict) -> str | None:
        ks = (self.context.get("ki") or {}).get(step.get("index"))
        if ks is None:
            return None
        reason = str(ks.get("reason") or "")
        if not ks.get("applicable"):
            return rich_tooltip(f"n/a: {reason}\n(not counted in the mean KI)")
        ki = ks.get("ki")
        if not isinstance(ki, (int, float)):
            return rich_tooltip(f"not judged: {reason}")
        n = len(ks.get("evidence") or [])
        note = f"\n{self.judge_validation['note']}" if self.judge_validation else ""
        return rich_tooltip(f"KI {ki:.4f} from {n} passage{'' if n == 1 else 's'}: {reason}{note}")

    def _background(self, row: int, col: Column, step: dict) -> QColor | None:
        dark = theme().dark
        if row == self.hovered_row and col.scale is None:
            tint = QColor(theme().colors()["hover"])
            tint.setAlpha(40)
            return tint
        value = _finite(col.get(step, self.context))
        lo, hi = self._ranges.get(col.key, (0.0, 0.0))
        if col.scale == "diverging":
            return diverging_color(value, max(abs(lo), abs(hi)), dark)
        if col.scale == "sequential":
            return sequential_color(value, lo, hi, dark)
        if col.scale == "probability":
            return diverging_color(None if value is None else value - 0.5, 0.5, dark)
        return None

    def set_hovered(self, row: int | None) -> None:
        if row == self.hovered_row:
            return
        old, self.hovered_row = self.hovered_row, row
        for r in (old, row):
            if r is not None and 0 <= r < len(self.steps):
                self.dataChanged.emit(self.index(r, 0), self.index(r, len(self.columns) - 1))

    def to_tsv(self, visible: list[int] | None = None) -> str:
        """Header and rows as tab-separated text (full precision numbers, text with tabs/newlines flattened)."""
        cols = visible if visible is not None else list(range(len(self.columns)))
        lines = ["\t".join(self.columns[c].title for c in cols)]
        for step in self.steps:
            cells = []
            for c in cols:
                value = self.columns[c].get(step, self.context)
                if value is None:
                    cells.append("")
                elif isinstance(value, float):
                    cells.append(repr(value))
                else:
                    cells.append(" ".join(str(value).split()))
            lines.append("\t".join(cells))
        return "\n".join(lines) + "\n"


class StepsTable(QTableView):
    """The table widget: selects and hovers steps, hides empty optional columns."""

    step_hovered = Signal(int)
    step_selected = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.steps_model = StepsModel(self)
        self.setModel(self.steps_model)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setMouseTracking(True)
        self.setWordWrap(True)  # a step reads in full (up to MAX_ROW_LINES lines; the tooltip has the rest)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.setAccessibleName("Steps table")
        self.setAlternatingRowColors(False)
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(26)
        header = self.horizontalHeader()
        header.setHighlightSections(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        self.entered.connect(self._entered)
        self.selectionModel().selectionChanged.connect(self._selection_changed)
        self._quiet = False
        self.width_scale = 1.0  # presentation mode widens the columns for its larger type
        self.max_lines = MAX_ROW_LINES  # presentation mode keeps each step to one line, so more rows show
        self._shown: dict[str, bool] = {}
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._header_menu)

    def column_available(self, key: str) -> bool:
        """Whether the chain has data for the column (optional columns without any are hidden)."""
        col = next(c for c in self.steps_model.columns if c.key == key)
        return not col.optional or self.steps_model.has_values(key)

    def _header_menu(self, pos) -> None:
        menu = QMenu(self)
        for i, col in enumerate(self.steps_model.columns):
            if col.key in ("index", "text") or not self.column_available(col.key):
                continue
            action = menu.addAction(col.tip.split(":")[0] if ":" in col.tip else col.title)
            action.setCheckable(True)
            action.setChecked(not self.isColumnHidden(i))
            action.toggled.connect(lambda on, i=i, key=col.key: self._toggle_column(i, key, on))
        menu.exec(self.horizontalHeader().mapToGlobal(pos))

    def hide_by_default(self, *keys: str) -> None:
        """Leave these optional columns out until the header's menu shows them (presentation mode)."""
        for key in keys:
            self._shown.setdefault(key, False)

    def _toggle_column(self, index: int, key: str, on: bool) -> None:
        self._shown[key] = on
        self.setColumnHidden(index, not on)
        self._fit_text_column()

    def set_record(self, record: dict | None, ki_by_step: dict[int, dict] | None = None,
                   judge_validation: dict | None = None) -> None:
        """Show a chain's steps; with KI, ``judge_validation`` (the judge's checked score) goes on the KI header."""
        self.steps_model.judge_validation = judge_validation if ki_by_step else None
        self.steps_model.set_record(record, ki_by_step, paper=(record or {}).get("mode") == "paper")
        for i, col in enumerate(self.steps_model.columns):
            self.setColumnHidden(i, not self.column_available(col.key) or not self._shown.get(col.key, col.shown))
            self.setColumnWidth(i, self._number_width(i, round(col.width * self.width_scale)))
        self._fit_text_column()

    def _number_width(self, column: int, width: int) -> int:
        """At least ``width``, and wide enough that no number wraps (e.g. "▲ +104.464")."""
        if self.steps_model.columns[column].key == "text":
            return width
        metrics = self.fontMetrics()
        header = self.horizontalHeader().fontMetrics().horizontalAdvance(self.steps_model.columns[column].title) + 16
        cells = [metrics.horizontalAdvance(self.steps_model.text(r, column)) + 14 for r in range(self.steps_model.rowCount())]
        return max([width, header, *cells])

    def _text_column(self) -> int:
        return next(i for i, c in enumerate(self.steps_model.columns) if c.key == "text")

    def _fit_text_column(self) -> None:
        """The Step column takes the width the metrics leave, but never less than TEXT_MIN_WIDTH
        (the table scrolls sideways instead); rows grow to show the wrapped text."""
        text_col = self._text_column()
        others = sum(self.columnWidth(i) for i in self.visible_columns() if i != text_col)
        self.horizontalHeader().setSectionResizeMode(text_col, QHeaderView.ResizeMode.Interactive)
        self.setColumnWidth(text_col, max(TEXT_MIN_WIDTH, self.viewport().width() - others))
        self._fit_rows()

    def _fit_rows(self) -> None:
        line = self.fontMetrics().lineSpacing()
        text_col = self._text_column()
        width = self.columnWidth(text_col) - 8
        for row in range(self.steps_model.rowCount()):
            text = self.steps_model.text(row, text_col)
            lines = self.fontMetrics().boundingRect(0, 0, max(40, width), 10_000, int(Qt.TextFlag.TextWordWrap), text).height() // line
            self.setRowHeight(row, max(26, min(self.max_lines, max(1, lines)) * line + 8))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._fit_text_column()

    def visible_columns(self) -> list[int]:
        return [i for i in range(self.steps_model.columnCount()) if not self.isColumnHidden(i)]

    def to_tsv(self) -> str:
        return self.steps_model.to_tsv(self.visible_columns())

    def select_step(self, step: int | None) -> None:
        """Select a row without re-emitting ``step_selected`` (for links from other widgets)."""
        self._quiet = True
        try:
            if step is None or not 0 <= step < self.steps_model.rowCount():
                self.clearSelection()
            else:
                self.selectRow(step)
                self.scrollTo(self.steps_model.index(step, 0))
        finally:
            self._quiet = False

    def set_hovered(self, step: int | None) -> None:
        self.steps_model.set_hovered(step if step is not None and step >= 0 else None)

    def _entered(self, index: QModelIndex) -> None:
        self.step_hovered.emit(index.row() if index.isValid() else -1)

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.step_hovered.emit(-1)
        super().leaveEvent(event)

    def _selection_changed(self, *_args) -> None:
        if self._quiet:
            return
        rows = self.selectionModel().selectedRows()
        self.step_selected.emit(rows[0].row() if rows else -1)
