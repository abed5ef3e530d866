"""The reference corpora of the open session, for the Corpora view and the Knowledge Index panel.

Every database access runs as a background Task: listing and searching on a read-only
connection of the worker thread, import and removal through :meth:`SessionFile.write` (one
transaction each, so a cancelled import leaves the corpus exactly as it was).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from ...events import CancelToken, Progress
from ...knowledge.corpus import (
    add_documents,
    list_corpora,
    list_documents,
    list_files,
    remove_corpus,
    remove_document,
    search,
)
from ...resources import resource_path
from .session_file import SessionFile, SessionHandle
from .workers import Task, TaskManager

DEMO_CORPUS = "clinical"
PROGRESS_EVERY_S = 0.1


def demo_corpus_path() -> Path:
    """The demo reference corpus shipped with the app (55 clinical passages)."""
    return resource_path("corpus", "clinical_facts.jsonl")


class _Relay(QObject):
    """Carries progress from a worker thread's callback to the GUI thread.

    ``raw`` is emitted in the worker; its queued connection to the relay's own slot (the relay
    lives in the GUI thread) re-emits ``progress`` there, so any callable may listen.
    """

    raw = Signal(object)
    progress = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.raw.connect(self._forward)

    @Slot(object)
    def _forward(self, item: object) -> None:
        self.progress.emit(item)


class Corpora(QObject):
    """The corpus list of the session (``items``), kept fresh, plus the operations on it."""

    changed = Signal()  # ``items`` was reread
    message = Signal(str, str)  # text, level

    def __init__(self, session: SessionFile, tasks: TaskManager, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.tasks = session, tasks
        self.items: list[dict] = []
        self.loaded = False  # True once the open session's list has been read
        self._serial = 0
        session.opened.connect(lambda _p: self.refresh())

    def names(self) -> list[str]:
        return [c["name"] for c in self.items]

    def find(self, name: str) -> dict | None:
        return next((c for c in self.items if c["name"] == name), None)

    # ------------------------------------------------------------------ reading

    def refresh(self) -> Task | None:
        """Reread the list of corpora off the GUI thread."""
        if self.session.store is None:
            self._set([], self._serial)
            return None
        self._serial += 1
        serial = self._serial
        task = self.tasks.run("Reading the session's corpora", lambda _c: self.session.read(lambda st: list_corpora(st.db)), quiet=True)
        task.succeeded.connect(lambda items: self._set(items, serial))
        task.failed.connect(lambda text: self.message.emit(text, "error"))
        return task

    @Slot(object)
    def _set(self, items: list[dict], serial: int) -> None:
        if serial != self._serial:
            return  # an older read finished after a newer one started
        self.items = list(items)
        self.loaded = True
        self.changed.emit()

    def files(self, name: str) -> Task:
        """Task: the files of corpus ``name`` (list of dicts)."""
        return self.tasks.run("Reading the session's corpora", lambda _c: self.session.read(lambda st: list_files(st.db, name)), quiet=True)

    def documents(self, name: str, file_name: str, limit: int = 1000) -> Task:
        """Task: ``(documents, total)`` of one file of corpus ``name``."""
        return self.tasks.run("Reading the session's corpora",
                              lambda _c: self.session.read(lambda st: list_documents(st.db, name, file_name, limit)),
                              quiet=True)

    def search(self, name: str, query: str, k: int = 5) -> Task:
        """Task: the top-``k`` passages (``Passage`` list) of corpus ``name`` for ``query``."""
        return self.tasks.run("Searching the corpus", lambda _c: self.session.read(lambda st: search(st.db, name, query, k)))

    # ------------------------------------------------------------------ writing

    def import_paths(self, name: str, paths: list[str], on_progress: Callable[[Progress], None] | None = None) -> Task:
        """Import files/folders into corpus ``name`` in a Task whose result is the ImportReport."""
        relay = _Relay(self)
        if on_progress is not None:
            relay.progress.connect(on_progress)
        last = [0.0]
        guard = threading.Lock()

        def progress(p: Progress) -> None:
            now = time.monotonic()
            with guard:
                if now - last[0] < PROGRESS_EVERY_S and p.done < (p.total or 0):
                    return
                last[0] = now
            relay.raw.emit(p)

        def work(session: SessionHandle, cancel: CancelToken):  # the session the import started on
            def run(store):
                with store.transaction("import a corpus into"):
                    return add_documents(store.db, name, paths, progress=progress, cancel=cancel)
            return session.write(run)

        what = Path(paths[0]).name if len(paths) == 1 else f"{len(paths)} items"
        task = self.session.run(f"Importing {what} into corpus {name}", work)
        task.finished.connect(relay.deleteLater)
        task.finished.connect(self.refresh)
        return task

    def import_demo(self, on_progress: Callable[[Progress], None] | None = None) -> Task:
        """Import the shipped clinical demo corpus as corpus ``clinical``."""
        return self.import_paths(DEMO_CORPUS, [str(demo_corpus_path())], on_progress)

    def remove(self, name: str, source: str | None = None) -> Task:
        """Remove corpus ``name`` or, with ``source``, one of its files or documents."""
        def work(session: SessionHandle, _c: CancelToken) -> str:  # the session whose corpus was chosen
            def run(store):
                with store.transaction("remove a corpus from"):
                    if source is None:
                        remove_corpus(store.db, name)
                    else:
                        remove_document(store.db, name, source)
            session.write(run)
            return f"Removed {source!r} from corpus {name!r}" if source is not None else f"Removed corpus {name!r}"

        task = self.session.run(f"Removing {source or name}", work)
        task.succeeded.connect(lambda text: self.message.emit(text, "info"))
        task.failed.connect(lambda text: self.message.emit(text, "error"))
        task.finished.connect(self.refresh)
        return task
