"""Canonical tokenization and exactness on tiny models with the real tokenizers of five families.

docs/metrics.md: every prefix is tokenized as the scorer tokenizes the whole text, and every
number equals a from-scratch one-pass evaluation of the same tokens, and a token-by-token one,
within 1e-4 nats -- for every tokenizer family and every weight type users run.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from kiig_desktop.config import EngineOptions
from kiig_desktop.engine.client import EngineClient
from kiig_desktop.metrics.infogain import context_texts, plan_chain, reference_prefix, score_chain, step_of_tokens
from kiig_desktop.resources import resource_path
from tests.support.tiny_models import FAMILIES, WEIGHT_TYPES, tiny_model

pytestmark = pytest.mark.slow  # builds tiny models of five tokenizer families and several weight types

CLINICAL = json.loads(resource_path("chains", "clinical_chains.jsonl").read_text().splitlines()[0])
ARITH = {
    "question": "A box holds 12 pencils. How many pencils are in 3 boxes?", "answer": "36",
    "options": {"A": "36", "B": "15", "C": "12", "D": "4"}, "answer_idx": "A",
    "steps": ["Each box has 12 pencils.", "Three boxes hold 3 x 12 pencils.", "3 x 12 = 36.", "So there are 36 pencils."],
}
CHAINS = [ARITH, CLINICAL]
TOL = 1e-4


def _client(path, n_batch: int = 512) -> EngineClient:
    c = EngineClient(str(path), EngineOptions(n_ctx=1024, n_batch=n_batch, n_threads=2))
    c.start()
    return c


@pytest.fixture(scope="module", params=list(FAMILIES))
def f16_client(request, tiny_models_dir):
    c = _client(tiny_model(request.param, "F16", tiny_models_dir))
    yield request.param, c
    c.close()


def test_context_tokens_are_the_models_own_tokenization_of_the_whole_text(f16_client):
    _family, client = f16_client
    for chain in CHAINS:
        plan = plan_chain(client, chain["question"], chain["answer"], chain["steps"], chain["options"], chain["answer_idx"])
        texts = context_texts(chain["question"], chain["steps"], chain["options"])
        for k, (p, text) in enumerate(zip(plan.prefixes, texts, strict=True)):
            assert p["context"] == client.tokenize(text, add_bos=client.info["add_bos"]), k
            whole = client.tokenize(text + " " + chain["answer"], add_bos=client.info["add_bos"])
            assert p["context"] + p["answer"] == whole, k  # no merge across " Answer:" + " 36" here
            for letter, cand in zip(chain["options"], p["candidates"], strict=True):
                assert cand == client.tokenize(text + " " + letter, add_bos=client.info["add_bos"])[len(p["context"]) :]


def test_token_curve_follows_the_steps_by_character_offsets(f16_client):
    _family, client = f16_client
    chain = ARITH
    r = score_chain(client, chain["question"], chain["answer"], chain["steps"])
    curve = r["token_curve"]
    assert curve["step"] == sorted(curve["step"]) and set(curve["step"]) == set(range(len(chain["steps"])))
    text = "".join(curve["pieces"])
    for s in chain["steps"]:
        assert s.split()[1] in text  # the steps' words are there; boundary tokens may carry a neighbour's bytes


def test_step_of_tokens_by_start_offset():
    # "Q?" + "\nA." + "\nB." + " Answer:" with a token "?\n" spanning the question/step boundary
    text = "Q?\nA.\nB. Answer:"
    pieces = [len(b"Q"), len(b"?\n"), len(b"A"), len(b".\n"), len(b"B"), len(b"."), len(b" Answer"), len(b":")]
    assert step_of_tokens(pieces, text, [2, 5, 8]) == [-1, -1, 0, 0, 1, 1, -1, -1]
    # SentencePiece: a space piece before the text
    assert step_of_tokens([0, 2, 2, 1, 2, 1, 1, 7, 1], text, [2, 5, 8]) == [-1, -1, -1, 0, 0, 1, 1, -1, -1]


@pytest.mark.slow
@pytest.mark.parametrize("weight_type", list(WEIGHT_TYPES))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_incremental_equals_one_pass_and_token_by_token(family, weight_type, tiny_models_dir):
    # a small n_batch makes the incremental path cross batch boundaries the references do not
    client = _client(tiny_model(family, weight_type, tiny_models_dir), n_batch=16)
    try:
        # the load-time self-test verified this build, so the incremental path is the one checked here
        assert client.info["scoring"] == "incremental", client.info["invariance"]
        for chain in CHAINS[:1]:  # 5 prefixes with 4 option letters each; the tokenization test reads both chains
            q, a, steps, opts = chain["question"], chain["answer"], chain["steps"], chain["options"]
            r = score_chain(client, q, a, steps, opts, chain["answer_idx"], curve=False)
            prefixes = [r["baseline"]] + r["steps"]
            for k, entry in enumerate(prefixes):
                one = reference_prefix(client, q, a, steps, opts, k)
                each = reference_prefix(client, q, a, steps, opts, k, chunk=1)
                assert abs(entry["answer_nll"] - one["answer_nll"]) < TOL, (k, entry["answer_nll"], one["answer_nll"])
                assert abs(entry["answer_nll"] - each["answer_nll"]) < TOL, (k, entry["answer_nll"], each["answer_nll"])
                assert abs(np.log(entry["seq_ppl"]) - np.log(one["seq_ppl"])) < TOL, k
    finally:
        client.close()


@pytest.mark.parametrize("weight_type", ["Q8_0", "Q4_0", "Q4_K_M", "Q6_K"])
def test_generation_logprobs_equal_a_teacher_forced_pass(weight_type, tiny_models_dir):
    """Generation decodes one token at a time with no re-decode: each streamed log-prob must equal
    the same token's in one pass over prompt + reply (whatever this random model generates)."""
    client = _client(tiny_model("llama-bpe", weight_type, tiny_models_dir))
    try:
        messages = [{"role": "user", "content": "Count the pencils in three boxes of twelve."}]
        result = client.call("generate", messages=messages, max_tokens=40, temperature=0.0, top_k=0)
        prompt = client.call("prompt_tokens", messages=messages)
        ids = [t["id"] for t in result["tokens"]]
        assert len(ids) >= 5
        full = client.eval_sequence(prompt + ids)
        lp = np.asarray(full["logprob"])[len(prompt) - 1 :]
        ent = np.asarray(full["entropy"])[len(prompt) - 1 :] / np.log(2)
        np.testing.assert_allclose([t["logprob"] for t in result["tokens"]], lp, atol=TOL)
        np.testing.assert_allclose([t["entropy_bits"] for t in result["tokens"]], ent, atol=TOL)
    finally:
        client.close()


@pytest.mark.parametrize("tiled", ["0", "1"])
def test_doctor_checks_exactness_for_the_users_own_model_and_build(tiled, tiny_models_dir):
    """`kiig doctor --model M` runs the exactness check on M. With the tiled K-quant kernel on
    (GGML_CPU_TILED_MM=1) the numbers are exact only in a build with our batch-invariance patch
    (packaging/patches/); stock llama.cpp's must be reported as not exact."""
    import json
    import os
    import subprocess
    import sys

    model = tiny_model("qwen2", "Q4_K_M", tiny_models_dir)
    env = dict(os.environ, GGML_CPU_TILED_MM=tiled)
    r = subprocess.run([sys.executable, "-m", "kiig_desktop", "doctor", "--json", "--model", str(model)],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    ex = report["exactness"]
    assert report["tiled_mm"] is (tiled == "1")
    assert ex["exact"] is (tiled == "0" or report["kquant_invariant"]), (ex, report["kquant_invariant"])
    assert set(ex) >= {"one_pass_nats", "token_by_token_nats", "max_abs_nats"}
