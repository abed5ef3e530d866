"""Files KIIG writes for the user: owner-only, never left half-written, never through a planted link.

Outputs hold question text and model output, so they get the same 0600 as session files. Each is
written to ``NAME.part`` and renamed into place only when complete, so a full disk, an error or a
killed process leaves the previous file (or none), never a truncated one. The ``.part`` file is
created fresh (``O_EXCL | O_NOFOLLOW``): a symbolic link planted under that name is refused, never
followed, so no other file is truncated or has its mode changed. A ``.part`` file left by a killed
run (a regular file of ours) is removed by the next write of the same output.

CSV cells pass through :func:`spreadsheet_cell`, the one rule every CSV writer uses against
formula injection.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from .errors import InputError, KiigError
from .events import CancelToken

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
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


def remove_stale_part(part: Path) -> None:
    """Remove ``part`` if it is a leftover of ours (a regular file we own); refuse anything else."""
    try:
        st = os.lstat(part)
    except FileNotFoundError:
        return
    if not _ours(st):
        what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a plain file of this user"
        raise OSError(f"{part} already exists and is {what}; remove it and try again")
    part.unlink(missing_ok=True)


@contextmanager
def private_output(path: str | Path, *, newline: str | None = None, fsync: bool = True,
                   error: type[KiigError] = InputError, keep: Iterable[str | Path | None] = (),
                   binary: bool = False) -> Iterator[TextIO]:
    """A text file to write ``path`` through; it replaces ``path`` when the block ends without error.

    ``keep``: files this output must never replace (the input, the session). Unwritable paths,
    those files, a planted ``.part`` link and write failures raise ``error`` with one readable line.
    """
    out = Path(path).expanduser()
    if out.is_dir():
        raise error(f"{out} is a folder")
    for other in keep:
        if other is not None and _same_file(out, Path(other).expanduser()):
            raise error(f"{out} is also the command's input or session file; choose another output file")
    if not out.parent.exists():
        raise error(f"folder {out.parent} does not exist")
    part = out.with_name(out.name + ".part")
    try:
        remove_stale_part(part)
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o600)
    except OSError as exc:
        raise error(f"cannot write {out}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o600)  # the umask may have taken bits away, never add any
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline=newline)) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(part, out)
        if fsync:
            _fsync_folder(out.parent)
    except BaseException as exc:
        _unlink_if_ours(part)
        if isinstance(exc, OSError):
            raise error(f"cannot write {out}: {exc.strerror or exc}") from None
        raise


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


__all__ = ["file_sha256", "private_output", "remove_stale_part", "spreadsheet_cell", "spreadsheet_writer", "write_private_bytes", "write_private_text"]
