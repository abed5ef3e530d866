"""The pieces every run shares (runs/chain.py): the one failure policy and the one generation record."""

from __future__ import annotations

import pytest

from kiig_desktop.errors import Cancelled, ContextOverflow, EngineError, InputError, WorkerCrashed
from kiig_desktop.events import Progress, run_to_end
from kiig_desktop.runs.chain import ItemFailure, generation_record, guarded


def _failing(exc: BaseException):
    yield Progress(0, 1)
    raise exc


@pytest.mark.parametrize(("exc", "lasting"), [
    (InputError("the reasoning has no steps to score"), True),
    (ContextOverflow("prompt longer than the context"), True),
    (WorkerCrashed("the worker died"), False),
    (EngineError("something else in the engine"), False),
])
def test_lasting_failures_are_kept_transient_ones_retried(exc, lasting):
    events: list = []
    value, failure = run_to_end(guarded(_failing(exc)), events.append)
    assert value is None and failure == ItemFailure(exc.message, lasting)
    assert len(events) == 1  # the events before the failure still reach the caller


def test_cancel_and_programming_errors_are_not_item_failures():
    with pytest.raises(Cancelled):
        run_to_end(guarded(_failing(Cancelled())))
    with pytest.raises(ZeroDivisionError):
        run_to_end(guarded(_failing(ZeroDivisionError())))


def test_success_passes_the_value_through():
    def ok():
        yield Progress(1, 1)
        return {"id": "x"}

    assert run_to_end(guarded(ok())) == ({"id": "x"}, None)


RESULT = {"text": "1. 3 x 12 = 36\nAnswer: 36", "stop": "eos", "n_prompt_tokens": 20, "tokens_per_s": 50.0,
          "tokens": [{"id": 1, "text": "1", "logprob": -0.1, "entropy_bits": 0.5, "top": [{"id": 1, "text": "1", "logprob": -0.1}]}]}


def test_the_generation_record_keeps_what_the_session_stores():
    gen = generation_record(RESULT, "36", True, seed=7, prompt="p")
    assert list(gen) == ["text", "tokens", "extracted_answer", "correct", "stop", "seed", "prompt"]
    assert gen["tokens"] == [{"text": "1", "logprob": -0.1, "entropy_bits": 0.5}]  # no ids, no alternatives
    assert "correct" not in generation_record(RESULT, None, None)  # nothing to grade: left out, not False
