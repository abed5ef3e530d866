"""One clear StoreError for each low-level SQLite or OS failure on a session file."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from ..errors import StoreError


def base_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def translate(exc: BaseException, path: Path, action: str) -> StoreError:
    """One clear StoreError for a low-level failure while ``action`` (e.g. "save a chain to")."""
    where = f"cannot {action} {path}"
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, sqlite3.Error):
        code = base_code(exc)
        if code == sqlite3.SQLITE_FULL:
            return StoreError(
                f"{where}: the disk is full (nothing from this operation was written; "
                "everything saved before is intact)",
                hint="free some disk space and run the same command again to resume",
            )
        if code == sqlite3.SQLITE_NOTADB:
            return StoreError(f"{path} is not a KIIG session file (it is not an SQLite database)")
        if code == sqlite3.SQLITE_CORRUPT:
            return StoreError(
                f"{path} is damaged (SQLite reports: {exc})",
                hint="restore it from a backup; `sqlite3 FILE .recover` may salvage the rest",
            )
        if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH):
            return StoreError(f"{where}: it is read-only")
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return StoreError(f"{where}: the session is busy in another process; try again")
        if code == sqlite3.SQLITE_CANTOPEN:
            return StoreError(f"{where}: the file or its folder cannot be opened")
        if code == sqlite3.SQLITE_IOERR:
            return StoreError(f"{where}: a disk read or write failed ({exc})")
        return StoreError(f"{where}: {exc}")
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return StoreError(f"{where}: the disk is full")
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return StoreError(f"{where}: permission denied (read-only file, folder or disk)")
        return StoreError(f"{where}: {exc.strerror or exc}")
    return StoreError(f"{where}: {exc}")
