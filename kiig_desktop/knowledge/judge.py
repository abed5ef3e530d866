"""A judge model for the Knowledge Index: an engine client used through the Judge protocol."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..config import EngineOptions
from ..engine.client import EngineClient


@contextmanager
def open_judge(model_spec: str, options: EngineOptions | None = None) -> Iterator[EngineClient]:
    """Load ``model_spec`` in its own worker; it offers ``next_token_logprobs`` and ``model_ref``."""
    client = EngineClient(model_spec, options)
    try:
        client.start()
        yield client
    finally:
        client.close()
