"""The judge's stored calibration beside its validation: the Brier score before and after (out of
sample), a reliability diagram, and the setting that shows calibrated KI in the evidence (off by
default: uncalibrated KI is what the session stores and what every view shows unless asked).

The calibration is the latest ``kiig judge-check --calibrate`` of the evaluation's judge model and
KI method (``store.judge_validation.latest_calibration``; ``metrics.calibration``).
"""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import QCheckBox, QVBoxLayout, QWidget

from ...knowledge.ki_rules import DEFAULT_MODE
from ...store import judge_validation
from ..shared.theme import theme
from ..shared.widgets import plain_label

SETTING = "ki/show_calibrated"


def evaluation_calibration(ev: dict | None) -> dict | None:
    """The stored calibration of the judge behind a probability-mode KI evaluation (None: none, or another mode)."""
    if not ev or ev.get("mode", DEFAULT_MODE) != DEFAULT_MODE:
        return None
    return judge_validation.latest_calibration((ev.get("judge") or {}).get("sha256"), ev.get("method"))


def summary_text(c: dict) -> str:
    return (f"Calibration (Platt on log-odds, {c.get('folds')}-fold cross-validated, {c.get('n')} claims): "
            f"Brier {c['brier_before']:.3f} → {c['brier_after']:.3f} out of sample; "
            f"p = sigmoid({c['a']:.2f}·logit(p) {'+' if c['b'] >= 0 else '−'} {abs(c['b']):.2f}).")


class CalibrationView(QWidget):
    """The setting, the calibration's summary and its reliability diagram (before and after)."""

    changed = Signal()

    def __init__(self, qsettings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.qsettings = qsettings
        self.current: dict | None = None
        self.check = QCheckBox("Show calibrated KI")
        self.check.setToolTip("Show each step's KI through the judge's stored calibration (kiig judge-check "
                              "--calibrate) beside the raw KI; the session keeps the raw KI either way")
        self.check.setChecked(str(qsettings.value(SETTING, "false")).lower() == "true")
        self.summary = plain_label("", "muted", wrap=True)
        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(150)
        self.plot.setMaximumHeight(200)
        self.plot.setBackground(theme().colors()["plot_bg"])
        item = self.plot.getPlotItem()
        item.setMenuEnabled(False)
        item.hideButtons()
        item.getViewBox().setMouseEnabled(x=False, y=False)
        item.setLabel("bottom", "predicted p(yes)")
        item.setLabel("left", "fraction supported")
        item.setXRange(0, 1, padding=0.02)
        item.setYRange(0, 1, padding=0.02)
        item.addLegend(offset=(4, 4), labelTextSize="8pt")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.check)
        layout.addWidget(self.summary)
        layout.addWidget(self.plot)
        self.check.toggled.connect(self._toggled)
        self.set_evaluation(None)

    def _toggled(self, on: bool) -> None:
        self.qsettings.setValue(SETTING, "true" if on else "false")
        self.plot.setVisible(on and self.current is not None)
        self.changed.emit()

    def set_evaluation(self, ev: dict | None) -> None:
        """Show the calibration of ``ev``'s judge (hidden for other modes or without an evaluation)."""
        self.current = evaluation_calibration(ev)
        self.setVisible(bool(ev) and ev.get("mode", DEFAULT_MODE) == DEFAULT_MODE)
        if self.current is None:
            judge = Path(str((ev or {}).get("judge", {}).get("path") or "JUDGE")).name
            self.summary.setText(f"No calibration stored for this judge: run `kiig judge-check --model {judge} "
                                 "--claims FILE --calibrate`. KI is shown uncalibrated.")
        else:
            self.summary.setText(summary_text(self.current))
        self.check.setEnabled(self.current is not None)
        self._draw()
        self.plot.setVisible(self.check.isChecked() and self.current is not None)

    def calibration(self) -> dict | None:
        """The fit to show calibrated KI with (None: the setting is off or there is no calibration)."""
        return self.current if self.check.isChecked() else None

    def _draw(self) -> None:
        item = self.plot.getPlotItem()
        item.clear()
        if item.legend is not None:
            item.legend.clear()
        c = theme().colors()
        item.plot([0, 1], [0, 1], pen=pg.mkPen(c["muted"], style=pg.QtCore.Qt.PenStyle.DashLine))
        if self.current is None:
            return
        for key, name, symbol, color in (("reliability_before", "raw", "o", c["muted"]),
                                         ("reliability_after", "calibrated (out of sample)", "t", c["accent"])):
            bins = self.current.get(key) or []
            item.plot([b["mean_p"] for b in bins], [b["frac_true"] for b in bins], pen=pg.mkPen(color), symbol=symbol,
                      symbolBrush=pg.mkBrush(color), symbolSize=7, name=name)

    def drawn_points(self) -> dict[str, int]:
        """Points per named curve (for checks)."""
        return {curve.name(): len(curve.xData) for curve in self.plot.getPlotItem().listDataItems()
                if curve.name() and curve.xData is not None}
