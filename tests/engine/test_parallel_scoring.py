"""Parallel scoring and judging: several chains' prefixes, or several judge prompts, in one context.

Real llama.cpp on the embedded model (Q4_1) and on tiny random-weight models with real tokenizers
(tests/support/tiny_models.py), F16 and K-quants: every number of every item equals what the one-item
operations (``scan``, ``next_token_logprobs``) give it alone, within 1e-4 nats, whatever the chains
are grouped with; one item that fails fails alone; cancel stops the operation.
"""

from __future__ import annotations

import numpy as np
import pytest

from kiig_desktop.config import EngineOptions
from kiig_desktop.engine.client import EngineClient
from kiig_desktop.errors import Cancelled, ContextOverflow
from kiig_desktop.events import CancelToken, run_to_end
from kiig_desktop.metrics.infogain import plan_chain
from tests.support.tiny_models import tiny_model

pytestmark = pytest.mark.slow  # scores in parallel on tiny and real models

TOL = 1e-4
CHAINS = [  # question, answer, steps, options, knowledge
    ("What is 3 times 12?", "36", ["Three times ten is thirty.", "Three times two is six.", "Thirty plus six is 36."], None, None),
    ("Which vitamin deficiency causes scurvy?", "C", ["Scurvy shows bleeding gums.", "It comes from a lack of ascorbic acid."],
     {"A": "Vitamin A", "B": "Vitamin D", "C": "Vitamin C", "D": "Vitamin K"}, None),
    ("Name the organ that filters blood and makes urine.", "the kidney",
     ["Urine is made from filtered blood.", "Nephrons do the filtering.", "Nephrons sit in the kidneys.", "So it is the kidney."],
     None, ["Urine is filtered blood.", "", "Nephrons are in the kidney.", None]),
    ("Is 91 a prime number?", "No", ["91 is 7 times 13.", "A prime has no such factors."], None, None),
    ("A patient has a fever and a stiff neck. What should be ruled out first?", "meningitis",
     ["Fever with neck stiffness suggests meningeal irritation.", "Bacterial meningitis is an emergency."], None, None),
]
JUDGE_PROMPTS = [
    [{"role": "system", "content": "Reply Yes or No."}, {"role": "user", "content": f"Claim: {c}\nIs it true?"}]
    for c in ("Water boils at 100 C at sea level.", "The kidney makes insulin.", "Scurvy comes from a lack of vitamin C.",
              "Seven times thirteen is ninety-one. " * 30)
]
CANDIDATES = ["Yes", " Yes", "No", " No"]


def _drain(gen) -> tuple[object, list]:
    events: list = []
    return run_to_end(gen, events.append), events


def _chains(client, which: list[int] | None = None) -> list[dict]:
    out = []
    for i in range(len(CHAINS)) if which is None else which:
        q, a, steps, options, knowledge = CHAINS[i]
        plan = plan_chain(client, q, a, steps, options, "C" if options else None, knowledge)
        out.append({"prefixes": plan.prefixes, "curve_prefix": len(plan.prefixes) - 1})
    return out


def _assert_same_scan(par: dict, seq: dict) -> None:
    assert len(par["checkpoints"]) == len(seq["checkpoints"])
    for p, s in zip(par["checkpoints"], seq["checkpoints"], strict=True):
        np.testing.assert_allclose(p["answer_logprob"], s["answer_logprob"], atol=TOL)
        assert abs(p["seq_nll"] - s["seq_nll"]) <= TOL
        assert (p["candidates"] is None) == (s["candidates"] is None)
        if s["candidates"] is not None:
            np.testing.assert_allclose(p["candidates"], s["candidates"], atol=TOL)
    np.testing.assert_allclose(par["context_logprob"][1:], seq["context_logprob"][1:], atol=TOL)
    np.testing.assert_allclose(par["context_entropy"][1:], seq["context_entropy"][1:], atol=TOL)
    assert par["tokens_evaluated"] == seq["tokens_evaluated"]


def _check_scan_many(client, chains: list[dict]) -> list[dict]:
    par, events = _drain(client.scan_many(chains))
    assert events and events[-1].done == events[-1].total >= sum(len(c["prefixes"]) for c in chains)
    for chain, result in zip(chains, par, strict=True):
        _assert_same_scan(result, client.call("scan", prefixes=chain["prefixes"], curve_prefix=chain["curve_prefix"]))
    return par


def _check_judge_many(client) -> None:
    par, _ = _drain(client.judge_many(JUDGE_PROMPTS, CANDIDATES))
    for prompt, result in zip(JUDGE_PROMPTS, par, strict=True):
        seq = client.next_token_logprobs(prompt, CANDIDATES)
        assert result.keys() == seq.keys()
        np.testing.assert_allclose([result[c] for c in seq], list(seq.values()), atol=TOL)


def test_parallel_scoring_and_judging_equal_sequential_on_the_embedded_model(client):
    chains = _chains(client)
    assert any("paper" in p for p in chains[2]["prefixes"])  # knowledge text: the second, paper pass runs too
    par = _check_scan_many(client, chains)
    # the same chain with other neighbours, in another sequence of a smaller group: the same numbers
    again, _ = _drain(client.scan_many([chains[3], chains[0]]))
    _assert_same_scan(again[1], par[0])
    _check_judge_many(client)


@pytest.mark.parametrize(("family", "weight_type"), [("llama-bpe", "Q4_K_M"), ("qwen2", "Q6_K"), ("llama-spm", "F16")])
def test_parallel_scoring_and_judging_equal_sequential_on_real_tokenizers(family, weight_type, tiny_models_dir):
    client = EngineClient(str(tiny_model(family, weight_type, tiny_models_dir)), EngineOptions(n_ctx=1024, n_batch=64, n_threads=2))
    try:
        client.start()
        # n_batch 64: one request spans several batches and batches hold several chains' requests
        _check_scan_many(client, _chains(client))
        _check_judge_many(client)
    finally:
        client.close()


def test_an_item_that_does_not_fit_fails_alone(tiny_models_dir):
    client = EngineClient(str(tiny_model("qwen2", "F16", tiny_models_dir)), EngineOptions(n_ctx=256, n_threads=2))
    try:
        client.start()
        q, a, _steps, _o, _k = CHAINS[0]
        long = plan_chain(client, q, a, ["This step says a great deal about numbers. " * 16] * 3)
        chains = _chains(client, [0, 3])
        chains.insert(1, {"prefixes": long.prefixes, "curve_prefix": None})
        par, _ = _drain(client.scan_many(chains))
        assert isinstance(par[1], ContextOverflow) and "context" in par[1].message
        for chain, result in ((chains[0], par[0]), (chains[2], par[2])):
            _assert_same_scan(result, client.call("scan", prefixes=chain["prefixes"], curve_prefix=chain["curve_prefix"]))
        prompts = [JUDGE_PROMPTS[0], [{"role": "user", "content": "word " * 300}], JUDGE_PROMPTS[1]]
        judged, _ = _drain(client.judge_many(prompts, CANDIDATES))
        assert isinstance(judged[1], ContextOverflow)
        assert judged[2] == pytest.approx(client.next_token_logprobs(prompts[2], CANDIDATES), abs=TOL)
    finally:
        client.close()


def test_cancel_stops_parallel_scoring_and_the_worker_serves_on(fresh_client):
    fresh_client.start()
    q, a, _steps, _o, _k = CHAINS[0]
    steps = [f"Step {i}: we multiply and add the numbers once more, carefully, and write each digit down." for i in range(60)]
    chains = [{"prefixes": plan_chain(fresh_client, q, a, steps[: 40 + i]).prefixes, "curve_prefix": None} for i in range(4)]
    cancel = CancelToken()
    gen = fresh_client.scan_many(chains, cancel=cancel)
    next(gen)  # the first progress event: the scan is under way
    cancel.cancel()
    with pytest.raises(Cancelled):
        _drain(gen)
    small = _chains(fresh_client, [0])
    _check_scan_many(fresh_client, small)


KI_CHAINS = [
    ([{"index": 1, "text": "Metformin is the first-line drug for type 2 diabetes."},
      {"index": 2, "text": "Let us think step by step."},
      {"index": 3, "text": "Insulin is made by the beta cells of the pancreas."}], "Which drug is first-line for type 2 diabetes?"),
    ([{"index": 1, "text": "Scurvy is caused by a lack of vitamin C."}], None),
    ([{"index": 1, "text": "Bacterial meningitis presents with fever and neck stiffness."},
      {"index": 2, "text": "Aspirin is an anticoagulant that thins the blood."}], "What causes a stiff neck with fever?"),
]


@pytest.fixture(scope="module")
def corpus_db(tmp_path_factory):
    from tests.support.corpus import demo_corpus_session

    return demo_corpus_session(tmp_path_factory.mktemp("corpus") / "c.kiig")


@pytest.mark.parametrize(("mode", "n_ctx", "budget", "overflow"), [("probability", 1024, 2500, False), ("probability", 256, 6000, True),
                                                                  ("passages-true-false", 512, 1500, False)])
def test_chains_judged_at_once_equal_one_by_one(mode, n_ctx, budget, overflow, corpus_db, tiny_models_dir):
    """KI of several chains with every judge prompt read at once (judge_many; generate_many for
    True/False replies) equals judging chain by chain, step by step; a prompt that overflows the
    judge's context fails its chain with the same message both ways (never asked again shorter)."""
    from kiig_desktop.knowledge.ki import chains_ki, score_chain_ki, token_ids_of
    from kiig_desktop.runs.ki import ask_many
    from kiig_desktop.store import SessionStore

    client = EngineClient(str(tiny_model("llama-bpe", "Q4_K_M", tiny_models_dir)), EngineOptions(n_ctx=n_ctx, n_threads=2))
    overflows = []

    def counting(prompts):
        out = ask_many(client, mode, 2)(prompts)
        overflows.extend(isinstance(r, ContextOverflow) for r in out)
        return out

    try:
        with SessionStore.open(corpus_db, write=False) as store:
            many = chains_ki(store.db, "clinical", KI_CHAINS, counting, k=3, max_prompt_chars=budget, mode=mode,
                             token_ids=None if mode == "passages-true-false" else token_ids_of(client))
            for (steps, question), got in zip(KI_CHAINS, many, strict=True):
                if isinstance(got, ContextOverflow):
                    with pytest.raises(ContextOverflow) as raised:
                        score_chain_ki(store.db, "clinical", client, steps, question, k=3, max_prompt_chars=budget, mode=mode)
                    assert str(raised.value) == str(got) and got.message.startswith("judge prompt is ")
                    continue
                one = score_chain_ki(store.db, "clinical", client, steps, question, k=3, max_prompt_chars=budget, mode=mode)
                assert {k: v for k, v in got.items() if k != "steps"} == pytest.approx({k: v for k, v in one.items() if k != "steps"}, abs=TOL)
                for a, b in zip(got["steps"], one["steps"], strict=True):
                    assert a.pop("evidence") == b.pop("evidence") and a == pytest.approx(b, abs=TOL)
        assert overflow or any(s["ki"] is not None and s["applicable"] for r in many for s in r["steps"])
        assert any(overflows) == overflow
    finally:
        client.close()
