"""Print the CMAKE_ARGS that build llama.cpp for this CPU without the native AMX kernels.

The default native build segfaults on AMX Xeons (ggml_backend_amx_mul_mat). We build with
GGML_NATIVE=OFF and switch on each instruction set the CPU reports, so the library is as fast as
a native build, never uses AMX, and never uses an instruction this CPU lacks (which would SIGILL).
"""

from __future__ import annotations

import platform
import sys

# llama.cpp option -> the /proc/cpuinfo flag(s) it needs
FEATURES = [
    ("GGML_AVX", ("avx",)),
    ("GGML_AVX2", ("avx2",)),
    ("GGML_FMA", ("fma",)),
    ("GGML_F16C", ("f16c",)),
    ("GGML_BMI2", ("bmi2",)),
    ("GGML_AVX512", ("avx512f",)),
    ("GGML_AVX512_VNNI", ("avx512_vnni",)),
    ("GGML_AVX512_VBMI", ("avx512vbmi",)),
    ("GGML_AVX512_BF16", ("avx512_bf16",)),
]


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cmake_args() -> str:
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return "-DGGML_LLAMAFILE=OFF -DLLAVA_BUILD=OFF"  # other platforms: llama.cpp's own defaults (e.g. Metal on macOS)
    flags = cpu_flags()
    args = ["-DGGML_NATIVE=OFF"]
    args += [f"-D{opt}=ON" for opt, needs in FEATURES if all(n in flags for n in needs)]
    # llamafile's tinyBLAS matmul runs only for batches of 2+ rows, so a token decoded alone got
    # different logits from the same token in a batch (0.036 nats on SmolLM2 Q4_1): off, for
    # batch-invariant numbers (docs/metrics.md, exactness)
    args += ["-DGGML_LLAMAFILE=OFF", "-DLLAVA_BUILD=OFF"]
    return " ".join(args)


if __name__ == "__main__":
    sys.stdout.write(cmake_args() + "\n")
