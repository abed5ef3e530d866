"""The batch report's timing table and chart labels (issue 27, item 4).

A parallel group's stages run ahead of each item's own stage, so an item's total used to be only
the few microseconds of its own bookkeeping (``total_s`` 0.0001 beside seconds of generation);
model names were cut in the middle to 17 characters in the small charts.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from kiig_desktop.events import ItemDone
from kiig_desktop.reports import svg
from kiig_desktop.reports.html import render_html
from kiig_desktop.reports.summary import summarize
from kiig_desktop.resources import resource_path
from kiig_desktop.runs.batch import BatchConfig, iter_batch
from kiig_desktop.store import SessionStore

LONG = "SmolLM2-135M-Instruct-SFT-Q4_K_M"
PARTS = ("generation_s", "scoring_s", "ki_s")


@pytest.mark.slow
def test_a_parallel_run_stores_each_items_whole_time(tmp_path, builtin_path):
    dataset = resource_path("datasets", "clinical_mcq.jsonl")
    with SessionStore.open(tmp_path / "p.kiig") as store:
        gen = iter_batch(store, dataset, ["default"], "default", config=BatchConfig(max_tokens=32, limit=2), parallel=2)
        done = []
        while True:
            try:
                event = next(gen)
            except StopIteration:
                break
            if isinstance(event, ItemDone):
                done.append(event.result)
        assert len(done) == 2
        run_id = next(r["id"] for r in store.list_runs() if r["kind"] == "batch")
        for chain in store.chains_for_run(run_id):
            timing = store.load_chain(chain["id"])["timing"]
            assert timing["generation_s"] > 0 and timing["scoring_s"] > 0, timing
            assert timing["total_s"] >= sum(timing[k] for k in PARTS), timing
        html = render_html(summarize(store, run_id, n_boot=50))
    row = re.search(r'<table id="timing-table">.*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    cells = [float(c) for c in re.findall(r'<td class="num">([0-9.]+)</td>', row)]
    generation, scoring, ki, total = cells
    assert total >= max(generation, scoring, ki) and total > 0


def _texts(chart: str) -> tuple[float, list[ET.Element]]:
    root = ET.fromstring(chart)
    width = float(root.get("viewBox").split()[2])
    assert float(root.get("width")) == width
    return width, root.findall("{http://www.w3.org/2000/svg}text") or root.findall("text")


def _extent(el: ET.Element) -> tuple[float, float]:
    """Left and right edge of a text element by the chart's own width estimate."""
    x, w = float(el.get("x")), svg.text_width(el.text or "", float(el.get("font-size")))
    anchor = el.get("text-anchor")
    return (x - w, x) if anchor == "end" else (x - w / 2, x + w / 2) if anchor == "middle" else (x, x + w)


@pytest.mark.parametrize("draw", [svg.bar_chart, svg.forest_plot])
def test_row_charts_show_model_names_whole_and_inside(draw):
    labels = ["B", LONG, "Qwen2.5-0.5B-Instruct-Q8_0"]
    chart = draw("Mean InfoGain", labels, [(0.2, 0.1, 0.3), (-0.1, -0.2, 0.05), (0.4, 0.3, 0.5)], fmt=lambda v: f"{v:.2f}",
                 unit="ppl drop / step")
    width, texts = _texts(chart)
    shown = {t.text: t for t in texts}
    for label in labels:
        assert label in shown, f"{label!r} is not shown whole"
        left, right = _extent(shown[label])
        assert 0 <= left and right <= width, (label, left, right, width)
    title_left, title_right = _extent(shown["Mean InfoGain"])
    unit_left, _ = _extent(shown["ppl drop / step"])
    assert title_right < unit_left


def test_scatter_labels_are_whole_and_inside():
    labels = [LONG, "Qwen2.5-0.5B-Instruct-Q8_0-distilled-reasoning"]
    chart = svg.scatter("Accuracy against mean InfoGain", labels, [(0.1, 0.0, 0.2), (0.9, 0.8, 1.0)],
                        [(0.5, 0.4, 0.6), (0.95, 0.9, 1.0)], x_label="x", y_label="y", x_fmt=str, y_fmt=str)
    width, texts = _texts(chart)
    shown = {t.text: t for t in texts}
    for label in labels:
        assert label in shown
        left, right = _extent(shown[label])
        assert 0 <= left and right <= width, (label, left, right, width)
