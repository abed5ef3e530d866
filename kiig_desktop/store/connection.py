"""Opening a session file safely: validation, the writer lock, pragmas, migrations, errors.

The writer lock is ``fcntl.flock`` on the session file itself (no lock files anywhere else). SQLite
uses POSIX ``fcntl`` record locks on the same file, which the kernel drops for the whole process
whenever *any* descriptor of that file is closed; so the lock descriptor is only closed once no
connection of this process uses the file any more (until then it is parked, unlocked). Readers
open no descriptor of their own.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from .. import __version__
from ..errors import StoreError
from . import corpus_schema
from .codec import now_iso
from .failures import base_code, translate
from .schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION
from .schema_check import foreign_problem

try:
    import fcntl
except ImportError:  # Windows: no advisory lock; SQLite's own locking still prevents corruption
    fcntl = None  # type: ignore[assignment]

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 5000

# --------------------------------------------------------------------------- per-process registry


@dataclass
class _FileState:
    connections: int = 0
    parked_fds: list[int] = field(default_factory=list)


_registry_lock = threading.Lock()
_files: dict[tuple[int, int], _FileState] = {}
_lock_fds: set[int] = set()  # descriptors holding (or having held) a writer flock
_created_here: set[tuple[int, int]] = set()  # (dev, inode) of session files this process initialised


def _file_key(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _register(key: tuple[int, int]) -> None:
    with _registry_lock:
        _files.setdefault(key, _FileState()).connections += 1


def _unregister(key: tuple[int, int]) -> None:
    """One connection of this process to the file is closed; close parked descriptors if last."""
    with _registry_lock:
        state = _files.get(key)
        if state is None:
            return
        state.connections -= 1
        if state.connections <= 0:
            for fd in state.parked_fds:
                _close_fd(fd)
            del _files[key]


def _close_fd(fd: int) -> None:
    _lock_fds.discard(fd)
    try:
        os.close(fd)
    except OSError:
        pass


def release_lock_fd(key: tuple[int, int] | None, fd: int) -> None:
    """Unlock the writer descriptor; close it now or, while connections remain, when they close."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        pass
    with _registry_lock:
        state = _files.get(key) if key else None
        if state is not None and state.connections > 0:
            state.parked_fds.append(fd)
            return
    _close_fd(fd)


def _after_fork_in_child() -> None:
    # A forked child (e.g. a worker) must not keep the parent's writer lock alive after the
    # parent closes the session: flock locks belong to the shared open file description.
    for fd in list(_lock_fds):
        _close_fd(fd)
    _files.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --------------------------------------------------------------------------- opening


@dataclass
class Opened:
    """A validated, migrated connection plus what is needed to close it properly."""

    conn: sqlite3.Connection
    key: tuple[int, int]
    lock_fd: int | None
    created: bool


def _writable_bits(mode: int) -> bool:
    return bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _check_folder_writable(folder: Path, path: Path) -> None:
    try:
        st = os.stat(folder)
    except OSError as exc:
        raise StoreError(f"cannot open {path}: its folder {folder} is not accessible ({exc.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK) or not _writable_bits(st.st_mode):
        raise StoreError(
            f"cannot write session {path}: its folder {folder} is read-only",
            hint="open it for viewing only, or copy it to a writable folder",
        )


def _uri(path: Path, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"file:{quote(str(path))}?{query}"


def _connect(uri: str) -> sqlite3.Connection:
    # check_same_thread=False: a connection may be handed to the thread that uses it; it must
    # still be used by one thread at a time (SessionStore.reader() gives each thread its own).
    return sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)


def _pread_header(fd: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, 100, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 100)


def _classify(conn: sqlite3.Connection, path: Path) -> tuple[int, bool]:
    """Return (schema version, blank) or raise StoreError for a file that is not ours."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') LIMIT 6")]
    if app_id == 0 and not names and version == 0:
        return 0, True
    if app_id != APPLICATION_ID:
        listed = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise StoreError(
            f"{path} is an SQLite database of another application, not a KIIG session"
            + (f" (its tables: {listed})" if listed else ""),
            hint="choose a .kiig session file, or a new file name to start a session",
        )
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer version of KIIG Desktop (session schema {version}; "
            f"this version reads up to {SCHEMA_VERSION})",
            hint="update KIIG Desktop to open it; the file was not changed",
        )
    if version < 1:
        raise StoreError(f"{path} is damaged: it is marked as a KIIG session but has no schema version")
    stored = _corpus_version_stored(conn)
    target = int(getattr(corpus_schema, "CORPUS_SCHEMA_VERSION", 1))
    if stored is not None and stored > target:
        raise StoreError(
            f"{path} holds reference corpora written by a newer version of KIIG Desktop "
            f"(corpus format {stored}; this version reads up to {target})",
            hint="update KIIG Desktop to open it; the file was not changed",
        )
    return version, False


def _set_pragmas(conn: sqlite3.Connection, path: Path, write: bool) -> None:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA temp_store = MEMORY")  # no temporary files (question text) in /tmp
    conn.execute("PRAGMA foreign_keys = ON")
    if write:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"cannot open {path}: its file system does not support the WAL journal (got {mode!r})")
        conn.execute("PRAGMA synchronous = FULL")  # a committed chain survives a power cut
        conn.execute("PRAGMA fullfsync = ON")  # macOS: flush the drive cache too (ignored elsewhere)
    else:
        conn.execute("PRAGMA query_only = ON")


def _corpus_version_stored(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'corpus_schema_version'").fetchone()
    return None if row is None else int(row[0])


def _apply_corpus(conn: sqlite3.Connection, path: Path) -> None:
    """Create or upgrade the corpus tables (inside the caller's transaction).

    When ``corpus_schema.CORPUS_SCHEMA_VERSION`` grew since the file was written: the steps of
    ``corpus_schema.CORPUS_MIGRATIONS`` from the file's version on run when there is one for every
    version; otherwise corpus tables that hold no data are recreated, and a session with corpus
    data gets a clear error (file untouched).
    """
    target = int(getattr(corpus_schema, "CORPUS_SCHEMA_VERSION", 1))
    stored = _corpus_version_stored(conn)
    if stored is not None and stored < target:
        steps = getattr(corpus_schema, "CORPUS_MIGRATIONS", {})
        if all(v in steps for v in range(stored + 1, target + 1)):
            for v in range(stored + 1, target + 1):
                for statement in steps[v]:
                    conn.execute(statement)
        else:
            tables = [t for t in getattr(corpus_schema, "CORPUS_TABLES", ()) if conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (t,)).fetchone()]
            plain = [t for t in tables if not conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = ? AND sql LIKE 'CREATE VIRTUAL%'", (t,)).fetchone()]
            if any(conn.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone() for t in plain):
                raise StoreError(
                    f"the reference corpora in {path} use an older format (corpus format {stored}) "
                    "that this version cannot convert",
                    hint="open it with the version that wrote it, or re-import the corpus into a new session",
                )
            for t in reversed(tables):
                conn.execute(f'DROP TABLE "{t}"')
    for statement in corpus_schema.CORPUS_DDL:
        conn.execute(statement)
    if stored != target:
        conn.execute(
        "INSERT INTO meta (key, value) VALUES ('corpus_schema_version', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(target),),
        )


def migrate(conn: sqlite3.Connection, from_version: int, path: Path) -> None:
    """Apply every migration after ``from_version`` and the corpus DDL in ONE transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for m in MIGRATIONS:
            if m.version <= from_version:
                continue
            for statement in m.statements:
                conn.execute(statement)
            if m.func is not None:
                m.func(conn)
            conn.execute(
                "INSERT INTO schema_version (version, applied, app_version, description) VALUES (?, ?, ?, ?)",
                (m.version, now_iso(), __version__, m.description),
            )
        if from_version == 0:
            conn.execute("INSERT INTO meta (key, value) VALUES ('created', ?)", (now_iso(),))
        _apply_corpus(conn, path)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _ensure_current(conn: sqlite3.Connection, path: Path) -> None:
    """On every writable open: pick up corpus table changes; mark runs of dead processes."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        _apply_corpus(conn, path)
        # We hold the exclusive writer lock: a run still 'running' belongs to a process that died.
        conn.execute("UPDATE runs SET status = 'interrupted', finished = ? WHERE status = 'running'", (now_iso(),))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _open_for_lock(path: Path, create: bool) -> tuple[int, bool]:
    """Open (or create, mode 0600) the session file for the writer lock; True when this call made it."""
    folder = path.parent
    if path.exists():
        if not path.is_file():
            raise StoreError(f"{path} is not a file")
        st = os.stat(path)
        if not os.access(path, os.R_OK | os.W_OK) or not _writable_bits(st.st_mode):
            raise StoreError(
                f"cannot write session {path}: the file is read-only",
                hint="open it for viewing only, or copy it to a writable place",
            )
        _check_folder_writable(folder, path)
        return os.open(path, os.O_RDWR | _O_CLOEXEC), False
    if not create:
        raise StoreError(f"session file not found: {path}")
    if not folder.is_dir():
        raise StoreError(f"cannot create session {path}: folder {folder} does not exist")
    _check_folder_writable(folder, path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o600)
    except FileExistsError:  # another process created it a moment ago: the lock decides below
        return os.open(path, os.O_RDWR | _O_CLOEXEC), False
    os.fchmod(fd, 0o600)
    return fd, True


def _still_named(fd: int, path: Path) -> bool:
    """True when ``path`` still names the file open as ``fd`` (a failed creator may have removed it)."""
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def open_writer(path: Path, create: bool) -> Opened:
    """Create (mode 0600) or open a session for writing, holding the exclusive writer lock.

    Whether this process created the session is decided only under the lock: the holder that
    finds the file empty initialises it (and may remove it again if it then fails); a process that
    loses the lock never touches the file, whoever created it.
    """
    created = False
    fd: int | None = None
    key: tuple[int, int] | None = None
    conn: sqlite3.Connection | None = None
    registered = False
    try:
        for _attempt in range(5):
            fd, _made = _open_for_lock(path, create)
            _lock_fds.add(fd)
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino)  # before the lock: a failed attempt parks fd, see the module doc
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreError(
                    f"session {path} is in use by another process (or another window) that is writing to it",
                    hint="wait for that run to finish or close it there; viewing the session read-only works meanwhile",
                ) from None
            if _still_named(fd, path):
                break
            release_lock_fd(key, fd)  # removed while we waited for it: open the path again
            fd = key = None
        else:
            raise StoreError(f"cannot open {path}: another process keeps replacing it")
        header = _pread_header(fd)
        if header and (len(header) < 100 or not header.startswith(SQLITE_MAGIC)):
            raise StoreError(f"{path} is not a KIIG session file (it is not an SQLite database)")
        created = not header  # empty under our lock: we initialise it, so it is ours to remove on failure
        conn = _connect(_uri(path, mode="rw"))
        _register(key)
        registered = True
        version, blank = _classify(conn, path)
        if not blank and (foreign := foreign_problem(conn)):  # before anything is written: no foreign trigger runs
            raise StoreError(f"cannot write session {path}: it holds {foreign}; the file was not changed "
                             "(view it read-only, or remove them with an SQLite tool)")
        _set_pragmas(conn, path, write=True)
        if blank or version < SCHEMA_VERSION:
            migrate(conn, 0 if blank else version, path)
        _ensure_current(conn, path)
        if created:
            _created_here.add(key)
        return Opened(conn, key, fd, created)
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if registered and key is not None:
            _unregister(key)
        if created and fd is not None:  # still under our lock
            _unlink_session(path)
        if fd is not None:
            release_lock_fd(key, fd)
        if isinstance(exc, (sqlite3.Error, OSError)):
            raise translate(exc, path, "open session") from exc
        raise


def _unlink_session(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(f"{path}{suffix}")
        except OSError:
            pass


def created_here(path: str | Path) -> bool:
    """True when this process created (initialised) the session file that ``path`` names now."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) in _created_here


def open_reader(path: Path) -> Opened:
    """Open a session read-only (another thread or process may be writing it meanwhile)."""
    if not path.exists():
        raise StoreError(f"session file not found: {path}")
    if not path.is_file():
        raise StoreError(f"{path} is not a file")
    if not os.access(path, os.R_OK):
        raise StoreError(f"cannot read session {path}: permission denied")
    key = _file_key(path)
    _register(key)
    conn: sqlite3.Connection | None = None
    try:
        # A read-write connection kept query-only: as the last one to close it can remove the
        # -wal/-shm files, which a mode=ro connection would leave behind in the user's folder.
        folder = path.parent
        writable = (os.access(path, os.W_OK) and _writable_bits(os.stat(path).st_mode)
                    and os.access(folder, os.W_OK | os.X_OK) and _writable_bits(os.stat(folder).st_mode))
        try:
            if writable:
                uri = _uri(path, mode="rw")
            elif not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists():
                # Nobody is writing a read-only file: read it as is, creating no -wal/-shm files.
                uri = _uri(path, mode="ro", immutable="1")
            else:
                uri = _uri(path, mode="ro")
            conn = _connect(uri)
            version, blank = _classify(conn, path)
        except sqlite3.OperationalError as exc:
            # A WAL session in a read-only folder without its -shm file: nobody can be writing it.
            if conn is not None:
                conn.close()
            if base_code(exc) not in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY) or writable:
                raise
            conn = _connect(_uri(path, mode="ro", immutable="1"))
            version, blank = _classify(conn, path)
        if blank:
            raise StoreError(f"{path} is an empty database, not a KIIG session")
        if version < SCHEMA_VERSION:
            raise StoreError(
                f"{path} uses an older session format (schema {version}) that must be upgraded first",
                hint="open it once for writing (e.g. `kiig sessions --db FILE --upgrade`) to upgrade it",
            )
        _set_pragmas(conn, path, write=False)
        return Opened(conn, key, None, False)
    except BaseException as exc:
        if conn is not None:
            conn.close()
        _unregister(key)
        if isinstance(exc, (sqlite3.Error, OSError)):
            raise translate(exc, path, "read session") from exc
        raise


def close_opened(opened: Opened) -> None:
    """Close the connection first, then drop (or park) the writer lock descriptor."""
    try:
        opened.conn.close()
    finally:
        _unregister(opened.key)
        if opened.lock_fd is not None:
            release_lock_fd(opened.key, opened.lock_fd)


def discard_if_blank(path: Path) -> bool:
    """Delete the session at ``path`` if it holds nothing but its schema; True when deleted.

    A command that fails before storing anything (an unknown model, a broken dataset), or an
    autosave the user left empty, should not stay behind. Runs and corpora are content; model rows
    alone are not (they only describe the files that runs used). The check and the deletion happen
    under the writer lock: a file another process is writing (or about to write) is never removed.
    """
    try:
        fd = os.open(path, os.O_RDWR | _O_NOFOLLOW | _O_CLOEXEC)
        st = os.fstat(fd)
    except OSError:
        return False
    _lock_fds.add(fd)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
        if not _still_named(fd, path) or not _holds_nothing(path):
            return False
        _unlink_session(path)
        return True
    finally:  # parked while this process still has connections to the file (see the module doc)
        release_lock_fd((st.st_dev, st.st_ino), fd)


def _holds_nothing(path: Path) -> bool:
    try:
        con = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            if "runs" not in tables:
                return False
            for table in ("runs", "corpora", "corpus_files", "corpus_chunks"):
                if table in tables and con.execute(f'SELECT 1 FROM "{table}" LIMIT 1').fetchone():
                    return False
        finally:
            con.close()
    except sqlite3.Error:
        return False
    return True
