"""LLM-based step decomposition: per step a planning note, the knowledge used, and the step text.

A local model is asked (through ``generate_json``, which the engine constrains with a grammar built
from :data:`DECOMPOSE_SCHEMA`) to split the reasoning the way Wu et al. (2025) do. Its output is
checked strictly -- JSON syntax, the schema, and that every ``step_text`` can be found, in order, in
the original reasoning -- and any problem falls back to the rule-based ``auto`` split, with the
reason in ``SplitResult.fallback_reason``.

Locating a step: verbatim first, then ignoring differences in whitespace (both give
``aligned=True`` and ``text`` is the original span); then approximately, word by word with difflib
(``aligned=False``, ``text`` is the model's step text and ``start``/``end`` the best-matching
original span). A step that matches nothing well enough, or steps covering less than half of the
reasoning, reject the whole output.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import replace
from difflib import SequenceMatcher

from ..errors import Cancelled, InputError, KiigError
from ..events import CancelToken
from .steps import DECOMPOSE_SCHEMA, SplitResult, Step, find_sections, split_reasoning

LLM_SPLIT_MAX_TOKENS = 1536  # the decomposition's smallest output budget, whoever asks for it (CLI, batch, Analyze)
MIN_SIMILARITY = 0.6  # word-level similarity an approximately located step needs
MIN_COVERAGE = 0.5  # share of the reasoning's letters and digits the steps must cover

SYSTEM_PROMPT = (
    "You divide a written chain of reasoning into its reasoning steps and describe each one.\n"
    "Reply with one JSON object and nothing else. For every step, in the order the steps appear, give:\n"
    '- "planning": one short sentence saying what the step sets out to do;\n'
    '- "knowledge": the factual or domain knowledge the step relies on, stated on its own so that it can '
    'be checked against a reference text, or "" when the step uses no outside knowledge;\n'
    '- "step_text": the words of the step, copied exactly from the reasoning.\n'
    "Use every part of the reasoning once. Do not reorder, summarise or rephrase it, and do not add "
    "steps that are not in it."
)

_FENCE_RE = re.compile(r"\A```(?:json)?\s*(.*?)\s*```\Z", re.S | re.I)
_WORD_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|\w+")


class DecompositionError(ValueError):
    """Model output that cannot be used; the message says why."""


def build_prompts(question: str, reasoning: str) -> tuple[str, str]:
    """The system and user prompts asking for a decomposition of ``reasoning``."""
    user = (
        f"Question:\n{question.strip()}\n\nReasoning:\n{reasoning.strip()}\n\n"
        "Split the reasoning above into its steps. Answer as JSON in the form "
        '{"steps": [{"planning": "...", "knowledge": "...", "step_text": "..."}]}.'
    )
    return SYSTEM_PROMPT, user


def parse_decomposition(raw: object) -> list[dict[str, str]]:
    """Parse and validate raw model output against DECOMPOSE_SCHEMA; returns the step items."""
    if not isinstance(raw, str):
        raise DecompositionError(f"model output is {type(raw).__name__}, not text")
    body = raw.strip()
    fenced = _FENCE_RE.match(body)
    if fenced:
        body = fenced.group(1)
    if not body:
        raise DecompositionError("empty model output")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as err:
        if isinstance(err, json.JSONDecodeError) and (err.pos >= len(body) - 1 or err.msg.startswith("Unterminated")):
            raise DecompositionError(f"invalid JSON, output cut off: {err}") from None
        raise DecompositionError(f"invalid JSON: {err}") from None
    problem = _schema_problem(data, DECOMPOSE_SCHEMA, "output")
    if problem:
        raise DecompositionError(f"schema mismatch: {problem}")
    return data["steps"]


def _schema_problem(value: object, schema: dict, path: str) -> str | None:
    """Check ``value`` against the small JSON-schema subset used here; None when it conforms."""
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            return f"{path} must be an object"
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                return f"{path} lacks the key {key!r}"
        if schema.get("additionalProperties") is False:
            extra = sorted(str(k) for k in value if k not in props)
            if extra:
                return f"{path} has unexpected keys {extra}"
        for key, sub in props.items():
            if key in value and (problem := _schema_problem(value[key], sub, f"{path}.{key}")):
                return problem
    elif kind == "array":
        if not isinstance(value, list):
            return f"{path} must be an array"
        least, most = schema.get("minItems", 0), schema.get("maxItems")
        if len(value) < least:
            return f"{path} has {len(value)} items, at least {least} needed"
        if most is not None and len(value) > most:
            return f"{path} has {len(value)} items, at most {most} allowed"
        for n, item in enumerate(value):
            if problem := _schema_problem(item, schema["items"], f"{path}[{n}]"):
                return problem
    elif kind == "string":
        if not isinstance(value, str):
            return f"{path} must be a string"
        if len(value) < schema.get("minLength", 0):
            return f"{path} is too short"
    return None


def locate_steps(text: str, lo: int, hi: int, items: list[dict[str, str]]) -> list[Step]:
    """Find each item's step_text in ``text[lo:hi]``, in order; raises DecompositionError."""
    steps: list[Step] = []
    cursor = lo
    for n, item in enumerate(items):
        wanted = item["step_text"].strip()
        if not wanted:
            raise DecompositionError(f"step {n + 1} has an empty step_text")
        span = _find_verbatim(text, wanted, cursor, hi)
        aligned = span is not None
        if span is None:
            span = _find_approximate(text, wanted, cursor, hi)
        if span is None:
            raise DecompositionError(f"step {n + 1} could not be located in the reasoning")
        start, end = span
        steps.append(
            Step(
                index=n,
                text=text[start:end] if aligned else wanted,
                start=start,
                end=end,
                planning=item["planning"].strip(),
                knowledge=item["knowledge"].strip(),
                aligned=aligned,
            )
        )
        cursor = end
    covered = _coverage(text, lo, hi, [(s.start, s.end) for s in steps])
    if covered < MIN_COVERAGE:
        raise DecompositionError(f"the steps cover only {covered:.0%} of the reasoning")
    return steps


def _find_verbatim(text: str, wanted: str, cursor: int, hi: int) -> tuple[int, int] | None:
    pos = text.find(wanted, cursor, hi)
    if pos >= 0:
        return pos, pos + len(wanted)
    loose = re.compile(r"\s+".join(re.escape(word) for word in wanted.split()))
    m = loose.search(text, cursor, hi)
    return m.span() if m else None


def _find_approximate(text: str, wanted: str, cursor: int, hi: int) -> tuple[int, int] | None:
    """Best word-level match of ``wanted`` after ``cursor``, anchored on its longest common run."""
    found = [(m.group().lower(), m.start(), m.end()) for m in _WORD_RE.finditer(text, cursor, hi)]
    words = [w.lower() for w in _WORD_RE.findall(wanted)]
    if not found or not words:
        return None
    have = [w for w, _, _ in found]
    anchor = SequenceMatcher(None, have, words, autojunk=False).find_longest_match(0, len(have), 0, len(words))
    if anchor.size == 0:
        return None
    slack = max(2, len(words) // 4)
    first = max(0, anchor.a - anchor.b - slack)
    last = min(len(have), anchor.a + len(words) - anchor.b + slack)
    blocks = [b for b in SequenceMatcher(None, have[first:last], words, autojunk=False).get_matching_blocks() if b.size]
    a0, a1 = first + blocks[0].a, first + blocks[-1].a + blocks[-1].size
    matched = sum(b.size for b in blocks)
    if 2 * matched / ((a1 - a0) + len(words)) < MIN_SIMILARITY:
        return None
    return found[a0][1], found[a1 - 1][2]


def _coverage(text: str, lo: int, hi: int, spans: list[tuple[int, int]]) -> float:
    inside = bytearray(hi - lo)
    for start, end in spans:
        inside[start - lo : end - lo] = b"\x01" * (end - start)
    total = hit = 0
    for offset, ch in enumerate(text[lo:hi]):
        if ch.isalnum():
            total += 1
            hit += inside[offset]
    return hit / total if total else 1.0


def _fall_back(text: str, reason: str) -> SplitResult:
    return replace(split_reasoning(text, "auto"), requested_mode="llm", fallback_reason=reason)


def split_with_llm(text: str, question: str, generate_json: Callable[[str, str, dict], str]) -> SplitResult:
    """Decompose ``text`` with ``generate_json(system, user, schema) -> raw output``.

    Falls back to ``split_reasoning(text, "auto")`` (with ``fallback_reason``) on unusable output or
    a KiigError from the generator; Cancelled and non-KiigError exceptions propagate.
    """
    if not isinstance(text, str):
        raise InputError("the reasoning to split must be text")
    sections = find_sections(text)
    body = text[sections.start : sections.end]
    if not body.strip():
        return _fall_back(text, "no reasoning text to decompose")
    system, user = build_prompts(question or "", body)
    try:
        raw = generate_json(system, user, copy.deepcopy(DECOMPOSE_SCHEMA))
    except Cancelled:
        raise
    except KiigError as err:
        return _fall_back(text, f"the model call failed: {err.message}")
    try:
        steps = locate_steps(text, sections.start, sections.end, parse_decomposition(raw))
    except DecompositionError as err:
        return _fall_back(text, str(err))
    return SplitResult(
        steps=steps,
        mode="llm",
        requested_mode="llm",
        think=sections.think,
        final_answer=sections.final_answer,
        final_answer_span=sections.final_answer_span,
    )


def split_budget(text: str) -> int:
    """Output tokens the decomposition may use for ``text``: it copies every step and adds a planning
    and a knowledge sentence plus JSON per step, about 3 tokens per reasoning token, and a token is
    about 4 characters of English -- so one per character, plus room for the JSON frame. A fixed cap
    made long realistic traces run out of tokens and fall back to the rule splitter."""
    return max(LLM_SPLIT_MAX_TOKENS, len(text) + 256)


def model_json_generator(client, cancel: CancelToken | None = None, max_tokens: int = LLM_SPLIT_MAX_TOKENS) -> Callable[[str, str, dict], str]:
    """``generate_json`` over an engine client: greedy, constrained by the JSON schema, cancellable."""

    def generate_json(system: str, user: str, schema: dict) -> str:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        result = client.call("generate", cancel=cancel, messages=messages, max_tokens=max_tokens, temperature=0.0,
                             top_k=0, json_schema=schema)
        if result.get("stop") == "cancelled":
            raise Cancelled()
        return result["text"]

    return generate_json


def split_with_model(client, text: str, question: str, cancel: CancelToken | None = None) -> SplitResult:
    """:func:`split_with_llm` with ``client`` (an engine client) as the decomposing model: the one LLM-split call.

    Its output budget grows with the reasoning (:func:`split_budget`), for the CLI, batches and the GUI alike.
    """
    return split_with_llm(text, question, model_json_generator(client, cancel, split_budget(text)))
