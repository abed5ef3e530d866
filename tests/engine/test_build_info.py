"""Provenance of numbers: parsing llama.cpp's system info, and naming what differs between builds."""

from __future__ import annotations

from kiig_desktop.engine import build_info as B

CPU_INFO = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 0 | LLAMAFILE = 0 | OPENMP = 1 | REPACK = 1 |"
CUDA_INFO = "CUDA : ARCHS = 900 | USE_GRAPHS = 1 | PEER_MAX_BATCH_SIZE = 128 | " + CPU_INFO


def _prov(info: str = CPU_INFO, **kw) -> dict:
    args = {"llama_cpp_python": "0.3.36", "system_info": info, "gpu_offload": "CUDA" in info, "n_gpu_layers": 0,
            "n_batch": 512, "flash_attn": False, "repack": False, "n_threads": 2, "libraries": ["ggml-base", "ggml-cpu"]}
    args.update(kw)
    return B.describe(**args)


def test_system_info_is_parsed_into_isa_flags_llamafile_and_backends():
    parsed = B.parse_system_info(CUDA_INFO)
    assert parsed["isa"] == ["AVX", "AVX2", "F16C", "FMA", "SSE3", "SSSE3"]  # AVX512 = 0 and build switches left out
    assert parsed["llamafile"] is False
    assert parsed["backends"] == ["CUDA", "CPU"]
    assert B.parse_system_info("")["llamafile"] is None
    assert B.parse_system_info("CPU : AVX2 = 1 | OPENMP = 1 |")["llamafile"] is False  # a build without it omits the key
    assert B.parse_system_info("CPU : AVX2 = 1 | LLAMAFILE = 1 |")["llamafile"] is True


def test_backend_is_the_gpu_only_when_layers_are_offloaded():
    assert _prov(CUDA_INFO)["backend"] == "CPU"
    assert _prov(CUDA_INFO, n_gpu_layers=99)["backend"] == "CUDA"
    assert _prov(CPU_INFO, n_gpu_layers=99)["backend"] == "CPU"  # a CPU-only build runs every layer on the CPU


def test_cpu_variant_comes_from_the_loaded_library():
    maps = "7f00 r-xp /x/lib/libggml-base.so\n7f01 r-xp /x/bin/libggml-cpu-haswell.so\n7f02 r-xp /x/lib/libllama.so\n"
    libs = B.loaded_ggml_libraries(maps)
    assert libs == ["ggml-base", "ggml-cpu-haswell"]
    assert B.cpu_variant(libs) == "haswell"
    assert B.cpu_variant(["ggml-base", "ggml-cpu"]) == "built-in"


def test_same_build_has_no_differences_and_a_stable_id():
    assert B.differences(_prov(), _prov(n_threads=8)) == []  # threads are recorded, not compared
    assert B.build_id(_prov()) == B.build_id(_prov())
    assert B.mixed_warning({"A": _prov(), "B": _prov()}) is None


def test_differences_name_each_field_that_differs():
    gpu = _prov(CUDA_INFO, n_gpu_layers=99, n_batch=256)
    diff = B.differences(_prov(), gpu)
    assert "backend: CPU vs CUDA" in diff
    assert "GPU layers: 0 vs 99" in diff
    assert "batch size: 512 vs 256" in diff
    assert B.differences(_prov(), None) == ["llama.cpp build: recorded for one, unknown for the other"]
    warning = B.mixed_warning({"model A": _prov(), "model B": gpu})
    assert warning is not None and "model A vs model B" in warning and "backend: CPU vs CUDA" in warning
    assert "separate groups" in warning
