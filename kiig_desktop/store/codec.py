"""Small encoders shared by the store: JSON text, float32/int32 blobs, timestamps, hashes.

Float arrays that only feed plots (token curves, per-token log-probabilities of a generation) are
stored as little-endian float32 blobs, 4 bytes a value. Everything that appears in an output line
is stored as JSON text, whose floats round-trip exactly (Python writes the shortest repr).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import numpy as np

F32 = np.dtype("<f4")
I32 = np.dtype("<i4")


def now_iso() -> str:
    """The current time as ISO-8601 UTC with milliseconds, e.g. ``2025-05-01T12:00:00.123Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _default(value: Any) -> Any:
    """JSON fallback for numpy scalars/arrays and paths; anything else is a caller bug."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "__fspath__"):
        return str(value)
    raise TypeError(f"cannot store a value of type {type(value).__name__} in a session")


def dumps(value: Any) -> str:
    """JSON text as stored in the session (same separators as plain ``json.dumps``)."""
    return json.dumps(value, ensure_ascii=False, default=_default)


def dumps_opt(value: Any) -> str | None:
    """``dumps`` that keeps ``None`` as SQL NULL."""
    return None if value is None else dumps(value)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def canonical_json(value: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces) for hashing settings and items."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def pack_f32(values: Any) -> bytes | None:
    """A sequence of floats as a float32 blob (None stays None; None inside becomes NaN)."""
    if values is None:
        return None
    arr = np.asarray([np.nan if v is None else v for v in values], dtype=F32)
    return arr.tobytes()


def unpack_f32(blob: bytes | None) -> list[float] | None:
    if blob is None:
        return None
    return np.frombuffer(blob, dtype=F32).astype(np.float64).tolist()


def pack_i32(values: Any) -> bytes | None:
    if values is None:
        return None
    return np.asarray(list(values), dtype=I32).tobytes()


def unpack_i32(blob: bytes | None) -> list[int] | None:
    if blob is None:
        return None
    return np.frombuffer(blob, dtype=I32).tolist()


def to_sql_value(value: Any) -> Any:
    """A loosely typed step label (bool, number, text, structure) as an SQLite value."""
    if value is None or isinstance(value, (int, float, str)):
        return int(value) if isinstance(value, bool) else value
    return dumps(value)


def opt_float(value: Any) -> float | None:
    """A number for a REAL column; anything else (missing, text, a list) is NULL."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        return None
    return float(value)


def opt_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    return None


def opt_bool_int(value: Any) -> int | None:
    """True/False (or 1/0) as 1/0; anything else NULL."""
    if value is None:
        return None
    if isinstance(value, (bool, int, np.integer, np.bool_)):
        return 1 if value else 0
    return None
