"""The judge's side of the Knowledge Index: the prompt, the Yes/No probability, asking (a prompt
that overflows the judge's context is one clear error naming both sizes), one prompt or several at once.

Pure over a :class:`Judge` (an engine client, or a fake in unit tests); ``ki.py`` decides which steps
are asked about and what their answers make of a chain.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from ..errors import ContextOverflow, KiigError
from . import ki_rules
from .search import Passage


class Judge(Protocol):
    """A local model that scores how an assistant reply would start (provided by the engine).

    Optional extra: ``first_token_ids(candidates) -> dict[str, int]`` (the first token id of each
    candidate, as the worker's ``next_token_logprobs`` op already computes). When present, yes/no
    candidates are deduplicated by token id instead of by identical log-probability.
    """

    model_ref: dict

    def next_token_logprobs(self, messages: list[dict[str, str]], candidates: list[str]) -> dict[str, float]:
        """Natural-log probability that the assistant reply starts with each candidate's first token."""
        ...


# -- judge prompt and probability --------------------------------------------------------------

SYSTEM_PROMPT = ki_rules.SYSTEM_YES_NO
# Ways a reply can start with the answer. Each is one token in common vocabularies (SmolLM2: "Yes"
# 10539, " Yes" 9230, "yes" 10407, " yes" 9805, "No" 5230, ...). All-caps forms are left out: they
# often split ("YES" -> "Y" + "ES"), and the probability of a bare "Y" is not the probability of
# "YES".
YES_CANDIDATES = ("Yes", " Yes", "yes", " yes")
NO_CANDIDATES = ("No", " No", "no", " no")
DEFAULT_MAX_PROMPT_CHARS = 6000  # about 1,500-2,000 tokens of English: fits a 2,048-token context
_MIN_PASSAGE_CHARS = 160


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, max(1, limit - 1))
    return text[: cut if cut > limit // 2 else limit - 1].rstrip() + "…"


def build_judge_messages(claim: str, passages: list[Passage], *, max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
                         mode: str = "probability") -> list[dict[str, str]]:
    """System + user messages asking whether the numbered passages support the claim.

    ``mode`` picks the question: Yes/No (probability) or True/False (reasoningeval).

    The whole prompt stays within ``max_prompt_chars``: the claim gets at most a quarter of it,
    the passages share the rest (short passages leave their unused share to longer ones), and a
    passage that would get fewer than 160 characters is dropped from the end. The best passage is
    always kept (with at least 160 characters, even if that overshoots a tiny budget).
    """
    head = "Reference passages:\n"
    system, tail_tmpl = ki_rules.prompt_parts(mode)
    claim = _clip(claim, max(80, max_prompt_chars // 4))
    fixed = len(system) + len(head) + len(tail_tmpl.format(claim=claim))
    budget = max_prompt_chars - fixed
    bodies = []
    for p in passages:
        label = f"({p.title}) " if p.title else ""
        bodies.append(label + " ".join(p.text.split()))
    while len(bodies) > 1 and budget // len(bodies) - 8 < _MIN_PASSAGE_CHARS:
        bodies.pop()
    remaining, left = budget, len(bodies)
    limits = {}
    for i in sorted(range(len(bodies)), key=lambda i: len(bodies[i])):  # shortest first: their spare room
        limits[i] = min(len(bodies[i]), max(_MIN_PASSAGE_CHARS, remaining // left - 8))  # goes to longer ones
        remaining -= limits[i] + 8
        left -= 1
    shown = [f"[{n + 1}] {_clip(body, limits[n])}" for n, body in enumerate(bodies)] or ["(none)"]
    user = head + "\n".join(shown) + tail_tmpl.format(claim=claim)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def yes_no_probability(logprobs: dict[str, float], yes: Iterable[str] = YES_CANDIDATES,
                       no: Iterable[str] = NO_CANDIDATES,
                       token_ids: dict[str, int] | None = None) -> tuple[float | None, float, float]:
    """``(ki, p_yes, p_no)`` from first-token log-probabilities of the yes/no candidate strings.

    Several candidate strings can map to the same first token (e.g. a tokenizer without a
    " Yes" token splits it into " " + "Yes"); counting that token twice would inflate its class.
    Candidates are therefore grouped by first-token id when the judge provides ``token_ids``,
    otherwise by identical log-probability (two different tokens essentially never have
    bit-identical log-probabilities; if they do, both are negligible). A group holding both a
    yes and a no variant cannot tell the answers apart and is ignored. ``ki`` is None when no
    usable probability mass is left.
    """
    groups: dict[object, set[str]] = {}
    values: dict[object, float] = {}
    for label, cands in (("yes", yes), ("no", no)):
        for cand in cands:
            lp = logprobs.get(cand)
            if lp is None or math.isnan(lp):
                continue
            key = ("id", token_ids[cand]) if token_ids and cand in token_ids else ("lp", float(lp))
            groups.setdefault(key, set()).add(label)
            values[key] = float(lp)
    p = {"yes": 0.0, "no": 0.0}
    for key, labels in groups.items():
        if len(labels) == 1:
            p[next(iter(labels))] += math.exp(values[key]) if values[key] > -math.inf else 0.0
    total = p["yes"] + p["no"]
    ki = p["yes"] / total if total > 0 else None
    return ki, p["yes"], p["no"]


Answer = dict | str  # first-token log-probs (probability mode) or a greedy reply (reasoningeval)
AskMany = Callable[[list[list[dict[str, str]]]], list]  # judge prompts -> per prompt its Answer or a KiigError


def prompt_too_long(exc: ContextOverflow, who: str = "judge", what: str | None = None) -> ContextOverflow:
    """The one message for a prompt (``what``, default ``who``'s) that does not fit the context of the
    model ``who``, naming both sizes. Never asked again with a shortened prompt: a truncated prompt
    would change what is judged."""
    what = what or who
    if isinstance(exc.needed, int) and isinstance(exc.n_ctx, int):
        text = f"{what} prompt is {exc.needed} tokens; the {who}'s context is {exc.n_ctx} (--n-ctx)"
    else:
        text = f"{what} prompt does not fit the {who}'s context (--n-ctx): {exc.message}"
    return ContextOverflow(text, hint=f"load the {who} with a larger --n-ctx", needed=exc.needed, n_ctx=exc.n_ctx)


def ask_all(ask_many: AskMany, asks: Sequence[tuple[str, list[Passage]]], max_prompt_chars: int, mode: str) -> list:
    """Ask the judge about every ``(claim, passages)`` (``ask_many`` takes all prompts of one round).

    Per ask the Answer, or the KiigError it ended with; a prompt that overflows the judge's context
    is :func:`prompt_too_long` (with both sizes), never asked again shorter.
    """
    if not asks:
        return []
    prompts = [build_judge_messages(claim, passages, max_prompt_chars=max_prompt_chars, mode=mode) for claim, passages in asks]
    return [prompt_too_long(got) if isinstance(got, ContextOverflow) else got for got in ask_many(prompts)]


def one_by_one(ask: Callable[[list[dict[str, str]]], Answer]) -> AskMany:
    """An AskMany that asks a judge prompt by prompt; a prompt too long for the context is that prompt's answer."""

    def ask_many(prompts: list[list[dict[str, str]]]) -> list:
        out: list = []
        for messages in prompts:
            try:
                out.append(ask(messages))
            except ContextOverflow as exc:
                out.append(exc)
        return out

    return ask_many


def ask_one(ask: Callable[[list[dict[str, str]]], Answer], claim: str, passages: list[Passage],
             max_prompt_chars: int, mode: str) -> Answer:
    answer = ask_all(one_by_one(ask), [(claim, passages)], max_prompt_chars, mode)[0]
    if isinstance(answer, KiigError):
        raise answer
    return answer


def judge_claim(judge: Judge, claim: str, passages: list[Passage], *,
                max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS) -> tuple[float | None, float, float]:
    """``(ki, p_yes, p_no)``: the judge's Yes/No first-token probabilities for the claim."""
    candidates = [*YES_CANDIDATES, *NO_CANDIDATES]
    logprobs = ask_one(lambda messages: judge.next_token_logprobs(messages, candidates), claim, passages,
                        max_prompt_chars, "probability")
    return yes_no_probability(logprobs, token_ids=token_ids_of(judge))


def token_ids_of(judge: Judge) -> dict[str, int] | None:
    ids_of = getattr(judge, "first_token_ids", None)
    return ids_of([*YES_CANDIDATES, *NO_CANDIDATES]) if callable(ids_of) else None


def judge_true_false(judge: Judge, claim: str, passages: list[Passage], *,
                     max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS) -> tuple[float, str]:
    """``(score, reply)`` under ReasoningEval's rule: the judge's greedy True/False reply, 1.0 only for "True"."""
    reply = ask_one(lambda messages: judge.reply(messages, ki_rules.TRUE_FALSE_MAX_TOKENS), claim, passages,
                     max_prompt_chars, "passages-true-false")
    return ki_rules.true_false_score(reply), reply
