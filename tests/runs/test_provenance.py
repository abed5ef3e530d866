"""Provenance: every scored chain records the llama.cpp build of its worker (real llama.cpp), and the
dashboard summary and HTML report never pool numbers from different builds without saying so."""

from __future__ import annotations

import random
from pathlib import Path

from kiig_desktop.engine import build_info
from kiig_desktop.reports.html import render_html
from kiig_desktop.reports.summary import summarize
from kiig_desktop.runs.batch import batch_key
from kiig_desktop.store import SessionStore
from tests.support.batch_records import SHA_A, SHA_B, batch_record

CPU_INFO = "CPU : SSE3 = 1 | AVX2 = 1 | FMA = 1 | OPENMP = 1 | REPACK = 1 |"
CUDA_INFO = "CUDA : ARCHS = 900 | USE_GRAPHS = 1 | " + CPU_INFO


def _build(info: str, n_gpu_layers: int) -> dict:
    return build_info.describe(llama_cpp_python="0.3.36", system_info=info, gpu_offload="CUDA" in info,
                               n_gpu_layers=n_gpu_layers, n_batch=512, flash_attn=False, repack=False, n_threads=2,
                               libraries=["ggml-base", "ggml-cpu"])


CPU, GPU = _build(CPU_INFO, 0), _build(CUDA_INFO, 99)


def _session(path: Path, build_of) -> Path:
    rng = random.Random(1)
    with SessionStore.open(path) as store:
        for sha, name in ((SHA_A, "model-A"), (SHA_B, "model-B")):
            store.ensure_model({"path": f"/m/{name}.gguf", "sha256": sha, "name": name})
        scorer = store.ensure_model({"path": "/m/scorer.gguf", "sha256": "c" * 64, "name": "scorer"})
        settings = {"method": "kiig-batch-1", "subjects": [SHA_A, SHA_B], "n_items": 8}
        run_id, _ = store.find_or_create_run("batch", settings, {"scorer": scorer}, {"kiig": "test"}, seed=0)
        for sha, name in ((SHA_A, "model-A"), (SHA_B, "model-B")):
            for i in range(8):
                rec = batch_record(f"it-{i}", sha, name, rng, correct=bool(i % 2))
                rec["build"] = build_of(name, i)
                store.save_chain(run_id, batch_key(sha, f"it-{i}"), rec, item={"id": f"it-{i}", "question": "q", "answer": "a"})
        store.set_run_status(run_id, "finished")
    return path


def test_one_build_is_one_group_per_model_without_warning(tmp_path):
    with SessionStore.open(_session(tmp_path / "s.kiig", lambda name, i: CPU)) as store:
        report = summarize(store, n_boot=200)
    assert report.build_warning is None
    assert [m.name for m in report.models] == ["model-A", "model-B"]
    assert "Different builds" not in render_html(report)


def test_a_run_resumed_on_another_build_is_split_and_the_difference_named(tmp_path):
    # model-A's last 3 items were scored after the session moved to a GPU machine
    path = _session(tmp_path / "s.kiig", lambda name, i: GPU if name == "model-A" and i >= 5 else CPU)
    with SessionStore.open(path) as store:
        report = summarize(store, n_boot=200)
    names = [m.name for m in report.models]
    assert names == ["model-A [build 1]", "model-A [build 2]", "model-B"]
    assert [m.n_chains for m in report.models] == [5, 3, 8]  # never pooled into one mean
    assert report.build_warning and "backend: CPU vs CUDA" in report.build_warning
    assert "GPU layers: 0 vs 99" in report.build_warning and "separate groups" in report.build_warning
    html = render_html(report)
    assert "Different builds" in html and "backend: CPU vs CUDA" in html
    assert report.to_dict()["build_warning"] == report.build_warning


def test_chains_without_a_recorded_build_are_a_group_of_their_own(tmp_path):
    path = _session(tmp_path / "s.kiig", lambda name, i: None if i < 4 else CPU)
    with SessionStore.open(path) as store:
        report = summarize(store, n_boot=200)
    assert len(report.models) == 4
    assert "recorded for one, unknown for the other" in report.build_warning


def test_a_scored_chain_records_the_real_build(tmp_path):
    from kiig_desktop.chains.datasets import DatasetItem
    from kiig_desktop.engine.client import EngineClient
    from kiig_desktop.events import run_to_end
    from kiig_desktop.runs.score import ScoreConfig, score_item, versions

    client = EngineClient("default")
    try:
        client.start()
        item = DatasetItem(id="q", question="What is 2 + 3?", answer="5", kind="numeric", steps=["2 + 3 = 5."])
        record = run_to_end(score_item(client, item, ScoreConfig()))
        build = record["build"]
        assert build == client.build() == versions(client)["build"]
        assert build["llama_cpp_python"] and build["system_info"].startswith(("CPU", "CUDA", "Metal", "Vulkan"))
        assert build["backend"] == "CPU" and build["n_gpu_layers"] == 0  # the default options run on the CPU
        assert build["n_batch"] == client.options.n_batch and build["repack"] is False and build["flash_attn"] is False
        assert build["isa"] and build["cpu_variant"]
    finally:
        client.close()


def test_only_a_patched_build_records_batch_invariant_kquant_kernels():
    """A stock build's provenance (and build_id) is what it was before the field existed; ours differs."""
    common = dict(llama_cpp_python="0.3.36", system_info="CPU : AVX2 = 1 |", gpu_offload=False, n_gpu_layers=0,
                  n_batch=512, flash_attn=False, repack=False, n_threads=2, libraries=["ggml-cpu-haswell"])
    stock = build_info.describe(**common, tiled_mm=False)
    assert "kquant_invariant" not in stock
    patched = build_info.describe(**common, tiled_mm=True, kquant_invariant=True)
    assert patched["kquant_invariant"] is True
    assert build_info.differences(stock, patched) == ["tiled K-quant matmul: off vs on", "batch-invariant K-quant kernels: unknown vs on"]
