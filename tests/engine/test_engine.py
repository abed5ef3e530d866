"""The engine on the real embedded model: tokens, generation, logprobs, cancel, crash recovery."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

from kiig_desktop.errors import Cancelled, ContextOverflow, WorkerCrashed
from kiig_desktop.events import CancelToken, Token, run_to_end
from tests.support.process import HANG_GUARD_S

MESSAGES = [{"role": "user", "content": "Explain in two sentences why the sky is blue."}]


def _run(gen):
    events = []
    return events, run_to_end(gen, events.append)


def test_tokenize_round_trip(client):
    for text in ["Hello world", "Dose: 2.5 mg twice daily.", "Ünïcödé — 日本語 テキスト", "  leading spaces\nand lines\r\n"]:
        tokens = client.tokenize(text)
        assert tokens and all(isinstance(t, int) for t in tokens)
        assert client.detokenize(tokens) == text
    assert client.tokenize("x", add_bos=False) != client.tokenize("x y")


@pytest.mark.slow
def test_greedy_generation_is_reproducible(client):
    _, a = _run(client.generate(MESSAGES, max_tokens=24, temperature=0.0))
    _, b = _run(client.generate(MESSAGES, max_tokens=24, temperature=0.0, seed=123))
    assert a["text"] and a["text"] == b["text"]
    assert [t["id"] for t in a["tokens"]] == [t["id"] for t in b["tokens"]]


@pytest.mark.slow
def test_sampled_generation_is_reproducible_with_seed(client):
    runs = [_run(client.generate(MESSAGES, max_tokens=24, temperature=1.0, seed=s))[1]["text"] for s in (7, 7, 8)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]  # a different seed samples differently (24 tokens at T=1)


def test_streamed_tokens_carry_logprob_entropy_and_alternatives(client):
    events, result = _run(client.generate(MESSAGES, max_tokens=16, top_k=5))
    tokens = [e for e in events if isinstance(e, Token)]
    assert len(tokens) == len(events) == len(result["tokens"]) == 16  # typed events only
    assert "".join(t.text for t in tokens) == result["text"]
    for t in tokens:
        assert t.logprob <= 0 and math.isfinite(t.logprob)
        assert len(t.top) == 5
        assert t.top[0]["logprob"] >= t.logprob - 1e-6  # greedy: the chosen token is the top one
        assert all(a["logprob"] >= b["logprob"] for a, b in zip(t.top, t.top[1:], strict=False))
    entropies = [t.entropy_bits for t in tokens]
    assert all(0 <= h < math.log2(49152) for h in entropies)
    assert max(entropies) > 0.5 and len({round(h, 3) for h in entropies}) > 5  # real, varying entropies


@pytest.mark.slow
def test_streamed_logprobs_equal_a_separate_forward_pass(client):
    _, result = _run(client.generate(MESSAGES, max_tokens=20, top_k=0))
    prompt = client.call("chat_prompt", messages=MESSAGES)
    prompt_ids = client.tokenize(prompt, special=True)
    gen_ids = [t["id"] for t in result["tokens"]]
    full = client.eval_sequence(prompt_ids + gen_ids)
    lp = np.asarray(full["logprob"])[len(prompt_ids) - 1 :]
    ent = np.asarray(full["entropy"])[len(prompt_ids) - 1 :] / math.log(2)
    streamed_lp = np.array([t["logprob"] for t in result["tokens"]])
    streamed_ent = np.array([t["entropy_bits"] for t in result["tokens"]])
    np.testing.assert_allclose(lp, streamed_lp, atol=1e-6)
    np.testing.assert_allclose(ent, streamed_ent, atol=1e-6)


class WatchedToken(CancelToken):
    """A cancel token that says when the engine client has registered with it (the request is on its way)."""

    def __init__(self) -> None:
        super().__init__()
        self.registered = threading.Event()

    def on_cancel(self, callback) -> None:
        super().on_cancel(callback)
        self.registered.set()


@contextlib.contextmanager
def soft_cancel_only(client):
    """No hard kill of the worker while the block runs: a cancel must land in the worker itself.

    How fast it lands is measured by benchmarks/bench_latency.py, not asserted here.
    """
    saved, client.hard_cancel_s = client.hard_cancel_s, HANG_GUARD_S
    try:
        yield
    finally:
        client.hard_cancel_s = saved


def test_cancel_stops_generation_in_the_worker(client):
    gen = client.generate(MESSAGES, max_tokens=4000)
    seen = 0
    for event in gen:
        seen += isinstance(event, Token)
        if seen == 5:
            break
    # breaking out of the stream cancels and drains; the next request must work at once
    assert client.detokenize(client.tokenize("ok")) == "ok"
    pid, token = client.pid, CancelToken()
    with soft_cancel_only(client):  # cancel on the first streamed token
        result = run_to_end(client.generate(MESSAGES, max_tokens=4000, cancel=token), lambda _event: token.cancel())
    assert result["stop"] == "cancelled"
    assert 0 < len(result["tokens"]) < 4000
    assert client.pid == pid  # the worker stopped by itself, it was not killed


def test_cancel_interrupts_a_long_prefill(client):
    """The cancel reaches the worker before it starts the 7,000-token prefill (the worker is stopped
    meanwhile), so only an abort inside llama_decode can end the prefill with Cancelled."""
    tokens = client.tokenize("The patient reports chest pain radiating to the left arm. " * 700)[:7000]
    assert len(tokens) == 7000
    token, outcome, pid = WatchedToken(), {}, client.pid

    def work():
        try:
            client.eval_sequence(tokens, cancel=token)
            outcome["r"] = "finished"
        except Cancelled:
            outcome["r"] = "cancelled"

    with soft_cancel_only(client):
        os.kill(pid, signal.SIGSTOP)
        try:
            t = threading.Thread(target=work)
            t.start()
            assert token.registered.wait(HANG_GUARD_S)
            token.cancel()
        finally:
            os.kill(pid, signal.SIGCONT)
        t.join(HANG_GUARD_S)
    assert outcome.get("r") == "cancelled", outcome
    assert client.pid == pid
    assert client.detokenize(client.tokenize("still alive")) == "still alive"


def test_workers_spin_briefly_then_sleep_unless_the_user_says_otherwise(fresh_client, monkeypatch):
    from kiig_desktop.config import WORKER_ENV_DEFAULTS

    def worker_env(client) -> dict[str, str]:
        raw = Path(f"/proc/{client.pid}/environ").read_bytes().split(b"\0")
        return dict(x.decode().split("=", 1) for x in raw if b"=" in x)

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setenv("GOMP_SPINCOUNT", "5")
    fresh_client.start()
    env = worker_env(fresh_client)
    assert env["OMP_WAIT_POLICY"] == WORKER_ENV_DEFAULTS["OMP_WAIT_POLICY"] == "PASSIVE"
    assert env["GOMP_SPINCOUNT"] == "5"  # the user's own setting wins
    assert "OMP_WAIT_POLICY" not in os.environ  # the caller's environment is left alone


@pytest.mark.slow
def test_kill_9_mid_generation_gives_clear_error_then_recovers(fresh_client):
    fresh_client.start()
    pid = fresh_client.pid
    gen = fresh_client.generate(MESSAGES, max_tokens=2000)
    next(gen)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(WorkerCrashed) as err:
        for _ in gen:
            pass
    assert "SIGKILL" in str(err.value) and "fresh worker" in str(err.value)
    _, result = _run(fresh_client.generate(MESSAGES, max_tokens=5))
    assert len(result["tokens"]) == 5
    assert fresh_client.pid != pid


@pytest.mark.slow
@pytest.mark.parametrize("kind,words", [("segv", "segmentation fault"), ("abort", "SIGABRT"), ("exit", "code 3")])
def test_native_crash_is_reported_and_next_call_works(fresh_client, kind, words):
    fresh_client.start()
    with pytest.raises(WorkerCrashed) as err:
        fresh_client.call("debug_crash", kind=kind)
    assert words in str(err.value)
    assert fresh_client.detokenize(fresh_client.tokenize("recovered")) == "recovered"


def test_context_overflow_is_a_clear_error(fresh_client):
    long_text = "word " * 5000
    with pytest.raises(ContextOverflow) as err:
        fresh_client.eval_sequence(fresh_client.tokenize(long_text))
    assert "context holds 4096" in str(err.value)
    assert fresh_client.tokenize("fine")  # the worker is still serving


def test_next_token_logprobs_are_log_probabilities(client):
    out = client.next_token_logprobs([{"role": "user", "content": "Is water wet? Answer Yes or No."}], ["Yes", "No", "Maybe"])
    assert set(out) == {"Yes", "No", "Maybe"}
    assert all(v < 0 for v in out.values())
    assert sum(math.exp(v) for v in out.values()) <= 1.0
