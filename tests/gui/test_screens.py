"""Every main screen at everyday sizes (1366x768, 1920x1080, and 1280x720 = 1920x1080 at 150%),
rendered offscreen: no visible widget smaller than its minimum size hint, no header card elided,
plots keep a readable height, the Models dock folds into a strip; colours, symbols and tooltips."""

from __future__ import annotations

import os

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QLabel,
    QScrollArea,
    QScrollBar,
    QSplitterHandle,
    QStackedWidget,
    QWidget,
)

from kiig_desktop.gui.results.results_view import PLOT_MIN_HEIGHT
from kiig_desktop.gui.shared.theme import theme
from kiig_desktop.runs.analysis import Question

from .conftest import wait_idle
from .records import fake_record, store_fake_chain

SIZES = [(1366, 768), (1920, 1080), (1280, 720)]
LONG_STEPS = [
    "The patient is a 58-year-old with newly diagnosed type 2 diabetes, an HbA1c of 8.1% and normal kidney function.",
    "Guidelines recommend metformin as first-line therapy unless contraindicated, together with lifestyle changes.",
    "Insulin is kept for very high glucose, symptomatic hyperglycaemia, or when oral agents have failed.",
    "Sulfonylureas such as glipizide are second-line because of hypoglycaemia and weight gain.",
    "So the answer is B.",
]
FOUR = Question("Which drug is first-line for a newly diagnosed adult with type 2 diabetes and normal kidney function?",
                "Metformin", {"A": "Insulin", "B": "Metformin", "C": "Glipizide", "D": "Sitagliptin"}, "B")


def _too_small(window) -> list[str]:
    """Visible widgets narrower or lower than their minimum size hint (what would clip or overprint)."""
    bad = []
    for w in window.findChildren(QWidget):
        # a stack's hint includes its hidden pages; the page on show is checked by itself
        if not w.isVisible() or w.window() is not window or isinstance(w, (QScrollBar, QSplitterHandle, QStackedWidget)):
            continue
        if w.objectName().startswith("qt_"):  # Qt's own parts (a spin box's line edit) follow their owner
            continue
        policy = w.sizePolicy()
        if QWidget in (type(w),) or w.parentWidget() is None:
            continue
        hint = w.minimumSizeHint()
        if not hint.isValid():
            continue
        # Ignored size policies shrink on purpose (they elide, e.g. ElidedLabel); scroll areas scroll.
        too_narrow = (w.width() + 1 < hint.width() and policy.horizontalPolicy().name != "Ignored"
                      and not isinstance(w.parentWidget(), QAbstractScrollArea))
        need = hint.height()
        # wrapped text: what it needs at its actual width (a stack inside counts its hidden pages: skip)
        if w.hasHeightForWidth() and not w.findChildren(QStackedWidget):
            need = (w.layout().totalMinimumHeightForWidth(w.width()) if w.layout() is not None
                    else w.heightForWidth(w.width()))
        too_low = (w.height() + 1 < max(need, w.minimumHeight()) and policy.verticalPolicy().name != "Ignored"
                   and not isinstance(w.parentWidget(), QAbstractScrollArea))
        if isinstance(w, QScrollArea) and w.horizontalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff \
                and w.widget() is not None and w.viewport().width() + 1 < w.widget().minimumSizeHint().width():
            bad.append(f"{type(w.widget()).__name__} cut at the right: {w.viewport().width()} < "
                       f"{w.widget().minimumSizeHint().width()}")
        if (too_narrow or too_low) and _in_view(w):
            name = w.objectName() or type(w).__name__
            text = w.text()[:30] if isinstance(w, QLabel) else ""
            bad.append(f"{name} {text!r} {w.width()}x{w.height()} < {hint.width()}x{max(need, w.minimumHeight())}")
    return bad


def _in_view(w: QWidget) -> bool:
    """Whether ``w`` lies inside the window (a widget scrolled out of a page is not clipped)."""
    return w.visibleRegion().boundingRect().width() > 0


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_every_screen_fits_everyday_sizes(qtbot, make_window, size):
    window = make_window(size=size)
    record = fake_record(LONG_STEPS, reasoning="\n".join(LONG_STEPS))
    run_id, chain_id = store_fake_chain(window.session, record, FOUR)
    window.sessions.open_requested.emit(run_id, chain_id)
    qtbot.waitUntil(lambda: window.results.result is not None and not window.results.pending, timeout=10000)
    window.analyze.form.set_question(FOUR)
    window.resize(*size)
    problems: dict[str, list[str]] = {}
    shots = os.environ.get("KIIG_SCREEN_SHOTS")  # a folder: save each screen there to look at it
    for key in window.views:
        window.show_view(key)
        wait_idle(qtbot, window)
        qtbot.wait(60)
        if shots:
            window.grab().save(os.path.join(shots, f"{key}-{size[0]}x{size[1]}.png"))
        found = _too_small(window)
        page = window.tabs.currentWidget()
        if page.horizontalScrollBar().maximum() > 0:  # a control behind a horizontal scroll bar
            found.append(f"the page scrolls sideways by {page.horizontalScrollBar().maximum()} px")
        if found:
            problems[key] = found
    assert not problems, "\n".join(f"{k}: {p}" for k, v in problems.items() for p in v)

    window.show_view("results")
    qtbot.wait(60)
    results = window.results
    for key, card in results.cards.items():
        assert not card.elided(), (key, card.value.text(), card.value.width())
    for fig in results.figures():
        if fig.isVisibleTo(results):
            assert fig.height() >= PLOT_MIN_HEIGHT, (type(fig).__name__, fig.height())
    table = results.table
    text_col = next(i for i, c in enumerate(table.steps_model.columns) if c.key == "text")
    assert table.columnWidth(text_col) >= 180  # the Step column is readable, not "1. T…"

    dock = window.docks["models"]
    assert dock.collapsed is (size[0] < 1300)  # narrow windows give the tabs the width
    dock.set_collapsed(False)
    qtbot.waitUntil(lambda: dock.width() > 200)
    wide = dock.width()
    dock.set_collapsed(True)
    qtbot.wait(30)
    assert dock.width() <= 40 < wide
    dock.set_collapsed(False)
    qtbot.waitUntil(lambda: dock.width() > 200)


def test_signed_metrics_use_symbols_and_a_colour_blind_safe_palette(qtbot, window):
    record = fake_record(["a b", "c d", "e f", "g h"], seed=2)
    run_id, chain_id = store_fake_chain(window.session, record)
    window.sessions.open_requested.emit(run_id, chain_id)
    qtbot.waitUntil(lambda: window.results.result is not None and not window.results.pending, timeout=10000)
    model = window.results.table.steps_model
    col = next(i for i, c in enumerate(model.columns) if c.key == "delta_nll")
    try:
        for palette in ("blue-orange", "red-green"):
            window.set_palette(palette)
            for row, step in enumerate(record["steps"]):
                text = model.data(model.index(row, col))
                color = model.data(model.index(row, col), Qt.ItemDataRole.BackgroundRole)
                assert text.startswith("▲" if step["delta_nll"] > 0 else "▼"), text
                positive = step["delta_nll"] > 0
                if palette == "blue-orange":  # blue above zero, orange below: no red/green pair
                    assert (color.blue() > color.red()) if positive else (color.red() > color.blue()), (row, color.name())
                else:
                    assert (color.green() > color.red()) if positive else (color.red() > color.green())
            card = window.results.cards["info_gain"]
            assert card.sign.text() == ("▲" if record["info_gain_mean"] > 0 else "▼") and card.sign.isVisibleTo(card)
        for dark in ("dark", "light"):
            window.set_theme(dark)
            assert theme().colors()["good"] != theme().colors()["bad"]
    finally:
        window.set_palette("blue-orange")
    assert window.qsettings.value("view/palette") == "blue-orange"
    tip = model.headerData(col, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole)
    assert "ΔNLL" in tip and "docs/metrics.md#infogain" in tip and ">more<" in tip
    card = window.results.cards["info_gain"]
    assert card.more is not None and "metrics.md#infogain" in card.more.text()
    assert "InfoGain" in card.accessibleName() and record["info_gain_mean"] != 0
    for fig in window.results.figures():
        assert fig.accessibleName()
    for frame in window.results.frames.values():
        assert "docs/metrics.md#" in frame.caption.toolTip()


def test_an_edited_step_reads_the_same_in_text_and_table(qtbot, window):
    """Steps edited before scoring: the Reasoning pane shows the steps as scored, not the generated text."""
    generated = "Metformin is first line.\nInsulin is for later.\nSo the answer is B."
    steps = ["Metformin is the first-line drug.", "Insulin is for later.", "So the answer is B."]
    record = fake_record(steps, reasoning=generated)
    record["steps"][0]["start"], record["steps"][0]["end"] = 0, len("Metformin is first line.")
    run_id, chain_id = store_fake_chain(window.session, record)
    window.sessions.open_requested.emit(run_id, chain_id)
    qtbot.waitUntil(lambda: window.results.result is not None and not window.results.pending, timeout=10000)
    results = window.results
    for k, step in enumerate(steps):
        results.select_step(k)
        assert results.text_view.highlighted_text() == step
        assert results.table.steps_model.data(results.table.steps_model.index(k, 1)) == step
    assert "first line." not in results.text_view.toPlainText()


def test_small_samples_are_flagged_on_dashboard_intervals(gui_app):
    """Intervals from fewer than 10 paired items carry a ⚠ and say why, in the table and the forest plot."""
    import pyqtgraph as pg

    from kiig_desktop.gui.dashboard.dashboard_figures import ForestFigure
    from kiig_desktop.gui.dashboard.dashboard_tables import PairsTable
    from kiig_desktop.reports.summary import METRICS, Estimate, PairDiff

    key = METRICS[0].key
    for n, flagged in ((3, True), (9, True), (10, False), (40, False)):
        pairs = [PairDiff("a", "b", key, Estimate(0.2, 0.05, 0.35, n))]
        table = PairsTable()
        table.set_pairs(pairs)
        items, direction = table.item(0, 2), table.item(0, 3)
        assert items.text().endswith("⚠") is flagged, (n, items.text())
        assert ("fewer than 10 items" in (items.toolTip() or "")) is flagged
        assert ("few items" in direction.text()) is flagged
        forest = ForestFigure()
        forest.set_pairs(pairs)
        notes = [item.toPlainText() for _panel, item in forest._plotted if isinstance(item, pg.TextItem)]
        assert (f"⚠ n={n}" in notes) is flagged, notes


def test_missing_x_library_is_one_readable_line(tmp_path):
    """Qt's platform-plugin abort becomes one line naming the package and the apt-get command."""
    import subprocess
    import sys

    from kiig_desktop.gui.app import missing_x_libraries

    fake = (("libkiig-not-installed.so.0", "libkiig-missing0"),)
    env_xcb = {"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":0"}
    old = {k: os.environ.get(k) for k in env_xcb}
    try:
        os.environ.update(env_xcb)
        assert missing_x_libraries(fake) == ["libkiig-missing0"]
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        assert missing_x_libraries(fake) == []  # only the xcb plugin needs them
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    code = ("import sys, kiig_desktop.gui.app as app\n"
            "app.XCB_LIBRARIES = app.XCB_LIBRARIES + (('libkiig-not-installed.so.0', 'libkiig-missing0'),)\n"
            "sys.exit(app.main(['kiig-desktop']))\n")
    env = {**os.environ, **env_xcb, "KIIG_DATA_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "libkiig-missing0" in lines[0] and "apt-get install -y" in lines[0]


def test_keyboard_reaches_the_results_in_layout_order(qtbot, window):
    """Tab walks header, cards, text, table and plots in reading order; a focused plot's arrow keys
    select steps; focus is drawn (the style sheet outlines it)."""
    record = fake_record(["a b", "c d", "e f"], seed=3)
    run_id, chain_id = store_fake_chain(window.session, record)
    window.sessions.open_requested.emit(run_id, chain_id)
    qtbot.waitUntil(lambda: window.results.result is not None and not window.results.pending, timeout=10000)
    window.show_view("results")
    results = window.results
    cards = list(results.cards.values())
    expected = [*cards, results.text_view, results.table, results.metric_combo, results.frames["answer"].export_button,
                results.answer_fig, results.frames["tokens"].export_button, results.token_fig]
    chain, w = [], cards[0]
    for _ in range(len(expected)):
        chain.append(w)
        w = w.nextInFocusChain()
        while not _tab_stop(w, window):
            w = w.nextInFocusChain()
    assert chain == expected, " | ".join(f"{type(w).__name__}<{type(w.parentWidget()).__name__}" for w in chain)
    results.answer_fig.setFocus()
    qtbot.keyClick(results.answer_fig, Qt.Key.Key_Right)
    assert results.selected == 0
    qtbot.keyClick(results.answer_fig, Qt.Key.Key_Right)
    assert results.selected == 1 and results.token_fig.highlighted()[0] is not None
    qtbot.keyClick(results.answer_fig, Qt.Key.Key_Left)
    assert results.selected == 0
    assert ":focus" in window.styleSheet() + gui_style()
    for card in cards:
        assert card.accessibleName().startswith(card.caption.text())


def _tab_stop(w, window) -> bool:
    """Whether Tab stops at ``w`` (a scroll area's viewport passes focus to its view)."""
    parent = w.parentWidget()
    if isinstance(parent, QAbstractScrollArea) and w is parent.viewport():
        return False
    return bool(w.focusPolicy() & Qt.FocusPolicy.TabFocus) and w.isVisibleTo(window) and w.isEnabled()


def gui_style() -> str:
    from PySide6.QtWidgets import QApplication

    return QApplication.instance().styleSheet()


def test_option_buttons_never_cover_the_options(qtbot, make_window):
    """With four options, after theme switches and at the smallest size, the +/− Option buttons sit
    beside the options table, never over a row."""
    window = make_window(size=(1280, 720))
    form = window.analyze.form
    form.set_question(FOUR)
    window.show_view("analyze")
    for mode in ("dark", "light"):
        window.set_theme(mode)
        wait_idle(qtbot, window)
        qtbot.wait(50)
        table = form.options
        rows = table.rowCount()
        assert rows == 4
        bottom = table.rowViewportPosition(rows - 1) + table.rowHeight(rows - 1)
        assert bottom <= table.viewport().height() + 1 or table.verticalScrollBar().maximum() > 0
        for button in (form.add_option, form.remove_option):
            top_left = button.mapTo(form, button.rect().topLeft())
            table_box = table.geometry().translated(table.parentWidget().mapTo(form, table.pos()) - table.pos())
            assert not table_box.intersects(button.geometry().translated(top_left - button.pos())), button.text()


def test_numbers_in_the_steps_table_never_wrap(qtbot, window):
    record = fake_record(["a b", "c d", "e f"], seed=1)
    record["steps"][1]["info_gain"] = 104.464  # a wide value: "▲ +104.464"
    run_id, chain_id = store_fake_chain(window.session, record)
    window.sessions.open_requested.emit(run_id, chain_id)
    qtbot.waitUntil(lambda: window.results.result is not None and not window.results.pending, timeout=10000)
    table = window.results.table
    model = table.steps_model
    for col in table.visible_columns():
        if model.columns[col].key == "text":
            continue
        for row in range(model.rowCount()):
            assert table.fontMetrics().horizontalAdvance(model.text(row, col)) < table.columnWidth(col) - 6, \
                (model.columns[col].key, model.text(row, col))
