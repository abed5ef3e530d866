"""The SBOM and licenses/ of the archive ``make bundle`` leaves in dist/, against the archive's actual
contents: every bundled shared library and every Python distribution present is listed, nothing
listed is absent, the SBOM has CycloneDX's structure, and every component has its licence text.

``make test`` builds the archive first and sets KIIG_REQUIRE_ALL=1, so a missing archive fails.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from tests.support.bundle import dist_archive, unpack
from tests.support.sbom_checks import content_errors, load_sbom

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the bundle is built on Linux"), pytest.mark.slow]
sbom = load_sbom()


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory) -> tuple[Path, dict]:
    """(the unpacked app folder, its SBOM)."""
    (app,) = list(unpack(tmp_path_factory.mktemp("unpacked")).iterdir())
    path = app / f"{app.name}.cdx.json"
    assert path.is_file(), f"no SBOM {path.name} in the archive"
    return app, json.loads(path.read_text(encoding="utf-8"))


def test_the_sbom_beside_the_archive_is_the_one_inside(unpacked):
    app, _ = unpacked
    beside = dist_archive().with_name(f"{app.name}.cdx.json")
    assert beside.is_file() and beside.read_bytes() == (app / beside.name).read_bytes()


def test_the_sbom_has_cyclonedx_structure(unpacked):
    _, bom = unpacked
    assert bom["specVersion"] == "1.6"
    assert sbom.structure_errors(bom) == []


def test_the_sbom_lists_exactly_the_archives_libraries_and_distributions_with_licence_texts(unpacked):
    app, bom = unpacked
    assert content_errors(bom, app) == []


def _components(bom: dict, prefix: str) -> list[dict]:
    return [c for c in bom["components"] if c["bom-ref"].startswith(prefix)]


def test_llama_cpp_model_qt_and_debian_libraries_are_described(unpacked):
    app, bom = unpacked
    (llama,) = _components(bom, "llama.cpp@")
    props = {p["name"]: p["value"] for p in llama["properties"]}
    variants = sorted(p.name.removeprefix("libggml-cpu-").split(".so")[0] for p in (app / "_internal" / "llama_cpp" / "lib").glob("libggml-cpu-*.so*"))
    assert variants and props["kiig:cpuVariants"] == " ".join(variants)
    assert props["kiig:patchesHash"] == sbom.llama_patches.patches_hash()
    assert llama["version"] != "unknown" and "MIT License" in (app / "licenses" / "llama.cpp" / "LICENSE").read_text()
    (model,) = _components(bom, "model:")
    gguf = app / {p["name"]: p["value"] for p in model["properties"]}["kiig:file"]
    assert model["hashes"] == [{"alg": "SHA-256", "content": hashlib.sha256(gguf.read_bytes()).hexdigest()}]
    assert model["licenses"] == [{"expression": "Apache-2.0", "acknowledgement": "declared"}]
    notice = (app / "licenses" / "python-pyside6-essentials" / "QT-LGPL-NOTICE.txt").read_text()
    assert "{" not in notice and "_internal/PySide6/Qt/lib" in notice
    assert (app / "licenses" / "python-pyside6-essentials" / "LGPL-3.0-only.txt").is_file()
    x11 = [c for c in _components(bom, "deb:libx11-6@")]
    assert x11 and x11[0]["components"][0]["name"] == "_internal/libX11.so.6"
    assert (app / "licenses" / "debian-libx11-6" / "copyright").is_file()
