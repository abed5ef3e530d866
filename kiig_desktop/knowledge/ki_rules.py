"""The ways of turning a judge's answers into a Knowledge Index (docs/metrics.md, "KI modes").

``probability`` (the default): the judge is asked Yes or No; a step's KI is
``p(yes) / (p(yes) + p(no))`` from its first-token log-probabilities; steps without a factual
claim are not applicable and left out of ``ki_mean``; 3 passages per step.

``passages-true-false`` (called ``reasoningeval`` before 2026-12; stored evaluations under the old
name read back under the new one): the judge reads the retrieved passages themselves and answers
True or False (greedy, a few tokens); a step scores 1 only when the first line of the reply is
exactly ``True``, anything else scores 0; a step without a factual claim or whose rule-built query
is empty scores 1.0; ``ki_mean`` is the mean over all steps; 12 passages per step. It is NOT
ReasoningEval's pipeline (no RAG answer, another match rule).

``reasoningeval-pipeline``: ReasoningEval's ``RetrievalScorer`` stage by stage (``ki_pipeline.py``).

Pure rules only: the judging itself lives in ``ki.py``.
"""

from __future__ import annotations

from ..store.ki_rows import RENAMED_MODES

KI_METHOD_VERSION = 1  # bump when the prompts, candidates or applicability rules change results
PROBABILITY, PASSAGES_TF, PIPELINE = "probability", "passages-true-false", "reasoningeval-pipeline"
KI_MODES = (PROBABILITY, PASSAGES_TF, PIPELINE)
RENAMED = RENAMED_MODES  # old name -> new name, for stored data and old command lines
RENAME_NOTE = ("the KI mode 'reasoningeval' is now called 'passages-true-false': it shows the judge the passages, not "
               "ReasoningEval's RAG answer; ReasoningEval's pipeline is 'reasoningeval-pipeline'")
DEFAULT_MODE = PROBABILITY
DEFAULT_K = {PROBABILITY: 3, PASSAGES_TF: 12, PIPELINE: 12}
REPLY_MODES = (PASSAGES_TF, PIPELINE)  # modes that read a greedy reply, not first-token probabilities
MAX_K = 20
TRUE_FALSE_MAX_TOKENS = 8

SYSTEM_YES_NO = ("You are a careful fact checker. You compare a claim with reference passages and reply with "
                 "a single word: Yes or No.")
TAIL_YES_NO = ("\n\nClaim: {claim}\n\nDo the reference passages support the claim? Answer Yes if they state it or "
               "it follows directly from them. Answer No if they contradict it or do not contain it. "
               "Reply with one word, Yes or No.")
SYSTEM_TRUE_FALSE = ("You are a careful fact checker. You decide whether a statement is correct, using the "
                     "reference passages, and reply with a single word: True or False.")
TAIL_TRUE_FALSE = ("\n\nStatement: {claim}\n\nIs the statement correct according to the reference passages? "
                   "Reply with one word, True or False.")

REASON_NO_QUERY_SCORED = "no factual claim (a \"None\" query): scored 1.0 by ReasoningEval's rule"
REASON_QUERY_FAILED = "no retrieval query could be built: scored 1.0 by ReasoningEval's rule"


def check_mode(mode: str) -> str:
    """The mode itself, or ValueError naming the modes there are."""
    if mode not in KI_MODES:
        raise ValueError(f"unknown KI mode {mode!r}; expected one of {', '.join(KI_MODES)}")
    return mode


def default_k(mode: str) -> int:
    return DEFAULT_K[check_mode(mode)]


def prompt_parts(mode: str) -> tuple[str, str]:
    """``(system prompt, user tail template with {claim})`` of the judge question for ``mode``."""
    return (SYSTEM_TRUE_FALSE, TAIL_TRUE_FALSE) if check_mode(mode) == "passages-true-false" else (SYSTEM_YES_NO, TAIL_YES_NO)


def true_false_score(reply: str) -> float:
    """1.0 when the reply's first line is exactly ``True`` (surrounding spaces aside), else 0.0."""
    lines = (reply or "").strip().splitlines()
    return 1.0 if lines and lines[0].strip() == "True" else 0.0


def pipeline_match(reply: str) -> float:
    """ReasoningEval's match rule: 1.0 when the whole reply, lower-cased, is ``"true"``, else 0.0."""
    return 1.0 if reply.lower() == "true" else 0.0


def chain_mean(steps: list[dict], mode: str) -> float | None:
    """``ki_mean``: over applicable judged steps (probability) or over every step (the True/False modes)."""
    if check_mode(mode) in REPLY_MODES:
        values = [s["ki"] for s in steps if s.get("ki") is not None]
        return sum(values) / len(steps) if steps else None
    scored = [s["ki"] for s in steps if s.get("applicable") and s.get("ki") is not None]
    return sum(scored) / len(scored) if scored else None


def settings(mode: str, k: int | None) -> dict:
    """The run-identity part of a KI pass: a different mode or k is a different run.

    The default mode is left out, so runs made before modes existed keep their identity (resume).
    """
    out: dict = {"k": default_k(mode) if k is None else int(k), "method": KI_METHOD_VERSION}
    if check_mode(mode) != DEFAULT_MODE:
        out["mode"] = mode
    return out
