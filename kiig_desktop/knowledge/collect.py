"""Which files an import takes from the paths given: supported suffixes, folders walked, links checked."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from .chunking import SUPPORTED_SUFFIXES


def supported_suffixes() -> str:
    """".docx, .htm, ..." for messages."""
    return ", ".join(sorted(set(SUPPORTED_SUFFIXES)))


def unsupported(path: Path) -> str:
    """Why a file of another type is skipped, one line."""
    what = repr(path.suffix) if path.suffix else "(no extension)"
    return f"unsupported file type {what} (supported: {supported_suffixes()})"


def collect(paths: Iterable[str | Path]) -> list[tuple[Path, str, str | None, int, str | None]]:
    """Files to import, in order, as (path, name, kind, size, None), or (..., why one is skipped).

    Every file of a folder is listed, one of another type as skipped with its reason; hidden files
    and folders (names starting with ".") are passed over without a word.
    """
    found: list[tuple[Path, str, str | None, int, str | None]] = []

    def skip(path: Path, name: str, kind: str | None, message: str) -> None:
        found.append((path, name, kind, 0, message))

    names: dict[str, Path] = {}
    seen: set[Path] = set()

    def consider(path: Path, name: str) -> None:
        kind = SUPPORTED_SUFFIXES.get(path.suffix.lower())
        if kind is None:
            skip(path, name, None, unsupported(path))
            return
        try:
            real = path.resolve()
            st = os.stat(real)
        except OSError as exc:
            skip(path, name, kind, f"cannot read: {exc.strerror or exc}")
            return
        if real in seen:
            return
        seen.add(real)
        if not stat.S_ISREG(st.st_mode):
            skip(path, name, kind, "not a regular file")
            return
        if name in names:
            skip(path, name, kind, f"duplicate name {name!r}: {names[name]} has the same name in this import; "
                 "rename one, or import their common parent folder")
            return
        names[name] = path
        found.append((path, name, kind, st.st_size, None))

    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            before = len(found)
            walk_folder(path, consider, skip)
            if len(found) == before:
                skip(path, path.name or str(path), None, f"folder holds no files to import (supported: {supported_suffixes()})")
        elif path.exists() or path.is_symlink():
            consider(path, path.name)
        else:
            skip(path, path.name or str(path), None, "no such file or folder")
    return found


def walk_folder(folder: Path, consider: Callable[[Path, str], None],
                 skip: Callable[[Path, str, str | None, str], None]) -> None:
    """Files of ``folder`` for ``consider``; unreadable subfolders and links leading outside it are reported.

    Symbolic links are followed only when they resolve inside the folder given: a link to
    ``/etc/passwd`` in a corpus folder must not pull that file into the session.
    """
    inside = folder.resolve()

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename or folder)
        rel = where.relative_to(folder).as_posix() if where != folder and where.is_relative_to(folder) else str(where)
        skip(where, rel, None, f"cannot read folder: {exc.strerror or exc}")

    for root, dirs, files in os.walk(folder, onerror=unreadable):
        base = Path(root)
        for d in [d for d in dirs if (base / d).is_symlink()]:
            dirs.remove(d)  # never descended; one inside the folder is imported through its real path
            if not (base / d).resolve().is_relative_to(inside):
                rel = (base / d).relative_to(folder).as_posix()
                skip(base / d, rel, None, f"a link to a folder outside {folder}; not followed")
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for fname in sorted(files):
            if fname.startswith("."):
                continue
            full = base / fname
            rel = full.relative_to(folder).as_posix()
            kind = SUPPORTED_SUFFIXES.get(full.suffix.lower())
            if kind and full.is_symlink() and not full.resolve().is_relative_to(inside):
                skip(full, rel, kind, f"a link to a file outside {folder}; not followed")
                continue
            consider(full, rel)
