"""Background work: a core generator driven on a QThread, its yields turned into Qt signals.

``Task`` lives in the GUI thread; its ``_Runner`` is moved to a fresh ``QThread`` and steps the
generator there. The runner's signals reach the Task through queued connections to its own bound
slots, and the Task re-emits them in the GUI thread, so listeners can be any callable.

Cancel: ``Task.cancel()`` sets the CancelToken the generator was given (engine calls registered
on it interrupt the model worker at once); the runner also checks it between yields and closes
the generator, whose ``finally`` blocks drain the engine cleanly.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Generator
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from ...errors import Cancelled, KiigError
from ...events import CancelToken

Work = Callable[[CancelToken], Any]


def error_text(exc: BaseException) -> str:
    """The user-facing text of an error (a KiigError's message and hint; otherwise its type too)."""
    if isinstance(exc, KiigError):
        return str(exc).replace("\n  hint: ", "\nHint: ")
    return f"Unexpected error ({type(exc).__name__}): {exc}"


class _Runner(QObject):
    event = Signal(object)
    done = Signal(object)
    error = Signal(object)

    def __init__(self, work: Work, token: CancelToken) -> None:
        super().__init__()
        self._work = work
        self._token = token

    @Slot()
    def run(self) -> None:
        try:
            self._run()
        finally:
            # End the thread's event loop from here: the thread finishes (and wait() returns) even
            # when the GUI thread is not processing events, e.g. while the window is closing.
            self.thread().quit()

    def _run(self) -> None:
        try:
            out = self._work(self._token)
            if isinstance(out, Generator):
                out = self._drive(out)
            if self._token.cancelled:
                raise Cancelled()
            self.done.emit(out)
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a message in the window
            if not isinstance(exc, KiigError):
                traceback.print_exc(file=sys.stderr)
            self.error.emit(exc)

    def _drive(self, gen: Generator) -> Any:
        try:
            while True:
                try:
                    item = next(gen)
                except StopIteration as stop:
                    return stop.value
                if self._token.cancelled:
                    raise Cancelled()
                self.event.emit(item)
        finally:
            gen.close()


class Task(QObject):
    """One piece of background work with progress, result, error and cancel."""

    progress = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, title: str, work: Work, parent: QObject | None = None, quiet: bool = False) -> None:
        super().__init__(parent)
        self.title = title
        self.quiet = quiet  # a short read the status bar does not list (nor cancel)
        self.token = CancelToken()
        self.error: BaseException | None = None
        self.result: Any = None
        self.running = False
        self._thread = QThread()
        self._thread.setObjectName(f"kiig-task: {title}")
        self._runner = _Runner(work, self.token)
        self._runner.moveToThread(self._thread)
        self._thread.started.connect(self._runner.run)
        self._runner.event.connect(self._on_event)
        self._runner.done.connect(self._on_done)
        self._runner.error.connect(self._on_error)
        self._thread.finished.connect(self._on_thread_finished)

    def start(self) -> Task:
        self.running = True
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the work to stop (thread-safe, returns at once)."""
        self.token.cancel()

    def thread_alive(self) -> bool:
        return self._thread.isRunning()

    def wait(self, ms: int) -> bool:
        """Block until the thread ended (only for shutdown and tests)."""
        return self._thread.wait(ms)

    @Slot(object)
    def _on_event(self, item: object) -> None:
        self.progress.emit(item)

    @Slot(object)
    def _on_done(self, result: object) -> None:
        self.result = result
        self._thread.quit()
        self.succeeded.emit(result)

    @Slot(object)
    def _on_error(self, exc: object) -> None:
        self._thread.quit()
        if isinstance(exc, Cancelled) or self.token.cancelled:
            self.cancelled.emit()
        else:
            self.error = exc  # type: ignore[assignment]
            self.failed.emit(error_text(exc))  # type: ignore[arg-type]

    @Slot()
    def _on_thread_finished(self) -> None:
        self._thread.wait()  # the thread emits finished just before it ends: let it end
        self.running = False
        self.finished.emit()


class TaskManager(QObject):
    """Keeps every running Task alive and lets the window cancel and wait for all of them."""

    started = Signal(object)
    ended = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tasks: list[Task] = []

    def run(self, title: str, work: Work, quiet: bool = False) -> Task:
        """Create and start a task (connect to its signals right after; they are queued).

        ``quiet``: a short session read that the status bar neither shows nor offers to cancel.
        """
        task = Task(title, work, self, quiet=quiet)
        self._tasks.append(task)
        task.finished.connect(self._on_finished)
        task.start()
        self.started.emit(task)
        return task

    @Slot()
    def _on_finished(self) -> None:
        for task in [t for t in self._tasks if not t.running]:
            self._tasks.remove(task)
            self.ended.emit(task)

    def active(self) -> list[Task]:
        """Tasks that have not reported their end yet."""
        return [t for t in self._tasks if t.running]

    def threads_running(self) -> int:
        """Worker threads still alive (0 after ``wait_all`` succeeded, even before events are processed)."""
        return sum(1 for t in self._tasks if t.thread_alive())

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def wait_all(self, ms: int = 5000) -> bool:
        ok = True
        for task in list(self._tasks):
            ok = task.wait(ms) and ok
        return ok
