"""Exact numbers wherever the scorer runs: the load-time batch-invariance self-test and the exact path.

The non-invariant setting is real, not simulated: CPU weight repacking of a Q4_K_M model makes a
token's logits depend on its batch (measured here: token-by-token vs one pass 0.018 nats on the tiny
Qwen2 model). The self-test must catch it, and scoring must then still equal the one-pass reference.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from kiig_desktop.config import EngineOptions
from kiig_desktop.engine import invariance
from kiig_desktop.engine.client import EngineClient
from kiig_desktop.metrics.infogain import plan_chain, reference_prefix, score_chain
from tests.support.tiny_models import tiny_model

Q = "Which organ produces insulin?"
A = "the pancreas"
OPTIONS = {"A": "the liver", "B": "the pancreas", "C": "the kidney"}
STEPS = ["Insulin is a hormone that lowers blood glucose.", "It is made by beta cells.",
         "Beta cells sit in the islets of Langerhans.", "The islets are part of the pancreas."]


def _open(path, **kw) -> EngineClient:
    c = EngineClient(str(path), EngineOptions(n_ctx=2048, **kw))
    c.start()
    return c


def _worst_vs_one_pass(client: EngineClient) -> tuple[float, float]:
    """Largest |scored - one-pass| and |one-pass - token-by-token| answer NLL over the chain's prefixes."""
    r = score_chain(client, Q, A, STEPS, OPTIONS, "B", curve=False)
    prefixes = [r["baseline"]] + r["steps"]
    scored, batches = 0.0, 0.0
    for k, entry in enumerate(prefixes):
        one = reference_prefix(client, Q, A, STEPS, OPTIONS, k)
        each = reference_prefix(client, Q, A, STEPS, OPTIONS, k, chunk=1)
        scored = max(scored, abs(entry["answer_nll"] - one["answer_nll"]),
                     abs(np.log(entry["seq_ppl"]) - np.log(one["seq_ppl"])))
        batches = max(batches, abs(one["answer_nll"] - each["answer_nll"]))
    return scored, batches


@pytest.fixture(scope="module")
def repacked_q4k(tiny_models_dir):
    return tiny_model("qwen2", "Q4_K_M", tiny_models_dir)


def test_the_shipped_build_is_verified_and_scores_incrementally(client):
    inv = client.info["invariance"]
    assert inv["verdict"] == invariance.VERIFIED, inv
    assert client.info["scoring"] == invariance.INCREMENTAL
    build = client.build()
    assert build["batch_invariant"] == "verified" and build["scoring"] == "incremental"
    assert "not_exact" not in build  # exact numbers keep the build id they had


@pytest.mark.slow
def test_a_non_invariant_setting_fails_the_self_test_and_scores_from_scratch_exactly(repacked_q4k):
    c = _open(repacked_q4k, repack=True)
    try:
        assert c.info["invariance"]["verdict"] == invariance.FAILED, c.info["invariance"]
        assert c.info["scoring"] == invariance.FROM_SCRATCH
        assert c.build()["batch_invariant"] == "failed" and c.build()["scoring"] == "from-scratch"
        scored, batches = _worst_vs_one_pass(c)
        assert batches > 1e-3, "repacking no longer changes numbers with batch size: this test lost its defect"
        assert scored == 0.0, scored  # bit for bit the reference (the issue asks for 1e-6)
    finally:
        c.close()


@pytest.mark.slow
def test_fast_not_exact_scores_incrementally_and_says_so(repacked_q4k):
    """The planted defect of the exact path: incremental scoring on that same build is off the reference."""
    c = _open(repacked_q4k, repack=True, fast_not_exact=True)
    try:
        assert c.info["scoring"] == invariance.FAST
        assert c.build()["not_exact"] is True
        scored, _ = _worst_vs_one_pass(c)
        assert scored > 0.0
    finally:
        c.close()


@pytest.mark.slow
def test_parallel_scoring_falls_back_to_one_chain_at_a_time_where_batches_are_not_invariant(repacked_q4k):
    c = _open(repacked_q4k, repack=True)
    try:
        plans = [plan_chain(c, Q, A, STEPS[:n], OPTIONS) for n in (2, 4)]
        chains = [{"prefixes": p.prefixes} for p in plans]
        together = c.call("scan_many", chains=chains)["results"]
        for chain, got in zip(chains, together, strict=True):
            alone = c.call("scan", prefixes=chain["prefixes"])
            assert [cp["answer_logprob"] for cp in got["checkpoints"]] == [cp["answer_logprob"] for cp in alone["checkpoints"]]
            assert [cp["candidates"] for cp in got["checkpoints"]] == [cp["candidates"] for cp in alone["checkpoints"]]
    finally:
        c.close()


@pytest.mark.slow
def test_doctor_reports_the_verdict_and_the_scoring_path(repacked_q4k):
    r = subprocess.run([sys.executable, "-m", "kiig_desktop", "doctor", "--json", "--model", str(repacked_q4k)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    inv = json.loads(r.stdout)["batch_invariant"]
    assert inv["verdict"] == "verified" and inv["scoring"] == "incremental" and inv["backend"] == "CPU"
    r = subprocess.run([sys.executable, "-m", "kiig_desktop", "doctor", "--model", str(repacked_q4k), "--fast-not-exact"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "batch invariance (CPU, this model and settings): verified" in r.stdout


class _Fake:
    """A decoder whose single-token rows differ from batched ones: the self-test must say so."""

    n_ctx, n_batch, n_vocab = 64, 64, 50

    def clear(self) -> None:
        pass

    def decode(self, tokens, outputs="all", targets=None, extra=None):
        from kiig_desktop.engine.backend import Reduced

        bump = 1e-7 if len(tokens) == 1 else 0.0
        n = len(tokens)
        return Reduced(np.zeros(n), np.full(n, 1.0 + bump), np.full(n, -2.0), {})


def test_the_self_test_compares_bit_for_bit_and_skips_what_it_cannot_run():
    assert invariance.self_test(_Fake())["verdict"] == invariance.FAILED
    small = _Fake()
    small.n_batch = 8
    assert invariance.self_test(small)["verdict"] == invariance.SKIPPED
    assert invariance.scoring_path(invariance.SKIPPED, False) == invariance.FROM_SCRATCH
    assert invariance.scoring_path(invariance.FAILED, True) == invariance.FAST
    assert invariance.scoring_path(invariance.VERIFIED, True) == invariance.INCREMENTAL


def test_fast_numbers_are_labelled_and_kept_apart_from_exact_ones():
    from kiig_desktop.engine.build_info import describe, differences, mixed_warning, short_label

    kw = dict(llama_cpp_python="0.3.36", system_info="CPU : AVX2 = 1", gpu_offload=False, n_gpu_layers=0,
              n_batch=512, flash_attn=False, repack=True, n_threads=2, libraries=["ggml-cpu-haswell"])
    exact = describe(**kw, batch_invariant="failed", scoring="from-scratch")
    fast = describe(**kw, batch_invariant="failed", scoring="fast-not-exact")
    assert "NOT exact" in short_label(fast) and "NOT exact" not in short_label(exact)
    assert differences(exact, fast) == ["fast, not exact scoring: unknown vs on"]
    assert mixed_warning({"a": exact, "b": fast}) is not None
