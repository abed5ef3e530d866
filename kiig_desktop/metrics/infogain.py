"""InfoGain: how much each reasoning step moves a scorer model toward the ground-truth answer.

Definitions are normative (docs/metrics.md). For prefix k (k = 0..n) the scorer reads

    [BOS if the GGUF says add_bos] + tok(Q) + tok("\\n"+s_1) + ... + tok("\\n"+s_k) + tok(" Answer:") + tok(" "+A)

with each piece tokenized on its own, without special tokens. The engine evaluates the context once,
incrementally, and scores the answer (and option letters) on top of every prefix before removing
them from the KV cache; this module turns the per-token log-probabilities into the chain record.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np

from ..chains.prompts import question_text
from ..errors import InputError
from ..events import CancelToken, Progress, run_to_end

LN2 = math.log(2.0)
ANSWER_PREFIX = " Answer:"
METHOD_VERSION = "kiig-infogain-1"  # bump when the numbers a chain produces would change
MODES = ("answer", "paper")


@dataclass
class ChainPlan:
    """The token pieces of one chain, ready for the engine's scan."""

    segments: list[list[int]]
    probe: list[int]
    answer_start: int
    letters: list[str]
    candidates: list[list[int]]
    correct_letter: str | None


def plan_chain(client, question: str, answer: str, steps: Sequence[str], options: dict[str, str] | None = None, correct_letter: str | None = None) -> ChainPlan:
    """Tokenize the pieces of a chain with the scorer's own tokenizer (one round trip)."""
    if not steps:
        raise InputError("the chain has no steps")
    letters = list(options) if options else []
    texts = [question_text(question, options)] + ["\n" + s for s in steps] + [ANSWER_PREFIX, " " + answer] + [" " + L for L in letters]
    toks = client.tokenize_many(texts)
    n = len(steps)
    q, step_toks, head, ans, cands = toks[0], toks[1 : n + 1], toks[n + 1], toks[n + 2], toks[n + 3 :]
    info = client.info or client.start()
    if info.get("add_bos") and info.get("bos", -1) >= 0:
        q = [info["bos"]] + q
    if not q:
        raise InputError("the question is empty")
    for i, st in enumerate(step_toks):
        if len(st) == 0:
            raise InputError(f"step {i + 1} has no tokens")
    if not ans:
        raise InputError("the answer is empty")
    return ChainPlan([q] + step_toks, head + ans, len(head), letters, cands, correct_letter)


def iter_score_chain(
    client,
    question: str,
    answer: str,
    steps: Sequence[str],
    options: dict[str, str] | None = None,
    correct_letter: str | None = None,
    *,
    cancel: CancelToken | None = None,
    curve: bool = True,
) -> Generator[Progress, None, dict]:
    """Score one chain; yields Progress per prefix and returns the chain record (without id/model)."""
    plan = plan_chain(client, question, answer, steps, options, correct_letter)
    progress = Progress(0, len(plan.segments))
    gen = client.stream(
        "scan", cancel=cancel, segments=plan.segments, probe=plan.probe, answer_start=plan.answer_start,
        candidates=plan.candidates or None,
    )
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            scan = stop.value
            break
        progress.done, progress.tokens = event.done, event.tokens
        yield progress
    record = chain_record(plan, scan, list(steps))
    if curve:
        record["token_curve"] = token_curve(client, plan, scan)
    return record


def score_chain(client, question: str, answer: str, steps: Sequence[str], options=None, correct_letter=None, *, cancel=None, curve: bool = True) -> dict:
    return run_to_end(iter_score_chain(client, question, answer, steps, options, correct_letter, cancel=cancel, curve=curve))


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


def chain_record(plan: ChainPlan, scan: dict, steps: list[str]) -> dict:
    """Turn the engine's per-token log-probs into the docs/cli.md output fields."""
    ctx_lp = np.asarray(scan["context_logprob"], dtype=np.float64)
    ends = np.cumsum([len(s) for s in plan.segments])
    prefix_sums = np.concatenate([[0.0], np.nancumsum(ctx_lp[1:])])  # sum of lp over positions 1..i
    n_probe = len(plan.probe)
    prefixes = []
    for k, cp in enumerate(scan["checkpoints"]):
        probe_lp = np.asarray(cp["probe_logprob"], dtype=np.float64)
        answer_nll = float(-probe_lp[plan.answer_start :].mean())
        length = int(ends[k])
        total_nll = -(prefix_sums[length - 1] + probe_lp.sum())
        seq_ppl = math.exp(total_nll / (length - 1 + n_probe))
        entry = {"answer_nll": answer_nll, "answer_ppl": math.exp(answer_nll), "seq_ppl": seq_ppl}
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
    seq = [p["seq_ppl"] for p in prefixes]
    return {
        "n_tokens": int(ends[-1]) + n_probe,
        "baseline": base,
        "steps": out_steps,
        "info_gain_mean": sum(s["info_gain"] for s in out_steps) / n,
        "delta_nll_mean": sum(s["delta_nll"] for s in out_steps) / n,
        "paper_info_gain": sum(seq[k - 1] - seq[k] for k in range(1, n + 1)) / (n + 1),
        "paper_mean": sum(seq) / len(seq),
    }


def token_curve(client, plan: ChainPlan, scan: dict) -> dict:
    """Surprisal and entropy (bits) of every step token as the scorer read it, teacher-forced."""
    ctx_lp = np.asarray(scan["context_logprob"], dtype=np.float64)
    ctx_ent = np.asarray(scan["context_entropy"], dtype=np.float64)
    start = len(plan.segments[0])
    ids = [t for seg in plan.segments[1:] for t in seg]
    step_of = [k for k, seg in enumerate(plan.segments[1:]) for _ in seg]
    return {
        "token_ids": ids,
        "pieces": client.pieces(ids) if ids else [],
        "surprisal_bits": [float(-x / LN2) for x in ctx_lp[start:]],
        "entropy_bits": [float(x / LN2) for x in ctx_ent[start:]],
        "step": step_of,
    }


def reference_prefix(client, question: str, answer: str, steps: Sequence[str], options: dict[str, str] | None, k: int) -> dict:
    """Prefix k evaluated from scratch in one pass: the check that incremental scoring is exact.

    Returns ``answer_nll`` and ``seq_ppl`` of the token sequence docs/metrics.md defines.
    """
    info = client.info or client.start()
    seq = ([info["bos"]] if info.get("add_bos") and info.get("bos", -1) >= 0 else []) + client.tokenize(question_text(question, options))
    for s in steps[:k]:
        seq += client.tokenize("\n" + s)
    ans = client.tokenize(" " + answer)
    seq += client.tokenize(ANSWER_PREFIX) + ans
    lp = np.asarray(client.eval_sequence(seq)["logprob"], dtype=np.float64)
    return {"answer_nll": float(-lp[-len(ans):].mean()), "seq_ppl": math.exp(float(-lp.mean())), "n_tokens": len(seq)}


def incremental_error(client, question: str, answer: str, steps: Sequence[str], options: dict[str, str] | None = None) -> float:
    """Largest |incremental - from-scratch| answer NLL (nats) over the prefixes of one chain."""
    record = score_chain(client, question, answer, steps, options, curve=False)
    prefixes = [record["baseline"]] + record["steps"]
    return max(abs(p["answer_nll"] - reference_prefix(client, question, answer, steps, options, k)["answer_nll"]) for k, p in enumerate(prefixes))
