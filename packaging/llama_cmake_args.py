"""Print the CMAKE_ARGS of KIIG Desktop's llama.cpp build: one build for every x86-64 CPU.

On Linux x86-64 the CPU backend is built as loadable variants (GGML_BACKEND_DL +
GGML_CPU_ALL_VARIANTS, list restricted by packaging/llama_variants.py, never the AMX variant, which
segfaulted on AMX Xeons); engine/variants.py loads the best one for the CPU at run time, or the one
pinned with KIIG_CPU_VARIANT. The venv (`make install`) and the frozen bundle (`make bundle`) use
this same build, so both compute the same numbers.
"""

from __future__ import annotations

import platform
import sys

# llamafile's tinyBLAS matmul runs only for batches of 2+ rows, so a token decoded alone got
# different logits from the same token in a batch (0.036 nats on SmolLM2 Q4_1): off, for
# batch-invariant numbers (docs/metrics.md, exactness)
COMMON = ["-DGGML_LLAMAFILE=OFF", "-DLLAVA_BUILD=OFF"]
PORTABLE = ["-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON", "-DGGML_NATIVE=OFF"]


def cmake_args() -> str:
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return " ".join(COMMON)  # other platforms: llama.cpp's own defaults (e.g. Metal on macOS)
    return " ".join(PORTABLE + COMMON)


if __name__ == "__main__":
    sys.stdout.write(cmake_args() + "\n")
