"""The Dashboard's figures: accuracy against mean InfoGain per model, and the paired differences.

Both are :class:`StepFigure` subclasses (same theming and PNG/SVG export as every other plot) with
no step linking. Model names are untrusted text: they are drawn as plain text items, and escaped
where pyqtgraph would read HTML (legends, labels). ``data`` keeps what was plotted, for tests.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont

from ...reports.summary import METRICS, Estimate, PairDiff
from ..shared.plots import StepFigure, _pen
from ..shared.theme import SERIES, theme
from .dashboard_tables import letter

LEFT_AXIS_WIDTH = 150


def _finite(e: Estimate) -> bool:
    return e.n > 0 and all(math.isfinite(v) for v in (e.mean, e.lo, e.hi))


class _PlainFigure(StepFigure):
    """A StepFigure without step linking."""

    def step_span(self, step: int) -> tuple[float, float] | None:
        return None

    def step_at(self, x: float) -> int | None:
        return None


class ScatterFigure(_PlainFigure):
    """Accuracy (y) against mean InfoGain (x), one point per model with both 95% intervals as whiskers.

    Points carry the model's letter (A, B, ...); the legend names the models (escaped: pyqtgraph's
    legend reads HTML).
    """

    def __init__(self, parent=None) -> None:
        super().__init__("Accuracy against mean InfoGain", parent)
        self.panel = self.add_panel(0, "Accuracy (%)", "Mean InfoGain (answer perplexity drop per step)", legend_cols=1)
        self.panel.legend.setOffset((8, 4))
        self.panel.getAxis("left").setTicks([[(v, str(v)) for v in range(0, 101, 20)]])
        self._models: list[tuple[str, Estimate, Estimate]] = []
        self._plotted: list[object] = []

    def set_models(self, models: list[tuple[str, Estimate, Estimate]]) -> None:
        """``(name, accuracy, info_gain_mean)`` per model, in the run's order (colours follow it)."""
        self._models = list(models)
        for item in self._plotted:
            self.panel.removeItem(item)
        self._plotted = []
        self.panel.legend.clear()
        c = theme().colors()
        zero = pg.InfiniteLine(pos=0, angle=90, movable=False, pen=_pen(c["muted"], 1, Qt.PenStyle.DotLine))
        self.panel.addItem(zero, ignoreBounds=True)
        self._plotted.append(zero)
        font = QFont()
        font.setPointSizeF(9)
        font.setBold(True)
        names, xs, ys = [], [], []
        for i, (name, acc, ig) in enumerate(models):
            if not (_finite(acc) and _finite(ig)):
                continue
            color = SERIES[i % len(SERIES)]
            x, y = ig.mean, 100 * acc.mean
            bars = pg.ErrorBarItem(x=np.array([x]), y=np.array([y]), left=np.array([x - ig.lo]), right=np.array([ig.hi - x]),
                                   bottom=np.array([y - 100 * acc.lo]), top=np.array([100 * acc.hi - y]), beam=0,
                                   pen=_pen(color, 1.6))
            point = pg.ScatterPlotItem([x], [y], size=13, brush=pg.mkBrush(color), pen=pg.mkPen(c["plot_bg"], width=1.5),
                                       symbol="o", name=f"{letter(i)} · {html.escape(name)}")
            label = pg.TextItem(text=letter(i), color=color, anchor=(-0.35, 1.0))  # plain text, never HTML
            label.setFont(font)
            label.setPos(x, y)
            for item in (bars, point, label):
                self.panel.addItem(item)
                self._plotted.append(item)
            names.append(name)
            xs.append(x)
            ys.append(y)
        self.panel.legend.setVisible(bool(names))
        self._fit_legends()
        self.data = {"names": names, "info_gain_mean": np.array(xs), "accuracy_pct": np.array(ys)}
        lo_x = min([m[2].lo for m in models if _finite(m[2])] + [0.0])
        hi_x = max([m[2].hi for m in models if _finite(m[2])] + [0.0])
        span = max(hi_x - lo_x, 1e-3)
        self.panel.setXRange(lo_x - 0.08 * span, hi_x + 0.12 * span, padding=0)
        self.panel.setYRange(-4, 104, padding=0)

    def redraw(self) -> None:
        self.set_models(self._models)


class ForestFigure(_PlainFigure):
    """The paired differences B − A of every metric, one row each with its own scale and a zero line."""

    def __init__(self, parent=None) -> None:
        super().__init__("Paired differences", parent)
        self.rows: dict[str, pg.PlotItem] = {}
        for row, m in enumerate(METRICS):
            panel = self.add_panel(row, "")
            axis = panel.getAxis("left")
            axis.setWidth(LEFT_AXIS_WIDTH)
            axis.setTicks([[(0.0, f"{m.label} ({'pts' if m.percent else m.unit})")]])
            axis.setGrid(0)
            panel.showGrid(x=True, y=False, alpha=0.18)
            panel.setYRange(-1, 1, padding=0)
            panel.getAxis("bottom").setHeight(22)
            self.rows[m.key] = panel
        self.ci.layout.setVerticalSpacing(2)
        self._pairs: list[PairDiff] = []
        self._plotted: list[tuple[pg.PlotItem, object]] = []

    def set_pairs(self, pairs: list[PairDiff]) -> None:
        """One PairDiff per metric (B − A); a metric without paired values shows an empty row."""
        self._pairs = list(pairs)
        for panel, item in self._plotted:
            panel.removeItem(item)
        self._plotted = []
        c = theme().colors()
        self.data = {}
        by_metric = {p.metric: p for p in pairs}
        for m in METRICS:
            panel, p = self.rows[m.key], by_metric.get(m.key)
            scale = 100.0 if m.percent else 1.0
            zero = pg.InfiniteLine(pos=0, angle=90, movable=False, pen=_pen(c["muted"], 1.2))
            panel.addItem(zero, ignoreBounds=True)
            self._plotted.append((panel, zero))
            if p is None or not _finite(p.diff):
                note = pg.TextItem(text="no paired values", color=c["muted"], anchor=(0.0, 0.5))
                note.setPos(-0.95, 0)
                panel.addItem(note)
                self._plotted.append((panel, note))
                panel.setXRange(-1, 1, padding=0)
                continue
            mean, lo, hi = scale * p.diff.mean, scale * p.diff.lo, scale * p.diff.hi
            color = c["good"] if p.direction == "higher" else c["bad"] if p.direction == "lower" else c["muted"]
            bars = pg.ErrorBarItem(x=np.array([mean]), y=np.array([0.0]), left=np.array([mean - lo]),
                                   right=np.array([hi - mean]), beam=0.45, pen=_pen(color, 2.2))
            point = pg.ScatterPlotItem([mean], [0.0], size=11, symbol="s", brush=pg.mkBrush(color),
                                       pen=pg.mkPen(c["plot_bg"], width=1.2))
            items = [bars, point]
            if 0 < p.diff.n < 10:  # a rough interval: say so beside it, not only in the table
                items.append(pg.TextItem(text=f"⚠ n={p.diff.n}", color=c["muted"], anchor=(0.0, 1.1)))
                items[-1].setPos(mean, 0.0)
            for item in items:
                panel.addItem(item)
                self._plotted.append((panel, item))
            self.data[m.key] = (mean, lo, hi)
            left, right = min(lo, 0.0), max(hi, 0.0)
            if right - left < 1e-9:  # no spread at all (e.g. the same accuracy on every item)
                half = 5.0 if m.percent else max(abs(mean), 1e-3)
                panel.setXRange(mean - half, mean + half, padding=0)
                continue
            span = right - left
            panel.setXRange(left - 0.15 * span, right + 0.15 * span, padding=0)

    def redraw(self) -> None:
        self.set_pairs(self._pairs)

