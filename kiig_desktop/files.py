"""Files KIIG writes for the user: owner-only, and never left half-written.

Outputs hold question text and model output, so they get the same 0600 as session files. Each is
written to ``NAME.part`` and renamed into place only when complete, so a full disk, an error or a
killed process leaves the previous file (or none), never a truncated one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from .errors import InputError, KiigError
from .events import CancelToken


@contextmanager
def private_output(path: str | Path, *, newline: str | None = None, fsync: bool = True,
                   error: type[KiigError] = InputError, keep: Iterable[str | Path | None] = ()) -> Iterator[TextIO]:
    """A text file to write ``path`` through; it replaces ``path`` when the block ends without error.

    ``keep``: files this output must never replace (the input, the session). Unwritable paths,
    those files and write failures raise ``error`` with one readable line.
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
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise error(f"cannot write {out}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o600)  # a .part left by an older run keeps its mode on O_TRUNC
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(part, out)
    except BaseException as exc:
        part.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise error(f"cannot write {out}: {exc.strerror or exc}") from None
        raise


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


__all__ = ["file_sha256", "private_output", "write_private_text"]
