"""Restrict llama.cpp's GGML_CPU_ALL_VARIANTS list to the CPU variants KIIG Desktop ships.

    python packaging/llama_variants.py SOURCE_DIR [VARIANT ...]

llama.cpp 0.3.36's all-variants build compiles the CPU backend 14 times on x86-64 (hours of CI on
two cores) and includes ``sapphirerapids``, whose AMX kernels segfaulted on this project's AMX Xeon.
This rewrites ``vendor/llama.cpp/ggml/src/CMakeLists.txt`` in an unpacked llama-cpp-python sdist so
that only the named x86 variants are built (default: :data:`DEFAULT_VARIANTS`; ``all``: every upstream
variant but the AMX one). Variants keep their upstream feature lists; the patch only comments out
the others. Idempotent.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# x64 runs everywhere (the fleet baseline); haswell covers AVX2 machines, skylakex AVX-512,
# icelake AVX-512 with VNNI/VBMI (the best safe choice on Sapphire Rapids without AMX)
DEFAULT_VARIANTS = ("x64", "haswell", "skylakex", "icelake")
AMX_VARIANTS = ("sapphirerapids",)
CMAKE_REL = Path("vendor/llama.cpp/ggml/src/CMakeLists.txt")
_LINE = re.compile(r"^(\s*)ggml_add_cpu_backend_variant\(([\w.]+)")
_MARK = "# kiig: variant not shipped: "


def patch_text(text: str, keep: tuple[str, ...]) -> str:
    """Comment out every x86 ``ggml_add_cpu_backend_variant`` line whose name is not in *keep*."""
    if keep == ("all",):
        names = (_LINE.match(ln.replace(_MARK, "")) for ln in text.splitlines())
        keep = tuple(m.group(2) for m in names if m and m.group(2) not in AMX_VARIANTS)
    bad = set(keep) & set(AMX_VARIANTS)
    if bad:
        raise ValueError(f"refusing AMX variant(s) {sorted(bad)}: AMX kernels segfault here")
    out, in_x86 = [], False
    for line in text.splitlines(keepends=True):
        if 'GGML_SYSTEM_ARCH STREQUAL "x86"' in line:
            in_x86 = True
        elif in_x86 and 'GGML_SYSTEM_ARCH STREQUAL' in line:
            in_x86 = False
        m = _LINE.match(line.replace(_MARK, ""))
        if in_x86 and m and m.group(2) not in keep:
            line = f"{m.group(1)}{_MARK}{line.lstrip().replace(_MARK, '')}"
        elif in_x86 and m:
            line = line.replace(_MARK, "")
        out.append(line)
    return "".join(out)


def main(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write(__doc__ or "")
        return 2
    path = Path(argv[0]) / CMAKE_REL
    keep = tuple(argv[1:]) or DEFAULT_VARIANTS
    try:
        path.write_text(patch_text(path.read_text(encoding="utf-8"), keep), encoding="utf-8")
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"llama_variants: {exc}\n")
        return 2
    sys.stdout.write(f"llama.cpp CPU variants: {' '.join(keep)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
