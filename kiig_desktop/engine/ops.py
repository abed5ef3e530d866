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

import numpy as np

from ..errors import Cancelled, InputError
from .backend import Backend
from .logits import LN2, row_stats

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
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        bos = backend.token_text(info["bos"]) if info["bos"] >= 0 else ""
        eos = backend.token_text(info["eos"]) if info["eos"] >= 0 else ""
        try:
            formatter = Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos, add_generation_prompt=add_generation_prompt)
            return formatter(messages=messages).prompt
        except Exception as exc:  # noqa: BLE001 - jinja raises many types for a broken template
            raise InputError(f"the model's chat template could not be rendered: {exc}") from None
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
    if json_schema is not None and grammar is None:
        from llama_cpp.llama_grammar import json_schema_to_gbnf

        grammar = json_schema_to_gbnf(json.dumps(json_schema))
    sampler = backend.make_sampler(temperature, backend.seed if seed is None else seed, grammar=grammar, top_p=top_p)
    dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
    out_tokens: list[dict] = []
    text_parts: list[str] = []
    stop = "length"
    gen_started = time.monotonic()
    try:
        for _ in range(max_tokens):
            if backend.n_past >= backend.n_ctx:
                stop = "context"
                break
            row = backend.last_logits()
            lse, entropy, top = row_stats(row, top_k)
            token = backend.sample(sampler)
            if backend.is_eog(token):
                stop = "eos"
                break
            piece = dec.decode(backend.piece(token))
            record = {
                "id": token,
                "text": piece,
                "logprob": float(row[token]) - lse,
                "entropy_bits": entropy / LN2,
                "top": [{"id": t, "text": backend.piece(t).decode("utf-8", errors="replace"), "logprob": lp} for t, lp in top],
            }
            out_tokens.append(record)
            text_parts.append(piece)
            yield {"type": "token", **record}
            backend.decode([token], outputs="last")
    except Cancelled:
        stop = "cancelled"
    finally:
        sampler.close()
    tail = dec.decode(b"", final=True)
    if tail:
        text_parts.append(tail)
    gen_s = time.monotonic() - gen_started
    return {
        "text": "".join(text_parts),
        "tokens": out_tokens,
        "n_prompt_tokens": len(tokens),
        "stop": stop,
        "prompt_s": prompt_s,
        "gen_s": gen_s,
        "tokens_per_s": len(out_tokens) / gen_s if gen_s > 0 else 0.0,
    }


# ---------------------------------------------------------------------------- scoring


def scan(
    backend: Backend,
    segments: list[list[int]],
    probe: list[int],
    answer_start: int,
    candidates: list[list[int]] | None = None,
) -> Events:
    """Evaluate the context ``segments`` once, incrementally; after each segment, score ``probe``.

    ``probe`` (e.g. tok(" Answer:") + tok(" " + answer)) is decoded in the same batch as the
    segment it follows, read, and removed from the KV cache before the next segment. Returns per
    context token its log-prob and the entropy (nats) of the distribution that predicted it, and
    per checkpoint the log-prob of every probe token and of each candidate continuation at
    ``answer_start`` (the option letters).
    """
    if not segments or not probe or not 0 < answer_start < len(probe):
        raise InputError("scan needs at least one segment, and a probe with tokens before and after its answer start")
    context = [t for seg in segments for t in seg]
    n = len(context)
    candidates = candidates or []
    backend.clear()
    backend.check_fits(n + len(probe) + max((len(c) for c in candidates), default=0), "this chain")
    ctx_lp = np.full(n, np.nan)
    ctx_ent = np.full(n, np.nan)
    checkpoints = []
    pos = 0
    started = time.monotonic()
    evaluated = 0
    single = [c[0] for c in candidates if len(c) == 1]
    for k, seg in enumerate(segments):
        if not seg:
            raise InputError(f"segment {k} has no tokens")
        m = len(seg)
        nxt = context[pos + m] if pos + m < n else -1
        # rows 0..m-1 predict the segment's next tokens, row m-1 also the probe's first token;
        # rows m.. (the probe) predict the rest of the probe
        tokens = list(seg) + list(probe[:-1])
        targets = list(seg[1:]) + [probe[0]] + list(probe[1:])
        extra = {m - 1: [nxt]} if nxt >= 0 else {}
        cand_row = m - 1 + answer_start  # the row that predicts probe[answer_start]
        if single:
            extra[cand_row] = single
        out = backend.decode(tokens, outputs="all", targets=targets, extra=extra)
        ctx_lp[pos + 1 : pos + m] = out.target_logprob[: m - 1]
        ctx_ent[pos + 1 : pos + m] = out.entropy[: m - 1]
        if nxt >= 0:
            ctx_lp[pos + m] = out.extra[m - 1][0]
            ctx_ent[pos + m] = out.entropy[m - 1]
        probe_lp = [float(x) for x in out.target_logprob[m - 1 : m - 1 + len(probe)]]
        cand_lp = None
        if candidates:
            read = iter(out.extra.get(cand_row, []))
            backend.truncate(pos + m + answer_start)
            cand_lp = [next(read) if len(c) == 1 else _multi_token_logprob(backend, c) for c in candidates]
        backend.truncate(pos + m)
        evaluated += len(tokens)
        pos += m
        checkpoints.append({"probe_logprob": probe_lp, "candidates": cand_lp})
        yield {"type": "progress", "done": k + 1, "total": len(segments), "tokens": evaluated}
    return {
        "context_logprob": ctx_lp,
        "context_entropy": ctx_ent,
        "checkpoints": checkpoints,
        "n_context": n,
        "tokens_evaluated": evaluated,
        "seconds": time.monotonic() - started,
    }


def _multi_token_logprob(backend: Backend, cand: list[int]) -> float:
    """ln p(cand) at the current end of the cache, for a candidate of several tokens."""
    base = backend.n_past
    # the first token's log-prob needs the row before it: re-decode the last cached token with it
    prev = backend.history[-1]
    backend.truncate(base - 1)
    out = backend.decode([prev] + list(cand[:-1]), outputs="all", targets=list(cand))
    backend.truncate(base)
    return float(np.sum(out.target_logprob))


def eval_sequence(backend: Backend, tokens: list[int]) -> Events:
    """From-scratch evaluation: log-prob and entropy (nats) for every token after the first."""
    backend.clear()
    backend.check_fits(len(tokens), "this sequence")
    started = time.monotonic()
    out = backend.decode(tokens, outputs="all", targets=list(tokens[1:]) + [-1])
    yield {"type": "progress", "done": 1, "total": 1, "tokens": len(tokens)}
    return {"logprob": out.target_logprob[:-1], "entropy": out.entropy[:-1], "seconds": time.monotonic() - started}


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
    row = backend.last_logits()
    lse, _entropy, _top = row_stats(row)
    out = {}
    first_tokens = {}
    for cand in candidates:
        ids = backend.tokenize(cand, add_bos=False, special=False)
        if not ids:
            continue
        first_tokens[cand] = ids[0]
        out[cand] = float(row[ids[0]]) - lse
    yield {"type": "progress", "done": 1, "total": 1, "tokens": len(tokens)}
    return {"logprobs": out, "first_tokens": first_tokens, "n_prompt_tokens": len(tokens)}


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
