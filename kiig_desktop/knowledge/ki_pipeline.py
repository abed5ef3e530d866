"""ReasoningEval's KI pipeline (``RetrievalScorer``, metrics.py at commit 882183b), stage by stage.

Per step (mode ``reasoningeval-pipeline``; docs/metrics.md, "KI modes"):

1. **query**: an LLM (the RAG model) writes a retrieval query for the step's knowledge, or
   replies ``None`` when the step uses none. A ``None`` query, or a failed one (an empty reply),
   scores 1.0 and nothing further is asked.
2. **passages**: the top ``k`` (12) passages for that query from the corpus (FTS5/BM25).
3. **RAG answer**: the RAG model answers its query from those passages, all of them in full.
4. **judge**: the judge says True or False: does the step's knowledge agree with that answer?
   The step scores :func:`~kiig_desktop.knowledge.ki_rules.pipeline_match` of the whole reply
   (``reply.lower() == "true"``: 1.0, else 0.0).

``ki_mean`` is the mean over all steps. Every stage is kept in the step's record (``query``,
``evidence``, ``rag_answer``, ``judge_reply``). A prompt that does not fit its model's context is
one error naming both sizes (never shortened). The prompts are ours (ReasoningEval's are written
for GPT-4o); docs/metrics.md lists every difference. Pure over two ``generate`` functions, so the
rules are tested with fakes; ``ki.py`` calls it with engine clients.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator

from ..errors import ContextOverflow
from ..events import CancelToken, Progress
from . import ki_rules
from .judging import prompt_too_long
from .search import Passage

Generate = Callable[[list[dict[str, str]], int], str]  # (chat messages, max tokens) -> greedy reply
Retrieve = Callable[[str], list[Passage]]

QUERY_MAX_TOKENS = 64
RAG_MAX_TOKENS = 192
JUDGE_MAX_TOKENS = ki_rules.TRUE_FALSE_MAX_TOKENS

QUERY_SYSTEM = "You write search queries for a reference library. Reply with the query only."
QUERY_USER = ("Knowledge used in a reasoning step:\n{knowledge}\n\nWrite one short question whose answer, looked up "
              "in a reference book, would confirm or refute this knowledge. If the step uses no factual knowledge, "
              "reply with exactly: None")
RAG_SYSTEM = "You answer questions from the reference passages you are given, briefly and factually."
RAG_USER = "Reference passages:\n{passages}\n\nQuestion: {query}\n\nAnswer the question from the passages."
JUDGE_SYSTEM = "You are a careful fact checker. Reply with a single word: True or False."
JUDGE_USER = ("Reference answer:\n{answer}\n\nKnowledge:\n{knowledge}\n\nIs the knowledge correct according to the "
              "reference answer? Reply with one word, True or False.")

REASON_JUDGED = "judged against the RAG answer"


def is_none_query(reply: str) -> bool:
    """The query writer's "no knowledge here" answer: ``None`` (case, spaces, quotes and a full stop aside)."""
    return reply.strip().strip("\"'.` ").lower() == "none"


def _messages(system: str, user: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def query_messages(knowledge: str) -> list[dict[str, str]]:
    return _messages(QUERY_SYSTEM, QUERY_USER.format(knowledge=knowledge))


def rag_messages(query: str, passages: list[Passage]) -> list[dict[str, str]]:
    """The RAG model's prompt: every passage in full, numbered, best first."""
    shown = "\n".join(f"[{n}] " + (f"({p.title}) " if p.title else "") + " ".join(p.text.split())
                      for n, p in enumerate(passages, 1)) or "(none)"
    return _messages(RAG_SYSTEM, RAG_USER.format(passages=shown, query=query))


def judge_messages(knowledge: str, answer: str) -> list[dict[str, str]]:
    return _messages(JUDGE_SYSTEM, JUDGE_USER.format(answer=answer, knowledge=knowledge))


def _ask(generate: Generate, messages: list[dict[str, str]], max_tokens: int, who: str, what: str | None = None) -> str:
    try:
        return generate(messages, max_tokens)
    except ContextOverflow as exc:
        raise prompt_too_long(exc, who, what) from None


def pipeline_step(knowledge: str, retrieve: Retrieve, rag_generate: Generate, judge_generate: Generate) -> dict:
    """The stages of one step: ``{"applicable", "ki", "reason", "query_reply", "query", "evidence",
    "rag_answer", "judge_reply"}`` (a stage not reached is None; ``evidence`` the retrieved passages)."""
    out: dict = {"applicable": False, "ki": 1.0, "query_reply": None, "query": None, "evidence": [],
                 "rag_answer": None, "judge_reply": None}
    if not knowledge.strip():
        return {**out, "reason": ki_rules.REASON_NO_QUERY_SCORED}
    reply = _ask(rag_generate, query_messages(knowledge), QUERY_MAX_TOKENS, "RAG model", "query")
    out["query_reply"] = reply
    if is_none_query(reply):
        return {**out, "reason": ki_rules.REASON_NO_QUERY_SCORED}
    query = " ".join(reply.split())
    if not query:
        return {**out, "reason": ki_rules.REASON_QUERY_FAILED}
    passages = retrieve(query)
    answer = _ask(rag_generate, rag_messages(query, passages), RAG_MAX_TOKENS, "RAG model")
    verdict = _ask(judge_generate, judge_messages(knowledge, answer), JUDGE_MAX_TOKENS, "judge")
    evidence = [p.evidence() for p in passages]
    return {**out, "applicable": True, "ki": ki_rules.pipeline_match(verdict), "reason": REASON_JUDGED,
            "query": query, "evidence": evidence, "rag_answer": answer, "judge_reply": verdict}


def iter_pipeline_chain(records: list[tuple[dict, str]], retrieve: Retrieve, rag_generate: Generate,
                        judge_generate: Generate, cancel: CancelToken | None = None) -> Generator[Progress, None, None]:
    """Run :func:`pipeline_step` on every ``(step record, knowledge)``, filling the records in place."""
    started = time.monotonic()
    yield Progress(done=0, total=len(records), message="", started=started)
    for n, (rec, knowledge) in enumerate(records, 1):
        if cancel is not None:
            cancel.check()
        rec.update(pipeline_step(knowledge, retrieve, rag_generate, judge_generate))
        rec["claim"] = knowledge
        yield Progress(done=n, total=len(records), message=rec.get("text", ""), started=started)
