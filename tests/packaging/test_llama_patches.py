"""Our llama.cpp source patches: applied at wheel-build time, part of the wheel cache key, and the
batch-invariant K-quant kernels they give switched on only where the loaded build has them."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kiig_desktop.engine import variants
from tests.support.paths import ROOT
from tests.support.require import require

spec = importlib.util.spec_from_file_location("llama_patches", ROOT / "packaging" / "llama_patches.py")
llama_patches = importlib.util.module_from_spec(spec)
spec.loader.exec_module(llama_patches)

needs_patch_tool = pytest.mark.usefixtures("_patch_tool")


@pytest.fixture
def _patch_tool() -> None:
    require("the patch program", shutil.which("patch") is not None, "apt-get install patch")

ORIGINAL = "int f(void) {\n    return 1;\n}\n"
PATCH = """\
--- a/src/f.c
+++ b/src/f.c
@@ -1,3 +1,3 @@
 int f(void) {
-    return 1;
+    return 2;
 }
"""


def test_the_shipped_patch_touches_only_the_cpu_kquant_kernels_and_adds_the_marker():
    text = (ROOT / "packaging" / "patches" / "kquant-batch-invariance.patch").read_text()
    files = sorted({line[6:] for line in text.splitlines() if line.startswith("+++ b/")})
    base = "vendor/llama.cpp/ggml/src/ggml-cpu/"
    assert files == [base + "arch/x86/quants.c", base + "tiled/tiled-kernel.cpp", base + "tiled/tiled.cpp"]
    assert f"int {variants.MARKER}(void)" in text


def test_the_patch_hash_changes_with_the_patches(tmp_path, monkeypatch):
    monkeypatch.setattr(llama_patches, "PATCH_DIR", tmp_path)
    empty = llama_patches.patches_hash()
    (tmp_path / "a.patch").write_text(PATCH)
    one = llama_patches.patches_hash()
    (tmp_path / "a.patch").write_text(PATCH.replace("return 2", "return 3"))
    assert len({empty, one, llama_patches.patches_hash()}) == 3
    out = subprocess.run([sys.executable, str(ROOT / "packaging" / "llama_patches.py"), "--hash"],
                         capture_output=True, text=True, check=True).stdout.strip()
    monkeypatch.setattr(llama_patches, "PATCH_DIR", ROOT / "packaging" / "patches")
    assert out == llama_patches.patches_hash()


@needs_patch_tool
def test_apply_is_idempotent_and_refuses_a_tree_it_does_not_fit(tmp_path, monkeypatch):
    patches = tmp_path / "patches"
    patches.mkdir()
    (patches / "a.patch").write_text(PATCH)
    monkeypatch.setattr(llama_patches, "PATCH_DIR", patches)
    src = tmp_path / "sdist" / "src"
    src.mkdir(parents=True)
    (src / "f.c").write_text(ORIGINAL)
    assert llama_patches.apply(src.parent) == ["a.patch"]
    assert "return 2;" in (src / "f.c").read_text()
    assert llama_patches.apply(src.parent) == []  # already applied: skipped, not applied twice
    assert "return 2;" in (src / "f.c").read_text()
    (src / "f.c").write_text(ORIGINAL.replace("return 1", "return 7"))
    with pytest.raises(RuntimeError, match="does not apply"):
        llama_patches.apply(src.parent)
    assert sorted(p.name for p in src.iterdir()) == ["f.c"]  # no .orig/.rej litter


def test_the_marker_is_found_in_a_mapped_cpu_backend_exactly_when_it_exports_it():
    """Checked against the library bytes: the symbol name sits in the dynamic string table."""
    variants.ensure_loaded()  # as in a worker: libggml-base is loaded, so every variant can be opened
    assert variants.kquant_invariant("") is False
    llama = importlib.util.find_spec("llama_cpp")
    libs = [*variants.available().values()]
    if llama and llama.origin:
        libs += sorted((Path(llama.origin).parent / "lib").glob("libggml*.so"))
    assert libs
    for lib in libs:
        maps = f"7f0000000000-7f0000001000 r-xp 00000000 00:00 1          {lib}\n"
        expected = lib.name.startswith("libggml-cpu") and variants.MARKER.encode() in lib.read_bytes()
        assert variants.kquant_invariant(maps) is expected, lib


@pytest.mark.slow  # builds a tiny Q4_K_M model
def test_the_worker_keeps_the_tiled_kernel_on_exactly_when_the_build_is_batch_invariant(tiny_models_dir, monkeypatch):
    """With GGML_CPU_TILED_MM unset the worker decides: on for a patched build, off otherwise; an
    explicit setting wins. Provenance records both."""
    from kiig_desktop.config import EngineOptions
    from kiig_desktop.engine.client import EngineClient
    from tests.support.tiny_models import tiny_model

    model = str(tiny_model("qwen2", "Q4_K_M", tiny_models_dir))
    monkeypatch.delenv("GGML_CPU_TILED_MM", raising=False)
    with EngineClient(model, EngineOptions(n_ctx=512)) as c:
        c.start()
        build = c.build()
    invariant = build.get("kquant_invariant", False)
    assert build["tiled_mm"] is invariant
    monkeypatch.setenv("GGML_CPU_TILED_MM", "0")
    with EngineClient(model, EngineOptions(n_ctx=512)) as c:
        c.start()
        assert c.build()["tiled_mm"] is False
        assert c.build().get("kquant_invariant", False) is invariant
    assert "GGML_CPU_TILED_MM" in os.environ
