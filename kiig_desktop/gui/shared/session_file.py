"""The open session file: autosave when none is chosen, save-as by SQLite backup, recent files.

One ``SessionStore`` writer per window. Worker threads write through :meth:`SessionFile.write`,
which serialises use of the connection with a lock; views read through :meth:`reader` (a
read-only connection of their own, made in the thread that uses it).
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
MAX_RECENT = 8
SUFFIX = ".kiig"


class SessionFile(QObject):
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
        store, path, was_untitled = self.store, self.path, self.untitled
        self.store, self.path = None, None
        store.close()
        if was_untitled and path is not None:
            discard_if_blank(path)  # runs or corpora keep the autosave

    def close(self) -> None:
        """Close the session (an autosave file holding nothing is removed)."""
        with self.lock:
            self._close_store()

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

    def read(self, fn: Callable[[SessionStore], T]) -> T:
        """``fn`` on a fresh read-only connection, closed afterwards (worker threads)."""
        reader = self.reader()
        try:
            return fn(reader)
        finally:
            reader.close()

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
        if was_untitled and old is not None and old != Path(path):
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
