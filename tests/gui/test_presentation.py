"""Presentation mode end to end on the embedded model (real llama.cpp scoring, offscreen): F5 opens
the chain full screen, the arrow keys walk the steps in every pane at once, Export slide writes a
1920x1080 PNG, an SVG that parses and a one-page PDF; Escape leaves."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QImage

from .conftest import load_default, wait_idle
from .test_end_to_end import QUESTION, REFERENCE

pytestmark = pytest.mark.slow


def pdf_pages(data: bytes) -> int:
    """Page objects in a PDF (``/Type /Page``, not ``/Pages``)."""
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))


def legend_overlaps(figures) -> list[str]:
    """The plots whose legend covers part of their data area (the panel's view box)."""
    out = []
    for fig in figures:
        for panel in fig.panels:
            legend = panel.legend
            if legend is not None and legend.isVisible() and fig.isVisible():
                box, data = legend.sceneBoundingRect(), panel.vb.sceneBoundingRect()
                assert box.height() > 0 and data.height() > 0
                if box.intersects(data):
                    out.append(f"{fig.title}: legend {box.getRect()} over data {data.getRect()}")
    return out


def test_present_walk_and_export_on_the_embedded_model(qtbot, make_window, tmp_path):
    win = make_window()
    load_default(qtbot, win)
    win.analyze.form.set_question(QUESTION)
    win.analyze.set_reasoning_text(REFERENCE)
    win.analyze.score()  # real llama.cpp scoring of three steps
    wait_idle(qtbot, win)
    result = win.results.result
    steps = result.record["steps"]
    assert len(steps) == 3

    present = next(a for a in win.findChildren(QAction) if a.shortcut().toString() == "F5")
    assert present.text() == "&Present Chain"
    present.trigger()  # View → Present (F5)
    show = win.presentation
    assert show is not None and show.isFullScreen()
    qtbot.waitUntil(lambda: not show.view.pending and show.view.result is result, timeout=10000)
    qtbot.waitUntil(lambda: show.step_title.text().startswith("Step 1 of 3"), timeout=5000)
    for key, expected in ((Qt.Key.Key_Right, 1), (Qt.Key.Key_Right, 2), (Qt.Key.Key_Right, 2),
                          (Qt.Key.Key_Left, 1)):
        qtbot.keyClick(show, key)
        assert show.step == expected
        view = show.view
        assert view.selected == expected
        assert [i.row() for i in view.table.selectionModel().selectedRows()] == [expected]
        for fig in (view.answer_fig, view.options_fig):
            assert fig.highlighted()[0] == (expected + 0.5, expected + 1.5)
        assert view.token_fig.highlighted()[0] is not None
        assert view.text_view.highlighted_text() == steps[expected]["text"]
        facts = show.facts.text()
        s = steps[expected]
        assert f"{s['delta_nll']:+.4f}" in facts and f"{s['info_gain']:+.3f}" in facts
        assert ("▲" if s["info_gain"] > 0 else "▼") in facts
        assert all(f"{letter} {p:.2f}" in facts for letter, p in s["option_probs"].items())
    assert show.view.figures()[0].font_scale > 1

    assert sum(1 for fig in show.view.figures() for p in fig.panels if p.legend is not None and p.legend.isVisible()) >= 2
    assert legend_overlaps(show.view.figures()) == []
    rendered = []  # the slide as exported (laid out at 1920x1080): no legend over a plot's data
    render = show.slide.render
    show.slide.render = lambda *a: (rendered.append(legend_overlaps(show.view.figures())), render(*a))
    out = os.environ.get("KIIG_SCREEN_SHOTS")  # a folder: keep the slide there to look at it
    png, svg, pdf = show.export_slide(Path(out or tmp_path) / "slide")
    assert rendered and all(r == [] for r in rendered), rendered
    if out:
        show.grab().save(os.path.join(out, "presentation-window.png"))
    image = QImage(str(png))
    assert (image.width(), image.height()) == (1920, 1080)
    colours = {image.pixel(x, y) for x in range(0, 1920, 97) for y in range(0, 1080, 53)}
    assert len(colours) > 5  # drawn, not blank
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg") and root.get("viewBox") == "0 0 1920 1080" and len(list(root.iter())) > 50
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and pdf_pages(data) == 1
    assert show.step == 1  # exporting does not move the walk
    assert show.slide.width() < 1920 or show.width() >= 1920  # back to the window's own layout

    qtbot.keyClick(show, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not show.isVisible(), timeout=3000)
    assert win.isVisible() and not win.tasks.active()


def test_step_facts_state_ki_and_its_evidence():
    """The large-type strip names the KI, its passages' sources and the judge's reason; n/a steps say so."""
    from kiig_desktop.gui.results.presentation import step_facts
    from kiig_desktop.runs.analysis import AnalysisResult

    record = {"steps": [{"index": 0, "text": "a", "delta_nll": 0.5, "info_gain": -1.25, "option_probs": {"A": 0.7, "B": 0.3}},
                        {"index": 1, "text": "b", "delta_nll": None, "info_gain": None}]}
    result = AnalysisResult.__new__(AnalysisResult)
    result.record = record
    ki = {0: {"applicable": True, "ki": 0.8123, "reason": "supported",
              "evidence": [{"source": "warfarin.md", "chunk": 1}, {"source": "inr.md", "chunk": 0},
                           {"source": "NG28.pdf", "chunk": 3, "file": "NG28.pdf", "page": 14, "where": "NG28.pdf, page 14"}]},
          1: {"applicable": False, "reason": "no claim"}}
    facts = dict(step_facts(result, ki, 0))
    assert facts["ΔNLL"] == "▲ +0.5000" and facts["InfoGain"] == "▼ -1.250"
    assert facts["Options"] == "A 0.70  B 0.30"
    assert facts["KI"] == "0.81 from 3 passages"
    assert facts["Evidence"] == "warfarin.md; inr.md; NG28.pdf, page 14 — supported"  # best first, with the page
    facts = dict(step_facts(result, ki, 1))
    assert facts["ΔNLL"] == "—" and facts["KI"].startswith("n/a")
