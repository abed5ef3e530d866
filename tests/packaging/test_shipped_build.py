"""The llama.cpp build `make install` and `make bundle` ship is the one we think: patched, batch-invariant.

The tiny exactness models are 256 wide, so most K-quant rows there are one super-block and the order
of accumulation across blocks is barely exercised. Here a model 2,048 wide (8 super-blocks per row
of every matrix) is decoded in batches of 1, 2, 3, 8, 16 and 64 rows on every CPU variant this
machine runs, for Q4_K, Q5_K and Q6_K weights: every position's numbers must be bit-identical.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kiig_desktop.config import EngineOptions
from kiig_desktop.engine import variants
from kiig_desktop.engine.client import EngineClient
from kiig_desktop.errors import EngineError
from tests.support.tiny_models import quantize, write_base_model

SHIPPED_VARIANTS = {"x64", "haswell", "skylakex", "icelake"}  # the Makefile's LLAMA_CPU_VARIANTS
WIDE = {"n_embd": 2048, "n_head": 16, "n_head_kv": 4, "n_ff": 2048, "n_layer": 1}
CHUNKS = (64, 1, 2, 3, 8, 16)


def test_every_cpu_variant_library_of_the_installed_wheel_carries_the_patch_marker():
    libs = variants.available()
    assert SHIPPED_VARIANTS <= set(libs), f"the installed llama.cpp lacks CPU variants: {SHIPPED_VARIANTS - set(libs)}"
    missing = [name for name, path in libs.items() if variants.MARKER.encode() not in Path(path).read_bytes()]
    assert not missing, f"CPU variant libraries without the batch-invariance patch: {missing}"


@pytest.fixture(scope="module")
def wide_models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("wide")
    base = write_base_model("llama-spm", folder / "wide-F16.gguf", **WIDE)
    return {wt: quantize(base, folder / f"wide-{wt}.gguf", wt) for wt in ("Q4_K_M", "Q5_K_M", "Q6_K")}


def _passes(model: Path) -> dict[int, bytes]:
    with EngineClient(str(model), EngineOptions(n_ctx=256, n_batch=64, n_threads=2)) as c:
        info = c.start()
        assert info["build"]["tiled_mm"] is True, "the tiled K-quant kernel is off: these batches would not reach it"
        tokens = [(7919 * i + 17) % info["n_vocab"] for i in range(1, 65)]
        out = {}
        for chunk in CHUNKS:
            r = c.call("eval_sequence", tokens=tokens, chunk=chunk)
            out[chunk] = np.asarray(r["logprob"]).tobytes() + np.asarray(r["entropy"]).tobytes()
        return out


@pytest.mark.slow
def test_kquant_rows_of_2048_are_batch_invariant_on_every_variant_this_cpu_runs(wide_models, monkeypatch):
    ran = []
    for name in variants.available():
        monkeypatch.setenv(variants.ENV, name)
        try:
            results = {wt: _passes(path) for wt, path in wide_models.items()}
        except EngineError as exc:
            assert "cannot run on this CPU" in exc.message, exc.message
            continue
        ran.append(name)
        for wt, passes in results.items():
            differ = [chunk for chunk in CHUNKS[1:] if passes[chunk] != passes[CHUNKS[0]]]
            assert not differ, f"{wt} on {name}: batches of {differ} rows differ from one batch of 64"
    assert {"x64", "haswell"} <= set(ran), ran  # every x86-64 CPU KIIG supports runs these two
