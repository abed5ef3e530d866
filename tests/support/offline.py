"""The offline archive's folder without PyInstaller: packaging/archive.py (loaded by path, packaging/
is no package) and a folder laid out like the unpacked archive, with stand-in executables and the
MANIFEST.sha256 that make_bundle.py writes, so packaging/offline/install.sh runs for real in seconds."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
OFFLINE = ROOT / "packaging" / "offline"


def archive_module() -> ModuleType:
    """packaging/archive.py, the module make_bundle.py packs and checks the archive with."""
    spec = importlib.util.spec_from_file_location("kiig_packaging_archive", ROOT / "packaging" / "archive.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bundle_folder(parent: Path, version: str = "0.0.0") -> Path:
    """``parent/kiig-desktop-VERSION-linux-x86_64`` like the unpacked archive: the installer files,
    stand-ins for kiig and kiig-desktop, one library, a link to it, a licence folder and SBOM, and
    MANIFEST.sha256."""
    app = parent / f"kiig-desktop-{version}-linux-x86_64"
    (app / "_internal" / "lib").mkdir(parents=True)
    for name in ("install.sh", "uninstall.sh", "kiig-desktop.desktop", "README-offline.txt"):
        shutil.copy2(OFFLINE / name, app / name)
    shutil.copy2(ROOT / "resources" / "icons" / "kiig.svg", app / "kiig-desktop.svg")
    for name in ("kiig", "kiig-desktop"):
        (app / name).write_text("#!/bin/sh\necho stand-in\n")
        (app / name).chmod(0o755)
    (app / "_internal" / "lib" / "libstand-in.so.1").write_bytes(bytes(range(256)) * 4)
    (app / "_internal" / "libstand-in.so.1").symlink_to("lib/libstand-in.so.1")
    (app / "licenses" / "stand-in").mkdir(parents=True)
    (app / "licenses" / "stand-in" / "LICENSE").write_text("stand-in licence text\n")
    (app / f"kiig-desktop-{version}-linux-x86_64.cdx.json").write_text('{"bomFormat": "CycloneDX"}\n')
    archive_module().write_manifest(app)
    return app
