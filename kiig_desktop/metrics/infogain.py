"""InfoGain: how much each reasoning step moves a scorer model toward the ground-truth answer.

Definitions are normative (docs/metrics.md). For prefix k (k = 0..n) the scorer reads

    C_k = Q + "\\n" + s_1 + ... + "\\n" + s_k + " Answer:"     followed by     " " + A

tokenized as the scorer's own tokenizer tokenizes the whole text (no special-token parsing, BOS
prepended when the GGUF says add_bos): context ``c_k = [BOS] + tok(C_k)``, answer tokens
``a_k = tok(C_k + " " + A)[len(tok(C_k)):]`` (lm-evaluation-harness's rule). The engine evaluates
the prefixes incrementally (keeping the KV cache up to the first token where consecutive sequences
differ) and scores the answer, option letters and paper-mode text on top of each; this module plans
the token sequences and turns the per-token log-probabilities into the chain record.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..chains.prompts import question_text
from ..errors import InputError, KiigError
from ..events import CancelToken, Progress, run_to_end

LN2 = math.log(2.0)
ANSWER_PREFIX = " Answer:"
METHOD_VERSION = "kiig-infogain-2"  # bump when the numbers a chain produces would change
MODES = ("answer", "paper")
MODE_NAMES = {
    "answer": "answer perplexity, as the paper defines it",
    "paper": "whole-sequence perplexity, as ReasoningEval's code computes it",
}
PAPER_MIN_STEPS = 3  # ReasoningEval's code gives chains of 2 steps or fewer 0; we report them as excluded


@dataclass
class ChainPlan:
    """The canonical token sequences of one chain, ready for the engine's scan."""

    prefixes: list[dict]  # per k: {"context", "answer", "candidates"?, "paper"?} as the scan op takes them
    letters: list[str]
    correct_letter: str | None
    curve_step: list[int] = field(default_factory=list)  # per token of the last context: its step, -1 if none


def context_texts(question: str, steps: Sequence[str], options: dict[str, str] | None = None) -> list[str]:
    """``C_k`` for k = 0..n: the question, the first k steps (each after a newline), " Answer:"."""
    body = question_text(question, options)
    out = [body + ANSWER_PREFIX]
    for s in steps:
        body += "\n" + s
        out.append(body + ANSWER_PREFIX)
    return out


def paper_texts(question: str, steps: Sequence[str], answer: str, options: dict[str, str] | None = None) -> list[str]:
    """ReasoningEval's scored text per prefix: Q, then "\\n" + knowledge_i, then " Answer: " + A."""
    return [c + " " + answer for c in context_texts(question, steps, options)]


def continuation(whole: list[int], context: list[int]) -> list[int]:
    """lm-evaluation-harness's rule: the continuation's tokens are ``tok(context + cont)[len(tok(context)):]``."""
    return whole[len(context) :]


def _bos(info: dict) -> list[int]:
    return [info["bos"]] if info.get("add_bos") and info.get("bos", -1) >= 0 else []


def step_of_tokens(piece_lengths: Sequence[int], text: str, bounds: Sequence[int]) -> list[int]:
    """Which step each token belongs to, by where it starts in ``text`` (UTF-8 byte offsets).

    ``bounds[i]`` is the byte offset where step i begins (step i ends where step i+1 begins; the last
    bound is the end of the steps). Tokens starting before the first bound or after the last get -1.
    SentencePiece tokenizers add a space before the text: that first byte is not part of ``text``.
    """
    shift = sum(piece_lengths) - len(text.encode("utf-8"))
    out, pos = [], -max(shift, 0)
    for n in piece_lengths:
        start = max(pos, 0)
        step = -1
        if n > 0:
            for i in range(len(bounds) - 1):
                if bounds[i] <= start < bounds[i + 1]:
                    step = i
                    break
        out.append(step)
        pos += n
    return out


def plan_chain(
    client, question: str, answer: str, steps: Sequence[str], options: dict[str, str] | None = None,
    correct_letter: str | None = None, knowledge: Sequence[str | None] | None = None,
) -> ChainPlan:
    """Tokenize every prefix of a chain canonically (one round trip to the worker)."""
    if not steps:
        raise InputError("the chain has no steps")
    if not question_text(question, options):
        raise InputError("the question is empty")
    if not answer.strip():
        raise InputError("the answer is empty")
    for i, s in enumerate(steps):
        if not s.strip():
            raise InputError(f"step {i + 1} has no tokens")
    letters = list(options) if options else []
    contexts = context_texts(question, steps, options)
    kn = [k if k else s for k, s in zip(knowledge, steps, strict=True)] if knowledge else list(steps)
    papers = paper_texts(question, kn, answer, options)
    per = 2 + len(letters) + 1
    texts = []
    for c, pt in zip(contexts, papers, strict=True):
        texts += [c, c + " " + answer] + [c + " " + L for L in letters] + [pt]
    toks = client.tokenize_many(texts)
    info = client.info or client.start()
    bos = _bos(info)
    prefixes = []
    for k in range(len(contexts)):
        ctx, whole, *rest = toks[k * per : (k + 1) * per]
        cands, paper = rest[:-1], rest[-1]
        entry = {"context": bos + ctx, "answer": continuation(whole, ctx), "paper": bos + paper}
        if not entry["answer"]:
            raise InputError("the answer has no tokens of its own after the context")
        if letters:
            entry["candidates"] = [continuation(c, ctx) for c in cands]
            if any(not c for c in entry["candidates"]):
                raise InputError("an option letter has no tokens of its own after the context")
        if entry["paper"] == entry["context"] + entry["answer"]:
            del entry["paper"]  # the same sequence: scored once
        prefixes.append(entry)
    return ChainPlan(prefixes, letters, correct_letter)


def _curve_steps(client, plan: ChainPlan, question: str, steps: Sequence[str], options: dict[str, str] | None) -> list[int]:
    """The step of every token of the last prefix's context, by character offsets."""
    text = context_texts(question, steps, options)[-1]
    q = question_text(question, options)
    bounds = [len(q.encode("utf-8"))]
    for s in steps:
        bounds.append(bounds[-1] + len(("\n" + s).encode("utf-8")))
    return step_of_tokens(client.piece_lengths(plan.prefixes[-1]["context"]), text, bounds)


def iter_score_chain(
    client,
    question: str,
    answer: str,
    steps: Sequence[str],
    options: dict[str, str] | None = None,
    correct_letter: str | None = None,
    *,
    knowledge: Sequence[str | None] | None = None,
    cancel: CancelToken | None = None,
    curve: bool = True,
) -> Generator[Progress, None, dict]:
    """Score one chain; yields Progress per prefix and returns the chain record (without id/model).

    ``knowledge`` (per step, from a decomposition) is what paper mode scores in place of the step
    text, as ReasoningEval does; answer mode always scores the steps.
    """
    plan = plan_chain(client, question, answer, steps, options, correct_letter, knowledge)
    progress = Progress(0, len(plan.prefixes))
    gen = client.stream("scan", cancel=cancel, prefixes=plan.prefixes, curve_prefix=len(plan.prefixes) - 1 if curve else None)
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            scan = stop.value
            break
        progress.done, progress.total, progress.tokens = event.done, event.total, event.tokens
        yield progress
    return _record(client, plan, scan, question, list(steps), options, curve)


def _record(client, plan: ChainPlan, scan: dict, question: str, steps: list[str], options: dict[str, str] | None, curve: bool) -> dict:
    record = chain_record(plan, scan, steps)
    if curve:
        record["token_curve"] = token_curve(client, plan, scan, _curve_steps(client, plan, question, steps, options))
    return record


def iter_score_chains(client, chains: Sequence[dict], *, cancel: CancelToken | None = None,
                      curve: bool = True) -> Generator[Progress, None, list]:
    """:func:`iter_score_chain` for several chains at once (the engine's ``scan_many``: one KV-cache
    sequence each, shared batches, the same numbers as one at a time).

    ``chains[i]``: ``iter_score_chain``'s arguments by name (``question``, ``answer``, ``steps``,
    ``options``?, ``correct_letter``?, ``knowledge``?). Yields Progress over all chains' prefixes;
    returns per chain its record, or the KiigError it failed with.
    """
    out: list = []
    for c in chains:
        try:
            out.append(plan_chain(client, c["question"], c["answer"], c["steps"], c.get("options"), c.get("correct_letter"),
                                  c.get("knowledge")))
        except KiigError as exc:
            out.append(exc)
    todo = [i for i, p in enumerate(out) if isinstance(p, ChainPlan)]
    requests = [{"prefixes": out[i].prefixes, "curve_prefix": len(out[i].prefixes) - 1 if curve else None} for i in todo]
    scans = (yield from client.scan_many(requests, cancel=cancel)) if requests else []
    for i, scan in zip(todo, scans, strict=True):
        c = chains[i]
        out[i] = scan if isinstance(scan, KiigError) else _record(client, out[i], scan, c["question"], list(c["steps"]),
                                                                   c.get("options"), curve)
    return out


def score_chain(client, question: str, answer: str, steps: Sequence[str], options=None, correct_letter=None, *, knowledge=None, cancel=None, curve: bool = True) -> dict:
    return run_to_end(iter_score_chain(client, question, answer, steps, options, correct_letter, knowledge=knowledge, cancel=cancel, curve=curve))


def _option_stats(plan: ChainPlan, cand_lp: list[float] | None) -> dict:
    if not plan.letters or cand_lp is None:
        return {}
    lp = np.asarray(cand_lp, dtype=np.float64)
    p = np.exp(lp - lp.max())
    p /= p.sum()
    nz = p[p > 0]
    out = {
        "option_probs": {L: float(v) for L, v in zip(plan.letters, p, strict=True)},
        "entropy_bits": float(-(nz * np.log2(nz)).sum()),
    }
    if plan.correct_letter in plan.letters:
        out["p_correct"] = float(p[plan.letters.index(plan.correct_letter)])
    return out


def paper_aggregates(seq_ppl: Sequence[float]) -> dict:
    """ReasoningEval's chain numbers from seq_ppl[0..n] (docs/metrics.md).

    ``paper_info_gain = sum_{k=1..n} (seq_ppl[k-1] - seq_ppl[k]) / (n+1)`` and ``paper_mean =
    sum_{k=1..n} seq_ppl[k] / (n+1)`` (the baseline counted in the denominator only). Chains of 2
    steps or fewer, which its code sets to 0, are excluded: None, with ``paper_excluded`` saying why.
    """
    n = len(seq_ppl) - 1
    if n < PAPER_MIN_STEPS:
        return {"paper_info_gain": None, "paper_mean": None, "paper_excluded": f"{n} step{'s' if n != 1 else ''}: ReasoningEval scores only chains of {PAPER_MIN_STEPS} or more"}
    return {
        "paper_info_gain": sum(seq_ppl[k - 1] - seq_ppl[k] for k in range(1, n + 1)) / (n + 1),
        "paper_mean": sum(seq_ppl[1:]) / (n + 1),
    }


def chain_record(plan: ChainPlan, scan: dict, steps: list[str]) -> dict:
    """Turn the engine's per-prefix log-probs into the docs/cli.md output fields."""
    prefixes = []
    for cp in scan["checkpoints"]:
        answer_nll = float(-np.mean(np.asarray(cp["answer_logprob"], dtype=np.float64)))
        entry = {"answer_nll": answer_nll, "answer_ppl": math.exp(answer_nll), "seq_ppl": math.exp(cp["seq_nll"])}
        entry.update(_option_stats(plan, cp.get("candidates")))
        prefixes.append(entry)
    base = prefixes[0]
    out_steps = []
    for k in range(1, len(prefixes)):
        cur, prev = prefixes[k], prefixes[k - 1]
        out_steps.append({
            "index": k - 1,
            "text": steps[k - 1],
            "answer_nll": cur["answer_nll"],
            "answer_ppl": cur["answer_ppl"],
            "delta_nll": prev["answer_nll"] - cur["answer_nll"],
            "info_gain": prev["answer_ppl"] - cur["answer_ppl"],
            "seq_ppl": cur["seq_ppl"],
            **{key: cur[key] for key in ("option_probs", "entropy_bits", "p_correct") if key in cur},
        })
    n = len(out_steps)
    last = plan.prefixes[-1]
    return {
        "n_tokens": len(last["context"]) + len(last["answer"]),
        "baseline": base,
        "steps": out_steps,
        "info_gain_mean": sum(s["info_gain"] for s in out_steps) / n,
        "delta_nll_mean": sum(s["delta_nll"] for s in out_steps) / n,
        **paper_aggregates([p["seq_ppl"] for p in prefixes]),
    }


def token_curve(client, plan: ChainPlan, scan: dict, step_of: list[int]) -> dict:
    """Surprisal and entropy (bits) of every step token as the scorer read it, teacher-forced.

    The tokens are those of the last prefix's canonical context; a token belongs to the step in
    whose text it starts (tokens of the question and of " Answer:" are left out).
    """
    ctx = plan.prefixes[-1]["context"]
    lp = np.asarray(scan["context_logprob"], dtype=np.float64)
    ent = np.asarray(scan["context_entropy"], dtype=np.float64)
    keep = [i for i, st in enumerate(step_of) if st >= 0]
    ids = [ctx[i] for i in keep]
    return {
        "token_ids": ids,
        "pieces": client.pieces(ids) if ids else [],
        "surprisal_bits": [float(-lp[i] / LN2) for i in keep],
        "entropy_bits": [float(ent[i] / LN2) for i in keep],
        "step": [step_of[i] for i in keep],
    }


def reference_prefix(client, question: str, answer: str, steps: Sequence[str], options: dict[str, str] | None, k: int, chunk: int = 0) -> dict:
    """Prefix k evaluated from scratch in one pass (``chunk`` tokens per decode when > 0).

    Tokenizes ``c_k`` and ``a_k`` independently of ``plan_chain``; returns ``answer_nll``,
    ``seq_ppl`` and ``n_tokens`` -- the check that incremental scoring is exact.
    """
    info = client.info or client.start()
    c = context_texts(question, steps[:k], options)[-1]
    ctx, whole = client.tokenize(c), client.tokenize(c + " " + answer)
    seq = _bos(info) + ctx + whole[len(ctx) :]
    n_ans = len(whole) - len(ctx)
    lp = np.asarray(client.call("eval_sequence", tokens=seq, chunk=chunk)["logprob"], dtype=np.float64)
    return {"answer_nll": float(-lp[-n_ans:].mean()), "seq_ppl": math.exp(float(-lp.mean())), "n_tokens": len(seq)}


def incremental_error(client, question: str, answer: str, steps: Sequence[str], options: dict[str, str] | None = None) -> dict:
    """Largest |incremental - one-pass| and |incremental - token-by-token| answer NLL (nats) over a chain's prefixes."""
    record = score_chain(client, question, answer, steps, options, curve=False)
    prefixes = [record["baseline"]] + record["steps"]
    one = max(abs(p["answer_nll"] - reference_prefix(client, question, answer, steps, options, k)["answer_nll"]) for k, p in enumerate(prefixes))
    each = max(abs(p["answer_nll"] - reference_prefix(client, question, answer, steps, options, k, chunk=1)["answer_nll"]) for k, p in enumerate(prefixes))
    return {"one_pass": one, "token_by_token": each}
