"""A comparison without Qt: runs/compare.py on the real embedded model and a real session file."""

from __future__ import annotations

import pytest

from kiig_desktop.events import ItemDone, Message, Progress
from kiig_desktop.runs.analysis import GenerationSettings, Question, load_result
from kiig_desktop.runs.compare import CompareRequest, iter_compare
from kiig_desktop.store import SessionStore


@pytest.mark.slow
def test_each_model_is_generated_scored_and_saved(tmp_path, client):
    model = client.model
    request = CompareRequest(Question("What is 12 times 3?", "36"), GenerationSettings(max_tokens=48), split_mode="llm")
    acquired = []

    def acquire(info, cancel):
        acquired.append(info.path)
        return client

    with SessionStore.open(tmp_path / "c.kiig", create=True, write=True) as store:
        events = []
        gen = iter_compare([model, model], request, acquire=acquire, save=lambda fn: fn(store))
        while True:
            try:
                events.append(next(gen))
            except StopIteration as stop:
                assert stop.value == 2
                break
        messages = [e.text for e in events if isinstance(e, Message)]
        assert messages[0].startswith("1/2 · ") and "loading and generating" in messages[0]
        done = [e for e in events if isinstance(e, ItemDone)]
        skipped = [m for m in messages if m.endswith("wrote no reasoning; skipped")]
        assert len(done) + len(skipped) == 2  # the model may write nothing; then it is skipped, not failed
        assert all(isinstance(e, (Message, Progress, ItemDone)) for e in events)
        for e in done:
            again = load_result(store, e.result.run_id, e.result.chain_id)
            assert again.record == e.result.record
            assert again.run["name"].startswith("Compare · ")
            assert again.run["settings"]["split"] == "auto"  # the LLM split is not used in a comparison
            assert again.generation["text"] == e.result.record["reasoning"]
