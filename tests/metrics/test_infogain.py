"""InfoGain on the real embedded model, checked against from-scratch evaluations (docs/metrics.md)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from kiig_desktop.metrics.infogain import ANSWER_PREFIX, PAPER_MIN_STEPS, plan_chain, question_text, score_chain
from kiig_desktop.resources import resource_path

CHAINS = [json.loads(line) for line in resource_path("chains", "clinical_chains.jsonl").read_text().splitlines()[:4]]
ARITH = {
    "id": "arith", "question": "A box holds 12 pencils. How many pencils are in 3 boxes?", "answer": "36",
    "steps": ["Each box has 12 pencils.", "Three boxes hold 3 x 12 pencils.", "3 x 12 = 36.", "So there are 36 pencils."],
}
ALL = CHAINS + [ARITH]


def _score(client, chain):
    return score_chain(client, chain["question"], chain["answer"], chain["steps"], chain.get("options"), chain.get("answer_idx"))


@pytest.fixture(scope="module")
def scored(client):
    return [(c, _score(client, c)) for c in ALL]


def _from_scratch(client, chain, k):
    """Prefix k tokenized as one text (the model's own tokenization), evaluated in one pass."""
    text = question_text(chain["question"], chain.get("options")) + "".join("\n" + s for s in chain["steps"][:k]) + ANSWER_PREFIX
    ctx = client.tokenize(text, add_bos=client.info["add_bos"])
    seq = client.tokenize(text + " " + chain["answer"], add_bos=client.info["add_bos"])
    assert seq[: len(ctx)] == ctx
    ans = seq[len(ctx) :]
    out = client.eval_sequence(seq)
    lp = np.asarray(out["logprob"])
    return -lp[-len(ans):].mean(), math.exp(-lp.mean()), seq


@pytest.mark.slow
def test_incremental_answer_nll_equals_from_scratch(client, scored):
    for chain, record in scored:
        prefixes = [record["baseline"]] + record["steps"]
        assert len(prefixes) == len(chain["steps"]) + 1
        for k, entry in enumerate(prefixes):
            nll, seq_ppl, seq = _from_scratch(client, chain, k)
            assert abs(entry["answer_nll"] - nll) < 1e-4, (chain["id"], k)
            assert abs(entry["answer_ppl"] - math.exp(nll)) < 1e-3 * math.exp(nll)
            assert abs(entry["seq_ppl"] - seq_ppl) < 1e-4 * seq_ppl, (chain["id"], k)  # paper mode
        assert record["n_tokens"] == len(seq)


@pytest.mark.slow
def test_step_metrics_follow_the_definitions(scored):
    for _chain, r in scored:
        prefixes = [r["baseline"]] + r["steps"]
        for k, step in enumerate(r["steps"], start=1):
            assert step["index"] == k - 1
            assert step["info_gain"] == pytest.approx(prefixes[k - 1]["answer_ppl"] - prefixes[k]["answer_ppl"], abs=1e-12)
            assert step["delta_nll"] == pytest.approx(prefixes[k - 1]["answer_nll"] - prefixes[k]["answer_nll"], abs=1e-12)
        n = len(r["steps"])
        assert r["info_gain_mean"] == pytest.approx(sum(s["info_gain"] for s in r["steps"]) / n)
        assert r["delta_nll_mean"] == pytest.approx(sum(s["delta_nll"] for s in r["steps"]) / n)
        seq = [p["seq_ppl"] for p in prefixes]
        if n < PAPER_MIN_STEPS:
            assert r["paper_info_gain"] is None and r["paper_mean"] is None and r["paper_excluded"]
            continue
        assert "paper_excluded" not in r
        assert r["paper_info_gain"] == pytest.approx(sum(seq[k - 1] - seq[k] for k in range(1, n + 1)) / (n + 1))
        assert r["paper_mean"] == pytest.approx(sum(seq[1:]) / (n + 1))  # baseline only in the denominator
        # the chain's mean delta NLL telescopes to (first - last) / n
        assert r["delta_nll_mean"] == pytest.approx((prefixes[0]["answer_nll"] - prefixes[-1]["answer_nll"]) / n)


@pytest.mark.slow
def test_option_probabilities(client, scored):
    for chain, r in scored:
        if "options" not in chain:
            assert "option_probs" not in r["baseline"]
            continue
        for entry in [r["baseline"]] + r["steps"]:
            probs = entry["option_probs"]
            assert list(probs) == list(chain["options"])
            assert sum(probs.values()) == pytest.approx(1.0, abs=1e-9)
            h = -sum(p * math.log2(p) for p in probs.values() if p > 0)
            assert entry["entropy_bits"] == pytest.approx(h)
            assert 0 <= entry["entropy_bits"] <= math.log2(len(probs))
            assert entry["p_correct"] == probs[chain["answer_idx"]]
    # against a direct computation: softmax over ln p(" L" | prefix-0 context ending in " Answer:")
    chain, r = scored[0]
    info = client.info
    ctx = ([info["bos"]] if info["add_bos"] else []) + client.tokenize(question_text(chain["question"], chain["options"])) + client.tokenize(ANSWER_PREFIX)
    lps = []
    for letter in chain["options"]:
        tok = client.tokenize(" " + letter)
        lps.append(float(np.sum(np.asarray(client.eval_sequence(ctx + tok)["logprob"])[-len(tok):])))
    p = np.exp(np.array(lps) - max(lps))
    p /= p.sum()
    assert list(r["baseline"]["option_probs"].values()) == pytest.approx(list(p), abs=1e-6)


def test_token_curve_is_the_teacher_forced_step_tokens(client, scored):
    chain, r = scored[-1]
    curve = r["token_curve"]
    plan = plan_chain(client, chain["question"], chain["answer"], chain["steps"])
    context = plan.prefixes[-1]["context"]
    assert len(curve["surprisal_bits"]) == len(curve["entropy_bits"]) == len(curve["pieces"]) == len(curve["token_ids"])
    assert curve["step"] == sorted(curve["step"]) and set(curve["step"]) == set(range(len(chain["steps"])))
    # the curve's tokens are a contiguous run of the last prefix's canonical context
    start = next(i for i in range(len(context)) if context[i : i + len(curve["token_ids"])] == curve["token_ids"])
    full = client.eval_sequence(context)
    lp = np.asarray(full["logprob"])[start - 1 : start - 1 + len(curve["token_ids"])]
    ent = np.asarray(full["entropy"])[start - 1 : start - 1 + len(curve["token_ids"])]
    np.testing.assert_allclose(curve["surprisal_bits"], -lp / math.log(2), atol=1e-9)
    np.testing.assert_allclose(curve["entropy_bits"], ent / math.log(2), atol=1e-9)
    assert "".join(curve["pieces"]) == "".join("\n" + s for s in chain["steps"])


def test_answer_that_the_chain_names_becomes_more_likely(client):
    """A sanity check of direction, not of medicine: stating the answer verbatim lowers its NLL."""
    r = score_chain(client, "What colour is a ripe banana?", "yellow", ["A ripe banana is yellow.", "So the colour is yellow."])
    assert r["steps"][0]["answer_nll"] < r["baseline"]["answer_nll"]
    assert r["steps"][0]["delta_nll"] > 0 and r["steps"][0]["info_gain"] > 0


@pytest.mark.slow
def test_llm_decomposition_on_the_real_model_is_valid_or_falls_back(client):
    """What the 135M model writes decides between the two outcomes, so the test asserts what must
    hold in both: steps in order inside the text, aligned steps equal to their span, and a mode that
    matches the fallback reason (a fallback is exactly the rule-based split, saying why)."""
    from kiig_desktop.chains.steps import split_reasoning
    from kiig_desktop.chains.steps_llm import split_with_model

    text = "First, 12 times 3 means adding 12 three times. Then 12 + 12 = 24. Finally 24 + 12 = 36."
    result = split_with_model(client, text, "What is 12 times 3?")
    assert result.steps and result.requested_mode == "llm"
    assert (result.mode == "llm") == (result.fallback_reason is None), (result.mode, result.fallback_reason)
    ends = [0]
    for s in result.steps:
        assert ends[-1] <= s.start < s.end <= len(text), (s.start, s.end)
        ends.append(s.end)
        if s.aligned:
            assert text[s.start : s.end] == s.text
    if result.mode != "llm":
        assert result.texts() == split_reasoning(text, "auto").texts()
        assert all(s.aligned for s in result.steps)


@pytest.mark.slow
def test_scan_scores_multi_token_candidates_like_a_fresh_pass(client):
    q = client.tokenize("Which drug is first-line for type 2 diabetes?" + ANSWER_PREFIX)
    q2 = client.tokenize("Which drug is first-line for type 2 diabetes?\nGuidelines start with a biguanide." + ANSWER_PREFIX)
    ans = client.tokenize(" Metformin")
    cands = [client.tokenize(" Metformin"), client.tokenize(" Insulin glargine"), client.tokenize(" B")]
    assert len(cands[0]) > 1 and len(cands[1]) > 1 and len(cands[2]) == 1
    scan = client.call("scan", prefixes=[{"context": c, "answer": ans, "candidates": cands} for c in (q, q2)])
    for k, prefix in enumerate([q, q2]):
        for cand, got in zip(cands, scan["checkpoints"][k]["candidates"], strict=True):
            full = np.asarray(client.eval_sequence(prefix + cand)["logprob"])
            assert got == pytest.approx(float(full[-len(cand):].sum()), abs=1e-6)


@pytest.mark.slow
def test_exact_when_segments_overrun_a_small_batch(builtin_path):
    """A small n_batch splits every prefix's new tokens across batches, a lone token included; scores stay exact."""
    from kiig_desktop.config import EngineOptions
    from kiig_desktop.engine.client import EngineClient
    from kiig_desktop.metrics.infogain import incremental_error

    with EngineClient("default", EngineOptions(n_ctx=2048, n_batch=8)) as small:
        small.start()
        words = "the patient has a fever and a cough with chest pain for three days now".split()
        steps = []
        for target in (9, 17, 25):
            k = 1
            while len(small.tokenize("\n" + " ".join(words[:k]))) < target and k < len(words):
                k += 1
            steps.append(" ".join(words[:k]))
        lengths = [len(small.tokenize("\n" + s)) for s in steps]
        assert any(n % 8 == 1 for n in lengths), lengths
        err = incremental_error(small, ARITH["question"], ARITH["answer"], steps)
        assert err["one_pass"] < 1e-4 and err["token_by_token"] < 1e-4, err


@pytest.mark.slow
def test_paper_mode_scores_the_knowledge_field_and_answer_mode_the_steps(client):
    """ReasoningEval's code scores "\\n" + knowledge_i per step; answer mode always reads the steps."""
    chain = ARITH
    knowledge = ["A box holds 12 pencils.", None, "Multiplication: 3 x 12 = 36.", "The total is 36."]
    r = score_chain(client, chain["question"], chain["answer"], chain["steps"], knowledge=knowledge, curve=False)
    plain = score_chain(client, chain["question"], chain["answer"], chain["steps"], curve=False)
    scored_text = [k or s for k, s in zip(knowledge, chain["steps"], strict=True)]
    for k, (entry, same) in enumerate(zip([r["baseline"]] + r["steps"], [plain["baseline"]] + plain["steps"], strict=True)):
        assert entry["answer_nll"] == same["answer_nll"]
        text = chain["question"] + "".join("\n" + s for s in scored_text[:k]) + " Answer: " + chain["answer"]
        lp = np.asarray(client.eval_sequence(client.tokenize(text, add_bos=client.info["add_bos"]))["logprob"])
        assert math.log(entry["seq_ppl"]) == pytest.approx(float(-lp.mean()), abs=1e-6), k
    assert r["paper_mean"] != plain["paper_mean"]


def test_output_line_keeps_the_item_and_each_steps_knowledge():
    from kiig_desktop.runs.score import output_line

    record = {"id": "x", "question": "Q?", "options": {"A": "a"}, "answer_idx": "A", "mode": "answer", "paper_info_gain": None,
              "paper_mean": None, "paper_excluded": "1 step", "steps": [{"index": 0, "text": "s", "knowledge": "k", "start": 0}],
              "token_curve": {}}
    out = output_line(record)
    assert out["question"] == "Q?" and out["options"] == {"A": "a"} and out["answer_idx"] == "A"
    assert out["steps"] == [{"index": 0, "text": "s", "knowledge": "k"}] and "token_curve" not in out
    assert out["paper_mean"] is None and out["paper_excluded"] == "1 step"
