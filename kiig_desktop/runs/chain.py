"""What every run does with one chain: let the subject model write it, and decide what a failure means.

- :func:`iter_generation` / :func:`generation_record`: a chat-templated generation and the record
  the session keeps of it (text, per-token log-probability and entropy, the graded answer). The
  Analyze and Compare screens and batch runs all generate through these.
- :func:`guarded`: the one failure policy for an item of a run. An :class:`~kiig_desktop.errors.InputError`
  or :class:`~kiig_desktop.errors.ContextOverflow` is *lasting*: the same input fails the same way,
  so the session keeps the failure and a rerun does not try again. Any other
  :class:`~kiig_desktop.errors.KiigError` (a crashed worker, say) is *transient*: it is reported
  in the output, not stored, and a rerun retries the item. Cancel always propagates.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from ..errors import Cancelled, ContextOverflow, InputError, KiigError

LASTING_ERRORS = (InputError, ContextOverflow)


@dataclass(frozen=True)
class ItemFailure:
    """Why one item of a run failed; ``lasting`` failures are stored, transient ones retried."""

    message: str
    lasting: bool


def guarded(gen: Generator) -> Generator[Any, None, tuple[Any, ItemFailure | None]]:
    """Drive ``gen`` (re-yielding its events); return ``(value, None)``, or ``(None, failure)``."""
    try:
        return (yield from gen), None
    except Cancelled:
        raise
    except KiigError as exc:
        return None, ItemFailure(exc.message, isinstance(exc, LASTING_ERRORS))


def iter_generation(client, messages: list[dict], *, cancel=None, **params) -> Generator[Any, None, dict]:
    """Stream a reply (the engine's token events); return the engine's result, or raise Cancelled."""
    result = yield from client.generate(messages, cancel=cancel, **params)
    if result.get("stop") == "cancelled" or (cancel is not None and cancel.cancelled):
        raise Cancelled()
    return result


def generation_record(result: dict, extracted: str | None, correct: bool | None, **extra: Any) -> dict:
    """The generation as the session stores it; ``correct`` is left out when there was nothing to grade."""
    gen: dict[str, Any] = {
        "text": result["text"],
        "tokens": [{"text": t["text"], "logprob": t["logprob"], "entropy_bits": t["entropy_bits"]} for t in result["tokens"]],
        "extracted_answer": extracted,
    }
    if correct is not None:
        gen["correct"] = correct
    gen["stop"] = result.get("stop")
    gen.update(extra)
    return gen
