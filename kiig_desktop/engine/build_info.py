"""Provenance: which llama.cpp build, kernels and backend produced a number.

Logits differ between llama.cpp versions, CPU code paths (x64 vs haswell variants, ISA flags, the
llamafile matmul, weight repacking, flash attention) and backends (CPU vs CUDA, layers offloaded),
by up to ~0.5 in logits (docs/metrics.md, "Exactness"). So every stored number carries the dict that
:func:`collect` returns inside the engine worker, and views compare these dicts with
:func:`differences` before they put numbers side by side.

Only :func:`collect` touches llama.cpp (it imports ``llama_cpp`` lazily, inside the worker); the
rest is pure and used by reports and the GUI.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

# The fields that change numbers, in the order warnings name them, with their labels.
FIELDS: tuple[tuple[str, str], ...] = (
    ("llama_cpp_python", "llama-cpp-python version"),
    ("backend", "backend"),
    ("n_gpu_layers", "GPU layers"),
    ("cpu_variant", "CPU variant"),
    ("isa", "CPU instruction sets"),
    ("llamafile", "llamafile matmul"),
    ("repack", "weight repacking"),
    ("flash_attn", "flash attention"),
    ("tiled_mm", "tiled K-quant matmul"),
    ("kquant_invariant", "batch-invariant K-quant kernels"),
    ("not_exact", "fast, not exact scoring"),
    ("n_batch", "batch size"),
    ("system_info", "llama.cpp system info"),
)
_GPU_BACKENDS = ("CUDA", "ROCm", "HIP", "Vulkan", "Metal", "SYCL", "MUSA", "CANN", "OpenCL", "Kompute")
_LIB = re.compile(r"lib(ggml-[\w.-]+?)\.(?:so|dylib|dll)")


def parse_system_info(text: str) -> dict:
    """``{"isa": [...], "llamafile": bool | None, "backends": [...]}`` from llama_print_system_info.

    The string looks like ``"CUDA : ARCHS = 900 | ... | CPU : SSE3 = 1 | AVX2 = 1 | LLAMAFILE = 1 |"``:
    a backend name before each ``:``, then ``KEY = VALUE`` pairs. ISA flags are the CPU section's
    keys with value 1, other than build switches (LLAMAFILE, OPENMP, REPACK, ...). ``llamafile`` is
    None when the string has no CPU section.
    """
    backends: list[str] = []
    flags: dict[str, str] = {}
    section = ""
    for part in (p.strip() for p in (text or "").split("|")):
        if ":" in part:
            section, part = (s.strip() for s in part.split(":", 1))
            backends.append(section)
        if "=" in part:
            key, value = (s.strip() for s in part.split("=", 1))
            if section.upper() == "CPU":
                flags[key.upper()] = value
    switches = {"LLAMAFILE", "OPENMP", "REPACK", "KLEIDIAI", "ACCELERATE", "AARCH64_REPACK"}
    isa = sorted(k for k, v in flags.items() if v == "1" and k not in switches)
    # llama.cpp prints LLAMAFILE = 1 only when the build has it: absent from a CPU section means off
    has_cpu = any(b.upper() == "CPU" for b in backends)
    llamafile = flags.get("LLAMAFILE") == "1" if has_cpu else None
    return {"isa": isa, "llamafile": llamafile, "backends": backends}


def loaded_ggml_libraries(maps: str | None = None) -> list[str]:
    """Names of the ggml libraries mapped into this process (``ggml-cpu-haswell``, ``ggml-cuda``, ...)."""
    if maps is None:
        try:
            maps = Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
    return sorted({m.group(1) for m in _LIB.finditer(maps)})


def cpu_variant(libraries: list[str]) -> str:
    """The CPU code path in use: the dynamically loaded variant (``haswell``) or ``"built-in"``."""
    variants = [lib[len("ggml-cpu-"):] for lib in libraries if lib.startswith("ggml-cpu-")]
    return ",".join(variants) if variants else "built-in"


def backend_name(backends: list[str], gpu_offload: bool, n_gpu_layers: int) -> str:
    """The backend doing the model's work: a GPU backend when layers are offloaded to it, else CPU."""
    if gpu_offload and n_gpu_layers:
        gpu = [b for b in backends if any(b.upper().startswith(g.upper()) for g in _GPU_BACKENDS)]
        return gpu[0] if gpu else "GPU"
    return "CPU"


def describe(*, llama_cpp_python: str | None, system_info: str, gpu_offload: bool, n_gpu_layers: int,
             n_batch: int, flash_attn: bool, repack: bool, n_threads: int | None,
             libraries: list[str] | None = None, tiled_mm: bool = False,
             kquant_invariant: bool = False, batch_invariant: str | None = None,
             scoring: str | None = None) -> dict:
    """The provenance dict from what the worker knows (pure, so tests can build one)."""
    parsed = parse_system_info(system_info)
    libs = loaded_ggml_libraries() if libraries is None else libraries
    prov = {
        "llama_cpp_python": llama_cpp_python,
        "system_info": system_info,
        "backend": backend_name(parsed["backends"], gpu_offload, n_gpu_layers),
        "backends_built": parsed["backends"],
        "cpu_variant": cpu_variant(libs),
        "isa": parsed["isa"],
        "llamafile": parsed["llamafile"],
        "repack": bool(repack),
        "flash_attn": bool(flash_attn),
        "tiled_mm": bool(tiled_mm),
        "n_gpu_layers": int(n_gpu_layers),
        "n_batch": int(n_batch),
        "n_threads": n_threads,
    }
    if kquant_invariant:
        # recorded only for our patched build (packaging/patches/), so a stock build's provenance,
        # and its build_id, stay what they were before the field existed
        prov["kquant_invariant"] = True
    if batch_invariant is not None:
        # the load-time self-test (engine/invariance.py) and the scoring path it chose; an exact
        # path (incremental where verified, from scratch otherwise) gives the reference's numbers,
        # so only "fast, not exact" sets a field that separates builds
        prov["batch_invariant"] = batch_invariant
        prov["scoring"] = scoring
        if scoring == "fast-not-exact":
            prov["not_exact"] = True
    return prov


def collect(backend) -> dict:
    """Provenance of a loaded :class:`~kiig_desktop.engine.backend.Backend` (worker process only)."""
    import llama_cpp

    from . import variants

    raw = llama_cpp.llama_print_system_info()
    return describe(
        llama_cpp_python=llama_cpp.__version__,
        system_info=raw.decode("utf-8", errors="replace").strip() if raw else "",
        gpu_offload=bool(llama_cpp.llama_supports_gpu_offload()),
        n_gpu_layers=backend.n_gpu_layers, n_batch=backend.n_batch, flash_attn=backend.flash_attn,
        repack=backend.repack, n_threads=backend.n_threads,
        # llama.cpp's tiled K-quant matmul is on unless GGML_CPU_TILED_MM=0 (the workers' default
        # where the CPU backend lacks our batch-invariance patch, engine/variants.py)
        tiled_mm=os.environ.get(variants.TILED_ENV, "1") != "0",
        kquant_invariant=variants.kquant_invariant(),
        batch_invariant=backend.invariance["verdict"], scoring=backend.scoring,
    )


def build_id(prov: dict | None) -> str | None:
    """A short stable id of the fields that change numbers (None when the provenance is unknown)."""
    if not prov:
        return None
    key = {name: prov.get(name) for name, _ in FIELDS}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return " ".join(map(str, value)) or "none"
    if value is None:
        return "unknown"
    return str(value)


def differences(a: dict | None, b: dict | None) -> list[str]:
    """What differs between two provenance dicts, one ``"label: x vs y"`` each (empty: same build).

    The system info string is named only when nothing more specific explains the difference.
    """
    if build_id(a) == build_id(b):
        return []
    if not a or not b:
        return ["llama.cpp build: recorded for one, unknown for the other"]
    out = [f"{label}: {_show(a.get(name))} vs {_show(b.get(name))}"
           for name, label in FIELDS if name != "system_info" and a.get(name) != b.get(name)]
    if not out:
        out.append("llama.cpp system info differs")
    return out


def short_label(prov: dict | None) -> str:
    """One line for tables: ``llama-cpp-python 0.3.36, CPU (haswell), batch 512``."""
    if not prov:
        return "build unknown"
    where = prov.get("backend") or "?"
    if where == "CPU":
        where += f" ({prov.get('cpu_variant') or '?'})"
    else:
        where += f", {prov.get('n_gpu_layers')} GPU layers"
    label = f"llama-cpp-python {prov.get('llama_cpp_python') or '?'}, {where}, batch {prov.get('n_batch')}"
    return label + (", NOT exact (--fast-not-exact)" if prov.get("not_exact") else "")


def mixed_warning(builds: dict[str, dict | None], what: str = "numbers") -> str | None:
    """A warning when ``builds`` (label -> provenance) hold more than one build, naming what differs."""
    distinct: dict[str | None, tuple[str, dict | None]] = {}
    for label, prov in builds.items():
        distinct.setdefault(build_id(prov), (label, prov))
    if len(distinct) < 2:
        return None
    (first_label, first), *others = distinct.values()
    parts = [f"{first_label} vs {label}: " + "; ".join(differences(first, prov)) for label, prov in others]
    return (f"These {what} come from {len(distinct)} different llama.cpp builds or backends and are not "
            f"directly comparable; they are kept in separate groups. " + " | ".join(parts))


def build_groups(records: list[dict]) -> list[int]:
    """A group number (1, 2, ...) per record by the build it names (``record["build"]``), first seen first."""
    ids: dict[str | None, int] = {}
    return [ids.setdefault(build_id(r.get("build") if isinstance(r.get("build"), dict) else None), len(ids) + 1)
            for r in records]
