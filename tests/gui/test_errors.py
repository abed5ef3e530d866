"""Error paths: bad model files dropped on the window, a worker killed mid-run, a context overflow,
closing the window during a run. Every error is a readable message; the app keeps running."""

from __future__ import annotations

import os
import signal

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent

from kiig_desktop.gui.shared.engines import worker_pid

from .conftest import load_default, start_generation, wait_idle, wait_no_workers, worker_processes
from .test_end_to_end import QUESTION

pytestmark = pytest.mark.slow


def drop(window, paths: list[str]) -> bool:
    """Drag files onto the window and drop them, as a file manager would."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    enter = QDragEnterEvent(window.rect().center(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    window.dragEnterEvent(enter)
    if not enter.isAccepted():
        return False
    event = QDropEvent(QPointF(window.rect().center()), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    return True


def test_bad_gguf_dropped_on_the_window(qtbot, window, tmp_path, builtin_path):
    before = [m.id for m in window.engines.models]
    fake = tmp_path / "not-a-model.gguf"
    fake.write_bytes(b"<html><body>404 Not Found</body></html>" * 4)
    assert drop(window, [str(fake)])
    qtbot.waitUntil(lambda: "not a GGUF model file" in window.message_bar.text(), timeout=10000)
    assert window.message_bar.level == "error"
    assert [m.id for m in window.engines.models] == before

    cut = tmp_path / "interrupted-download.gguf"
    with open(builtin_path, "rb") as src:
        cut.write_bytes(src.read(2_000_000))
    assert drop(window, [str(cut)])
    qtbot.waitUntil(lambda: "truncated" in window.message_bar.text(), timeout=10000)
    assert [m.id for m in window.engines.models] == before

    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    assert not drop(window, [str(pdf)])  # refused at drag-enter: the cursor shows it cannot drop
    assert window.isVisible() and window.engines.models


def test_worker_killed_mid_generation_is_reported_and_recovers(qtbot, window):
    info = load_default(qtbot, window)
    client = window.engines.client(info.id)
    pid = worker_pid(client)
    analyze = start_generation(window, QUESTION, 2000)
    qtbot.waitUntil(lambda: analyze._n_tokens >= 5, timeout=30000)
    os.kill(pid, signal.SIGKILL)
    wait_idle(qtbot, window)
    text = window.message_bar.text()
    assert "worker" in text and "killed" in text, text
    assert analyze.generation is None and not analyze.busy
    assert pid not in worker_processes()
    assert not window.engines.is_loaded(info.id)  # the panel shows it as not loaded any more
    # the next request starts a fresh worker
    analyze.max_tokens.setValue(12)
    analyze.generate()
    wait_idle(qtbot, window)
    assert analyze.generation is not None and analyze.generation["tokens"]
    assert worker_pid(client) not in (None, pid)


def test_context_overflow_is_a_readable_message(qtbot, window):
    info = window.engines.default_model()
    window.engines.set_options(info.id, 512, 0, None)
    load_default(qtbot, window)
    assert window.engines.client(info.id).options.n_ctx == 512
    analyze = window.analyze
    analyze.form.set_question(QUESTION)
    analyze.set_reasoning_text("\n".join(f"{i}. Metformin lowers hepatic glucose output and is weight neutral, "
                                         "so guidelines recommend it first for most adults." for i in range(1, 31)))
    analyze.score()
    wait_idle(qtbot, window)
    text = window.message_bar.text()
    assert "context" in text.lower(), text
    assert window.results.result is None  # nothing half-scored was saved or shown
    assert window.session.read(lambda st: st.list_runs()) == []


def test_closing_during_a_run_cancels_and_leaves_no_process(qtbot, make_window):
    earlier = set(worker_processes())  # workers of other test modules' shared engines, not this window's
    window = make_window()
    load_default(qtbot, window)
    analyze = start_generation(window, QUESTION, 2000)
    qtbot.waitUntil(lambda: analyze._n_tokens >= 3, timeout=30000)
    assert set(worker_processes()) - earlier
    window.close()  # returns once the run is cancelled; its duration is no test's business
    assert window.tasks.threads_running() == 0
    assert wait_no_workers(ignore=earlier) == []
    assert window.session.store is None


def test_stop_generation_and_cancel_scoring(qtbot, window):
    load_default(qtbot, window)
    analyze = start_generation(window, QUESTION, 2000)
    qtbot.waitUntil(lambda: analyze._n_tokens >= 4, timeout=30000)
    analyze.stop_button.click()
    wait_idle(qtbot, window)
    assert analyze.generation is None  # a stopped generation is kept as plain text, not as a generation
    partial = analyze.reasoning.toPlainText()
    assert partial and "Stopped after" in analyze.gen_status.full_text
    assert window.message_bar.text() == ""  # cancelling is not an error

    long_chain = "\n".join(f"{i}. Metformin reduces hepatic glucose output and keeps weight stable, which is why "
                           "guidelines start it first in most adults with type 2 diabetes." for i in range(1, 61))
    analyze.set_reasoning_text(long_chain)
    analyze.score()
    qtbot.waitUntil(lambda: analyze.progress.value() >= 1, timeout=30000)
    analyze.cancel_button.click()
    wait_idle(qtbot, window)
    assert "cancelled" in analyze.score_status.text()
    assert window.results.result is None
    assert window.session.read(lambda st: st.list_runs()) == []
    assert window.message_bar.text() == ""
