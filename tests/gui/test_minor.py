"""The small things of issue 27, item 11: window title, option labels, run numbers, the status
bar, which token count is which, one number format for Results and Compare, the split note."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QApplication

from kiig_desktop.runs.analysis import Question, load_result

from .conftest import wait_idle
from .records import QUESTION, fake_model, fake_record, store_fake_chain


def _settle() -> None:
    for _ in range(3):
        QApplication.processEvents()


def test_the_window_title_names_the_app_once(window):
    assert QApplication.applicationDisplayName() == "KIIG Desktop"  # the platform appends it to every title
    assert window.windowTitle() == window.session.display_name()
    assert "KIIG Desktop" not in window.windowTitle()


def test_the_correct_option_list_shows_each_options_text(window):
    form = window.analyze.form
    form.set_question(QUESTION)
    assert [form.correct.itemText(i) for i in range(form.correct.count())] == ["A. Insulin", "B. Metformin", "C. Glipizide"]
    assert form.correct.currentText() == "B. Metformin" and form.question().answer_idx == "B"
    form.options.item(2, 0).setText("Sitagliptin")
    assert form.correct.itemText(2) == "C. Sitagliptin"
    form.correct.setCurrentIndex(2)
    q = form.question()
    assert (q.answer_idx, q.answer) == ("C", "Sitagliptin")


def test_runs_of_the_same_name_are_told_apart_by_number(qtbot, window):
    from kiig_desktop.runs.analysis import save_analysis

    for seed in (1, 2):  # two runs of different settings, both named "Compare · fake → fake"
        window.session.write(lambda st, s=seed: save_analysis(
            st, q=QUESTION, record=fake_record(["One.", "Two."], seed=s), scorer=fake_model(),
            scorer_backend={"n_ctx": 1024 * s}, split_mode="auto", name="Compare · fake → fake"))
    window.session.notify_changed()
    window.show_view("sessions")
    tree = window.sessions.tree
    qtbot.waitUntil(lambda: tree.topLevelItemCount() == 2, timeout=10000)
    titles = sorted(tree.topLevelItem(i).text(0) for i in range(2))
    assert titles == ["Run 1 · Compare · fake → fake", "Run 2 · Compare · fake → fake"]


def _where(window, widget) -> QRect:
    return QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())


def test_status_bar_texts_never_overlap(qtbot, make_window, tmp_path):
    import threading

    window = make_window(size=(1311, 721))
    release = threading.Event()
    window.tasks.run("Batch evaluation of clinical_mcq.jsonl with three subject models and a judge", lambda _c: release.wait(30))
    try:
        window.models_label.setText("")  # as _update_models_label fills it, with two long model names
        from kiig_desktop.gui.shared.widgets import fit_text

        fit_text(window.models_label, "Loaded: SmolLM2-135M-Instruct Q4_1, Qwen2.5-0.5B-Instruct-distilled Q8_0")
        window.session.open(str(tmp_path / ("ward-7-quarterly-review-of-reasoning-models-" * 2 + ".kiig")))
        window.show_message("Model loaded: Qwen2.5-0.5B-Instruct-distilled Q8_0 from /home/analyst/models/qwen/large",
                            "info")
        _settle()
        bar = window.statusBar()
        parts = [w for w in (window.task_indicator, window.models_label, window.session_label) if w.isVisible()]
        assert len(parts) == 3
        rects = [_where(bar, w) for w in parts]
        for i, a in enumerate(rects):
            assert 0 <= a.left() and a.right() <= bar.width(), (type(parts[i]).__name__, a.getRect(), bar.width())
            for b in rects[i + 1:]:
                assert not a.intersects(b), (a.getRect(), b.getRect())
        message = bar.currentMessage()
        assert message.endswith("…")  # cut to fit, beside the labels, not under them
        assert bar.fontMetrics().horizontalAdvance(message) < min(r.left() for r in rects)
        assert window.models_label.toolTip() and window.session_label.toolTip()  # the whole texts
    finally:
        release.set()
        wait_idle(qtbot, window)


@pytest.mark.slow
def test_the_token_counts_say_whose_they_are(window):
    card = window.results.cards["steps"]
    assert card.caption.text() == "Steps · scorer tokens"
    assert "subject model wrote" in card.toolTip() or "subject model wrote" in card.caption.toolTip()


@pytest.mark.slow
def test_results_and_compare_write_a_number_alike(qtbot, window):
    record = fake_record(["Metformin is first-line.", "It lowers glucose.", "So B."])
    record["info_gain_mean"], record["delta_nll_mean"] = -14.384812, 0.0123456
    run_id, chain_id = store_fake_chain(window.session, record)
    result = window.session.read(lambda st: load_result(st, run_id, chain_id))
    window.results.show_result(result)
    window.compare.add_result(result)
    wait_idle(qtbot, window)
    table = window.compare.table
    col = {table.horizontalHeaderItem(c).text(): c for c in range(table.columnCount())}
    assert table.item(0, col["Mean InfoGain"]).text() == window.results.cards["info_gain"].value.text() == "-14.385"
    assert table.item(0, col["Mean ΔNLL"]).text() == window.results.cards["delta_nll"].value.text() == "+0.0123"


def test_the_split_note_ends_one_sentence_once(window):
    view = window.analyze
    view.form.set_question(Question("What is 2 + 3?", "5"))
    view.set_reasoning_text("Two plus three is five.\nThe answer is 5.")
    view.split()
    note = view.split_note.text()
    assert "final answer kept aside: The answer is 5." in note
    assert ".." not in note and note.endswith("Double-click a step to edit it.")
