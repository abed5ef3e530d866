"""Plot axes show values in the unit their label names: pyqtgraph's automatic SI prefix would turn a
mean InfoGain of 0.42 into ticks of 420 with "(x0.001)" after the label."""

from __future__ import annotations

from kiig_desktop.gui.dashboard.dashboard_figures import ScatterFigure
from kiig_desktop.reports.summary import Estimate


def test_small_values_keep_their_unit_on_the_axes(qtbot):
    fig = ScatterFigure()
    qtbot.addWidget(fig)
    fig.resize(700, 420)
    fig.set_models([("tiny", Estimate(0.1, 0.0, 0.2, 4), Estimate(0.00042, 0.0003, 0.0005, 4))])
    fig.show()
    qtbot.waitExposed(fig)
    axis = fig.panel.getAxis("bottom")
    assert axis.scale == 1.0 and "x0.001" not in axis.labelString() and "1e-" not in axis.labelString()
    lo, hi = fig.panel.getViewBox().viewRange()[0]
    assert lo < 0.00042 < hi  # the point is in view, in its own unit
