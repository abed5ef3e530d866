"""Build the offline archive ``dist/kiig-desktop-VERSION-linux-x86_64.tar.gz`` (``make bundle``).

    python packaging/make_bundle.py [--force]

Freezes the app with PyInstaller (packaging/kiig-desktop.spec) using the running Python's
packages (the venv ``make install`` made, with the all-variants llama.cpp build), tidies the
result, adds the installer and MANIFEST.sha256 (every file's SHA-256, which install.sh checks), packs
it, writes dist/SHA256SUMS beside it, and prints the archive's path, size and build time.

Reproducible (packaging/archive.py): two builds of one commit on one machine give the same bytes --
PyInstaller runs with PYTHONHASHSEED=0 and SOURCE_DATE_EPOCH (the last commit that changed an input,
or $SOURCE_DATE_EPOCH), tar members are sorted with owners 0/0, modes 0755/0644 and that time, and
the gzip header has no timestamp or file name.

The archive is cached under ``~/.cache/kiig-desktop/bundle/<hash>.tar.gz``, keyed by everything
that goes into it (the package's sources, resources, docs/*.md, packaging/, the llama.cpp libraries, the
Python version, PyInstaller's version, the member time): an unchanged tree reuses it in a second, so ``make test``
(CI) can build the bundle and run its tests without paying PyInstaller's minutes every time.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import archive  # noqa: E402 - packaging/archive.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("KIIG_BUNDLE_CACHE") or Path.home() / ".cache" / "kiig-desktop" / "bundle")
_FULL_VERSION = re.compile(r"\.so\.\d+\.\d+\.\d+$")
INSTALLER = ("install.sh", "uninstall.sh", "kiig-desktop.desktop", "README-offline.txt")


def version() -> str:
    text = (ROOT / "kiig_desktop" / "__init__.py").read_text(encoding="utf-8")
    return re.search(r'__version__\s*=\s*"([^"]+)"', text).group(1)


def archive_name() -> str:
    return f"kiig-desktop-{version()}-linux-x86_64"


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def inputs_hash(epoch: int) -> str:
    """SHA-256 over every input of the bundle (file names and contents, the member time), first 16 hex digits."""
    h = hashlib.sha256()
    h.update(f"epoch {epoch}|".encode())
    llama = Path(importlib.util.find_spec("llama_cpp").origin).parent
    wheel_bin = Path(sysconfig.get_paths()["platlib"]) / "bin"
    parts = [ROOT / "kiig_desktop", ROOT / "resources", ROOT / "packaging", llama / "lib", wheel_bin]
    for folder in parts:
        if not folder.is_dir():
            continue
        for path in _files(folder):
            if folder == wheel_bin and "ggml" not in path.name:
                continue
            h.update(str(path.relative_to(folder.parent)).encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
    for path in sorted((ROOT / "docs").glob("*.md")):  # the help the app shows (not the screenshots)
        h.update(str(path.relative_to(ROOT)).encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    h.update((ROOT / "pyproject.toml").read_bytes())
    h.update(f"{sys.version_info[:3]}|{importlib.metadata.version('pyinstaller')}".encode())
    h.update(_sbom().inputs_key().encode())
    return h.hexdigest()[:16]


def tidy(app: Path) -> None:
    """One copy of each llama.cpp library: the soname the loader asks for (and libllama.so, which
    llama_cpp opens by that name), not the .so/.so.X.Y.Z twins PyInstaller copies as files."""
    # Qt's GTK theme plugin needs GTK 3, which the archive does not carry (it is built in a bare Debian
    # 11 root): left in, it would be a library with missing dependencies; Qt then uses its own Fusion
    # style and file dialogs everywhere
    (app / "_internal" / "PySide6" / "Qt" / "plugins" / "platformthemes" / "libqgtk3.so").unlink(missing_ok=True)
    lib = app / "_internal" / "llama_cpp" / "lib"
    for path in list(lib.iterdir()):
        name = path.name
        twin = lib / f"{name}.0"
        if _FULL_VERSION.search(name) or (name.startswith("libggml") and name.endswith(".so") and twin.exists()):
            path.unlink()
    # PyInstaller links the sonames the variants need to the top (symlinks into llama_cpp/lib: the
    # same file, so one library in memory); a real second copy would be a second ggml registry
    top = [p.name for p in (app / "_internal").iterdir()
           if p.name.startswith(("libggml", "libllama")) and not (p.is_symlink() and p.resolve().parent == lib.resolve())]
    if top:
        raise SystemExit(f"bundle: duplicate llama.cpp libraries at the top of the bundle: {top}")


def build(out: Path, epoch: int) -> None:
    work = ROOT / "build" / "bundle"
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
                    "--distpath", str(work / "dist"), "--workpath", str(work / "work"),
                    str(ROOT / "packaging" / "kiig-desktop.spec")], check=True, cwd=ROOT, env=archive.build_env(epoch))
    app = work / "dist" / "kiig-desktop"
    tidy(app)
    stage = work / archive_name()
    app.rename(stage)
    for name in INSTALLER:
        shutil.copy2(ROOT / "packaging" / "offline" / name, stage / name)
    shutil.copy2(ROOT / "resources" / "icons" / "kiig.svg", stage / "kiig-desktop.svg")
    _sbom().write(stage, work / "work", stage.name)  # <name>.cdx.json and licenses/ (packaging/sbom.py)
    archive.write_manifest(stage)  # after the SBOM, so the manifest covers it
    tmp = out.with_suffix(".partial")
    archive.pack(stage, tmp, epoch)
    tmp.replace(out)


def _sbom():
    """packaging/sbom.py (the SBOM and licenses/ of the archive)."""
    if str(ROOT / "packaging") not in sys.path:
        sys.path.insert(0, str(ROOT / "packaging"))
    import sbom

    return sbom


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--force", action="store_true", help="rebuild even when the cache holds this tree's archive")
    p.add_argument("--dist", type=Path, default=ROOT / "dist",
                   help="folder for the archive, its SBOM and SHA256SUMS (default: dist/)")
    args = p.parse_args(argv)
    started = time.monotonic()
    epoch = archive.source_date_epoch(ROOT)
    key = inputs_hash(epoch)
    cached = CACHE / f"{key}.tar.gz"
    dest = args.dist / f"{archive_name()}.tar.gz"
    dest.parent.mkdir(parents=True, exist_ok=True)
    how = "reused from cache"
    if args.force or not cached.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        build(cached, epoch)
        how = "built"
        for old in CACHE.glob("*.tar.gz"):  # keep the cache to one archive
            if old != cached:
                old.unlink()
    shutil.copyfile(cached, dest)
    _sbom().copy_beside(dest)  # dist/<name>.cdx.json
    archive.write_sums(dest.parent, archive_name())  # after the SBOM copy, so SHA256SUMS lists it
    size = dest.stat().st_size / 1e6
    print(f"{dest} ({size:.0f} MB) {how} in {time.monotonic() - started:.0f} s (inputs {key})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
