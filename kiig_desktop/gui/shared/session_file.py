"""The open session file: autosave when none is chosen, save-as by SQLite backup, recent files.

One ``SessionStore`` writer per window. Worker threads write through :meth:`SessionFile.write`,
which serialises use of the connection with a lock; views read through :meth:`reader` (a
read-only connection of their own, made in the thread that uses it).

A long task takes a :class:`SessionHandle` (:meth:`SessionFile.hold`) when it starts and reads and
writes only through it: if the user opens another session meanwhile, the task's session stays open
(not current) until the task ends, so its results land where it started and nowhere else.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from PySide6.QtCore import QObject, QSettings, Signal, Slot

from ...config import Settings, ensure_private_dir
from ...errors import StoreError
from ...events import CancelToken
from ...files import create_part
from ...store import SessionStore
from ...store.connection import discard_if_blank
from .workers import Task, TaskManager

T = TypeVar("T")


class _Reads:
    """``read(fn)``: ``fn`` on a fresh read-only connection from ``self.reader()``, closed afterwards
    (worker threads)."""

    def reader(self) -> SessionStore:
        raise NotImplementedError

    def read(self, fn: Callable[[SessionStore], T]) -> T:
        reader = self.reader()
        try:
            return fn(reader)
        finally:
            reader.close()
MAX_RECENT = 8
SUFFIX = ".kiig"


class SessionHandle(_Reads):
    """The session a task started on, held open for the task's lifetime (see :meth:`SessionFile.hold`)."""

    def __init__(self, owner: SessionFile, store: SessionStore, path: Path) -> None:
        self._owner, self.store, self.path = owner, store, path
        self._released = False

    @property
    def current(self) -> bool:
        """Whether this is still the window's open session."""
        return self._owner.store is self.store

    @property
    def name(self) -> str:
        return self.path.name

    def write(self, fn: Callable[[SessionStore], T]) -> T:
        """Run ``fn(store)`` on this session's writer, under the window's session lock (any thread)."""
        with self._owner.lock:
            if self._released:
                raise StoreError(f"the session {self.path.name} is no longer held by this task")
            return fn(self.store)

    def reader(self) -> SessionStore:
        """A new read-only connection to this session (close it when done)."""
        with self._owner.lock:
            if self._released:
                raise StoreError(f"the session {self.path.name} is no longer held by this task")
            return self.store.reader()

    def release_when_done(self, task: Task) -> Task:
        """Let go of the session when ``task`` ends (connect right after starting it)."""
        task.finished.connect(self.release)
        return task

    def release(self) -> None:
        """The task ended: a session that is no longer current is closed once nothing holds it."""
        if not self._released:
            self._released = True
            self._owner._release(self.store)


class SessionFile(QObject, _Reads):
    """The current session of the window."""

    opened = Signal(str)
    changed = Signal()
    recent_changed = Signal()

    def __init__(self, settings: Settings, qsettings: QSettings, tasks: TaskManager, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.qsettings = qsettings
        self.tasks = tasks
        self.store: SessionStore | None = None
        self.path: Path | None = None
        self.lock = threading.RLock()
        self._holds: dict[int, int] = {}  # id(store) -> running tasks holding it
        self._retired: dict[Path, SessionStore] = {}  # sessions no longer current, open for their tasks

    # ------------------------------------------------------------------ paths

    @property
    def sessions_dir(self) -> Path:
        return ensure_private_dir(ensure_private_dir(self.settings.data_dir) / "sessions")

    @property
    def untitled(self) -> bool:
        return self.path is not None and self.path.parent == self.sessions_dir and self.path.name.startswith("untitled-")

    def display_name(self) -> str:
        if self.path is None:
            return "no session"
        return f"{self.path.name} (autosaved)" if self.untitled else self.path.name

    # ------------------------------------------------------------------ open / close

    def open(self, path: str | os.PathLike, create: bool = True) -> None:
        """Open (or create) a session for writing; raises StoreError with a readable message."""
        p = Path(path).expanduser().absolute()
        if p.suffix != SUFFIX and not p.exists():
            p = p.with_suffix(SUFFIX)
        with self.lock:
            if self.store is not None and self.path == p:
                return
            store = self._retired.pop(p, None)  # back to a session a running task still holds
            if store is None:
                store = SessionStore.open(p, create=create, write=True)
            self._close_store()
            self.store, self.path = store, p
        if not self.untitled:
            self._add_recent(str(p))
        self.qsettings.setValue("session/last", str(p))
        self.opened.emit(str(p))
        self.changed.emit()

    def new_untitled(self) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.sessions_dir / f"untitled-{stamp}{SUFFIX}"
        n = 1
        while path.exists():
            n += 1
            path = self.sessions_dir / f"untitled-{stamp}-{n}{SUFFIX}"
        self.open(path, create=True)

    def open_last_or_new(self) -> None:
        last = self.qsettings.value("session/last")
        if last and Path(str(last)).is_file():
            try:
                self.open(str(last), create=False)
                return
            except StoreError:
                pass
        self.new_untitled()

    def _close_store(self) -> None:
        if self.store is None:
            return
        store, path = self.store, self.path
        self.store, self.path = None, None
        if self._holds.get(id(store)) and path is not None:
            self._retired[path] = store  # a running task still writes here; closed when it ends
        else:
            self._shut(store, path)

    def _shut(self, store: SessionStore, path: Path | None) -> None:
        untitled = path is not None and path.parent == self.sessions_dir and path.name.startswith("untitled-")
        store.close()
        if untitled and path is not None:
            discard_if_blank(path)  # runs or corpora keep the autosave

    def close(self) -> None:
        """Close the session and any a task still held (an autosave file holding nothing is removed)."""
        with self.lock:
            self._close_store()
            for path, store in list(self._retired.items()):
                self._shut(store, path)
            self._retired.clear()
            self._holds.clear()

    def hold(self) -> SessionHandle:
        """The current session for a task that is about to start (release it when the task ends)."""
        with self.lock:
            if self.store is None or self.path is None:
                raise StoreError("no session is open")
            self._holds[id(self.store)] = self._holds.get(id(self.store), 0) + 1
            return SessionHandle(self, self.store, self.path)

    def run(self, title: str, work: Callable[[SessionHandle, CancelToken], object]) -> Task:
        """Start ``work(held, cancel)`` as a task on the current session, held until it ends
        (with no session open the task fails with that error)."""
        try:
            held = self.hold()
        except StoreError as exc:
            error = exc

            def fail(_cancel: CancelToken) -> None:
                raise error

            return self.tasks.run(title, fail)
        return held.release_when_done(self.tasks.run(title, lambda cancel: work(held, cancel)))

    def held_elsewhere(self) -> list[str]:
        """Names of sessions no longer current that running tasks still write to."""
        with self.lock:
            return [p.name for p in self._retired]

    def _release(self, store: SessionStore) -> None:
        with self.lock:
            count = self._holds.get(id(store), 0) - 1
            if count > 0:
                self._holds[id(store)] = count
                return
            self._holds.pop(id(store), None)
            path = next((p for p, s in self._retired.items() if s is store), None)
            if path is not None:
                del self._retired[path]
                self._shut(store, path)

    # ------------------------------------------------------------------ access

    def write(self, fn: Callable[[SessionStore], T]) -> T:
        """Run ``fn(store)`` with exclusive use of the writer connection (any thread)."""
        with self.lock:
            if self.store is None:
                raise StoreError("no session is open")
            return fn(self.store)

    def reader(self) -> SessionStore:
        """A new read-only connection to the current file (close it when done)."""
        with self.lock:
            if self.store is None:
                raise StoreError("no session is open")
            return self.store.reader()

    def notify_changed(self) -> None:
        self.changed.emit()

    # ------------------------------------------------------------------ save as

    def save_as(self, dest: str | os.PathLike) -> Task:
        """Copy the session to ``dest`` with SQLite's backup API, then continue in the copy."""
        target = Path(dest).expanduser().absolute()
        if target.suffix != SUFFIX:
            target = target.with_suffix(SUFFIX)

        def work(_cancel: CancelToken) -> str:
            with self.lock:
                if self.store is None:
                    raise StoreError("no session is open")
                if self._holds.get(id(self.store)):
                    raise StoreError("a task is still writing to this session: wait for it to finish "
                                     "(or cancel it), then save the session under another name")
                if self.path == target:
                    return str(target)
                part = target.with_name(target.name + ".part")
                fd = -1
                try:
                    fd = create_part(part)  # locked while we write; a planted link or a live writer is refused
                    dst = sqlite3.connect(part)
                    try:
                        self.store.conn.backup(dst)
                    finally:
                        dst.close()
                    for suffix in ("-wal", "-shm"):
                        Path(f"{target}{suffix}").unlink(missing_ok=True)
                    os.replace(part, target)
                except (OSError, sqlite3.Error) as exc:
                    if fd >= 0:
                        part.unlink(missing_ok=True)
                    raise StoreError(f"cannot save the session as {target}: {exc}") from None
                finally:
                    if fd >= 0:
                        os.close(fd)
            return str(target)

        task = self.tasks.run(f"Saving session as {target.name}", work)
        task.succeeded.connect(self._saved_as)
        return task

    @Slot(object)
    def _saved_as(self, path: str) -> None:
        old, was_untitled = self.path, self.untitled
        self.open(path, create=False)
        if was_untitled and old is not None and old != Path(path) and old not in self._retired:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{old}{suffix}").unlink(missing_ok=True)

    # ------------------------------------------------------------------ recent files

    def recent(self) -> list[str]:
        value = self.qsettings.value("session/recent", [])
        items = value if isinstance(value, list) else [value] if value else []
        return [str(v) for v in items if v]

    def _add_recent(self, path: str) -> None:
        items = [path] + [p for p in self.recent() if p != path]
        self.qsettings.setValue("session/recent", items[:MAX_RECENT])
        self.recent_changed.emit()

    def clear_recent(self) -> None:
        self.qsettings.setValue("session/recent", [])
        self.recent_changed.emit()
