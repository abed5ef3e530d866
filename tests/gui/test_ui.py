"""Window behaviour that needs no model: plain text only, KI column, layout memory, menus, themes,
sessions (autosave, export, delete), the steps editor, the colour scale."""

from __future__ import annotations

import csv
import re
import sys

import pytest
from PySide6.QtCore import QMimeData, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QLabel

from kiig_desktop.gui.shared.theme import theme
from kiig_desktop.runs.analysis import StepDraft

from .conftest import wait_idle
from .records import QUESTION, fake_model, fake_record, store_fake_chain

HOSTILE = '<b>bold</b> <img src="x" onerror="alert(1)"> <a href="http://x">link</a> & <script>x()</script>'


def open_chain(qtbot, window, run_id: int, chain_id: int) -> None:
    window.sessions.open_requested.emit(run_id, chain_id)
    qtbot.waitUntil(lambda: window.results.result is not None and window.results.result.chain_id == chain_id
                    and not window.results.pending, timeout=10000)


def test_model_and_imported_text_is_shown_as_plain_text(qtbot, window):
    steps = [f"Step one says {HOSTILE}", "Step two is <i>calm</i>."]
    record = fake_record(steps, reasoning="\n".join(steps) + "\nAnswer: B")
    run_id, chain_id = store_fake_chain(window.session, record)
    open_chain(qtbot, window, run_id, chain_id)
    results = window.results
    assert HOSTILE in results.text_view.toPlainText()
    assert "<b>" not in results.text_view.toHtml().split("<body", 1)[1].replace("&lt;b&gt;", "")
    model = results.table.steps_model
    assert model.data(model.index(0, 1)) == steps[0]
    tip = model.data(model.index(0, 1), Qt.ItemDataRole.ToolTipRole)
    assert "&lt;script&gt;" in tip and "<script>" not in tip
    for label in results.findChildren(QLabel):
        if label.objectName() == "more-link":  # the metric cards' link to the help window's section, fixed text
            assert re.fullmatch(r"<a href='kiig-help:metrics\.md#[a-z-]+'>more</a>", label.text()), label.text()
            continue
        if label.text() and "<" in label.text():
            assert label.textFormat() == Qt.TextFormat.PlainText, label.text()
    results.select_step(0)
    assert results.text_view.highlighted_text() == steps[0]

    # pasting HTML into the reasoning editor inserts its plain text
    editor = window.analyze.reasoning
    editor.clear_all()
    mime = QMimeData()
    mime.setHtml("<p><b>Bold</b> paste</p>")
    mime.setText("<b>Bold</b> paste")
    editor.insertFromMimeData(mime)
    assert editor.toPlainText() == "<b>Bold</b> paste"

    # an imported text file is shown literally too
    path = window.session.sessions_dir / "reasoning.md"
    path.write_text(f"1. {HOSTILE}\n2. Second step.\nAnswer: B", encoding="utf-8")
    window.open_paths([str(path)])
    assert window.current_view() is window.analyze
    assert HOSTILE in window.analyze.reasoning.toPlainText()
    assert window.analyze.steps_editor.steps()[0].text == f"1. {HOSTILE}"


@pytest.mark.slow
def test_ki_column_appears_only_with_ki_data(qtbot, window):
    steps = ["Metformin is first-line.", "It lowers hepatic glucose output.", "So B."]
    run_a, chain_a = store_fake_chain(window.session, fake_record(steps, seed=1))
    run_b, chain_b = store_fake_chain(window.session, fake_record(steps[:2], seed=2))
    ki_steps = [{"index": 0, "applicable": True, "ki": 0.91, "reason": "states a factual claim", "evidence": []},
                {"index": 1, "applicable": True, "ki": 0.42, "reason": "states a factual claim", "evidence": []},
                {"index": 2, "applicable": False, "ki": None, "reason": "final answer only", "evidence": []}]

    def add_ki(store):
        judge = store.ensure_model({"path": "/models/judge.gguf", "sha256": "a" * 64})
        store.save_ki(chain_a, judge, "clinical", ki_steps, 0.665)

    window.session.write(add_ki)
    table = window.results.table
    ki_col = next(i for i, c in enumerate(table.steps_model.columns) if c.key == "ki")
    open_chain(qtbot, window, run_a, chain_a)
    assert not table.isColumnHidden(ki_col)
    model = table.steps_model
    assert [model.data(model.index(r, ki_col), Qt.ItemDataRole.UserRole) for r in range(3)] == [0.91, 0.42, "n/a"]
    assert model.data(model.index(0, ki_col)) == "0.91"
    open_chain(qtbot, window, run_b, chain_b)
    assert table.isColumnHidden(ki_col)


def test_steps_table_colour_scale_and_tsv(qtbot, window):
    record = fake_record(["a b", "c d", "e f", "g h"], seed=2)
    run_id, chain_id = store_fake_chain(window.session, record)
    open_chain(qtbot, window, run_id, chain_id)
    model = window.results.table.steps_model
    col = next(i for i, c in enumerate(model.columns) if c.key == "delta_nll")
    for row, step in enumerate(record["steps"]):
        color = model.data(model.index(row, col), Qt.ItemDataRole.BackgroundRole)
        if step["delta_nll"] > 0:
            assert color.green() > color.red()
        elif step["delta_nll"] < 0:
            assert color.red() > color.green()
    tsv = window.results.table.to_tsv().splitlines()
    assert tsv[0].split("\t")[:3] == ["#", "Step", "ΔNLL"]
    assert [float(line.split("\t")[2]) for line in tsv[1:]] == [s["delta_nll"] for s in record["steps"]]


@pytest.mark.slow
def test_layout_theme_and_recent_sessions_are_remembered(qtbot, make_window, data_dir, tmp_path):
    first = make_window()
    first.resize(1234, 777)
    first.docks["models"].hide()
    first.set_theme("dark")
    target = tmp_path / "kept.kiig"
    first.save_session_as(str(target))
    wait_idle(qtbot, first)
    first.show_view("compare")
    first.close()
    geometry = first.saveGeometry()
    assert theme().dark
    second = make_window(size=None)
    # the offscreen screen is 800x600, so Qt clamps the restored size: check what was restored from
    assert second.qsettings.value("window/geometry") == geometry
    assert not second.docks["models"].isVisible()
    assert second.theme_actions["dark"].isChecked()
    assert second.current_view() is second.compare
    assert second.session.path == target  # the last session is reopened
    assert str(target) in second.session.recent()
    assert [a.text() for a in second.recent_menu.actions()][0] == str(target)
    second.set_theme("light")
    assert QApplication.palette().color(QPalette.ColorRole.Window).lightness() > 200
    second.reset_layout()
    assert second.docks["models"].isVisible()


@pytest.mark.slow
def test_dark_theme_applies_to_palette_and_plots(qtbot, window):
    window.set_theme("dark")
    try:
        assert QApplication.palette().color(QPalette.ColorRole.Window).lightness() < 80
        fig = window.results.answer_fig
        assert fig.backgroundBrush().color().lightness() < 80
        axis = fig.curve_panel.getAxis("left")
        assert axis.textPen().color().lightness() > 150
    finally:
        window.set_theme("light")
    assert window.results.answer_fig.backgroundBrush().color().lightness() > 200


@pytest.mark.slow
def test_menus_shortcuts_and_empty_states(qtbot, window):
    actions = {a.text().replace("&", ""): a for menu in window.menuBar().findChildren(type(window.recent_menu))
               for a in menu.actions()}
    expected = {"New Session": "Ctrl+N", "Open Session…": "Ctrl+O", "Save Session As…": "Ctrl+Shift+S",
                "Generate Reasoning": "Ctrl+G", "Score Chain": "Ctrl+Return", "Copy Steps Table (TSV)": "Ctrl+Shift+C",
                "Quit": "Ctrl+Q", "Results": "Ctrl+2", "Cancel Running Task": "Esc"}
    for text, keys in expected.items():
        assert text in actions, text
        assert actions[text].shortcut().toString() == keys, text
    for title in ("About KIIG Desktop", "Add Model…", "Import Reasoning Text…", "Reset Layout"):
        assert title in actions
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    qtbot.keyClick(window, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)
    assert window.current_view() is window.compare
    assert window.results.stack.currentIndex() == 0  # empty-state hints
    assert window.compare.stack.currentIndex() == 0
    assert window.sessions.stack.currentIndex() == 0
    assert window.analyze.steps_editor.stack.currentIndex() == 0


def test_autosave_session_lifecycle_export_and_delete(qtbot, make_window, data_dir, tmp_path):
    window = make_window()
    path = window.session.path
    assert window.session.untitled and path.parent == data_dir / "sessions"
    run_id, _ = store_fake_chain(window.session, fake_record(["x y", "z w"]))
    window.session.notify_changed()
    qtbot.waitUntil(lambda: window.sessions.tree.topLevelItemCount() == 1, timeout=10000)
    out = tmp_path / "run.csv"
    window.sessions.export_run(run_id, str(out), "csv")
    wait_idle(qtbot, window)
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["step_text"] for r in rows] == ["x y", "z w"]
    window.sessions.delete_runs([run_id])
    qtbot.waitUntil(lambda: window.sessions.tree.topLevelItemCount() == 0, timeout=10000)
    window.new_session()  # the empty autosave file is removed when it is left
    assert not path.exists() and window.session.path != path
    # an autosave holding only a corpus is kept: a corpus is the user's work too
    from kiig_desktop.knowledge.corpus import add_documents
    from kiig_desktop.resources import resource_path

    with_corpus = window.session.path
    window.session.write(lambda st: add_documents(st.db, "refs", [resource_path("corpus", "clinical_facts.jsonl")]))
    window.new_session()
    assert with_corpus.exists() and window.session.path != with_corpus


def test_steps_editor_operations(qtbot, window):
    editor = window.analyze.steps_editor
    editor.set_steps([StepDraft("one", 0, 3), StepDraft("two", 4, 7), StepDraft("three", 8, 13)])
    editor.table.setCurrentCell(0, 0)
    editor.buttons["merge"].click()
    assert [s.text for s in editor.steps()] == ["one two", "three"]
    editor.table.setCurrentCell(1, 0)
    editor.buttons["up"].click()
    assert [s.text for s in editor.steps()] == ["three", "one two"]
    assert editor.steps()[0].start == 8  # a moved step keeps its place in the text
    editor.table.item(0, 0).setText("three!")
    assert editor.steps()[0].start is None  # an edited step is located again when scoring
    editor.buttons["delete"].click()
    assert len(editor.steps()) == 1


def test_question_form_round_trip(qtbot, window):
    form = window.analyze.form
    form.set_question(QUESTION)
    q = form.question()
    assert q.options == QUESTION.options and q.correct_letter() == "B" and q.answer == "Metformin"
    form.correct.setCurrentIndex(0)
    assert form.question().answer == "Insulin" and form.question().correct_letter() == "A"
    form.mcq.setChecked(False)
    form.answer_edit.setText("42")
    assert form.question().options is None and form.question().kind == "numeric"
    assert fake_model().source == "folder"


def test_pyside_keeps_none_alive(gui_app):
    """PySide6 6.12.0 dropped a reference to None on every void call: Python 3.11 then aborts."""
    label = QLabel()
    before = sys.getrefcount(None)
    for _ in range(2000):
        label.setText("x")
    assert sys.getrefcount(None) >= before - 50


@pytest.mark.slow
def test_window_fits_a_small_laptop_screen(qtbot, window):
    """Every tab scrolls rather than clipping: the window can shrink to 1024x640 (a 1366x768
    laptop with a panel has about 1366x728), and the first start fits the available screen."""
    hint = window.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 640, hint
    avail = window.screen().availableGeometry()
    window.qsettings.remove("window/geometry")
    window._default_geometry()
    assert window.width() <= avail.width() and window.height() <= avail.height()
    # a loaded chain with a long, wrapping question: no scrolling where there is room
    record = fake_record(["Step one.", "Step two.", "Step three."], reasoning="Step one.\nStep two.\nStep three.")
    run_id, chain_id = store_fake_chain(window.session, record)
    open_chain(qtbot, window, run_id, chain_id)
    window.resize(1600, 1000)
    page = window.tabs.currentWidget()
    qtbot.waitUntil(lambda: page.viewport().height() > 700)
    wait_idle(qtbot, window)
    assert page.verticalScrollBar().maximum() == 0 and page.horizontalScrollBar().maximum() == 0
    assert page.widget().height() == page.viewport().height()
    window.resize(1024, 640)
    for key in window.views:
        window.show_view(key)
        qtbot.waitUntil(lambda: window.size().width() == 1024)
        assert window.current_view() is window.views[key]
        assert window.width() == 1024 and window.height() == 640, key
        page = window.tabs.currentWidget()
        wait_idle(qtbot, window)
        hint = page.widget().minimumSizeHint()
        assert page.widget().height() >= hint.height() and page.widget().width() >= hint.width(), key


@pytest.mark.slow
def test_step_buttons_follow_the_selection_and_new_steps_clear_the_score_status(qtbot, window):
    view = window.analyze
    editor = view.steps_editor
    editor.set_steps([])
    b = editor.buttons
    assert b["add"].isEnabled() and not any(b[k].isEnabled() for k in ("delete", "merge", "up", "down"))
    editor.set_steps([StepDraft("one", 0, 3), StepDraft("two", 4, 7)])
    editor.table.setCurrentCell(0, 0)
    assert b["delete"].isEnabled() and b["merge"].isEnabled() and b["down"].isEnabled() and not b["up"].isEnabled()
    editor.table.setCurrentCell(1, 0)
    assert b["up"].isEnabled() and not b["merge"].isEnabled() and not b["down"].isEnabled()

    view.score_status.setText("Scored 2 steps in 0.5 s · saved to the session (run 1, chain 1)")
    view.progress.setVisible(True)
    editor.set_steps([StepDraft("a different step", 0, 16)])
    assert view.score_status.text() == "" and not view.progress.isVisible()


def test_status_bar_lists_and_cancels_real_work_not_quiet_session_reads(qtbot, window):
    import threading

    from kiig_desktop.events import CancelToken

    release = threading.Event()

    def slow(cancel: CancelToken) -> str:
        while not release.wait(0.02):
            cancel.check()
        return "done"

    work = window.tasks.run("Scoring with a model", slow)
    read = window.tasks.run("Reading the session", slow, quiet=True)
    indicator = window.task_indicator
    qtbot.waitUntil(lambda: indicator.isVisibleTo(window), timeout=5000)
    assert indicator.label.text() == "Scoring with a model…"  # the quiet read is neither shown nor counted
    indicator._cancel()
    qtbot.waitUntil(lambda: not work.running, timeout=5000)
    assert read.running  # Cancel stopped the listed task, not the read that started after it
    release.set()
    qtbot.waitUntil(lambda: not read.running, timeout=5000)
    assert not indicator.isVisibleTo(window)


def test_hovering_a_step_does_not_scroll_the_reasoning_back_to_the_selection(qtbot, gui_app):
    from kiig_desktop.gui.results.reasoning_view import ReasoningView

    view = ReasoningView(read_only=True)
    qtbot.addWidget(view)
    view.resize(400, 120)
    view.show()
    lines = [f"Step {i}: a sentence long enough to take a line of its own." for i in range(60)]
    text = "\n".join(lines)
    view.set_plain(text)
    starts = [text.index(line) for line in lines]
    view.set_spans([(s, s + len(line)) for s, line in zip(starts, lines, strict=True)])
    bar = view.verticalScrollBar()
    view.set_highlight(50)
    at_selection = bar.value()
    assert at_selection > 0
    bar.setValue(0)  # the user scrolls up to read, and moves the mouse over step 2
    view.set_highlight(50, hovered=2)
    assert bar.value() == 0
    view.set_highlight(55)  # a new selection does scroll
    assert bar.value() >= at_selection
