"""Metric help works offline (issue 27, item 11): docs/metrics.md ships inside the package, the
"more" links open it in the app's own help window at the metric's section, and a missing file is
said in that window instead of a link that does nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QMenu

import kiig_desktop
from kiig_desktop.gui.shared.help_dialog import MetricHelp, section_anchor
from kiig_desktop.gui.shared.metric_help import METRICS
from kiig_desktop.resources import docs_path

from .conftest import wait_idle
from .records import fake_record, store_fake_chain

ROOT = Path(__file__).resolve().parents[2]


def test_the_definitions_ship_inside_the_package():
    inside = Path(kiig_desktop.__file__).parent / "_docs" / "metrics.md"
    assert inside.is_file() and inside.read_bytes() == (ROOT / "docs" / "metrics.md").read_bytes()
    assert docs_path("metrics.md") == inside


def test_every_more_link_has_its_section():
    headings = {section_anchor(line.lstrip("#")) for line in docs_path("metrics.md").read_text().splitlines()
                if line.startswith("#")}
    assert {anchor for _name, _sentence, anchor in METRICS.values()} <= headings


@pytest.mark.slow
def test_a_more_link_opens_the_section_in_the_app(qtbot, window):
    run_id, chain_id = store_fake_chain(window.session, fake_record(["Metformin is first-line.", "So B."]))
    window.results.open_chain(run_id, chain_id)
    wait_idle(qtbot, window)
    card = next(c for c in window.results.cards.values() if c.more is not None)
    href = card.more.text().split("href='")[1].split("'")[0]
    card.more.linkActivated.emit(href)
    dialog = window.findChild(MetricHelp)
    assert dialog is not None and dialog.isVisible() and dialog.loaded and not dialog.error.isVisible()
    block = dialog.browser.textCursor().block()
    assert block.blockFormat().headingLevel() and section_anchor(block.text()) == href.partition("#")[2]
    assert dialog.browser.verticalScrollBar().value() > 0  # scrolled to the section, not the top


def test_a_missing_file_is_said_not_silent(qtbot, window, tmp_path, monkeypatch):
    monkeypatch.setenv("KIIG_DOCS_DIR", str(tmp_path / "nowhere"))
    # the menu's own actions, looked up on the QMenu children (QAction.menu() hands out a wrapper
    # PySide6 6.9 may already have deleted)
    (menu,) = [m for m in window.menuBar().findChildren(QMenu) if m.title() == "&Help"]
    next(a for a in menu.actions() if a.text() == "&Metric Definitions").trigger()
    dialog = window.findChild(MetricHelp)
    assert dialog.isVisible() and not dialog.loaded
    assert dialog.error.isVisible() and "missing from this installation" in dialog.error.text()
    assert str(tmp_path / "nowhere" / "metrics.md") in dialog.error.text()
