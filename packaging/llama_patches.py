"""Apply KIIG Desktop's source patches (packaging/patches/*.patch) to an unpacked llama-cpp-python sdist.

    python packaging/llama_patches.py SOURCE_DIR     apply every patch (idempotent)
    python packaging/llama_patches.py --hash         print a hash of the patches (part of the wheel cache key)

The patches are unified diffs against the sdist root, applied with ``patch -p1`` in name order. One
already applied is skipped, so running this twice is harmless; one that applies neither forwards nor
backwards (another llama-cpp-python version) stops the build with one line, exit code 2.

``kquant-batch-invariance.patch``: llama.cpp multiplies Q4_K, Q5_K and Q6_K weights with a tiled
kernel for batches of 8+ rows and with vec_dot below, and the two rounded differently (a token's
logits depended on its batch). The patch makes the x86 AVX2 vec_dot of those three types apply the
tiled kernel's float steps to the same exact integer sums, in the same order, so both paths give
bit-identical results; the tiled path stays on for prefill speed. Other K and IQ types, and CPUs
without AVX2+FMA, always take vec_dot (exact, no tiled speed-up).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

PATCH_DIR = Path(__file__).resolve().parent / "patches"


def patches() -> list[Path]:
    """The patch files, in the order they are applied."""
    return sorted(PATCH_DIR.glob("*.patch"))


def patches_hash() -> str:
    """First 16 hex digits of a SHA-256 over the patch names and contents: a changed patch, a new wheel."""
    h = hashlib.sha256()
    for path in patches():
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def _patch(source: Path, patch: Path, *extra: str) -> bool:
    with patch.open("rb") as fh:
        done = subprocess.run(["patch", "-p1", "--force", "--silent", "-d", str(source), *extra],
                              stdin=fh, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return done.returncode == 0


def apply(source: Path) -> list[str]:
    """Apply every patch to *source*; returns the names applied now (skips those already in)."""
    if shutil.which("patch") is None:
        raise RuntimeError("the `patch` program is missing (apt-get install patch)")
    applied = []
    for path in patches():
        if _patch(source, path, "--reverse", "--dry-run"):
            continue  # already applied
        if not _patch(source, path, "--forward", "--dry-run"):
            raise RuntimeError(f"{path.name} does not apply to {source} (another llama-cpp-python version?)")
        if not _patch(source, path, "--forward"):
            raise RuntimeError(f"{path.name} failed to apply to {source}")
        applied.append(path.name)
    return applied


def main(argv: list[str]) -> int:
    if argv == ["--hash"]:
        sys.stdout.write(patches_hash() + "\n")
        return 0
    if len(argv) != 1:
        sys.stderr.write(__doc__ or "")
        return 2
    try:
        applied = apply(Path(argv[0]))
    except (OSError, RuntimeError) as exc:
        sys.stderr.write(f"llama_patches: {exc}\n")
        return 2
    sys.stdout.write(f"llama.cpp patches applied: {' '.join(applied) or 'none (already applied)'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
