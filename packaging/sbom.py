"""The bundle's CycloneDX 1.6 SBOM and its licenses/ folder (called by packaging/make_bundle.py).

    python packaging/sbom.py APP_DIR WORK_DIR    write APP_DIR/<name>.cdx.json and APP_DIR/licenses/

What is listed, and where each fact comes from:

- every file PyInstaller collected has a source path (its TOC files in WORK_DIR); a source path names
  its owner: a Python distribution (the file is in its RECORD), CPython (under ``sys.base_prefix``),
  PyInstaller (its bootloader and loader modules), KIIG Desktop (this repository), or a Debian
  package (``dpkg -S``; version from ``dpkg-query -W``). A file no owner claims fails the build.
- every shared library (``*.so``, ``*.so.N``) in APP_DIR is a ``file`` component (SHA-256 of the
  bundled bytes, the path it was copied from, the symbolic links to it), nested in its owner;
- a Python distribution: name, version, purl, licence (License-Expression, an SPDX-shaped License
  field, else the named licences), and the SHA-256 of its installed ``dist-info/RECORD`` (which
  lists the SHA-256 of each of its files); ``evidence.occurrences`` says where it is in the app
  (``_internal/<top folder>``, or ``module/<name>``: a top-level module compiled into the executables or base_library.zip);
- llama.cpp: the commit llama-cpp-python's CHANGELOG names, our patches (``pedigree.patches``,
  ``packaging/llama_patches.py --hash``) and the CPU variants in the bundle;
- the embedded model (the ``*.gguf``): SHA-256 and the licence its GGUF header declares.

Deterministic: sorted, no timestamp unless SOURCE_DATE_EPOCH is set, and the serial number is a
UUID derived from the content. A component without licence text is printed as a warning.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (ROOT, HERE):  # this checkout's kiig_desktop (GGUF header reader) and packaging/ siblings
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
import licenses  # noqa: E402
import llama_patches  # noqa: E402
from archive import sha256  # noqa: E402 - one file hash for the manifest and the SBOM
from cyclonedx import SPEC_VERSION, licence_dirs, serial_number, structure_errors, walk  # noqa: E402, F401

SHARED_LIB = re.compile(r"\.so(\.\d+)*$")
EMBEDDED = ("PYMODULE", "PYSOURCE")  # compiled into the executables, not files in the folder
def toc_entries(work: Path) -> list[tuple[str, str, str]]:
    """Every (destination, source, typecode) triple in PyInstaller's TOC files under ``work``."""
    found: set[tuple[str, str, str]] = set()

    def visit(node) -> None:
        if isinstance(node, (list, tuple)):
            if len(node) == 3 and all(isinstance(x, str) for x in node) and node[2].isupper():
                found.add(tuple(node))
            else:
                for item in node:
                    visit(item)

    for toc in sorted(work.rglob("*.toc")):
        visit(ast.literal_eval(toc.read_text(encoding="utf-8")))
    if not found:
        raise SystemExit(f"sbom: no PyInstaller TOC entries under {work}")
    return sorted(found)


@dataclass
class Owner:
    """A component that owns files of the app (its bom-ref is ``ref``)."""
    ref: str
    kind: str  # python, debian, cpython, pyinstaller, app
    name: str
    version: str
    files: dict[str, str] = field(default_factory=dict)  # .so path in the app -> where it was copied from
    places: set[str] = field(default_factory=set)  # evidence.occurrences
    dist: importlib.metadata.Distribution | None = None
    extra: dict = field(default_factory=dict)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def record_index() -> dict[str, importlib.metadata.Distribution]:
    """Real path of every installed file -> the distribution whose RECORD lists it (this project's own left out)."""
    index: dict[str, importlib.metadata.Distribution] = {}
    seen = set()
    for dist in sorted(importlib.metadata.distributions(), key=lambda d: str(d.locate_file(""))):
        name = _canonical(dist.metadata["Name"])
        if name in seen or name == _canonical(project()["name"]):
            continue
        seen.add(name)
        for rel in dist.files or []:
            index.setdefault(os.path.realpath(dist.locate_file(rel)), dist)
    return index


class Resolver:
    """Which component a collected source file belongs to, on this build machine."""

    def __init__(self, work: Path, root: Path = ROOT) -> None:
        self.work, self.root = work.resolve(), root.resolve()
        self.base = Path(sys.base_prefix).resolve()
        self.record = record_index()

    def owner(self, src: str, code: str) -> tuple[str, str | importlib.metadata.Distribution]:
        """(kind, key) of a source path: ('python', distribution), ('cpython', ''), ('debian', path), ..."""
        real = os.path.realpath(src)
        dist = self.record.get(real)
        if dist is not None:
            return "python", dist
        if real.startswith(str(self.work) + os.sep):  # built by PyInstaller: its bootloader and loader, or the stdlib
            return ("pyinstaller", "") if code == "EXECUTABLE" or Path(real).name.startswith("pyimod") else ("cpython", "")
        if real.startswith(str(self.root) + os.sep):
            return "app", ""
        if real.startswith(str(self.base) + os.sep):
            return "cpython", ""
        return "debian", real

    def shown(self, src: str) -> str:
        """A source path as the SBOM shows it (site-packages and the Python prefix without this machine's path)."""
        real = os.path.realpath(src)
        if "/site-packages/" in real:
            return "site-packages/" + real.split("/site-packages/", 1)[1]
        if real.startswith(str(self.base) + os.sep):
            return "<python>/" + os.path.relpath(real, self.base)
        return real


def dpkg_owners(paths: list[str]) -> dict[str, str]:
    """``dpkg -S``: the package (``name:arch``) of each path, trying the /usr-merged twin too."""
    def twins(p: str) -> list[str]:
        return [p, p[4:]] if p.startswith("/usr/") else [p, "/usr" + p]

    candidates = sorted({t for p in paths for t in twins(p)})
    if not candidates or shutil.which("dpkg") is None:
        return {}
    out = subprocess.run(["dpkg", "-S", *candidates], capture_output=True, text=True, check=False).stdout
    found = {}
    for line in out.splitlines():
        if line.startswith("diversion ") or ": " not in line:
            continue
        pkgs, path = line.split(": ", 1)
        found[path.strip()] = pkgs.split(",")[0].strip()
    return {p: next((found[t] for t in twins(p) if t in found), "") for p in paths}


def dpkg_versions(packages: list[str]) -> dict[str, tuple[str, str]]:
    """``dpkg-query -W``: (version, 'source source-version') of each installed package."""
    if not packages:
        return {}
    fmt = "${binary:Package}\t${Version}\t${source:Package} ${source:Version}\n"
    out = subprocess.run(["dpkg-query", "-W", "-f", fmt, *packages], capture_output=True, text=True, check=False).stdout
    rows = {}
    for line in out.splitlines():
        name, version, source = line.split("\t")
        rows[name] = rows[name.split(":")[0]] = (version, source)
    return {p: rows.get(p, ("", "")) for p in packages}


def project() -> dict:
    """pyproject.toml's [project] table, with the version from kiig_desktop/__init__.py."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    text = (ROOT / "kiig_desktop" / "__init__.py").read_text(encoding="utf-8")
    return {**meta, "version": re.search(r'__version__\s*=\s*"([^"]+)"', text).group(1)}


def _location(dest: str, typecode: str) -> str:
    if typecode in EMBEDDED:  # a compiled module: in the executables' archives or _internal/base_library.zip
        return "module/" + dest.split(".")[0]
    if typecode == "EXECUTABLE":
        return dest
    return "_internal/" + Path(dest).parts[0]


def inventory(app: Path, work: Path, resolver: Resolver) -> tuple[dict[str, Owner], list[str]]:
    """The owners of the app's files, keyed by bom-ref; and the files no owner claims."""
    internal = app / "_internal"
    entries = toc_entries(work)
    by_dest = {dest: src for dest, src, code in entries if code != "SYMLINK" and src}
    owners: dict[str, Owner] = {}
    pending: dict[str, list[tuple[str, str, str]]] = {}  # debian source path -> [(place, so path, shown)]

    def add(kind: str, key) -> Owner:
        if kind == "python":
            dist = key
            name, version = dist.metadata["Name"], dist.version
            ref = f"pypi:{_canonical(name)}@{version}"
            return owners.setdefault(ref, Owner(ref, kind, name, version, dist=dist))
        if kind == "cpython":
            version = ".".join(map(str, sys.version_info[:3]))
            return owners.setdefault(f"cpython@{version}", Owner(f"cpython@{version}", kind, "CPython", version))
        if kind == "pyinstaller":
            dist = importlib.metadata.distribution("pyinstaller")
            ref = f"pypi:pyinstaller@{dist.version}"
            return owners.setdefault(ref, Owner(ref, "python", "pyinstaller", dist.version, dist=dist))
        return owners.setdefault("app", Owner("app", "app", "kiig-desktop", project()["version"]))

    for dest, src, code in entries:
        if code in ("SYMLINK", "OPTION", "PYZ", "DEPENDENCY") or not src:
            continue
        target = app / dest if code == "EXECUTABLE" else internal / dest
        if code not in EMBEDDED and not (target.exists() or target.is_symlink()):
            continue  # tidied away (make_bundle.tidy) or not a file of this app
        place = _location(dest, code)
        kind, key = resolver.owner(src, code)
        if kind == "debian":
            pending.setdefault(key, []).append((place, dest, resolver.shown(src)))
            continue
        owner = add(kind, key)
        owner.places.add(place)
        if code not in EMBEDDED and SHARED_LIB.search(dest):
            owner.files[f"_internal/{dest}"] = resolver.shown(src)

    packages = dpkg_owners(sorted(pending))
    versions = dpkg_versions(sorted({p for p in packages.values() if p}))
    unclaimed = []
    for src, uses in sorted(pending.items()):
        pkg = packages.get(src, "")
        if not pkg:
            unclaimed += [f"_internal/{dest} (from {src})" for _, dest, _ in uses]
            continue
        version, source = versions[pkg]
        name = pkg.split(":")[0]
        ref = f"deb:{name}@{version}"
        owner = owners.setdefault(ref, Owner(ref, "debian", name, version, extra={"package": pkg, "source": source}))
        for place, dest, shown in uses:
            owner.places.add(place)
            if SHARED_LIB.search(dest):
                owner.files[f"_internal/{dest}"] = shown
    claimed = {f for o in owners.values() for f in o.files}
    for path in sorted(shared_libraries(app)):
        rel = path.relative_to(app).as_posix()
        if not path.is_symlink() and rel not in claimed:
            dest = path.relative_to(internal).as_posix() if internal in path.parents else rel
            unclaimed.append(f"{rel} (from {by_dest.get(dest, 'no PyInstaller TOC entry')})")
    return owners, unclaimed


def shared_libraries(app: Path) -> list[Path]:
    """Every ``*.so`` / ``*.so.N`` in the app (files and symbolic links), sorted."""
    return sorted(p for p in app.rglob("*") if SHARED_LIB.search(p.name) and (p.is_file() or p.is_symlink()))


def _props(**kv) -> list[dict]:
    return [{"name": f"kiig:{k}", "value": str(v)} for k, v in sorted(kv.items()) if v not in (None, "")]


def symlinks(app: Path) -> dict[str, list[str]]:
    """Bundled library -> the symbolic links to it (paths relative to the app folder)."""
    aliases: dict[str, list[str]] = {}
    for link in shared_libraries(app):
        if link.is_symlink():
            aliases.setdefault(link.resolve().relative_to(app.resolve()).as_posix(), []).append(link.relative_to(app).as_posix())
    return aliases


def file_components(app: Path, owner: Owner, aliases: dict[str, list[str]]) -> list[dict]:
    """One ``file`` component per bundled library of ``owner``: SHA-256, where it came from, its links."""
    return [{"type": "file", "bom-ref": f"file:{rel}", "name": rel,
             "hashes": [{"alg": "SHA-256", "content": sha256(app / rel)}],
             "properties": _props(copiedFrom=src, symlinks=" ".join(sorted(aliases.get(rel, []))))}
            for rel, src in sorted(owner.files.items())]


def llama_cpp_facts(vocab: Path) -> tuple[str, Path | None]:
    """(llama.cpp commit named by llama-cpp-python's CHANGELOG for this version, its LICENSE file)."""
    changelog, lic = vocab / "llama-cpp-python-CHANGELOG.md", vocab / "llama.cpp-LICENSE"
    commit = "unknown"
    if changelog.is_file():
        version = importlib.metadata.version("llama_cpp_python")
        text = changelog.read_text(encoding="utf-8")
        section = text.split(f"## [{version}]", 1)[1].split("\n## [", 1)[0] if f"## [{version}]" in text else ""
        m = re.search(r"llama\.cpp@([0-9a-f]{7,40})", section)
        commit = m.group(1) if m else commit
    return commit, (lic if lic.is_file() else None)


def vocab_dir() -> Path:
    version = importlib.metadata.version("llama_cpp_python")
    return Path(os.environ.get("KIIG_VOCAB_DIR") or Path.home() / ".cache" / "kiig-desktop" / "vocab" / version)


def build(app: Path, work: Path, resolver: Resolver | None = None, vocab: Path | None = None) -> tuple[dict, dict[str, list[tuple[str, Path | str]]], list[str]]:
    """(the SBOM, licence files per licenses/ folder, problems) for the unpacked app folder."""
    owners, problems = inventory(app, work, resolver or Resolver(work))
    texts: dict[str, list[tuple[str, Path | str]]] = {}  # licenses/<folder> -> (file name, source file or text)
    components, deps = [], {}
    meta = project()
    root = {"type": "application", "bom-ref": "kiig-desktop", "name": "kiig-desktop", "version": meta["version"],
            "description": meta.get("description", ""), "licenses": licenses.choice(meta.get("license")),
            "properties": _props(licenseDir="licenses/kiig-desktop")}
    texts["kiig-desktop"] = licenses.common_texts(meta.get("license", ""))
    app_owner = owners.pop("app", None)
    if app_owner:
        root["evidence"] = {"occurrences": [{"location": p} for p in sorted(app_owner.places)]}
    dist_refs = {_canonical(o.name): ref for ref, o in owners.items() if o.kind == "python"}
    aliases = symlinks(app)
    for ref, owner in sorted(owners.items()):
        comp = {"type": "library", "bom-ref": ref, "name": owner.name, "version": owner.version}
        folder = f"{owner.kind}-{_canonical(owner.name)}" if owner.kind in ("python", "debian") else _canonical(owner.name)
        if owner.kind == "python":
            comp["purl"] = f"pkg:pypi/{_canonical(owner.name)}@{owner.version}"
            comp["licenses"] = licenses.distribution_license(owner.dist.metadata)
            record = next((Path(owner.dist.locate_file(f)) for f in owner.dist.files or []
                           if f.name == "RECORD" and f.parent.name.endswith(".dist-info")), None)
            if record is not None and record.is_file():
                comp["hashes"] = [{"alg": "SHA-256", "content": sha256(record)}]
            texts[folder] = licenses.distribution_files(owner.dist)
            expr = owner.dist.metadata.get("License-Expression") or owner.dist.metadata.get("License") or ""
            if not texts[folder] and licenses.looks_spdx(expr):
                texts[folder] = licenses.common_texts(expr)
            if _canonical(owner.name) in ("pyside6-essentials", "shiboken6"):
                texts[folder] = texts[folder] + [("QT-LGPL-NOTICE.txt", qt_notice())]
            needs = {_canonical(re.split(r"[\s;<>=!~\[(]", r, maxsplit=1)[0]) for r in owner.dist.requires or [] if "extra ==" not in r}
            deps[ref] = sorted(dist_refs[n] for n in needs if n in dist_refs)
        elif owner.kind == "debian":
            arch = owner.extra["package"].split(":")[1] if ":" in owner.extra["package"] else "amd64"
            comp["purl"] = f"pkg:deb/debian/{owner.name}@{owner.version.replace(':', '%3A')}?arch={arch}"
            copyright_file = licenses.debian_copyright(owner.name)
            comp["licenses"] = licenses.debian_license(copyright_file)
            texts[folder] = [("copyright", copyright_file)] if copyright_file else []
            comp["properties"] = _props(debianSource=owner.extra["source"])
        elif owner.kind == "cpython":
            comp["purl"] = f"pkg:generic/cpython@{owner.version}"
            comp["licenses"] = licenses.choice("PSF-2.0")
            lic = Path(sys.base_prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "LICENSE.txt"
            texts[folder] = [("LICENSE.txt", lic)] if lic.is_file() else []
        comp["properties"] = comp.get("properties", []) + _props(licenseDir=f"licenses/{folder}")
        comp["evidence"] = {"occurrences": [{"location": p} for p in sorted(owner.places)]}
        if owner.files:
            comp["components"] = file_components(app, owner, aliases)
        components.append(comp)
        deps.setdefault(ref, [])
    extra, extra_texts = _llama_and_model(app, vocab or vocab_dir(), dist_refs, deps)
    components += extra
    texts.update(extra_texts)
    deps["kiig-desktop"] = sorted(c["bom-ref"] for c in components)
    bom = {
        "bomFormat": "CycloneDX", "specVersion": SPEC_VERSION, "version": 1,
        "metadata": {"component": root, "tools": {"components": [
            {"type": "application", "bom-ref": "tool:kiig-sbom", "name": "packaging/sbom.py (KIIG Desktop)", "version": meta["version"]}]},
            "properties": _props(hashOfPythonDistributions="SHA-256 of the installed dist-info/RECORD (which lists each file's SHA-256)",
                                 hashOfFiles="SHA-256 of the bundled file")},
        "components": components,
        "dependencies": [{"ref": r, "dependsOn": d} for r, d in sorted(deps.items())],
    }
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        bom["metadata"]["timestamp"] = datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    bom["serialNumber"] = serial_number(bom)
    return bom, texts, problems


def qt_notice() -> str:
    """packaging/notices/qt-lgpl.txt with this build's PySide6/shiboken6 versions (Qt's is PySide6's)."""
    pyside = importlib.metadata.version("PySide6_Essentials")
    return (HERE / "notices" / "qt-lgpl.txt").read_text(encoding="utf-8").format(
        pyside_version=pyside, shiboken_version=importlib.metadata.version("shiboken6"),
        qt_minor=".".join(pyside.split(".")[:2]))


def _llama_and_model(app: Path, vocab: Path, dist_refs: dict[str, str], deps: dict) -> tuple[list[dict], dict]:
    """The llama.cpp component (when its libraries are in the app) and the embedded model's (when a GGUF is)."""
    out, texts = [], {}
    variants = sorted(p.name.split("ggml-cpu-", 1)[1].split(".so")[0] for p in app.rglob("libggml-cpu-*.so*"))
    if (app / "_internal" / "llama_cpp").is_dir():
        commit, lic = llama_cpp_facts(vocab)
        ref = f"llama.cpp@{commit}"
        out.append({
            "type": "library", "bom-ref": ref, "name": "llama.cpp", "version": commit,
            "purl": f"pkg:github/ggml-org/llama.cpp@{commit}", "licenses": licenses.choice("MIT"),
            "description": f"vendored in llama-cpp-python {importlib.metadata.version('llama_cpp_python')}; "
                           "its libraries are the llama-cpp-python component's files",
            "pedigree": {"patches": [{"type": "unofficial", "diff": {"url": f"packaging/patches/{p.name}"}}
                                     for p in llama_patches.patches()]},
            "properties": _props(cpuVariants=" ".join(variants), patchesHash=llama_patches.patches_hash(),
                                 patches=" ".join(p.name for p in llama_patches.patches()), licenseDir="licenses/llama.cpp"),
        })
        texts["llama.cpp"] = [("LICENSE", lic)] if lic else []
        if "llama-cpp-python" in dist_refs:
            deps[dist_refs["llama-cpp-python"]] = sorted({*deps.get(dist_refs["llama-cpp-python"], []), ref})
        deps[ref] = []
    for gguf in sorted(app.rglob("*.gguf")):
        from kiig_desktop.engine.gguf_header import read_raw_header

        fields = read_raw_header(gguf).fields
        spdx = licenses.gguf_license(fields.get("general.license"))
        rel = gguf.relative_to(app).as_posix()
        ref = f"model:{gguf.name}"
        out.append({
            "type": "machine-learning-model", "bom-ref": ref, "name": gguf.stem,
            "group": fields.get("general.organization", ""), "hashes": [{"alg": "SHA-256", "content": sha256(gguf)}],
            "licenses": licenses.choice(spdx), "evidence": {"occurrences": [{"location": rel}]},
            "properties": _props(file=rel, ggufName=fields.get("general.name"), licenseDir=f"licenses/model-{gguf.stem}"),
        })
        texts[f"model-{gguf.stem}"] = licenses.common_texts(spdx or "")
        owner = next((r for n, r in dist_refs.items() if n.replace("-", "_") in gguf.parts[-2]), None)
        if owner:
            deps[owner] = sorted({*deps.get(owner, []), ref})
        deps[ref] = []
    return out, texts


def write(app: Path, work: Path, name: str) -> Path:
    """Write ``app/<name>.cdx.json`` and ``app/licenses/``; print what has no licence text; returns the SBOM path."""
    bom, texts, problems = build(app, work)
    if problems:
        raise SystemExit("sbom: bundled files no component claims (not in a RECORD, not from dpkg -S): " + "; ".join(problems))
    errors = structure_errors(bom)
    if errors:
        raise SystemExit("sbom: invalid SBOM: " + "; ".join(errors))
    out = app / "licenses"
    shutil.rmtree(out, ignore_errors=True)
    for folder, files in sorted(texts.items()):
        for rel, src in files:
            dest = out / folder / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(src, str):
                dest.write_text(src, encoding="utf-8")
            else:
                shutil.copyfile(src, dest)
    missing = sorted(set(licence_dirs(bom)) - {f"licenses/{k}" for k, v in texts.items() if v})
    if missing:
        print(f"sbom: WARNING: no licence text found for {len(missing)} component(s): {', '.join(missing)}", file=sys.stderr)
    path = app / f"{name}.cdx.json"
    path.write_text(json.dumps(bom, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def copy_beside(archive: Path) -> Path:
    """Copy the SBOM inside ``archive`` (a .tar.gz of one folder) next to it: ``<folder>.cdx.json``."""
    name = archive.name.removesuffix(".tar.gz")
    with tarfile.open(archive) as tar:
        data = tar.extractfile(f"{name}/{name}.cdx.json").read()
    out = archive.with_name(f"{name}.cdx.json")
    out.write_bytes(data)
    return out


def inputs_key() -> str:
    """What the SBOM reads besides packaging/ and the venv (the llama.cpp files of ``make vocab``), for the bundle's cache key."""
    h = hashlib.sha256()
    for name in ("llama.cpp-LICENSE", "llama-cpp-python-CHANGELOG.md"):
        path = vocab_dir() / name
        h.update(name.encode() + (hashlib.sha256(path.read_bytes()).digest() if path.is_file() else b"absent"))
    return h.hexdigest()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write(__doc__ or "")
        return 2
    app = Path(argv[0])
    path = write(app, Path(argv[1]), app.name)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
