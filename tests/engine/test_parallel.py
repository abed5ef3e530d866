"""Parallel sequences: several replies generated at once in one context equal sequential generation.

Real llama.cpp on the embedded model and on tiny random-weight models with real tokenizers
(tests/support/tiny_models.py), an F16 and a K-quant: greedy tokens identical, numbers within 1e-4 nats,
whatever the model happens to generate.
"""

from __future__ import annotations

import numpy as np
import pytest

from kiig_desktop.config import EngineOptions
from kiig_desktop.engine.client import EngineClient
from kiig_desktop.errors import ContextOverflow
from kiig_desktop.events import CancelToken, run_to_end
from tests.support.tiny_models import tiny_model

pytestmark = pytest.mark.slow  # generates in parallel on tiny and real models

TOL = 1e-4
QUESTIONS = [
    "What is 3 times 12?",
    "Name the organ that filters blood and makes urine.",
    "A patient has a fever and a stiff neck. What should be ruled out first?",
    "Is 91 a prime number? Explain briefly.",
    "Which vitamin deficiency causes scurvy?",
]


def _items(questions=QUESTIONS) -> list[dict]:
    return [{"messages": [{"role": "user", "content": q}], "seed": 7 + i} for i, q in enumerate(questions)]


def _assert_same(parallel: list, client, items: list[dict], max_tokens: int) -> None:
    for item, par in zip(items, parallel, strict=True):
        seq = client.call("generate", messages=item["messages"], max_tokens=max_tokens, temperature=0.0, top_k=3)
        assert [t["id"] for t in par["tokens"]] == [t["id"] for t in seq["tokens"]]
        assert par["text"] == seq["text"] and par["stop"] == seq["stop"]
        assert par["n_prompt_tokens"] == seq["n_prompt_tokens"]
        np.testing.assert_allclose([t["logprob"] for t in par["tokens"]], [t["logprob"] for t in seq["tokens"]], atol=TOL)
        np.testing.assert_allclose([t["entropy_bits"] for t in par["tokens"]], [t["entropy_bits"] for t in seq["tokens"]], atol=TOL)
        assert [[a["id"] for a in t["top"]] for t in par["tokens"]] == [[a["id"] for a in t["top"]] for t in seq["tokens"]]


def test_parallel_generation_equals_sequential_on_the_embedded_model(client):
    items = _items()
    events = []
    gen = client.generate_many(items, max_tokens=48, temperature=0.0, top_k=3)
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        parallel = stop.value
    assert len(parallel) == len(items)
    assert events and events[-1].done == len(items)
    assert events[-1].tokens == sum(len(p["tokens"]) for p in parallel) - sum(p["stop"] == "length" for p in parallel)
    _assert_same(parallel, client, items, 48)


@pytest.mark.parametrize("weight_type", ["F16", "Q4_K_M"])
def test_parallel_generation_equals_sequential_on_real_tokenizers(weight_type, tiny_models_dir):
    client = EngineClient(str(tiny_model("llama-bpe", weight_type, tiny_models_dir)), EngineOptions(n_ctx=512, n_threads=2))
    try:
        items = _items(QUESTIONS[:4])
        parallel = run_to_end(client.generate_many(items, max_tokens=40, temperature=0.0, top_k=3))
        assert all(len(p["tokens"]) >= 5 for p in parallel)  # random weights rarely stop early; checked anyway
        _assert_same(parallel, client, items, 40)
        # the same item with different neighbours and a different number of sequences: same reply
        again = run_to_end(client.generate_many(items[2:3] + items[:1], max_tokens=40, temperature=0.0, top_k=3))
        assert [t["id"] for t in again[0]["tokens"]] == [t["id"] for t in parallel[2]["tokens"]]
        np.testing.assert_allclose([t["logprob"] for t in again[0]["tokens"]], [t["logprob"] for t in parallel[2]["tokens"]], atol=TOL)
    finally:
        client.close()


def test_an_item_that_does_not_fit_fails_alone(tiny_models_dir):
    client = EngineClient(str(tiny_model("qwen2", "F16", tiny_models_dir)), EngineOptions(n_ctx=256, n_threads=2))
    try:
        items = _items(QUESTIONS[:2])
        items.insert(1, {"messages": [{"role": "user", "content": "word " * 400}]})
        out = run_to_end(client.generate_many(items, max_tokens=16, temperature=0.0, top_k=3))
        assert isinstance(out[1], ContextOverflow) and "context" in out[1].message
        _assert_same([out[0], out[2]], client, [items[0], items[2]], 16)
        # a reply that runs into the end of its sequence's context stops there, as sequentially
        long = run_to_end(client.generate_many(items[:1], max_tokens=400, temperature=0.0, top_k=3))[0]
        seq = client.call("generate", messages=items[0]["messages"], max_tokens=400, temperature=0.0, top_k=3)
        assert long["stop"] == seq["stop"] and len(long["tokens"]) == len(seq["tokens"])
    finally:
        client.close()


def test_cancel_stops_parallel_generation_and_the_worker_serves_on(fresh_client):
    cancel = CancelToken()
    items = _items()
    gen = fresh_client.generate_many(items, cancel=cancel, max_tokens=2000, temperature=0.0, top_k=3)
    next(gen)  # the first progress event: every item is under way
    cancel.cancel()
    out = run_to_end(gen)
    assert all(r["stop"] in ("cancelled", "eos") for r in out)
    assert any(r["stop"] == "cancelled" for r in out)
    reply = fresh_client.call("generate", messages=items[0]["messages"], max_tokens=4, temperature=0.0, top_k=0)
    assert len(reply["tokens"]) <= 4


def test_batch_results_do_not_depend_on_parallel_and_resume_across_it(tmp_path, builtin_path):
    """`kiig run` stores the same results with --parallel 1 and 3; a run cancelled at --parallel 2
    resumes at --parallel 1 (same run: parallel is not part of its identity) to the same results."""
    from kiig_desktop import cli
    from kiig_desktop.errors import Cancelled
    from kiig_desktop.resources import resource_path
    from kiig_desktop.runs.batch import BatchConfig, iter_batch
    from kiig_desktop.store import SessionStore
    from tests.support.batch import drive, snapshot

    dataset = resource_path("datasets", "clinical_mcq.jsonl")
    args = ["run", "--dataset", str(dataset), "--models", "default", "--scorer", "default", "--limit", "4", "--max-tokens", "40"]
    assert cli.main([*args, "--db", str(tmp_path / "one.kiig"), "--parallel", "1"]) == 0
    assert cli.main([*args, "--db", str(tmp_path / "three.kiig"), "--parallel", "3"]) == 0
    reference = snapshot(tmp_path / "one.kiig")
    assert len(reference) == 5 and reference["_run"][0] == "finished"
    assert snapshot(tmp_path / "three.kiig") == reference

    config = BatchConfig(max_tokens=40, limit=4)
    with SessionStore.open(tmp_path / "resumed.kiig") as store:
        cancel = CancelToken()
        with pytest.raises(Cancelled):
            drive(iter_batch(store, dataset, ["default"], "default", config=config, cancel=cancel, parallel=2),
                   stop_after=1, cancel=cancel)
        records, summary = drive(iter_batch(store, dataset, ["default"], "default", config=config, parallel=1))
        assert (summary.reloaded, summary.done) == (1, 3)
    assert snapshot(tmp_path / "resumed.kiig") == reference


def test_parallel_out_of_range_is_one_clear_line(tmp_path, capsys):
    from kiig_desktop import cli
    from kiig_desktop.resources import resource_path

    dataset = resource_path("datasets", "clinical_mcq.jsonl")
    code = cli.main(["run", "--dataset", str(dataset), "--models", "default", "--scorer", "default",
                     "--db", str(tmp_path / "x.kiig"), "--parallel", "0"])
    assert code == 2
    assert "--parallel must be between 1 and 16" in capsys.readouterr().err
    assert not (tmp_path / "x.kiig").exists()
