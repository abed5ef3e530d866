"""Reviewing a dataset run in the real window by keyboard alone (offscreen Qt, QTest key presses)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtTest import QTest

from kiig_desktop.gui.review.review_panel import SETTINGS_KEY
from kiig_desktop.runs.batch import batch_key
from kiig_desktop.store import reviews

from .conftest import wait_idle
from .records import fake_record

SHA = "a" * 64
CHAINS = {  # item -> steps; the queue order (unreviewed, in order) is the save order
    "it-1": ["Metformin is first-line for type 2 diabetes.", "It lowers hepatic glucose output.", "So the answer is B."],
    "it-2": ["Insulin is always first-line.", "So the answer is A."],
    "it-3": ["Glipizide is a sulfonylurea.", "So the answer is C."],
}


def _batch_run(session) -> tuple[int, list[int]]:
    def build(st):
        model = st.ensure_model({"path": "/models/a.gguf", "sha256": SHA, "name": "model-a"})
        scorer = st.ensure_model({"path": "/models/fake.gguf", "sha256": "f" * 64, "name": "fake"})
        settings = {"method": "kiig-batch-1", "subjects": [SHA], "dataset_sha256": "d" * 64, "n_items": len(CHAINS)}
        run, _ = st.find_or_create_run("batch", settings, {"scorer": scorer}, {"kiig": "test"}, seed=0, name="ward round")
        ids = []
        for n, (item, steps) in enumerate(CHAINS.items()):
            rec = fake_record(steps, seed=n + 1)
            rec.update(id=item, subject={"path": "/models/a.gguf", "sha256": SHA, "name": "model-a"}, correct=n == 0)
            item_data = {"id": item, "question": f"Question {item}", "answer": "Metformin",
                         "options": {"A": "Insulin", "B": "Metformin", "C": "Glipizide"}, "answer_idx": "B"}
            gen = {"text": rec["reasoning"], "tokens": [], "model_id": model, "extracted_answer": "B", "correct": n == 0}
            ids.append(st.save_chain(run, batch_key(SHA, item), rec, item=item_data, generation=gen))
        st.set_run_status(run, "finished")
        return run, ids

    return session.write(build)


def _press(qtbot, window, *keys) -> None:
    for key in keys:
        QTest.keyClick(window.results.table, key)


def _shown(qtbot, window, chain_id: int) -> None:
    qtbot.waitUntil(lambda: window.results.result is not None and window.results.result.chain_id == chain_id
                    and not window.results.pending, timeout=20000)


@pytest.mark.slow
def test_a_reviewer_reviews_a_whole_run_by_keyboard(qtbot, make_window, data_dir):
    window = make_window(size=(1366, 768))
    run, ids = _batch_run(window.session)
    window.sessions.open_requested.emit(run, ids[0])
    _shown(qtbot, window, ids[0])
    panel, results = window.review_panel, window.results
    results.table.setFocus()
    qtbot.waitUntil(lambda: results.table.hasFocus(), timeout=5000)

    # no reviewer yet: the first verdict key asks for the name and stores nothing
    _press(qtbot, window, Qt.Key.Key_1)
    assert panel.reviewer_edit.hasFocus()
    assert window.session.read(lambda st: reviews.step_reviews(st, run, history=True)) == []
    QTest.keyClicks(panel.reviewer_edit, "Dr Ada")
    QTest.keyClick(panel.reviewer_edit, Qt.Key.Key_Return)
    assert results.table.hasFocus() and window.qsettings.value(SETTINGS_KEY) == "Dr Ada"

    # chain 1, three steps: knowledge, role, a note on step 2, the whole-chain verdict
    _press(qtbot, window, Qt.Key.Key_1, Qt.Key.Key_H, Qt.Key.Key_Down)
    assert results.selected == 1 and panel.step_heading.text() == "Step 2 of 3"
    _press(qtbot, window, Qt.Key.Key_1, Qt.Key.Key_M, Qt.Key.Key_N)
    assert panel.note_edit.hasFocus()
    QTest.keyClicks(panel.note_edit, "true, but beside the point")
    QTest.keyClick(panel.note_edit, Qt.Key.Key_Return)
    assert results.table.hasFocus()
    _press(qtbot, window, Qt.Key.Key_Down, Qt.Key.Key_3, Qt.Key.Key_I, Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_F)
    assert panel.buttons[("knowledge", "cannot_tell")].isChecked() and panel.buttons[("verdict", "flawed")].isChecked()
    assert "1 of 3 chains of run" in panel.progress.text()

    # Page Down: the next unreviewed chain opens at its first step; chain 2 and 3 by keys alone
    for chain_id, keys in ((ids[1], [Qt.Key.Key_2, Qt.Key.Key_M, Qt.Key.Key_Down, Qt.Key.Key_2, Qt.Key.Key_I, Qt.Key.Key_S]),
                           (ids[2], [Qt.Key.Key_1, Qt.Key.Key_H, Qt.Key.Key_Down, Qt.Key.Key_1, Qt.Key.Key_H, Qt.Key.Key_S])):
        _press(qtbot, window, Qt.Key.Key_PageDown)
        _shown(qtbot, window, chain_id)
        qtbot.waitUntil(lambda: results.selected == 0, timeout=5000)
        results.table.setFocus()
        _press(qtbot, window, *keys)
    assert "3 of 3 chains of run" in panel.progress.text()
    _press(qtbot, window, Qt.Key.Key_PageDown)  # nothing left to review: it says so and stays
    assert results.result.chain_id == ids[2]

    def stored(st):
        return ({(r["chain_key"].split(":")[-1], r["step_index"]): (r["knowledge"], r["role"], r["note"])
                 for r in reviews.step_reviews(st, run)},
                {r["chain_key"].split(":")[-1]: r["verdict"] for r in reviews.chain_reviews(st, run)},
                len(reviews.step_reviews(st, run, history=True)), reviews.progress(st, run))

    steps, chains, n_rows, progress = window.session.read(stored)
    assert steps == {
        ("it-1", 0): ("correct", "helps", None), ("it-1", 1): ("correct", "misleading", "true, but beside the point"),
        ("it-1", 2): ("cannot_tell", "irrelevant", None),
        ("it-2", 0): ("incorrect", "misleading", None), ("it-2", 1): ("incorrect", "irrelevant", None),
        ("it-3", 0): ("correct", "helps", None), ("it-3", 1): ("correct", "helps", None),
    }
    assert chains == {"it-1": "flawed", "it-2": "sound", "it-3": "sound"}
    assert n_rows == 2 * 7 + 1  # a row per change: two verdicts per step, and the note
    assert progress == {"reviewed": 3, "total": 3}

    # the name is kept in the settings file for the next start
    window.qsettings.sync()
    assert QSettings(window.qsettings.fileName(), QSettings.Format.IniFormat).value(SETTINGS_KEY) == "Dr Ada"

    # the Dashboard shows the progress and the agreement numbers of the run
    window.show_view("dashboard")
    wait_idle(qtbot, window)
    qtbot.waitUntil(lambda: "3 of 3 chains reviewed" in window.dashboard.review_note.text(), timeout=20000)
    assert window.dashboard.review_note.isVisible()
    assert "KI vs knowledge AUROC" in window.dashboard.review_note.text()


@pytest.mark.slow
def test_the_queue_filters_a_kept_name_and_a_review_made_on_an_earlier_version(qtbot, make_window, data_dir):
    window = make_window(size=(1366, 768))
    window.qsettings.setValue(SETTINGS_KEY, "Dr Kept")
    run, ids = _batch_run(window.session)
    from kiig_desktop.gui.review.review_panel import ReviewPanel

    panel = ReviewPanel(window.session, window.results, window.qsettings)  # a new start reads the kept name
    assert panel.reviewer() == "Dr Kept"
    panel.deleteLater()
    panel, results = window.review_panel, window.results
    panel.reviewer_edit.setText("Dr Kept")
    window.sessions.open_requested.emit(run, ids[0])
    _shown(qtbot, window, ids[0])
    panel.queue_combo.setCurrentIndex(panel.queue_combo.findData("wrong"))
    results.table.setFocus()
    for expected in (ids[1], ids[2], ids[1]):  # only the wrong answers, round and round
        _press(qtbot, window, Qt.Key.Key_PageDown)
        _shown(qtbot, window, expected)
        results.table.setFocus()
    _press(qtbot, window, Qt.Key.Key_2, Qt.Key.Key_M)
    assert panel.buttons[("knowledge", "incorrect")].isChecked() and not panel.stale.isVisibleTo(panel)
    _press(qtbot, window, Qt.Key.Key_Delete)
    assert not any(b.isChecked() for (f, _v), b in panel.buttons.items() if f != "verdict")
    _press(qtbot, window, Qt.Key.Key_1)

    def rescore(st):  # the chain is scored again: the review was made on an earlier version
        key = reviews.chain_key(st, ids[1])
        record = st.load_chain(ids[1])
        record["info_gain_mean"] += 1.0
        return st.save_chain(run, key, record, item=st.load_item(ids[1]))

    new_id = window.session.write(rescore)
    assert new_id == ids[1]  # re-saved in place: the chain keeps its id, so wait for the reload itself
    with qtbot.waitSignal(window.results.shown, timeout=20000):
        window.sessions.open_requested.emit(run, new_id)
    _shown(qtbot, window, new_id)
    results.select_step(0)
    assert panel.stale.isVisibleTo(panel) and panel.buttons[("knowledge", "correct")].isChecked()
    results.table.setFocus()
    _press(qtbot, window, Qt.Key.Key_1)  # confirming it on the new version clears the mark
    assert not panel.stale.isVisibleTo(panel)
    history = window.session.read(lambda st: [(r["knowledge"], r["role"], r["stale"]) for r in reviews.step_reviews(st, run, history=True)])
    assert history == [("incorrect", None, True), ("incorrect", "misleading", True), (None, None, True), ("correct", None, True),
                       ("correct", None, False)]


def test_verdict_keys_work_in_presentation_mode_on_the_step_shown(qtbot, make_window, data_dir):
    window = make_window(size=(1366, 768))
    run, ids = _batch_run(window.session)
    window.qsettings.setValue(SETTINGS_KEY, "Dr Ada")
    window.review_panel.reviewer_edit.setText("Dr Ada")
    window.sessions.open_requested.emit(run, ids[0])
    _shown(qtbot, window, ids[0])
    present = window.present()
    qtbot.waitUntil(lambda: present.isVisible() and not present.view.pending, timeout=20000)
    for key in (Qt.Key.Key_Right, Qt.Key.Key_2, Qt.Key.Key_M, Qt.Key.Key_F):  # step 2: incorrect, misleading; chain flawed
        QTest.keyClick(present, key)
        qtbot.wait(10)
    assert present.step == 1
    steps = window.session.read(lambda st: reviews.step_reviews(st, run))
    chains = window.session.read(lambda st: reviews.chain_reviews(st, run))
    assert [(r["step_index"], r["knowledge"], r["role"], r["reviewer"]) for r in steps] == [(1, "incorrect", "misleading", "Dr Ada")]
    assert [(r["verdict"], r["reviewer"]) for r in chains] == [("flawed", "Dr Ada")]
    present.close()
