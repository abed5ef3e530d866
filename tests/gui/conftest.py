"""GUI test fixtures: the application set up as ``kiig-desktop`` does, windows on private data folders.

Every test here is marked ``gui`` (``-m "not gui"`` skips them). The real embedded model is used
wherever a model is needed; each window is closed at teardown, which stops its model workers.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.support.require import require_module

require_module("PySide6", "pip install -e '.[test]' (make test installs it)")
require_module("pytestqt", "pip install -e '.[test]' (make test installs it)")


FRESH_PROCESS = "KIIG_TEST_FRESH_PROCESS"  # set by a test that reruns a check of its module in a new process


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.gui)
    # ``fresh_process`` checks run only in the new process their module's own test starts
    if not os.environ.get(FRESH_PROCESS):
        later = [item for item in items if item.get_closest_marker("fresh_process")]
        if later:
            config.hook.pytest_deselected(items=later)
            items[:] = [item for item in items if not item.get_closest_marker("fresh_process")]


@pytest.fixture(scope="session")
def gui_app(qapp):
    """The QApplication configured like the real app (names, theme)."""
    from kiig_desktop.gui.app import create_application
    from kiig_desktop.gui.shared.theme import theme

    app = create_application([])
    assert app is qapp
    theme().apply("light")
    return app


@pytest.fixture
def data_dir(tmp_path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def make_window(gui_app, qtbot, data_dir):
    """Factory: a started MainWindow on ``data_dir`` (models discovered; nothing loaded yet)."""
    from kiig_desktop.config import Settings
    from kiig_desktop.gui.main_window import MainWindow

    windows = []

    def make(paths: list[str] | None = None, data: Path | None = None, size: tuple[int, int] | None = (1400, 900)):
        settings = Settings(data_dir=data or data_dir, discover_lmstudio=False, discover_ollama=False)
        window = MainWindow(settings, autoload=False)
        qtbot.addWidget(window)
        if size is not None:
            window.resize(*size)
        window.show()
        window.start(paths or [])
        qtbot.waitUntil(lambda: bool(window.engines.models) and not window.tasks.active(), timeout=30000)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()
        window.deleteLater()
    # delete them now: closed windows left alive keep their timers, watchers and plots, and a long
    # run's later tests (the responsiveness check above all) would share the GUI thread with them
    from PySide6.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


@pytest.fixture
def window(make_window):
    return make_window()


def wait_idle(qtbot, window, timeout: int = 120000) -> None:
    """Wait until no background task runs (and their final signals were delivered)."""
    qtbot.waitUntil(lambda: not window.tasks.active() and not window.results.pending, timeout=timeout)
    qtbot.wait(20)


def load_default(qtbot, window):
    """Load the embedded model and return its ModelInfo."""
    info = window.engines.default_model()
    assert info is not None and info.source == "builtin"
    window.engines.load(info)
    qtbot.waitUntil(lambda: window.engines.is_loaded(info.id), timeout=60000)
    wait_idle(qtbot, window)
    return info


def start_generation(window, question, max_tokens: int):
    """Put ``question`` in Analyze and start generating up to ``max_tokens`` tokens; returns the view."""
    analyze = window.analyze
    analyze.form.set_question(question)
    analyze.max_tokens.setValue(max_tokens)
    analyze.generate()
    return analyze


def worker_processes() -> list[int]:
    """Live (non-zombie) model worker processes started by this test process."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        state, ppid = fields[0], int(fields[1])
        if ppid == me and state != "Z" and "kiig_desktop.engine.worker" in cmdline:
            found.append(int(entry.name))
    return found


def wait_no_workers(timeout: float = 60.0, ignore: set[int] | frozenset[int] = frozenset()) -> list[int]:
    """Model workers of this process still alive after up to ``timeout`` s (a hang guard, not a limit:
    a killed worker unmapping its model can take seconds on a loaded machine); ``ignore``: workers that
    were running before the window under test started (the session's shared engine fixture)."""
    end = time.monotonic() + timeout
    while True:
        left = [pid for pid in worker_processes() if pid not in ignore]
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.05)
