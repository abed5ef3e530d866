"""Numbers for people: parameter counts and byte sizes, shared by the CLI tables and the GUI."""

from __future__ import annotations


def human_count(n: int | None, missing: str = "?", sep: str = "") -> str:
    """134.5M, 7.2B; ``missing`` when unknown; ``sep`` between number and unit."""
    if n is None:
        return missing
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{sep}{unit}"
    return str(n)


def human_bytes(n: float | None, missing: str = "?") -> str:
    """512 B, 20.5 KB, 3.1 MB, 1.2 GB; ``missing`` when unknown."""
    if n is None:
        return missing
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


__all__ = ["human_bytes", "human_count"]
