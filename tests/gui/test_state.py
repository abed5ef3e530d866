"""Stale state (issue 27, item 8): what a screen shows belongs to the session open now and to the
work under way now; nothing of the last session, the last error or the last run stays behind."""

from __future__ import annotations

import pytest

from kiig_desktop.resources import resource_path

from .conftest import load_default, wait_idle
from .records import QUESTION

pytestmark = pytest.mark.slow

REASONING = ("Type 2 diabetes is usually treated with lifestyle change and metformin first.\n"
             "Metformin lowers glucose production in the liver.\n"
             "So the answer is B.")


def test_a_new_session_shows_nothing_of_the_last_one(qtbot, window):
    load_default(qtbot, window)
    window.analyze.form.set_question(QUESTION)
    window.analyze.set_reasoning_text(REASONING)
    window.analyze.score()  # real scoring, saved in the session
    wait_idle(qtbot, window)
    result = window.results.result
    assert result is not None and window.results.stack.currentIndex() == 1
    assert f"saved to the session (run {result.run_id}, chain {result.chain_id})" in window.analyze.score_status.text()
    window.compare.add_result(result)
    assert window.compare.results

    old = window.session.path
    window.new_session()
    assert window.session.path != old
    assert window.results.result is None and window.results.stack.currentWidget() is window.results.empty
    assert window.results.table.steps_model.rowCount() == 0
    assert window.analyze.score_status.text() == ""
    assert window.compare.results == [] and window.compare.stack.currentIndex() == 0
    assert window.ki_panel.evaluation.count() == 0


def test_a_successful_open_clears_the_error_of_a_failed_one(qtbot, window, tmp_path):
    other = tmp_path / "notes.kiig"
    other.write_text("not a session\n", encoding="utf-8")
    window.open_session(str(other))
    assert window.message_bar.isVisible() and window.message_bar.level == "error"
    good = tmp_path / "good.kiig"
    window.session.open(str(good))  # creates it
    window.new_session()
    window.open_session(str(good))
    assert window.session.path == good
    assert not window.message_bar.isVisible(), window.message_bar.text()
    # an error that is not about opening stays until dismissed
    window.show_message("the scorer crashed", "error")
    window.new_session()
    assert window.message_bar.text() == "the scorer crashed"


def test_the_resume_note_goes_when_the_run_ends(qtbot, window):
    window.show_view("dashboard")
    form = window.dashboard.form
    qtbot.waitUntil(form.dataset_ready, timeout=20000)
    assert form.dataset.path == str(resource_path("datasets", "clinical_mcq.jsonl"))
    form.limit.setValue(1)
    form.max_tokens.setValue(16)
    form.run()
    wait_idle(qtbot, window)
    assert form.run_id is not None and "finished" in form.status.text()
    form.run()  # the same settings: every chain is already done
    wait_idle(qtbot, window)
    assert "1 from before" in form.status.text()
    assert form.resume_note.text() == ""
