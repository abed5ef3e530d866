"""Load llama.cpp's CPU backend variants (one build for every x86-64 CPU) and pin one on request.

KIIG Desktop's llama.cpp is built with ``GGML_BACKEND_DL`` + ``GGML_CPU_ALL_VARIANTS``: the CPU
backend is not linked into libggml but ships as ``libggml-cpu-<variant>.so`` files (x64, haswell,
skylakex, icelake, ...), one per instruction-set level. llama-cpp-python 0.3.36 loads none of them
itself (then llama.cpp says "no backends are loaded"), so the worker calls :func:`ensure_loaded`
before its first model: through libllama's own handle, so that the variant registers in the same
ggml registry the model uses.

Without a pin, llama.cpp scores every variant against this CPU and loads the best one. A pin
(environment ``KIIG_CPU_VARIANT``, else ``"cpu_variant"`` in settings.json) loads exactly that
variant, so a fleet of different CPUs computes identical numbers (e.g. ``x64`` or ``haswell``); a
pinned variant this CPU cannot run is an error, never a silent fallback. A build without variants
(CPU backend linked in) needs nothing and ignores ``auto``; a pin then is an error too.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import sysconfig
from pathlib import Path

from ..errors import EngineError

ENV = "KIIG_CPU_VARIANT"
AUTO = "auto"
_FILE = re.compile(r"^(?:lib)?ggml-cpu-([a-z0-9_.]+?)\.(?:so|dll|dylib)$")  # Linux, Windows, macOS names
_NAME = re.compile(r"^[a-z0-9_.]+$")
_state: dict[str, str | None] = {}


def variant_dirs() -> list[Path]:
    """Folders that may hold the variant libraries (``libggml-cpu-*.so``): llama_cpp's lib/, the wheel's bin/, the frozen app's."""
    import importlib.util

    out: list[Path] = []
    spec = importlib.util.find_spec("llama_cpp")
    if spec and spec.origin:
        out.append(Path(spec.origin).parent / "lib")
    out.append(Path(sysconfig.get_paths()["platlib"]) / "bin")  # where 0.3.36's wheel puts them
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        out.append(Path(frozen) / "llama_cpp" / "lib")
    return out


def available(dirs: list[Path] | None = None) -> dict[str, Path]:
    """Variant name -> its library, from the first folder that holds any (empty: a build without variants)."""
    for folder in dirs if dirs is not None else variant_dirs():
        try:
            found = {m.group(1): p for p in folder.iterdir() if (m := _FILE.match(p.name))}
        except OSError:
            continue
        if found:
            return dict(sorted(found.items()))
    return {}


def requested(settings_variant: str | None = None) -> str:
    """The pin asked for: ``KIIG_CPU_VARIANT``, else settings.json's ``cpu_variant``, else ``auto``."""
    value = os.environ.get(ENV)
    if not value:
        if settings_variant is None:
            from ..config import Settings

            settings_variant = Settings.load().cpu_variant
        value = settings_variant
    value = (value or AUTO).strip().lower()
    if not _NAME.match(value):
        raise EngineError(f"{ENV}/cpu_variant {value!r} is not a variant name", hint="use e.g. x64, haswell or auto")
    return value


def _lib() -> ctypes.CDLL:
    from llama_cpp import llama_cpp as raw

    lib = raw._lib
    lib.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
    lib.ggml_backend_load_all_from_path.restype = None
    lib.ggml_backend_load.argtypes = [ctypes.c_char_p]
    lib.ggml_backend_load.restype = ctypes.c_void_p
    lib.ggml_backend_reg_count.argtypes = []
    lib.ggml_backend_reg_count.restype = ctypes.c_size_t
    return lib


def ensure_loaded(pin: str | None = None) -> str | None:
    """Register the CPU backend variant once per process; returns the pin used (None: built-in backend).

    Raises :class:`EngineError` for a pin this build lacks or this CPU cannot run.
    """
    if "pin" in _state:
        return _state["pin"]
    pin = requested() if pin is None else pin
    libs = available()
    if not libs:
        if pin != AUTO:
            raise EngineError(f"CPU variant {pin!r} was asked for, but this llama.cpp build has no loadable variants",
                              hint=f"unset {ENV} (or cpu_variant in settings.json), or install the all-variants build (make install)")
        _state["pin"] = None
        return None
    lib = _lib()
    if pin == AUTO:
        lib.ggml_backend_load_all_from_path(str(next(iter(libs.values())).parent).encode())
    else:
        if pin not in libs:
            raise EngineError(f"CPU variant {pin!r} is not in this build (it has: {', '.join(libs)})",
                              hint=f"set {ENV} to one of those, or to auto")
        if not lib.ggml_backend_load(str(libs[pin]).encode()):
            raise EngineError(f"CPU variant {pin!r} cannot run on this CPU (it lacks an instruction set the variant needs)",
                              hint=f"pin a lower variant such as x64, or set {ENV}=auto")
    if lib.ggml_backend_reg_count() == 0:
        raise EngineError("llama.cpp loaded no backend", hint="reinstall: make install (or unpack the bundle again)")
    _state["pin"] = pin
    return pin


# llama.cpp multiplies K-quant weights with a tiled kernel for batches of 8+ rows and with vec_dot
# below; stock, the two round differently, so a token's logits depend on its batch. Our build's patch
# (packaging/patches/kquant-batch-invariance.patch) makes them bit-identical and marks the CPU
# backend with this exported function; without it the workers turn the tiled kernel off.
TILED_ENV = "GGML_CPU_TILED_MM"
MARKER = "ggml_kiig_kquant_batch_invariant"
_CPU_LIB = re.compile(r"(/\S*lib(?:ggml-cpu[\w.-]*|ggml)\.(?:so|dylib)(?:\.[\d.]+)?)$", re.M)


def kquant_invariant(maps: str | None = None) -> bool:
    """Whether a loaded CPU backend exports :data:`MARKER` (the batch-invariant K-quant patch).

    *maps*: the text of ``/proc/self/maps`` (read, and the answer cached, when None).
    """
    if maps is None and "invariant" in _state:
        return _state["invariant"] == "1"
    text = maps
    if text is None:
        try:
            text = Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
    found = False
    for path in sorted(set(_CPU_LIB.findall(text))):
        try:
            found = found or hasattr(ctypes.CDLL(path), MARKER)  # a mapped library is not loaded twice
        except OSError:
            continue
    if maps is None:
        _state["invariant"] = "1" if found else "0"
    return found


def set_tiled_default() -> None:
    """Keep llama.cpp's tiled K-quant matmul on only where it is batch-invariant (an explicit
    ``GGML_CPU_TILED_MM`` in the environment wins). Call after :func:`ensure_loaded`, before any
    graph runs: llama.cpp reads the variable once, at its first matrix multiply."""
    if TILED_ENV not in os.environ:
        os.environ[TILED_ENV] = "1" if kquant_invariant() else "0"
