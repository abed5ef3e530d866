"""Files KIIG writes for the user: owner-only, never left half-written, never through a planted link.

One output policy for every command and every GUI export (:func:`check_output`,
docs/cli.md ("Output files")): regular files only; never the command's input, never a session file or one of
its SQLite companions (``-wal``, ``-shm``, ``-journal``, which may not exist yet), never any other
SQLite database. Outputs hold question text and model output, so they get the same 0600 as
session files. Each is written to ``NAME.part`` and renamed into place only when complete, so a
full disk, an error or a killed process leaves the previous file (or none), never a truncated one.
The ``.part`` file is created fresh (``O_EXCL | O_NOFOLLOW``, so a planted link is refused, never
followed) and locked (``flock``) by its writer for as long as it lives: a second writer of the same
output is refused with the first one's pid, and only an unlocked ``.part`` (left by a killed run)
is removed as stale.

CSV cells pass through :func:`spreadsheet_cell`, the one rule every CSV writer uses against
formula injection.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from .errors import InputError, KiigError
from .events import CancelToken

try:
    import fcntl
except ImportError:  # Windows: no advisory lock
    fcntl = None  # type: ignore[assignment]

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")


def spreadsheet_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not run as a formula (OWASP's CSV injection rule).

    Text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading single
    quote, so Excel, LibreOffice and Google Sheets show it as text. Numbers (and text that is just
    a number, such as ``-0.25``) stay as they are, so they stay numeric in the sheet.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


class spreadsheet_writer:  # noqa: N801 - used like csv.writer, which it wraps
    """``csv.writer`` whose every cell goes through :func:`spreadsheet_cell` (all KIIG CSV files).

    Rows end in CRLF as RFC 4180 says; with that, the csv module also quotes a cell holding a bare
    carriage return, which with LF endings it wrote unquoted (a broken row in every reader).
    """

    def __init__(self, out: TextIO, **kwargs: Any) -> None:
        kwargs.setdefault("lineterminator", "\r\n")
        self._writer = csv.writer(out, **kwargs)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([spreadsheet_cell(cell) for cell in row])


def _ours(st: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and (not hasattr(os, "geteuid") or st.st_uid == os.geteuid())


# --------------------------------------------------------------------------- the output policy

SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a device"),
          (stat.S_ISBLK, "a device"), (stat.S_ISFIFO, "a pipe (FIFO)"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def _is_sqlite(path: Path) -> bool:
    """True when ``path`` is a regular file starting with SQLite's header (a session, any database)."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode) and os.read(fd, len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False
    finally:
        os.close(fd)


def _protected(out: Path, keep: Iterable[str | Path | None]) -> bool:
    """True when ``out`` names a ``keep`` file or one of its SQLite companions, existing or not."""
    real = os.path.realpath(out)
    for other in keep:
        if other is None:
            continue
        base = Path(other).expanduser()
        for suffix in ("", *SQLITE_COMPANIONS):
            names = (Path(f"{base}{suffix}"), Path(f"{os.path.realpath(base)}{suffix}"))
            if any(real == os.path.realpath(n) or _same_file(out, n) for n in names):
                return True
    return False


def check_output(path: str | Path, *, keep: Iterable[str | Path | None] = (),
                 error: type[KiigError] = InputError) -> Path:
    """The output policy of every file KIIG writes for the user (docs/cli.md, "Output files").

    Refused with one line: ``keep`` files (the input, the session) and their SQLite companions
    (``-wal``, ``-shm``, ``-journal``, compared by resolved path and by identity, existing or not);
    any SQLite database or a companion of one; anything but a regular file (a folder, a device, a
    FIFO, a socket, a symbolic link such as ``/dev/stdout``); a folder that does not exist.
    """
    out = Path(path).expanduser()
    try:
        st = os.lstat(out)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise error(f"cannot write {out}: {exc.strerror or exc}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise error(f"{out} is a folder")
    if _protected(out, keep):
        raise error(f"{out} is also the command's input or session file (or one of its -wal, -shm, -journal files); "
                    "choose another output file")
    base = next((out.name[: -len(s)] for s in SQLITE_COMPANIONS if out.name.endswith(s)), None)
    if (st is not None and _is_sqlite(out)) or (base and _is_sqlite(out.with_name(base))):
        raise error(f"{out} is a database (a session file or one of its -wal, -shm, -journal files); "
                    "choose another output file")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise error(f"{out} is {_kind(st.st_mode)}, not a regular file; outputs are written only to regular files")
    if not out.parent.exists():
        raise error(f"folder {out.parent} does not exist")
    return out


# --------------------------------------------------------------------------- .part files


def _lock_holder(fd: int) -> int | None:
    """The pid holding the flock on ``fd``'s file, from /proc/locks (Linux); None elsewhere."""
    st = os.fstat(fd)
    ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as fh:
            for line in fh:
                fields = line.split()
                if "FLOCK" in fields and ident in fields and "->" not in fields:
                    return int(fields[fields.index(ident) - 1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _lock(fd: int) -> bool:
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _named(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.lstat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def remove_stale_part(part: Path) -> None:
    """Remove ``part`` if it is a leftover of ours (a regular file we own that no live process holds).

    A ``.part`` locked by a live writer is refused with that writer's pid; a link or another
    user's file is refused, never followed or removed.
    """
    try:
        st = os.lstat(part)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise OSError(f"{part} already exists and is a symbolic link; remove it and try again")
    try:
        fd = os.open(part, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return
    try:
        if not _lock(fd):
            pid = _lock_holder(fd)
            who = f"another kiig process (pid {pid})" if pid else "another kiig process"
            raise OSError(f"it is being written by {who}; wait for it to finish or choose another output file")
        if not _ours(os.fstat(fd)):
            raise OSError(f"{part} already exists and is not a plain file of this user; remove it and try again")
        if _named(fd, part):
            part.unlink()
    finally:
        os.close(fd)  # releases the lock


def create_part(part: Path) -> int:
    """A fresh ``part`` (0600), locked by this process from the moment it has that name.

    The file is made and locked under a name of this process, then hard-linked to ``part``, which
    fails if ``part`` exists: no other process can find ``part`` unlocked and take it for a leftover.
    """
    for _attempt in range(5):
        remove_stale_part(part)
        own = part.with_name(f"{part.name}.{os.getpid()}.{secrets.token_hex(4)}")  # this thread's alone
        fd = os.open(own, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o600)
        try:
            _lock(fd)
            try:
                os.link(own, part, follow_symlinks=False)
            except FileExistsError:
                os.close(fd)
                fd = -1
                continue  # another writer made it meanwhile: look at it again
            except OSError as exc:  # a file system without hard links: O_EXCL alone, locked at once
                if exc.errno not in _NO_HARD_LINKS:
                    raise
                fd2 = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o600)
                os.close(fd)
                fd = fd2
                _lock(fd)
            return fd
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        finally:
            own.unlink(missing_ok=True)
    raise OSError(f"{part} keeps being created by another process")


@contextmanager
def private_output(path: str | Path, *, newline: str | None = None, fsync: bool = True,
                   error: type[KiigError] = InputError, keep: Iterable[str | Path | None] = (),
                   binary: bool = False) -> Iterator[TextIO]:
    """A text file to write ``path`` through; it replaces ``path`` when the block ends without error.

    ``keep``: files this output must never replace (the input, the session). What
    :func:`check_output` refuses, a ``.part`` another live process writes, a planted ``.part``
    link and write failures raise ``error`` with one readable line.
    """
    out = check_output(path, keep=keep, error=error)
    part = out.with_name(out.name + ".part")
    try:
        fd = create_part(part)
    except OSError as exc:
        raise error(f"cannot write {out}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o600)  # the umask may have taken bits away, never add any
        with (os.fdopen(fd, "wb", closefd=False) if binary
              else os.fdopen(fd, "w", encoding="utf-8", newline=newline, closefd=False)) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        if not _named(fd, part):
            raise OSError(f"{part} was removed or replaced while it was written")
        check_output(out, keep=keep, error=error)  # nothing became a session file or a device meanwhile
        os.replace(part, out)
        if fsync:
            _fsync_folder(out.parent)
    except BaseException as exc:
        if _named(fd, part):
            _unlink_if_ours(part)
        if isinstance(exc, OSError):
            raise error(f"cannot write {out}: {exc.strerror or exc}") from None
        raise
    finally:
        os.close(fd)  # releases the lock, after the rename


def _unlink_if_ours(part: Path) -> None:
    try:
        if _ours(os.lstat(part)):
            part.unlink()
    except OSError:
        pass


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (a power cut after it keeps the new file)."""
    try:
        fd = os.open(folder, os.O_RDONLY | _O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def file_sha256(path: str | Path, cancel: CancelToken | None = None, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, read in blocks (``cancel`` is checked between them)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
            if cancel is not None:
                cancel.check()
    return h.hexdigest()


def write_private_text(path: str | Path, text: str, *, error: type[KiigError] = InputError,
                       keep: Iterable[str | Path | None] = ()) -> Path:
    """Write ``text`` to ``path`` owner-only and atomically; returns the path written."""
    with private_output(path, error=error, keep=keep) as fh:
        fh.write(text)
    return Path(path).expanduser()


def write_private_bytes(path: str | Path, data: bytes, *, error: type[KiigError] = InputError,
                        keep: Iterable[str | Path | None] = ()) -> Path:
    """Write ``data`` (an image, a drawing) to ``path`` owner-only and atomically; returns the path."""
    with private_output(path, error=error, keep=keep, binary=True) as fh:
        fh.write(data)  # type: ignore[arg-type]
    return Path(path).expanduser()


__all__ = ["SQLITE_COMPANIONS", "check_output", "create_part", "file_sha256", "private_output", "remove_stale_part", "spreadsheet_cell", "spreadsheet_writer", "write_private_bytes", "write_private_text"]
