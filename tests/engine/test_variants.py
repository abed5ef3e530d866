"""llama.cpp CPU variants: the build's variant list, pinning, and every variant this CPU runs scoring a chain."""

from __future__ import annotations

import importlib.util
import math
import sys

import pytest

from kiig_desktop.config import EngineOptions, Settings
from kiig_desktop.engine import variants
from kiig_desktop.errors import EngineError, KiigError
from tests.support.paths import ROOT
from tests.support.require import require

spec = importlib.util.spec_from_file_location("llama_variants", ROOT / "packaging" / "llama_variants.py")
llama_variants = importlib.util.module_from_spec(spec)
spec.loader.exec_module(llama_variants)

UPSTREAM = """\
    if (GGML_SYSTEM_ARCH STREQUAL "x86")
        ggml_add_cpu_backend_variant(x64)
        ggml_add_cpu_backend_variant(sse42              SSE42)
        ggml_add_cpu_backend_variant(haswell            SSE42 AVX F16C FMA AVX2 BMI2)
        if (NOT MSVC)
            ggml_add_cpu_backend_variant(sapphirerapids SSE42 AVX AMX_TILE AMX_INT8)
        endif()
    elseif(GGML_SYSTEM_ARCH STREQUAL "ARM")
            ggml_add_cpu_backend_variant(armv8.0_1)
"""


def _built(text: str) -> list[str]:
    return [m.group(2) for m in map(llama_variants._LINE.match, text.splitlines()) if m]


def test_patch_keeps_only_the_named_x86_variants_and_leaves_arm_alone():
    out = llama_variants.patch_text(UPSTREAM, ("x64", "haswell"))
    assert _built(out) == ["x64", "haswell", "armv8.0_1"]
    # idempotent, and a second patch with another list starts from the upstream list
    assert llama_variants.patch_text(out, ("x64", "haswell")) == out
    assert _built(llama_variants.patch_text(out, ("sse42",))) == ["sse42", "armv8.0_1"]


def test_patch_all_means_every_variant_but_amx_and_amx_is_refused():
    assert _built(llama_variants.patch_text(UPSTREAM, ("all",))) == ["x64", "sse42", "haswell", "armv8.0_1"]
    with pytest.raises(ValueError, match="AMX"):
        llama_variants.patch_text(UPSTREAM, ("x64", "sapphirerapids"))


def test_requested_variant_env_wins_over_settings(monkeypatch, tmp_path):
    monkeypatch.delenv(variants.ENV, raising=False)
    assert variants.requested(settings_variant="") == "auto"
    assert variants.requested(settings_variant="Haswell") == "haswell"
    monkeypatch.setenv(variants.ENV, "x64")
    assert variants.requested(settings_variant="haswell") == "x64"
    monkeypatch.setenv(variants.ENV, "../evil")
    with pytest.raises(EngineError):
        variants.requested()


def test_settings_json_keeps_the_pin(tmp_path, monkeypatch):
    monkeypatch.delenv(variants.ENV, raising=False)
    s = Settings(data_dir=tmp_path)
    s.cpu_variant = "x64"
    s.save()
    assert Settings.load(tmp_path).cpu_variant == "x64"
    monkeypatch.setenv("KIIG_DATA_DIR", str(tmp_path))
    assert variants.requested() == "x64"


def test_available_lists_variant_libraries(tmp_path):
    for name in ("libggml-cpu-x64.so", "libggml-cpu-haswell.so", "libggml-base.so", "libggml-cpu.so.0"):
        (tmp_path / name).write_bytes(b"")
    assert list(variants.available([tmp_path / "missing", tmp_path])) == ["haswell", "x64"]


BUILT = variants.available()
def needs_variants(test):
    """A slow test (a fresh worker per CPU variant) that needs this build's CPU variants."""
    return pytest.mark.slow(pytest.mark.usefixtures("_variants_built")(test))


@pytest.fixture
def _variants_built() -> None:
    require("llama.cpp CPU variants", bool(BUILT), "this build has none; `make install` builds them")


def _score_with(pin: str) -> tuple[str, list[float]]:
    """Start a fresh worker pinned to ``pin``, score one sample chain; (variant in use, answer NLL per step)."""
    from kiig_desktop.engine.client import EngineClient
    from kiig_desktop.events import ItemDone, run_to_end
    from kiig_desktop.resources import resource_path
    from kiig_desktop.runs.score import ScoreConfig, iter_score_file, read_score_input

    jobs = read_score_input(resource_path("chains", "clinical_chains.jsonl"))[:1]
    done: list[dict] = []
    with EngineClient("default", EngineOptions(n_ctx=2048)) as client:
        client.start()
        run_to_end(iter_score_file(client, jobs, ScoreConfig()), lambda e: done.append(e.result) if isinstance(e, ItemDone) else None)
        variant = client.build()["cpu_variant"]
    return variant, [s["answer_nll"] for s in done[0]["steps"]]


@needs_variants
def test_every_variant_this_cpu_runs_loads_and_scores(builtin_path, monkeypatch):
    """Each variant loads (or is refused with a clear error when the CPU lacks its instructions),
    scores a chain to finite numbers and is the one recorded. Variants do NOT compute identical
    numbers (up to 0.44 nats of answer NLL measured, benchmarks/bench_cpu_variants.py), so this only
    bounds them at 1 nat: a broken kernel is off by far more (or NaN)."""
    results: dict[str, list[float]] = {}
    for name in BUILT:
        monkeypatch.setenv(variants.ENV, name)
        try:
            variant, gains = _score_with(name)
        except KiigError as exc:
            assert "cannot run on this CPU" in exc.message, exc.message
            continue
        assert variant == name
        assert gains and all(math.isfinite(g) for g in gains)
        results[name] = gains
    assert "x64" in results  # the baseline runs on every x86-64 CPU
    base = results["x64"]
    for name, gains in results.items():
        assert max(abs(a - b) for a, b in zip(gains, base, strict=True)) < 1.0, (name, gains, base)


@needs_variants
def test_a_variant_the_build_lacks_is_an_error_not_a_fallback(builtin_path, monkeypatch):
    from kiig_desktop.engine.client import EngineClient

    monkeypatch.setenv(variants.ENV, "zen9")
    with EngineClient("default", EngineOptions(n_ctx=512)) as client, pytest.raises(KiigError, match="zen9"):
        client.start()


@pytest.mark.slow
def test_doctor_names_the_variant(builtin_path, monkeypatch, capsys):
    from kiig_desktop.cli import main

    monkeypatch.setenv(variants.ENV, "x64" if "x64" in BUILT else "auto")
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "llama.cpp CPU variant: " + ("x64" if BUILT else "built-in") in out
    assert sys.platform != "linux" or "requested: " in out
