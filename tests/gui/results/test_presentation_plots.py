"""Presentation mode at 1366x768 (a stored chain, no model needed): every plot's legend lies whole
inside its plot, never cut off at an edge, and the value axes' labels stay apart (the answer-NLL axis
of a 45-px panel used to print 2.0, 1.5 and 1.0 on top of each other)."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QImage, QPainter

from ..conftest import wait_idle
from ..screen_checks import open_long_chain, present_long_chain

SIZE = (1366, 768)


def presented(qtbot, window):
    window.resize(*SIZE)
    open_long_chain(window, lambda cond: qtbot.waitUntil(cond, timeout=30000))
    wait_idle(qtbot, window)
    show = present_long_chain(window, SIZE, lambda cond: qtbot.waitUntil(cond, timeout=30000), lambda: qtbot.wait(300))
    qtbot.waitUntil(lambda: show.width() == SIZE[0], timeout=10000)
    return show


def label_rects(axis):
    """The rectangles of the tick labels the axis draws."""
    image = QImage(10, 10, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        specs = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [rect for rect, _flags, _text in specs[2]] if specs else []


@pytest.mark.slow
def test_legends_lie_inside_their_plots_and_axis_labels_stay_apart(qtbot, window):
    show = presented(qtbot, window)
    try:
        legends = 0
        for fig in show.view.figures():
            if not fig.isVisible():
                continue
            seen = fig.mapToScene(fig.viewport().rect()).boundingRect()  # what the plot widget shows
            for panel in fig.panels:
                legend = panel.legend
                if legend is None or not legend.isVisible():
                    continue
                legends += 1
                box, plot = legend.sceneBoundingRect(), panel.sceneBoundingRect()
                assert plot.contains(box) and seen.contains(box), (
                    f"{fig.title}: legend {box.getRect()} outside its plot {plot.getRect()} (shown: {seen.getRect()})")
                assert not box.intersects(panel.vb.sceneBoundingRect()), f"{fig.title}: legend over the data"
        assert legends >= 2  # the token plot's and the options plot's
        for fig in show.view.figures():
            for panel in fig.panels:
                rects = sorted(label_rects(panel.getAxis("left")), key=lambda r: r.top())
                for a, b in zip(rects, rects[1:], strict=False):  # a fifth of a label's height between two
                    assert b.top() - a.bottom() >= 0.2 * a.height(), (
                        f"{fig.title}: y labels {a.getRect()} and {b.getRect()} touch")
        nll = show.view.answer_fig.panels[0].getAxis("left")
        assert len(label_rects(nll)) >= 2  # still a scale to read
    finally:
        show.close()
