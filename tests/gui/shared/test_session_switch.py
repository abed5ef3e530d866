"""A task keeps writing to the session it started on: opening (or creating) another session while
it runs sends nothing of it to the new one (real window offscreen, real SQLite, the embedded model).

Each test holds the window's session lock while it switches sessions, so the task cannot write
before the switch: the task is mid-run (its first progress event arrived) and its save waits.
"""

from __future__ import annotations

import pytest

from kiig_desktop.events import Message, Progress
from kiig_desktop.gui.dashboard.batch_task import RunStarted
from kiig_desktop.store import SessionStore

from ..conftest import load_default, wait_idle
from ..records import QUESTION, fake_record, store_fake_chain

pytestmark = pytest.mark.slow

REASONING = ("Type 2 diabetes is usually treated with lifestyle change and metformin first.\n"
             "Metformin lowers glucose production in the liver.\n"
             "So the answer is B.")


def switch_mid_run(qtbot, window, task, switch, mid=lambda event: isinstance(event, Progress)) -> None:
    """At the task's first progress event that ``mid`` accepts (the session lock holds back its next
    read or write), run ``switch``."""
    seen: list[object] = []
    task.progress.connect(lambda event: seen.append(event) if mid(event) else None)
    qtbot.waitUntil(lambda: bool(seen), timeout=120000)
    assert task.running
    switch()
    window.session.lock.release()
    wait_idle(qtbot, window, timeout=300000)


def stored(path) -> tuple[list[dict], list[list[dict]]]:
    """The runs in the session file and the KI evaluations of each chain."""
    with SessionStore.open(path, create=False, write=False) as store:
        runs = store.list_runs()
        ki = [store.load_ki(c["id"]) for r in runs for c in store.chains_for_run(r["id"])]
    return runs, ki


def test_scoring_saves_into_the_session_it_started_on(qtbot, window):
    load_default(qtbot, window)
    first = window.session.path
    window.analyze.form.set_question(QUESTION)
    window.analyze.set_reasoning_text(REASONING)
    window.session.lock.acquire()
    window.analyze.score()
    switch_mid_run(qtbot, window, window.analyze.task, window.new_session)

    second = window.session.path
    assert second != first
    assert first.exists(), "the session the scoring started on was left blank (and discarded)"
    runs, _ki = stored(first)
    assert len(runs) == 1, "the scoring did not land in the session it started on"
    assert stored(second)[0] == [], "the scoring was saved into the session opened while it ran"
    # the open session's screens show nothing of the other one; the message says where it went
    assert window.results.result is None and window.results.stack.currentWidget() is window.results.empty
    assert window.message_bar.isVisible() and first.name in window.message_bar.text()
    # the first session was closed when the task ended: it opens again for writing
    window.open_session(str(first))
    assert window.session.path == first and len(window.session.read(lambda st: st.list_runs())) == 1


def test_ki_saves_into_the_session_of_its_chain(qtbot, window, tmp_path):
    load_default(qtbot, window)
    window.corpora.import_demo()
    qtbot.waitUntil(lambda: window.corpora.names() == ["clinical"] and not window.tasks.active(), timeout=60000)
    first = window.session.path
    steps = REASONING.splitlines()[:2]
    run_id, chain_id = store_fake_chain(window.session, fake_record(steps))
    window.results.open_chain(run_id, chain_id)
    wait_idle(qtbot, window)
    assert window.results.result is not None and window.results.result.chain_id == chain_id
    window.ki_panel.corpus.setCurrentIndex(window.ki_panel.corpus.findData("clinical"))

    other = tmp_path / "other.kiig"
    SessionStore.open(other, create=True).close()
    window.session.lock.acquire()
    task = window.ki_panel.run()
    assert task is not None
    judging = lambda event: isinstance(event, Message) and event.text.startswith("Judging")  # noqa: E731 - then it reads the corpus
    switch_mid_run(qtbot, window, task, lambda: window.open_session(str(other)), judging)

    assert window.session.path == other
    runs, ki = stored(first)
    assert [len(k) for k in ki] == [1], "the Knowledge Index did not land on its chain's session"
    assert stored(other) == ([], []), "the Knowledge Index went into the session opened while it ran"
    assert window.ki_panel.evaluation.count() == 0 and window.results.result is None


def test_a_held_session_can_be_opened_again_and_closes_when_released(qtbot, window, tmp_path):
    """Going back to the session a task still holds reuses its writer (no second writer lock)."""
    first = window.session.path
    store_fake_chain(window.session, fake_record(["one step", "two steps"]))
    held = window.session.hold()
    window.session.open(tmp_path / "b.kiig")
    assert window.session.held_elsewhere() == [first.name] and not held.current
    assert len(held.read(lambda st: st.list_runs())) == 1
    window.session.open(first, create=False)
    assert held.current and window.session.store is held.store and window.session.held_elsewhere() == []
    window.session.open(tmp_path / "b.kiig")
    held.release()  # the task ended: its session is closed, so another writer may open it
    assert window.session.held_elsewhere() == []
    with SessionStore.open(first, create=False) as again:
        assert len(again.list_runs()) == 1


def test_a_batch_saves_into_the_session_it_started_on(qtbot, window):
    """The switch happens as the run is announced (the run exists, no chain is saved yet: the model
    still has to generate); every chain then lands in the first session and the run ends there."""
    window.show_view("dashboard")
    view, form = window.dashboard, window.dashboard.form
    qtbot.waitUntil(lambda: form.dataset_ready() and not view.pending and not window.tasks.active(), timeout=30000)
    form.limit.setValue(1)
    form.max_tokens.setValue(32)
    form.parallel.setValue(1)
    first = window.session.path
    task = form.run()
    assert task is not None
    switched: list[bool] = []

    def on_event(event: object) -> None:
        if isinstance(event, RunStarted) and not switched:
            switched.append(True)
            window.new_session()

    task.progress.connect(on_event)
    wait_idle(qtbot, window, timeout=300000)
    assert switched and window.session.path != first
    assert first.exists(), "the session the batch started on was left blank (and discarded)"
    runs, _ki = stored(first)
    assert [(r["status"], r["n_chains"]) for r in runs] == [("finished", 1)], runs
    assert stored(window.session.path)[0] == []
    assert "no longer open" in form.status.text() and view.run_id is None


def test_a_comparison_saves_into_the_session_it_started_on(qtbot, window, tmp_path):
    info = load_default(qtbot, window)
    window.analyze.form.set_question(QUESTION)
    window.analyze.max_tokens.setValue(40)
    first = window.session.path
    window.compare.set_checked([info.id])
    window.session.lock.acquire()
    window.compare.run_comparison()
    task = window.compare.task
    assert task is not None
    other = tmp_path / "other.kiig"
    switch_mid_run(qtbot, window, task, lambda: window.session.open(other))  # a new session file, opened

    assert window.session.path == other
    assert first.exists(), "the session the comparison started on was left blank (and discarded)"
    assert [r["n_chains"] for r in stored(first)[0]] == [1], "the compared chain did not land where it started"
    assert stored(other)[0] == []
    assert window.compare.results == [] and "no longer open" in window.compare.status.text()
