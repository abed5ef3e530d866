"""Dataset files cut from the bundled sample sets, for tests that run batches; holds no tests itself."""

from __future__ import annotations

from pathlib import Path

from kiig_desktop.resources import resource_path


def write_samples(path: Path, clinical: slice = slice(0), arithmetic: slice = slice(0)) -> Path:
    """Write the chosen lines of the clinical MCQ sample, then of the arithmetic sample, to *path*."""
    lines = resource_path("datasets", "clinical_mcq.jsonl").read_text().splitlines()[clinical]
    lines += resource_path("datasets", "arithmetic.jsonl").read_text().splitlines()[arithmetic]
    path.write_text("\n".join(lines) + "\n")
    return path
