"""The report's SVG charts (reports/svg.py) checked for what they draw: one bar, marker or point per
value, at positions that follow the values, with the labels given -- not only that an ``<svg>`` came out."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from kiig_desktop.reports.svg import INK, bar_chart, forest_plot, scatter

NAN = (math.nan, math.nan, math.nan)


def _svg(text: str) -> ET.Element:
    root = ET.fromstring(text)
    assert root.tag == "svg"
    return root


def _texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter("text")]


def test_bar_chart_draws_one_bar_per_value_proportional_to_it():
    labels = ["model-A", "model-B", "model-C"]
    root = _svg(bar_chart("Accuracy", labels, [(0.5, 0.4, 0.6), NAN, (0.2, 0.1, 0.3)], fmt=lambda v: f"{v:.2f}", unit="share"))
    assert root.find("title").text == "Accuracy"
    assert [t.get("data-label") for t in root.iter("text") if t.get("data-label")] == labels
    bars = [r for r in root.iter("rect") if r.get("fill-opacity")]
    assert len(bars) == 2  # model-B has no data: no bar, a note instead
    assert _texts(root).count("no data") == 1
    assert "0.50" in _texts(root) and "0.20" in _texts(root)
    widths = [float(b.get("width")) for b in bars]
    assert widths[0] / widths[1] == pytest.approx(0.5 / 0.2, rel=0.01)
    assert float(bars[0].get("x")) == float(bars[1].get("x"))  # both start at zero
    assert len([p for p in root.iter("path")]) == 2  # one whisker per interval


def test_forest_plot_fills_the_rows_whose_interval_excludes_zero():
    root = _svg(forest_plot("Paired difference", ["clear", "unclear", "none"], [(1.0, 0.5, 1.5), (0.1, -0.2, 0.4), NAN],
                            fmt=lambda v: f"{v:+.1f}"))
    markers = [r for r in root.iter("rect") if r.get("width") == "10"]
    assert [m.get("fill") for m in markers] == [INK, "#ffffff"]
    assert _texts(root).count("no pairs") == 1
    centre = [float(m.get("x")) + 5 for m in markers]
    assert centre[0] > centre[1]  # 1.0 is right of 0.1


def test_scatter_puts_one_labelled_point_per_finite_pair_where_its_means_are():
    labels = ["small", "large", "missing"]
    root = _svg(scatter("Accuracy vs InfoGain", labels, [(0.2, 0.1, 0.3), (0.8, 0.7, 0.9), NAN],
                        [(1.0, 0.5, 1.5), (3.0, 2.5, 3.5), (2.0, 1.0, 3.0)], x_label="accuracy", y_label="InfoGain",
                        x_fmt=lambda v: f"{v:.1f}", y_fmt=lambda v: f"{v:.1f}"))
    points = list(root.iter("circle"))
    assert len(points) == 2
    (small, large) = points
    assert float(large.get("cx")) > float(small.get("cx")) and float(large.get("cy")) < float(small.get("cy"))  # y grows up
    texts = _texts(root)
    assert "small" in texts and "large" in texts and "missing" not in texts
    assert "accuracy" in texts and "InfoGain" in texts
