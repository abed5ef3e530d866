"""Checks of a CycloneDX SBOM (packaging/sbom.py) against the unpacked app folder it describes.

``content_errors(bom, app)`` lists every disagreement: a shared library in the folder that the SBOM
does not list (or lists under a wrong SHA-256), a listed file or occurrence that is not there, a
Python distribution whose modules or files are in the app but which the SBOM does not list, and a
component whose licenses/ folder is missing or empty. What is present is read from the folder
itself (and the module archives inside its executables), not from the generator's own data.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import re
import sys
import zipfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SHARED_LIB = re.compile(r"\.so(\.\d+)*$")


@functools.cache
def load_sbom() -> ModuleType:
    """packaging/sbom.py as a module (packaging/ is not an importable package: PyPI's ``packaging`` is)."""
    spec = importlib.util.spec_from_file_location("kiig_sbom", ROOT / "packaging" / "sbom.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def embedded_modules(app: Path) -> set[str]:
    """Top-level names of the compiled modules in the executables' archives (PyInstaller's CArchive
    and its PYZ) and in _internal/base_library.zip."""
    from PyInstaller.archive.readers import CArchiveReader, NotAnArchiveError

    names: set[str] = set()
    base = app / "_internal" / "base_library.zip"
    if base.is_file():
        with zipfile.ZipFile(base) as zf:
            names |= {n.split("/")[0].removesuffix(".pyc") for n in zf.namelist()}
    for exe in sorted(p for p in app.iterdir() if p.is_file() and not p.suffix):
        try:
            archive = CArchiveReader(str(exe))
        except (NotAnArchiveError, OSError, ValueError):
            continue
        for name, entry in archive.toc.items():
            if entry[-1] == "z":
                names |= {m.split(".")[0] for m in archive.open_embedded_archive(name).toc}
            elif entry[-1] in ("m", "s", "M"):
                names.add(name.split(".")[0])
    return names


def distributions_present(app: Path, modules: set[str]) -> set[str]:
    """Canonical names of the installed distributions whose modules or top-level folders are in the app."""
    names = set(modules) | {p.name.split(".")[0] for p in (app / "_internal").iterdir()}
    owners = importlib.metadata.packages_distributions()
    found = {_canonical(dist) for name in names for dist in owners.get(name, [])}
    # modules that are no importable package's (PyInstaller's loader and run-time hooks): the one
    # distribution that has a file of that name
    unknown = names - set(owners) - set(sys.stdlib_module_names)
    matches: dict[str, set[str]] = {}
    for dist in importlib.metadata.distributions():
        for rel in dist.files or []:
            stem = rel.parent.name if rel.name == "__init__.py" else rel.stem
            if rel.suffix == ".py" and stem in unknown:
                matches.setdefault(stem, set()).add(_canonical(dist.metadata["Name"]))
    found |= {next(iter(dists)) for dists in matches.values() if len(dists) == 1}
    return found | {_canonical(p.name.split("-")[0]) for p in (app / "_internal").glob("*.dist-info")}


def content_errors(bom: dict, app: Path, modules: set[str] | None = None) -> list[str]:
    """Every disagreement between ``bom`` and the app folder (``modules``: the compiled modules' top-level names)."""
    modules = embedded_modules(app) if modules is None else modules
    errors: list[str] = []
    root = bom["metadata"]["component"]
    every = [root, *load_sbom().walk(bom["components"])]
    files = {c["name"]: c for c in every if c["type"] == "file"}
    links = {}
    for comp in files.values():
        for prop in comp.get("properties", []):
            if prop["name"] == "kiig:symlinks":
                links.update(dict.fromkeys(prop["value"].split(), comp["name"]))
    on_disk = {p.relative_to(app).as_posix(): p for p in app.rglob("*")
               if SHARED_LIB.search(p.name) and (p.is_file() or p.is_symlink())}
    for rel in sorted(set(on_disk) - set(files) - set(links)):
        errors.append(f"shared library not in the SBOM: {rel}")
    for rel in sorted((set(files) | set(links)) - set(on_disk)):
        errors.append(f"listed but absent: {rel}")
    for rel, comp in sorted(files.items()):
        path = on_disk.get(rel)
        if path is not None and (path.is_symlink() or hashlib.sha256(path.read_bytes()).hexdigest() != comp["hashes"][0]["content"]):
            errors.append(f"SHA-256 (or file type) differs: {rel}")
    for link, target in sorted(links.items()):
        if link in on_disk and (not on_disk[link].is_symlink() or on_disk[link].resolve() != (app / target).resolve()):
            errors.append(f"{link} is not a link to {target}")
    listed = {_canonical(c["name"]) for c in bom["components"] if c.get("purl", "").startswith("pkg:pypi/")}
    for name in sorted(distributions_present(app, modules) - listed - {_canonical(root["name"])}):
        errors.append(f"distribution not in the SBOM: {name}")
    for comp in every:
        if comp["type"] != "file" and comp.get("purl", "").startswith("pkg:pypi/") and not comp.get("evidence", {}).get("occurrences"):
            errors.append(f"{comp['bom-ref']}: no occurrence in the app")
        for occ in comp.get("evidence", {}).get("occurrences", []):
            loc = occ["location"]
            here = loc.removeprefix("module/") in modules if loc.startswith("module/") else (app / loc).exists() or (app / loc).is_symlink()
            if not here:
                errors.append(f"{comp['bom-ref']}: listed at {loc}, which is absent")
    for comp in every:
        for prop in comp.get("properties", []):
            if prop["name"] == "kiig:licenseDir":
                folder = app / prop["value"]
                texts = [p for p in folder.rglob("*") if p.is_file() and p.stat().st_size > 0] if folder.is_dir() else []
                if not texts:
                    errors.append(f"{comp['bom-ref']}: no licence text in {prop['value']}")
    return errors
