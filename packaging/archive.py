"""Reproducible packing of the offline archive and what checks it (used by packaging/make_bundle.py).

- :func:`source_date_epoch`: the time every archive member gets -- ``$SOURCE_DATE_EPOCH`` when set,
  else the commit time of the last commit that changed an input of the bundle, else (not a git
  checkout) a fixed 1980-01-01, said on stderr;
- :func:`build_env`: PyInstaller's environment (``PYTHONHASHSEED=0``: without it the order of the
  modules in ``base_library.zip`` follows Python's randomised set order and changes between builds);
- :func:`write_manifest`: ``MANIFEST.sha256`` inside the archive's folder, which install.sh checks;
- :func:`pack`: tar members sorted, owners 0/0 without names, modes 0755/0644, mtimes the epoch,
  gzip without a timestamp or file name;
- :func:`write_sums`: ``dist/SHA256SUMS`` beside the archive.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = "MANIFEST.sha256"
# what goes into the bundle from the repository (make_bundle.inputs_hash hashes the same, plus the venv's libraries)
GIT_INPUTS = ("kiig_desktop", "resources", "packaging", "docs/*.md", "pyproject.toml")
OUTSIDE_GIT_EPOCH = 315532800  # 1980-01-01 00:00 UTC, the earliest time a zip member can hold


def source_date_epoch(root: Path = ROOT) -> int:
    """The archive's timestamp: ``$SOURCE_DATE_EPOCH``, else the last input commit's time, else 1980."""
    given = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if given:
        if not given.isdigit():
            raise SystemExit(f"bundle: SOURCE_DATE_EPOCH={given!r} is not a number of seconds")
        return int(given)
    try:
        r = subprocess.run(["git", "log", "-1", "--format=%ct", "--", *GIT_INPUTS],
                           cwd=root, capture_output=True, text=True, check=False)
        why = (r.stderr.strip().splitlines() or ["git printed no commit"])[0]
    except OSError as exc:
        r, why = None, f"no git: {exc}"
    if r is not None and r.returncode == 0 and r.stdout.strip().isdigit():
        return int(r.stdout.strip())
    print(f"bundle: note: no commit time for {root} ({why}): member times set to 1980-01-01 "
          "(set SOURCE_DATE_EPOCH to choose)", file=sys.stderr)
    return OUTSIDE_GIT_EPOCH


def build_env(epoch: int) -> dict[str, str]:
    """The environment of the PyInstaller run: hash seed fixed, SOURCE_DATE_EPOCH set."""
    return {**os.environ, "PYTHONHASHSEED": "0", "SOURCE_DATE_EPOCH": str(epoch)}


def _members(folder: Path) -> list[Path]:
    """Every path under ``folder`` (folders, files, links), sorted by their bytes, parents first."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        base = Path(dirpath)
        found += [base / n for n in dirnames + filenames]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix().encode())


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(folder: Path) -> Path:
    """``folder/MANIFEST.sha256``: a sha256sum line for every file and link (a link by what it points to)."""
    lines = []
    for path in _members(folder):
        if (path.is_dir() and not path.is_symlink()) or path == folder / MANIFEST:
            continue
        if not path.exists():
            raise SystemExit(f"bundle: {path} is a dangling link")
        lines.append(f"{sha256(path)}  {path.relative_to(folder).as_posix()}\n")
    out = folder / MANIFEST
    out.write_text("".join(lines), encoding="utf-8")
    return out


def _normalised(info: tarfile.TarInfo, epoch: int) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = epoch
    if info.isdir():
        info.mode = 0o755
    elif info.issym():
        info.mode = 0o777
    else:
        info.mode = 0o755 if info.mode & 0o111 else 0o644
    return info


def pack(folder: Path, out: Path, epoch: int) -> None:
    """``out``: ``folder`` as a .tar.gz whose bytes depend on the files' contents and ``epoch`` only."""
    with out.open("wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in [folder, *_members(folder)]:
            name = folder.name if path == folder else f"{folder.name}/{path.relative_to(folder).as_posix()}"
            info = _normalised(tar.gettarinfo(str(path), arcname=name), epoch)
            if info.isreg():
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)


def write_sums(dist: Path, stem: str) -> Path:
    """``dist/SHA256SUMS``: a sha256sum line for the archive and every file named after it (the SBOM)."""
    names = sorted(p.name for p in dist.iterdir()
                   if p.is_file() and p.name.startswith(stem) and not p.name.endswith((".asc", ".partial")))
    out = dist / "SHA256SUMS"
    tmp = out.with_suffix(".partial")
    tmp.write_text("".join(f"{sha256(dist / n)}  {n}\n" for n in names), encoding="utf-8")
    tmp.replace(out)
    return out
