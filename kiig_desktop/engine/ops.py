"""Whole operations the worker offers: generate, scan a chain of prefixes, score a sequence, judge.

Each operation is a generator: it yields small event dicts (streamed to the client as they happen)
and returns its result. The incremental KV-cache work stays inside the worker, so a 16-step chain
costs one request, not thousands of token round trips.
"""

from __future__ import annotations

import codecs
import json
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import Cancelled, InputError, KiigError
from .backend import Backend, Reduced, batch_spans, check_fits
from .invariance import FROM_SCRATCH
from .logits import LN2, row_stats
from .wire import error_payload

Events = Generator[dict, None, dict]


# ---------------------------------------------------------------------------- chat templates


# templates llama.cpp knows by name, for GGUF files that carry none of their own
ARCH_TEMPLATES = {"gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "gemma3n": "gemma", "qwen2": "chatml", "qwen3": "chatml", "phi3": "phi3"}


def chat_template_source(backend: Backend) -> tuple[str, str | None]:
    """Which template renders prompts: ("jinja", text), ("builtin", name) or ("plain", None)."""
    chosen = backend.chat_template_override or backend.info().get("chat_template")
    if chosen and ("{%" in chosen or "{{" in chosen):
        return "jinja", chosen
    if chosen:
        return "builtin", chosen
    arch = backend.info().get("desc", "").split(" ")[0]
    name = ARCH_TEMPLATES.get(backend.architecture or arch)
    return ("builtin", name) if name else ("plain", None)


def chat_prompt(backend: Backend, messages: list[dict], add_generation_prompt: bool = True) -> str:
    """Render ``messages`` with the model's own chat template (from its GGUF), else a known one."""
    kind, template = chat_template_source(backend)
    info = backend.info()
    if kind == "jinja":
        from .chat_template import render_chat

        bos = backend.token_text(info["bos"]) if info["bos"] >= 0 else ""
        eos = backend.token_text(info["eos"]) if info["eos"] >= 0 else ""
        return render_chat(template, Path(backend.path).name, messages, bos_token=bos, eos_token=eos,
                           add_generation_prompt=add_generation_prompt)
    if kind == "builtin":
        text = backend.apply_builtin_template(template, messages, add_generation_prompt)
        if text is not None:
            return text
    parts = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    if add_generation_prompt:
        parts.append("Assistant:")
    return "\n".join(parts)


def prompt_tokens(backend: Backend, messages: list[dict]) -> list[int]:
    text = chat_prompt(backend, messages)
    add_bos = backend.info()["add_bos"]
    tokens = backend.tokenize(text, add_bos=add_bos, special=True)
    bos = backend.info()["bos"]
    if add_bos and len(tokens) >= 2 and tokens[0] == bos and tokens[1] == bos:
        tokens = tokens[1:]  # templates that write bos_token themselves
    return tokens


# ---------------------------------------------------------------------------- generation


class _Reply:
    """One reply being generated: its sampler, streamed tokens and text, and why it stopped."""

    def __init__(self, backend: Backend, n_prompt: int, temperature: float, seed: int, grammar: str | None,
                 top_p: float, top_k: int) -> None:
        self.backend, self.n_prompt, self.top_k = backend, n_prompt, top_k
        self.sampler = backend.make_sampler(temperature, seed, grammar=grammar, top_p=top_p)
        self.dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.tokens: list[dict] = []
        self.parts: list[str] = []
        self.stop: str | None = None
        self.n_past = n_prompt  # tokens of this reply's sequence in the KV cache
        self.pending: dict | None = None  # a sampled token still to be decoded (parallel generation)

    def step(self, row: np.ndarray, ctx=None, index: int = -1) -> dict | None:
        """Sample the next token from ``row`` (the logits at batch ``index`` of ``ctx``); None once stopped."""
        b = self.backend
        if self.n_past >= b.n_ctx:
            self.stop = "context"
            return None
        lse, entropy, top = row_stats(row, self.top_k)
        token = b.sample(self.sampler, ctx, index)
        if b.is_eog(token):
            self.stop = "eos"
            return None
        piece = self.dec.decode(b.piece(token))
        record = {
            "id": token,
            "text": piece,
            "logprob": float(row[token]) - lse,
            "entropy_bits": entropy / LN2,
            "top": [{"id": t, "text": b.piece(t).decode("utf-8", errors="replace"), "logprob": lp} for t, lp in top],
        }
        self.tokens.append(record)
        self.parts.append(piece)
        return record

    def result(self, prompt_s: float, gen_s: float) -> dict:
        self.sampler.close()
        tail = self.dec.decode(b"", final=True)
        return {
            "text": "".join(self.parts) + tail,
            "tokens": self.tokens,
            "n_prompt_tokens": self.n_prompt,
            "stop": self.stop or "length",
            "prompt_s": prompt_s,
            "gen_s": gen_s,
            "tokens_per_s": len(self.tokens) / gen_s if gen_s > 0 else 0.0,
        }


def _grammar(json_schema: dict | None, grammar: str | None) -> str | None:
    if json_schema is not None and grammar is None:
        from llama_cpp.llama_grammar import json_schema_to_gbnf

        return json_schema_to_gbnf(json.dumps(json_schema))
    return grammar


def _advance(reply: _Reply, row: np.ndarray, ctx, index: int, max_tokens: int) -> None:
    """Sample the reply's next token; it stays pending (to be decoded) while more tokens are wanted."""
    record = reply.step(row, ctx, index) if len(reply.tokens) < max_tokens else None
    reply.pending = record if record is not None and len(reply.tokens) < max_tokens else None


def generate(
    backend: Backend,
    messages: list[dict],
    max_tokens: int = 256,
    temperature: float = 0.0,
    seed: int | None = None,
    top_k: int = 5,
    top_p: float = 0.95,
    json_schema: dict | None = None,
    grammar: str | None = None,
) -> Events:
    """Chat-templated generation; each token streams with its log-prob, entropy and top-k alternatives."""
    tokens = prompt_tokens(backend, messages)
    backend.clear()
    backend.check_fits(len(tokens) + 1, "the prompt")
    started = time.monotonic()
    backend.decode(tokens, outputs="last")
    prompt_s = time.monotonic() - started
    reply = _Reply(backend, len(tokens), temperature, backend.seed if seed is None else seed,
                   _grammar(json_schema, grammar), top_p, top_k)
    gen_started = time.monotonic()
    try:
        for _ in range(max_tokens):
            reply.n_past = backend.n_past
            record = reply.step(backend.last_logits())
            if record is None:
                break
            yield {"type": "token", **record}
            backend.decode([record["id"]], outputs="last")
    except Cancelled:
        reply.stop = "cancelled"
    return reply.result(prompt_s, time.monotonic() - gen_started)


def generate_many(
    backend: Backend,
    items: list[dict],
    max_tokens: int = 256,
    temperature: float = 0.0,
    top_k: int = 5,
    top_p: float = 0.95,
) -> Events:
    """Generate replies to several chats at once, one KV-cache sequence each, one batched decode per step.

    ``items[k]``: ``{"messages": [...], "seed": int?}``. Each reply equals what :func:`generate`
    gives for it alone (same tokens, same numbers: the engine's kernels are batch-invariant). An
    item whose prompt does not fit the context gets ``{"error": ...}`` in its place; the others go
    on. Progress events count finished replies and generated tokens. Returns ``{"results": [...]}``.
    """
    n = len(items)
    if n == 0:
        return {"results": []}
    if n > backend.n_batch:
        raise InputError(f"at most {backend.n_batch} parallel sequences (n_batch), got {n}")
    ctx = backend.seq_context(n)
    results: list[dict | None] = [None] * n
    replies: dict[int, _Reply] = {}
    started = time.monotonic()
    for k, item in enumerate(items):
        try:
            tokens = prompt_tokens(backend, item["messages"])
            check_fits(len(tokens) + 1, backend.n_ctx, "the prompt")
            for b0, m in batch_spans(len(tokens), backend.n_batch):
                backend.decode_seqs(ctx, [(k, tokens[b0 : b0 + m], b0)])
            seed = item.get("seed")
            reply = _Reply(backend, len(tokens), temperature, backend.seed if seed is None else seed, None, top_p, top_k)
            replies[k] = reply
            _advance(reply, backend.logits_at(ctx, -1), ctx, -1, max_tokens)
        except Cancelled:
            raise
        except KiigError as exc:
            results[k] = {"error": error_payload(exc)}
    prompt_s = time.monotonic() - started
    gen_started = time.monotonic()
    done, n_tokens = n - len(replies), 0
    active = [k for k, r in replies.items() if r.pending is not None]
    try:
        while active:
            rows = [(k, [replies[k].pending["id"]], replies[k].n_past) for k in active]
            backend.decode_seqs(ctx, rows)
            n_tokens += len(rows)
            for i, k in enumerate(active):
                replies[k].n_past += 1
                _advance(replies[k], backend.logits_at(ctx, i), ctx, i, max_tokens)
            still = [k for k in active if replies[k].pending is not None]
            done += len(active) - len(still)
            active = still
            yield {"type": "progress", "done": done, "total": n, "tokens": n_tokens}
    except Cancelled:
        for r in replies.values():
            r.stop = "cancelled"
    gen_s = time.monotonic() - gen_started
    for k, r in replies.items():
        results[k] = r.result(prompt_s, gen_s)
    ctx.kv_cache_clear()
    return {"results": results}


# ---------------------------------------------------------------------------- scoring


@dataclass
class Decode:
    """A request of a chain's scan to its KV-cache sequence: drop every cached position from ``start``
    on, then decode ``tokens`` at positions ``start..`` with every position reduced (``Backend.decode``
    with ``outputs="all"``): ``targets[i]`` is the token after position i, ``extra`` row -> token ids."""

    start: int
    tokens: list[int]
    targets: list[int]
    extra: dict[int, list[int]] | None = None


class _Cache:
    """One KV-cache sequence as a token sequence, with the log-prob and entropy of every cached position.

    ``extend_to`` makes the sequence hold exactly ``seq``: it keeps the longest common prefix with
    what is cached and asks (a :class:`Decode` sent out of the generator) for the remainder,
    re-decoding one kept token so the row that predicts the first new token is fresh. Because
    llama.cpp's logits do not depend on batch boundaries with the engine's settings (verified at
    load, ``engine/invariance.py``), this equals a from-scratch pass, whichever batch (and whichever
    other sequences) the request shares. ``from_scratch``: keep nothing, so every sequence is
    decoded from position 0 in one pass -- the reference itself, for builds where that is not so.
    """

    def __init__(self, n_ctx: int, from_scratch: bool = False) -> None:
        self.n_ctx = n_ctx
        self.from_scratch = from_scratch
        self.history: list[int] = []  # the token at each cached position
        self.lp: list[float] = []  # lp[i] = ln p(token i | tokens before it); NaN at position 0
        self.ent: list[float] = []  # entropy (nats) of the distribution that predicted token i
        self.evaluated = 0

    def extend_to(self, seq: list[int], extra_row: int | None = None,
                  extra: list[int] | None = None) -> Generator[Decode, Reduced, list[float]]:
        """Cache ``seq``; return the log-probs of ``extra`` tokens after position ``extra_row``."""
        common = 0
        limit = 0 if self.from_scratch else min(len(seq), len(self.history))
        hist = self.history
        while common < limit and hist[common] == seq[common]:
            common += 1
        start = max(0, min(common, len(seq)) - 1)
        if extra_row is not None:
            start = min(start, extra_row)
        del self.history[start:]
        # position ``start`` is shared (start < common), so its own log-prob stays valid
        del self.lp[start + 1 :], self.ent[start + 1 :]
        if not self.lp:
            self.lp.append(float("nan"))
            self.ent.append(float("nan"))
        tokens = list(seq[start:])
        check_fits(start + len(tokens), self.n_ctx, "this chain")
        targets = list(seq[start + 1 :]) + [-1]
        rows = {extra_row - start: list(extra)} if extra_row is not None and extra else None
        out = yield Decode(start, tokens, targets, rows)
        self.history.extend(tokens)
        self.lp.extend(float(x) for x in out.target_logprob[:-1])
        self.ent.extend(float(x) for x in out.entropy[:-1])
        self.evaluated += len(tokens)
        return list(out.extra.get(extra_row - start, [])) if rows else []


def scan_chain(prefixes: list[dict], curve_prefix: int | None, n_ctx: int,
               from_scratch: bool = False) -> Generator[Decode | dict, Reduced | None, dict]:
    """The work of :func:`scan` for one chain, as a generator that yields :class:`Decode` requests for
    its own KV-cache sequence (the driver sends back what the decode reduced) and progress dicts.

    One piece of logic for one chain at a time (:func:`scan`) and several in shared batches
    (``ops_many.scan_many``); the drivers only decide where and with whom a request is decoded.
    ``from_scratch``: every prefix (read with its single-token candidates, the option letters, at the
    end of its context), multi-token candidate and paper sequence is its own one-pass evaluation from
    position 0: exact on any build, O(n^2) tokens.
    """
    if not prefixes:
        raise InputError("scan needs at least one prefix")
    longest = max(
        max(len(p["context"]) + max([len(p["answer"])] + [len(c) for c in p.get("candidates") or []]), len(p.get("paper") or []))
        for p in prefixes
    )
    check_fits(longest, n_ctx, "this chain")
    cache = _Cache(n_ctx, from_scratch)
    started = time.monotonic()
    checkpoints = []
    curve: dict = {}
    papers = [k for k, p in enumerate(prefixes) if p.get("paper") and list(p["paper"]) != list(p["context"]) + list(p["answer"])]
    total = len(prefixes) + len(papers)
    for k, p in enumerate(prefixes):
        context, answer = list(p["context"]), list(p["answer"])
        if not context or not answer:
            raise InputError(f"prefix {k} has an empty context or answer")
        cands = p.get("candidates") or []
        single = [c[0] for c in cands if len(c) == 1]
        row = len(context) - 1
        seq = context + answer
        single_lp = iter((yield from cache.extend_to(seq, row if single else None, single)))
        answer_lp = cache.lp[len(context) : len(seq)]
        seq_nll = -float(np.mean(cache.lp[1 : len(seq)])) if len(seq) > 1 else float("nan")
        if k == curve_prefix:
            curve = {"context_logprob": cache.lp[: len(context)], "context_entropy": cache.ent[: len(context)]}
        cand_lp = []
        for c in cands:
            if len(c) == 1:
                cand_lp.append(next(single_lp))
            else:
                yield from cache.extend_to(context + list(c))
                cand_lp.append(float(np.sum(cache.lp[len(context) :])))
        checkpoints.append({"answer_logprob": answer_lp, "seq_nll": seq_nll, "candidates": cand_lp if cands else None})
        yield {"type": "progress", "done": k + 1, "total": total, "tokens": cache.evaluated}
    # paper sequences that differ (knowledge text in place of the steps) in a second incremental pass:
    # interleaved with the first, each prefix would share only the question with the one before it
    for i, k in enumerate(papers):
        paper = list(prefixes[k]["paper"])
        yield from cache.extend_to(paper)
        checkpoints[k]["seq_nll"] = -float(np.mean(cache.lp[1:])) if len(paper) > 1 else float("nan")
        yield {"type": "progress", "done": len(prefixes) + i + 1, "total": total, "tokens": cache.evaluated}
    return {"checkpoints": checkpoints, **curve, "tokens_evaluated": cache.evaluated, "seconds": time.monotonic() - started}


def scan(backend: Backend, prefixes: list[dict], curve_prefix: int | None = None) -> Events:
    """Evaluate the prefixes of a chain incrementally, each as its own canonical token sequence.

    ``prefixes[k]``: ``{"context": c_k (BOS included), "answer": a_k, "candidates": [tokens, ...]?,
    "paper": tokens?}``. For each prefix the cache is brought to ``c_k + a_k`` (keeping what it
    shares with the previous sequence), the answer tokens' log-probs are read, each candidate
    continuation (option letter) is scored after ``c_k``, and a ``paper`` sequence, when it differs
    from ``c_k + a_k``, is evaluated the same way. Returns per prefix the answer log-probs, the
    mean NLL over positions 1..N-1 of the whole sequence and the candidates' log-probs, and for
    prefix ``curve_prefix`` the log-prob and entropy (nats) of every context position. Where the
    load-time self-test did not verify batch invariance, each sequence is evaluated from scratch.
    """
    backend.clear()
    chain = scan_chain(prefixes, curve_prefix, backend.n_ctx, from_scratch=backend.scoring == FROM_SCRATCH)
    reply = None
    while True:
        try:
            item = chain.send(reply)
        except StopIteration as stop:
            return stop.value
        if isinstance(item, Decode):
            backend.truncate(item.start)
            reply = backend.decode(item.tokens, outputs="all", targets=item.targets, extra=item.extra)
        else:
            reply = None
            yield item


def eval_sequence(backend: Backend, tokens: list[int], chunk: int = 0) -> Events:
    """From-scratch evaluation: log-prob and entropy (nats) for every token after the first.

    ``chunk`` > 0 decodes that many tokens per llama_decode call (1: token by token), the check
    that a token's numbers do not depend on the batch it was decoded in.
    """
    backend.clear()
    backend.check_fits(len(tokens), "this sequence")
    started = time.monotonic()
    targets = list(tokens[1:]) + [-1]
    step = chunk if chunk > 0 else max(1, len(tokens))
    parts = [backend.decode(tokens[i : i + step], outputs="all", targets=targets[i : i + step]) for i in range(0, len(tokens), step)]
    lp = np.concatenate([p.target_logprob for p in parts])
    ent = np.concatenate([p.entropy for p in parts])
    yield {"type": "progress", "done": 1, "total": 1, "tokens": len(tokens)}
    return {"logprob": lp[:-1], "entropy": ent[:-1], "seconds": time.monotonic() - started}


def prefill(backend: Backend, tokens: list[int]) -> Events:
    """Plain prefill with no outputs but the last: the speed reference for benchmarks."""
    backend.clear()
    backend.check_fits(len(tokens), "this sequence")
    started = time.monotonic()
    backend.decode(tokens, outputs="last")
    yield {"type": "progress", "done": 1, "total": 1, "tokens": len(tokens)}
    return {"seconds": time.monotonic() - started, "n_tokens": len(tokens)}


def next_token_logprobs(backend: Backend, messages: list[dict], candidates: list[str]) -> Events:
    """Log-prob that the assistant's reply starts with each candidate (its first token)."""
    tokens = prompt_tokens(backend, messages)
    backend.clear()
    backend.check_fits(len(tokens), "the judge prompt")
    backend.decode(tokens, outputs="last")
    yield {"type": "progress", "done": 1, "total": 1, "tokens": len(tokens)}
    return candidate_logprobs(backend, backend.last_logits(), candidates, len(tokens))


def candidate_logprobs(backend: Backend, row: np.ndarray, candidates: list[str], n_prompt: int) -> dict:
    """What :func:`next_token_logprobs` returns, from the logits ``row`` after a prompt of ``n_prompt`` tokens."""
    lse, _entropy, _top = row_stats(row)
    out = {}
    first_tokens = {}
    for cand in candidates:
        ids = backend.tokenize(cand, add_bos=False, special=False)
        if not ids:
            continue
        first_tokens[cand] = ids[0]
        out[cand] = float(row[ids[0]]) - lse
    return {"logprobs": out, "first_tokens": first_tokens, "n_prompt_tokens": n_prompt}


def smoke(backend: Backend) -> Events:
    """A tiny decode that proves this build runs on this CPU: finite logits, sane distribution."""
    tokens = backend.tokenize("The capital of France is", add_bos=backend.info()["add_bos"])
    backend.clear()
    backend.decode(tokens, outputs="last")
    row = backend.last_logits()
    lse, entropy, top = row_stats(row, 1)
    finite = bool(np.isfinite(row).all())
    yield {"type": "progress", "done": 1, "total": 1, "tokens": len(tokens)}
    return {"finite": finite, "entropy_bits": entropy / LN2, "top": backend.piece(top[0][0]).decode("utf-8", "replace") if top else ""}
