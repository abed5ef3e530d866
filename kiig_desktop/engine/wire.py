"""How an error crosses the pipe from the model worker to its client: a small dict, never a pickle
of the exception (the client rebuilds the KiigError by class name)."""

from __future__ import annotations

import traceback

from ..errors import KiigError


def error_payload(exc: BaseException) -> dict:
    if isinstance(exc, KiigError):
        return {"class": type(exc).__name__, "message": exc.message, "hint": exc.hint}
    return {
        "class": "EngineError",
        "message": f"internal error in the model worker: {type(exc).__name__}: {exc}",
        "hint": None,
        "traceback": traceback.format_exc(),
    }
