"""A comparison without Qt: runs/compare.py on the real embedded model and a real session file."""

from __future__ import annotations

import pytest

from kiig_desktop.events import ItemDone, Message, Progress, run_to_end
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
        events: list = []
        n = run_to_end(iter_compare([model, model], request, acquire=acquire, save=lambda fn: fn(store)), events.append)
        assert n == 2
        messages = [e.text for e in events if isinstance(e, Message)]
        assert messages[0].startswith("1/2 · ") and "loading and generating" in messages[0]
        assert all(isinstance(e, (Message, Progress, ItemDone)) for e in events)
        # greedy decoding (temperature 0) of a question that asks for a computation: the reply is never
        # empty, so neither model is skipped, and both are saved
        assert not [m for m in messages if m.endswith("wrote no reasoning; skipped")], messages
        done = [e for e in events if isinstance(e, ItemDone)]
        assert len(done) == 2
        runs = store.list_runs()  # the same model and settings twice: the second finds the first's run
        assert {r["id"] for r in runs} == {e.result.run_id for e in done}
        assert all(r["n_chains"] >= 1 and r["status"] == "finished" for r in runs), runs
        for e in done:
            again = load_result(store, e.result.run_id, e.result.chain_id)
            assert again.record == e.result.record
            assert again.record["steps"] and again.record["reasoning"].strip()
            assert again.run["name"].startswith("Compare · ")
            assert again.run["settings"]["split"] == "auto"  # the LLM split is not used in a comparison
            assert again.generation["text"] == e.result.record["reasoning"]
        assert set(acquired) == {model.path}
        first, second = (load_result(store, e.result.run_id, e.result.chain_id).record for e in done)
        assert first["reasoning"] == second["reasoning"]  # the same model, greedy: the same reply
        assert store.check() == []
