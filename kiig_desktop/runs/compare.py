"""A comparison: one question, several models; each writes its reasoning, which is split, scored and saved.

Each model's chain is scored by ``scorer`` when one is given, else by the model itself, and saved
as its own ``analyze`` run (named "Compare · subject → scorer"), so the Compare screen and the
session browser show the same chains. The GUI drives :func:`iter_compare` from a worker thread; the
session is written through ``save`` (the window's writer, under its lock).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..engine.models import ModelInfo
from ..events import CancelToken, ItemDone, Message, Progress, run_to_end
from .analysis import (
    AnalysisResult,
    GenerationSettings,
    Question,
    iter_generate,
    iter_score_steps,
    save_result,
    split_text,
)


@dataclass(frozen=True)
class CompareRequest:
    """What a comparison runs: the question and the generation, split and lead settings of the Analyze screen."""

    question: Question
    generation: GenerationSettings
    split_mode: str = "auto"  # rule-based only: "llm" runs as "auto" in a comparison
    lead: str = "answer"


def iter_compare(models: Sequence[ModelInfo], request: CompareRequest, *, acquire: Callable[[ModelInfo, CancelToken | None], Any],
                 save: Callable[[Callable[[Any], AnalysisResult]], AnalysisResult], scorer: ModelInfo | None = None,
                 cancel: CancelToken | None = None) -> Generator[Message | Progress | ItemDone, None, int]:
    """Run the comparison; yields Message (what happens now), Progress, and ``ItemDone(index in models, AnalysisResult)``.

    ``acquire(model, cancel)`` returns a started engine client; ``save(fn)`` runs ``fn(store)`` on a
    writable session and returns its result. A model that writes no reasoning is skipped with a Message.
    """
    q, settings = request.question, request.generation
    split_mode = "auto" if request.split_mode == "llm" else request.split_mode
    q.validate()
    for i, subject in enumerate(models):
        yield Message(f"{i + 1}/{len(models)} · {subject.name}: loading and generating…")
        client = acquire(subject, cancel)
        gen = run_to_end(iter_generate(client, q, settings, cancel))
        steps = split_text(gen["text"], split_mode).steps
        if not steps:
            yield Message(f"{subject.name} wrote no reasoning; skipped")
            continue
        by = scorer or subject
        yield Message(f"{i + 1}/{len(models)} · scoring {subject.name}'s reasoning with {by.name}…")
        scorer_client = acquire(by, cancel)
        record = yield from iter_score_steps(scorer_client, q, steps, mode=request.lead, reasoning=gen["text"], cancel=cancel)
        subject_ref, backend = client.model_ref(), scorer_client.backend_ref()

        yield ItemDone(i, save(partial(
            save_result, q=q, record=record, scorer=by, scorer_backend=backend, split_mode=split_mode, subject=subject,
            subject_ref=subject_ref, generation=gen, generation_settings=settings, name=f"Compare · {subject.name} → {by.name}")))
    return len(models)
