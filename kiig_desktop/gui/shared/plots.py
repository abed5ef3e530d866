"""The base of every plot: ``StepFigure`` (the figures themselves are in ``figures.py``).

A ``StepFigure`` is a pyqtgraph GraphicsLayoutWidget with one or more panels. It
reports the step under the mouse (``step_hovered``) and clicks (``step_clicked``) as 0-based step
indices, draws the selected and hovered step as bands in every panel, exports PNG or SVG, and
keeps the arrays it plotted in ``data`` so tests can compare them with the stored record.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pyqtgraph.exporters as pg_exporters
from PySide6.QtCore import QBuffer, QIODevice, QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter
from PySide6.QtSvg import QSvgGenerator

from ...files import write_private_bytes
from .theme import theme

NAN = float("nan")
LEGEND_OFFSET = 8  # px: the legend's distance from its panel's right edge


def _num(value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return NAN
    return v if math.isfinite(v) else NAN


def prefix_ticks(n: int) -> list[tuple[float, str]]:
    """x tick labels for prefixes: Q (question only), then step numbers (thinned for long chains)."""
    every = max(1, math.ceil(n / 20))
    return [(0, "Q")] + [(k, str(k)) for k in range(1, n + 1) if k % every == 0 or k == n]


def _relayout(legend: pg.LegendItem) -> None:
    """Size ``legend`` for its entries now (pyqtgraph sizes it from their last laid-out sizes, so a
    renamed entry or a new column count would show only after the next layout pass)."""
    layout, width, height = legend.layout, 0.0, 0.0
    for row in range(layout.rowCount()):
        hints = [item.effectiveSizeHint(Qt.SizeHint.PreferredSize)
                 for item in (layout.itemAt(row, col) for col in range(layout.columnCount())) if item]
        width = max(width, sum(h.width() + 3 for h in hints))
        height += max((h.height() for h in hints), default=0.0)
    legend.setGeometry(QRectF(0, 0, width, height))
    layout.activate()
    legend.updateSize()


class ReadableAxis(pg.AxisItem):
    """A value axis whose labelled ticks stay apart: on a short panel (or in larger type) pyqtgraph
    still labels at least two intervals, so the labels of a 45-px axis touch; here the major step
    grows to the next 1/2/5 step that puts labels ``LABEL_GAP`` label heights apart."""

    LABEL_GAP = 1.0

    def tickSpacing(self, minVal: float, maxVal: float, size: float):  # noqa: N802,N803 - pyqtgraph override
        levels = super().tickSpacing(minVal, maxVal, size)
        span = abs(maxVal - minVal)
        if not levels or self.orientation not in ("left", "right") or size <= 0 or span <= 0:
            return levels
        least = self.LABEL_GAP * QFontMetricsF(self.style["tickFont"] or QFont()).height() * span / size
        if levels[0][0] >= least:
            return levels
        power = 10.0 ** math.floor(math.log10(least))
        return [(next(m * power for m in (1, 2, 5, 10) if m * power >= least), 0)]  # labelled ticks only


class StepFigure(pg.GraphicsLayoutWidget):
    """Base figure: panels, step bands, hover/click mapping, export, theming."""

    step_hovered = Signal(int)
    step_clicked = Signal(int)

    def __init__(self, title: str, parent=None) -> None:
        super().__init__(parent)
        self.title = title
        self.data: dict[str, np.ndarray | list] = {}
        self.panels: list[pg.PlotItem] = []
        self._bands: list[tuple[pg.LinearRegionItem, pg.LinearRegionItem]] = []
        self._hover: int | None = None
        self._items: dict[str, object] = {}  # persistent plot items, reused from one record to the next
        self._legend_names: dict[str, str] = {}
        self._legend_cols: dict[int, int] = {}  # id(panel) -> the legend's columns when the width allows
        self._short_names: dict[str, str] = {}  # item key -> its legend name where the full one does not fit
        self._drawn: set[str] = set()
        self.font_scale = 1.0  # presentation mode draws axes and legends larger
        self.setMinimumHeight(80)
        self.setAccessibleName(title)
        self._selected: int | None = None
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # Tab reaches the plot; arrow keys walk the steps
        self.ci.setContentsMargins(6, 6, 10, 6)
        self.scene().sigMouseMoved.connect(self._mouse_moved)
        self.scene().sigMouseClicked.connect(self._mouse_clicked)
        theme().changed.connect(self.apply_theme)
        self.setBackground(theme().colors()["plot_bg"])

    # ------------------------------------------------------------------ building

    def add_panel(self, row: int, y_label: str, x_label: str | None = None, legend_cols: int = 0) -> pg.PlotItem:
        panel = self.addPlot(row=row, col=0, axisItems={"left": ReadableAxis("left")})
        panel.showGrid(x=True, y=True, alpha=0.18)
        panel.setMenuEnabled(False)
        panel.hideButtons()
        panel.getViewBox().setMouseEnabled(x=False, y=False)
        panel.setLabel("left", y_label)
        if x_label:
            panel.setLabel("bottom", x_label)
        for name in ("left", "bottom"):  # values in their own unit: 0.42 ppl/step, never "420 (x0.001)"
            panel.getAxis(name).enableAutoSIPrefix(False)
        if legend_cols:
            legend = panel.addLegend(offset=(-LEGEND_OFFSET, 2), labelTextSize="8.5pt", colCount=legend_cols,
                                     brush=pg.mkBrush(theme().colors()["card"] + "d8"))
            legend.setParentItem(panel)  # anchored in the panel's top margin, not over the data (_fit_legends)
            self._legend_cols[id(panel)] = legend_cols
        sel = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(0, 0, 0, 0), pen=pg.mkPen(None))
        hov = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(0, 0, 0, 0), pen=pg.mkPen(None))
        for band in (sel, hov):
            band.setZValue(-20)
            band.hide()
            panel.addItem(band, ignoreBounds=True)
        self.panels.append(panel)
        self._bands.append((sel, hov))
        self._style_panel(panel)
        return panel

    def _style_panel(self, panel: pg.PlotItem) -> None:
        c = theme().colors()
        font = QFont()
        font.setPointSizeF(8.5 * self.font_scale)
        for name in ("left", "bottom", "right", "top"):
            axis = panel.getAxis(name)
            axis.setPen(pg.mkPen(c["border"]))
            axis.setTextPen(pg.mkPen(c["plot_fg"]))
            axis.setTickFont(font)
            if axis.label is not None:
                axis.label.setDefaultTextColor(QColor(c["plot_fg"]))
                label_font = QFont()
                label_font.setPointSizeF(9.0 * min(self.font_scale, 1.15))  # titles of short panels must not overprint
                axis.label.setFont(label_font)
        sel, hov = self._bands[self.panels.index(panel)]
        accent = QColor(c["accent"])
        accent.setAlpha(60 if theme().dark else 45)
        sel.setBrush(pg.mkBrush(accent))
        hover = QColor(c["hover"])
        hover.setAlpha(28)
        hov.setBrush(pg.mkBrush(hover))
        if panel.legend is not None:
            panel.legend.setBrush(pg.mkBrush(c["card"] + "d8"))
            panel.legend.setPen(pg.mkPen(c["border"]))
            panel.legend.setLabelTextColor(c["plot_fg"])
            size = f"{8.5 * self.font_scale:.1f}pt"
            panel.legend.setLabelTextSize(size)
            for _sample, label in panel.legend.items:
                label.setText(label.text, size=size)
            self._fit_legends()

    def set_font_scale(self, scale: float) -> None:
        """Draw tick labels and axis titles ``scale`` times the normal size."""
        self.font_scale = scale
        for panel in self.panels:
            self._style_panel(panel)

    def apply_theme(self) -> None:
        self.setBackground(theme().colors()["plot_bg"])
        for panel in self.panels:
            self._style_panel(panel)
        self._drop_items()
        self.redraw()

    def redraw(self) -> None:
        """Draw the current record again (after a theme change)."""

    # ------------------------------------------------------------------ persistent items
    # Items are created once and updated with setData: rebuilding curves, legend labels and lines
    # for every chain costs tens of milliseconds of GUI time.

    def _begin(self) -> None:
        self._drawn = set()

    def _curve(self, panel: pg.PlotItem, key: str, x, y, name: str | None = None, short: str | None = None,
               **style) -> pg.PlotDataItem:
        """A curve, reused by ``key``; ``name`` in the legend (``short`` where the full names do not fit)."""
        if short:
            self._short_names[key] = short
        item = self._items.get(key)
        if item is None:
            item = pg.PlotDataItem()
            panel.addItem(item)
            self._items[key] = item
        item.setData(x, y, **style)
        item.show()
        self._legend(panel, key, item, name)
        self._drawn.add(key)
        return item

    def _vline(self, panel: pg.PlotItem, key: str, pos: float, pen, angle: int = 90) -> pg.InfiniteLine:
        item = self._items.get(key)
        if item is None:
            item = pg.InfiniteLine(angle=angle, movable=False)
            panel.addItem(item, ignoreBounds=True)
            self._items[key] = item
        item.setPen(pen)
        item.setValue(pos)
        item.show()
        self._drawn.add(key)
        return item

    def _legend(self, panel: pg.PlotItem, key: str, item, name: str | None) -> None:
        legend = panel.legend
        if legend is None or self._legend_names.get(key) == name:
            return
        if key in self._legend_names:
            legend.removeItem(item)
            del self._legend_names[key]
        if name:
            legend.addItem(item, name)
            self._legend_names[key] = name

    def _end(self) -> None:
        """Hide what the current record did not draw; hide empty legends."""
        for key, item in self._items.items():
            if key not in self._drawn:
                item.hide()
                if key in self._legend_names:
                    for panel in self.panels:
                        if panel.legend is not None:
                            panel.legend.removeItem(item)
                    del self._legend_names[key]
        for panel in self.panels:
            if panel.legend is not None:
                panel.legend.setVisible(bool(panel.legend.items))
        self._fit_legends()

    def set_legend_columns(self, panel: pg.PlotItem, columns: int) -> None:
        """Lay ``panel``'s legend out in ``columns`` columns, or fewer where the figure is too narrow."""
        self._legend_cols[id(panel)] = max(1, columns)
        self._fit_legends()

    def _fit_legends(self) -> None:
        """Give each panel a top margin (its title row) as tall as its legend, so the legend sits
        above the data area and never covers a curve, whatever the panel's height or font size. A
        legend wider than its panel (anchored on the right, it would lose its left part) takes the
        short names, then fewer columns."""
        room = self.viewport().width() - sum(self.ci.getContentsMargins()[::2]) - LEGEND_OFFSET - 4
        for panel in self.panels:
            legend = panel.legend
            if legend is None:
                continue
            wanted = self._legend_cols.get(id(panel), 1)
            for columns, short in [(wanted, False), *((c, True) for c in range(wanted, 0, -1))]:
                self._legend_labels(legend, short)
                if legend.columnCount != columns:
                    legend.setColumnCount(columns)
                _relayout(legend)
                if legend.width() <= room:
                    break
            height = legend.height() + 4 if legend.isVisible() and legend.items else 0
            panel.layout.setRowFixedHeight(0, height)

    def _legend_labels(self, legend: pg.LegendItem, short: bool) -> None:
        """Name each legend entry in full or, with ``short``, by its short name where it has one."""
        size = f"{8.5 * self.font_scale:.1f}pt"
        keys = {id(item): key for key, item in self._items.items()}
        for sample, label in legend.items:
            key = keys.get(id(sample.item))
            text = (self._short_names.get(key) if short else None) or self._legend_names.get(key)
            if text and label.text != text:
                label.setText(text, size=size)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if getattr(self, "panels", None):  # pyqtgraph resizes once while the view is built
            self._fit_legends()

    def _drop_items(self) -> None:
        for panel in self.panels:
            for item in self._items.values():
                if item in panel.items:
                    panel.removeItem(item)
            if panel.legend is not None:
                panel.legend.clear()
        self._items, self._legend_names, self._drawn = {}, {}, set()

    # ------------------------------------------------------------------ steps

    def step_span(self, step: int) -> tuple[float, float] | None:
        """The x range that shows ``step`` (0-based)."""
        raise NotImplementedError

    def step_at(self, x: float) -> int | None:
        raise NotImplementedError

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Left/Right (or Up/Down) select the previous/next step, so a plot works without a mouse."""
        delta = {Qt.Key.Key_Left: -1, Qt.Key.Key_Up: -1, Qt.Key.Key_Right: 1, Qt.Key.Key_Down: 1}.get(event.key())
        if delta is None:
            super().keyPressEvent(event)
            return
        current = self._selected if self._selected is not None else (-1 if delta > 0 else 0)
        target = current + delta
        if target >= 0 and self.step_span(target) is not None:
            self.step_clicked.emit(target)
        event.accept()

    def set_highlight(self, selected: int | None, hovered: int | None = None) -> None:
        self._selected = selected if selected is not None and selected >= 0 else None
        sel_span = self.step_span(selected) if selected is not None and selected >= 0 else None
        hov_span = self.step_span(hovered) if hovered is not None and hovered >= 0 and hovered != selected else None
        for sel, hov in self._bands:
            for band, span in ((sel, sel_span), (hov, hov_span)):
                if span is None:
                    band.hide()
                else:
                    band.setRegion(span)
                    band.show()

    def highlighted(self) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
        """The (selected, hovered) band regions of the first panel (None when hidden)."""
        if not self._bands:
            return None, None
        sel, hov = self._bands[0]
        return (tuple(sel.getRegion()) if sel.isVisible() else None, tuple(hov.getRegion()) if hov.isVisible() else None)

    def _panel_x(self, pos: QPointF) -> float | None:
        for panel in self.panels:
            vb = panel.getViewBox()
            if vb.sceneBoundingRect().contains(pos):
                return vb.mapSceneToView(pos).x()
        return None

    def _mouse_moved(self, pos: QPointF) -> None:
        x = self._panel_x(pos)
        step = self.step_at(x) if x is not None else None
        step = -1 if step is None else step
        if step != self._hover:
            self._hover = step
            self.step_hovered.emit(step)
        self._update_tooltip(x)

    def _update_tooltip(self, x: float | None) -> None:
        """Show the values under the mouse (escaped: model text is never rich text)."""

    def _mouse_clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        x = self._panel_x(event.scenePos())
        step = self.step_at(x) if x is not None else None
        if step is not None:
            self.step_clicked.emit(step)

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._hover != -1:
            self._hover = -1
            self.step_hovered.emit(-1)
        super().leaveEvent(event)

    # ------------------------------------------------------------------ export

    def export(self, path: str | Path) -> Path:
        """Write the figure as PNG (2x resolution) or SVG, chosen by the file suffix.

        The image is made in memory and written like every other output (owner-only, through a
        fresh ``.part`` file, never through a planted link).
        """
        p = Path(path)
        if p.suffix.lower() == ".svg":
            return write_private_bytes(p, self._svg_bytes())
        if p.suffix.lower() != ".png":
            p = p.with_suffix(".png")
        exporter = pg_exporters.ImageExporter(self.scene())
        exporter.parameters()["width"] = int(max(self.width(), 400) * 2)
        buffer = QBuffer()
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        exporter.export(toBytes=True).save(buffer, "PNG")
        return write_private_bytes(p, bytes(buffer.data()))

    def _svg_bytes(self) -> bytes:
        """Vector SVG through Qt's own generator (pyqtgraph's exporter fails on some Qt path output)."""
        size = self.viewport().size()
        buffer = QBuffer()
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        gen = QSvgGenerator()
        gen.setOutputDevice(buffer)
        gen.setSize(size)
        gen.setViewBox(QRect(0, 0, size.width(), size.height()))
        gen.setTitle(self.title)
        gen.setDescription("Exported from KIIG Desktop")
        painter = QPainter(gen)
        try:
            self.render(painter, QRectF(0, 0, size.width(), size.height()), self.viewport().rect())
        finally:
            painter.end()
        return bytes(buffer.data())

    def show_laid_out(self) -> None:
        """Show the figure with its panels already at their final size: the layout would otherwise
        settle in a later event-loop turn, and its resize repaint the whole figure a second time."""
        self.show()
        self.ci.layout.activate()

    def clear_plot(self) -> None:
        """Show nothing (the items stay for the next record)."""
        self.data = {}
        self._begin()
        self._end()
        self.set_highlight(None, None)


def _pen(color: str, width: float = 2.0, style=Qt.PenStyle.SolidLine) -> pg.QtGui.QPen:
    pen = pg.mkPen(color, width=width, style=style)
    pen.setCosmetic(True)
    return pen
