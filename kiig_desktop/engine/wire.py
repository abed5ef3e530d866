"""How an error crosses the pipe from the model worker to its client: a small dict, never a pickle
of the exception (the client rebuilds the KiigError by class name)."""

from __future__ import annotations

import traceback

from ..errors import KiigError


def error_payload(exc: BaseException) -> dict:
    if isinstance(exc, KiigError):
        out = {"class": type(exc).__name__, "message": exc.message, "hint": exc.hint}
        for size in ("needed", "n_ctx"):  # a context overflow names its sizes
            if isinstance(getattr(exc, size, None), int):
                out[size] = getattr(exc, size)
        return out
    return {
        "class": "EngineError",
        "message": f"internal error in the model worker: {type(exc).__name__}: {exc}",
        "hint": None,
        "traceback": traceback.format_exc(),
    }
