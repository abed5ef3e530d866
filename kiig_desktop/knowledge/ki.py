"""Knowledge Index (KI): is the knowledge a reasoning step uses supported by the reference corpus?

Per step (docs/metrics.md):

1. :func:`is_applicable` decides whether the step makes a factual claim at all. Planning lines
   ("Let us think step by step."), questions, restatements of the question, bare final-answer
   lines and pure arithmetic are *not applicable*: they get ``ki = None`` and are left out of
   ``ki_mean`` (never counted as 1.0).
2. :func:`build_query` turns the claim (the step, or the ``knowledge`` its LLM decomposition
   extracted) into a retrieval query; the top-``k`` passages come from
   :func:`kiig_desktop.knowledge.corpus.search`.
3. The judge model reads the numbered passages and the claim and is asked to answer Yes or No.
   Nothing is sampled: ``ki = p_yes / (p_yes + p_no)`` from the log-probabilities of the first
   token of the answer (see :func:`yes_no_probability`).

An applicable step for which the corpus returns no passage at all is reported with ``ki = None``
and reason ``"no evidence in the corpus"``: absence of evidence is not evidence of falsehood.

That is the default ``probability`` mode; ``mode="passages-true-false"`` asks for True/False on
the passages instead (steps without a query scored 1.0, the mean over all steps), and
``mode="reasoningeval-pipeline"`` runs ReasoningEval's pipeline (``ki_pipeline.py``): see
``knowledge/ki_rules.py``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Generator, Iterable, Iterator, Sequence

from ..chains.prompts import question_text
from ..errors import Cancelled, InputError, KiigError
from ..events import CancelToken, ItemDone, Progress, run_to_end
from . import ki_rules
from .judging import (
    DEFAULT_MAX_PROMPT_CHARS,
    NO_CANDIDATES,
    SYSTEM_PROMPT,
    YES_CANDIDATES,
    Answer,
    AskMany,
    Judge,
    ask_all,
    ask_one,
    build_judge_messages,
    judge_claim,
    judge_true_false,
    token_ids_of,
    yes_no_probability,
)
from .ki_rules import KI_METHOD_VERSION, KI_MODES
from .search import STOP_WORDS, Passage, content_terms, corpus_id, search, word_tokens

# -- applicability -----------------------------------------------------------------------------

REASON_CLAIM = "states a factual claim"
REASON_EMPTY = "empty step"
REASON_NO_CONTENT = "no content words"
REASON_PLANNING = "planning or meta statement"
REASON_QUESTION = "a question, not a claim"
REASON_RESTATEMENT = "restates the question"
REASON_ANSWER = "final answer only"
REASON_CALCULATION = "calculation, not a knowledge claim"
REASON_NO_KNOWLEDGE = "decomposition found no knowledge in this step"
REASON_NO_EVIDENCE = "no evidence in the corpus"

# Words that carry no domain knowledge in a reasoning step: the verbs of planning, self-talk, and
# the vocabulary of the exam question itself.
_PROCESS_VERBS = frozenset(
    """
    think thinking consider considering analyze analyse analyzing analysing look looking evaluate
    evaluating determine determining find finding figure identify identifying recall recalling
    remember review reviewing examine examining check checking understand understanding solve
    solving approach assess assessing explore compare comparing eliminate eliminating decide
    interpret verify go going start starting begin break focus summarize summarise conclude list
    see read reconsider recheck double calculate compute work working
    """.split()
)
_SELF_TALK = frozenset("okay ok hmm wait mistake sure maybe alright well good let lets carefully careful need needs "
                       "step steps try trying again thing things way".split())
_EXAM_WORDS = frozenset(
    """
    answer answers question questions option options choice choices correct incorrect best likely
    true false statement statements given information detail details key fact facts clue clues
    mentioned stated says said described describes describe following first next finally one now
    problem possibility possibilities mind note noted point points part parts sense make makes made
    pick select rule ruling asks asking each
    """.split()
)
_META_WORDS = _PROCESS_VERBS | _SELF_TALK | _EXAM_WORDS
_QUERY_DROP = _PROCESS_VERBS | _SELF_TALK

# Words that frame a question stem but add nothing when a step repeats them.
_FRAMING_WORDS = frozenset("patient patients presents presenting presented history man woman boy girl year years old "
                           "male female child".split())

_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}

_CLAIM_VERBS = frozenset(
    """
    is are was were be being been has have had causes cause caused leads lead led results result
    increases increase increased decreases decrease decreased reduces reduce reduced inhibits
    inhibit blocks block treats treat treated indicates indicate suggests suggest shows show means
    contains contain requires require occurs occur presents produces produce prevents prevent
    affects affect associated characterized characterised used defined measured acts act binds
    bind raises raise lowers lower triggers trigger involves involve includes include
    """.split()
)

_LEADIN = re.compile(
    r"^\s*(?:(?:so|now|first|firstly|next|then|also|and|ok(?:ay)?|well|hmm+|alright|right|but)\b[\s,]*)*"
    r"(?:(?:let(?:'s|\s+us|\s+me)|we|i)\s+(?:should\s+|must\s+|can\s+)?"
    r"(?:(?:recall|remember|note|know)(?:\s+that)?|(?:consider|assume)\s+that)"
    r"|(?:recall|remember|note|keep\s+in\s+mind)\s+that"
    r"|it\s+is\s+(?:well[\s-]+)?(?:known|established|important\s+to\s+(?:note|remember|recall))\s+that"
    r"|as\s+we\s+know|we\s+know\s+that)\s*[,:]?\s*",
    re.I,
)
_PLANNING = re.compile(
    r"^\s*(?:(?:so|now|first|firstly|next|then|also|and|ok(?:ay)?|well|hmm+|alright|right|but)\b[\s,]*)*"
    r"(?:let(?:'s|\s+us|\s+me)|(?:we|i)\s+(?:need|have|want|should|must|will|can|'ll|'d\s+like)|(?:we|i)'ll"
    r"|to\s+(?:answer|solve|determine|find|figure|identify|decide)|in\s+order\s+to)\b",
    re.I,
)
_INDIRECT_Q = re.compile(r"^\W*(?:\w+\W+){0,4}?(?:what|which|whether|if|how|why|who|where|when)\b", re.I)
_ANSWER = re.compile(
    r"^\s*(?:(?:so|thus|therefore|hence|overall|finally|in\s+conclusion|in\s+summary|then)\b[\s,]*)*"
    r"(?:the\s+|my\s+|our\s+)?(?:correct\s+|final\s+|best\s+|right\s+|most\s+likely\s+)?(?:answer|option|choice)"
    r"\s*(?:is|would\s+be|will\s+be|must\s+be|should\s+be|:|=|-)\s*",
    re.I,
)
_OPTION_LETTER = re.compile(r"^\s*\(?[A-Ja-j]\)?(?:[.:)\]]|\s|$)\s*")
_BECAUSE = re.compile(r"\b(?:because|since|as|due\s+to|given\s+that)\b", re.I)
_MATH = re.compile(r"[=+*/×÷^%<>]|\d\s*-\s*\d")


def _norm(token: str) -> str:
    """Crude normal form for overlap tests: number words -> digits, plural/possessive s dropped."""
    token = _NUMBER_WORDS.get(token, token)
    if len(token) > 3 and token.endswith("s") and not token.endswith(("ss", "us", "is")):
        token = token[:-1]
    return token


def _content(text: str) -> list[str]:
    return [_norm(t) for t in content_terms(text)]


_OPTION_LINE = re.compile(r"^\s*\(?[A-J][.):]\s.*$", re.M)


def _question_stem(question: str) -> str:
    """The question without its option lines ("A. text"): a claim may reuse option wording."""
    return _OPTION_LINE.sub("", question)


def _strip_leadin(text: str) -> str:
    return _LEADIN.sub("", text, count=1).strip()


def is_applicable(step_text: str, question: str | None = None) -> tuple[bool, str]:
    """Whether a step makes a factual claim that the corpus can support or not, and why."""
    text = (step_text or "").strip()
    if not text:
        return False, REASON_EMPTY
    claim = _strip_leadin(text)
    m = _ANSWER.match(claim)
    if m:
        rest = _OPTION_LETTER.sub("", claim[m.end():], count=1)
        new = set(_content(rest)) - set(_content(question or "")) - _META_WORDS
        if not new or (not _BECAUSE.search(rest) and len(new) <= 4):
            return False, REASON_ANSWER
    words = word_tokens(text)
    content = _content(text)
    if not content:
        return False, REASON_NO_CONTENT
    letters = [w for w in content if not w.isdigit()]
    if len(letters) <= 1 and any(w.isdigit() for w in words) and _MATH.search(text):
        return False, REASON_CALCULATION
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    if sentences and all(s.rstrip().endswith("?") for s in sentences):
        return False, REASON_QUESTION
    pm = _PLANNING.match(claim)
    if pm:
        rest = claim[pm.end():]
        verb = next((w for w in word_tokens(rest) if w not in ("to", "first", "now", "carefully", "just", "quickly")), "")
        if verb in _PROCESS_VERBS and (_INDIRECT_Q.match(rest) or not (
                any(w in _CLAIM_VERBS for w in word_tokens(rest)) or _BECAUSE.search(rest))):
            return False, REASON_PLANNING
    substantive = [w for w in _content(claim) if w not in _META_WORDS and not w.isdigit()]
    if not substantive:
        return False, REASON_PLANNING
    if question:
        asked = set(_content(_question_stem(question)))
        own = [w for w in dict.fromkeys(substantive) if w not in _FRAMING_WORDS]
        new = [w for w in own if w not in asked]
        if not new or (len(own) >= 6 and len(new) / len(own) <= 0.15):
            return False, REASON_RESTATEMENT
    return True, REASON_CLAIM


_NO_KNOWLEDGE = {"", "none", "n/a", "na", "null", "nothing", "no knowledge", "-"}


def step_claim(step_text: str, knowledge: str | None = None, question: str | None = None) -> tuple[bool, str, str]:
    """(applicable, reason, claim text) for a step and its optional decomposed ``knowledge``."""
    if knowledge is not None:
        if not isinstance(knowledge, str) or knowledge.strip().strip(".").lower() in _NO_KNOWLEDGE:
            return False, REASON_NO_KNOWLEDGE, ""
        ok, reason = is_applicable(knowledge, None)  # extracted knowledge is judged on its own
        return ok, reason, _strip_leadin(knowledge)
    ok, reason = is_applicable(step_text, question)
    return ok, reason, _strip_leadin(step_text or "")


def build_query(step_text: str, knowledge: str | None = None, question: str | None = None) -> str:
    """A natural-language retrieval query for a step (``search`` sanitises it).

    Uses the decomposed ``knowledge`` when given, else the step without its lead-in ("Recall
    that ..."). A short step (fewer than 3 content terms, e.g. "It is the first-line drug.") is
    completed with up to 8 content terms of the question.
    """
    base = knowledge if isinstance(knowledge, str) and knowledge.strip() else step_text or ""
    terms = [t for t in content_terms(_strip_leadin(base)) if t not in _QUERY_DROP]
    if len(terms) < 3 and question:
        extra = [t for t in content_terms(_question_stem(question))
                 if t not in terms and t not in _META_WORDS and t not in _FRAMING_WORDS]
        terms += extra[:8]
    return " ".join(terms)


# -- chains ------------------------------------------------------------------------------------


def judge_model_ref(judge: Judge) -> dict:
    """The judge's ``{"path", "sha256"}`` (an attribute per the protocol; a method is accepted too)."""
    ref = getattr(judge, "model_ref", None)
    if callable(ref):
        ref = ref()
    return dict(ref or {})


def _prepare_step(db, corpus: str, rec: dict, step: dict, question: str | None, k: int, mode: str) -> list[Passage] | None:
    """Fill what a step's record needs no judge for (retrieval, the rules' fixed cases); return the
    passages to ask the judge about, or None when the step is settled without it."""
    text = rec["text"]
    if not rec["applicable"]:
        if mode == "passages-true-false":
            rec.update(ki=1.0, reason=f"{rec['reason']}; {ki_rules.REASON_NO_QUERY_SCORED}")
        return None
    query = build_query(text, step.get("knowledge"), question)
    if mode == "passages-true-false" and not query.strip():
        rec.update(ki=1.0, reason=ki_rules.REASON_QUERY_FAILED)
        return None
    passages = search(db, corpus, query, k)
    rec["evidence"] = [p.evidence() for p in passages]
    if mode != "passages-true-false" and not passages:  # reasoningeval asks even without passages: no "no evidence" case
        rec["reason"] = REASON_NO_EVIDENCE
        return None
    return passages


def _finish_step(rec: dict, answer: Answer, mode: str, token_ids: dict[str, int] | None) -> None:
    """Fill a step's record from the judge's answer under ``mode``'s rule."""
    if mode == "passages-true-false":
        rec.update(ki=ki_rules.true_false_score(answer), judge_reply=answer)
        return
    ki, p_yes, p_no = yes_no_probability(answer, token_ids=token_ids)
    rec.update(ki=ki, judge_p_yes=p_yes, judge_p_no=p_no)
    if ki is None:
        rec["reason"] = "judge gave no probability to Yes or No"


def _step_record(pos: int, step: dict, question: str | None) -> tuple[dict, str]:
    text = str(step.get("text") or "")
    applicable, reason, claim = step_claim(text, step.get("knowledge"), question)
    return {"index": step.get("index", pos + 1), "text": text, "applicable": applicable, "ki": None,
            "reason": reason, "judge_p_yes": None, "judge_p_no": None, "evidence": []}, claim


def _chain_result(out_steps: list[dict], mode: str, k: int) -> dict:
    n_judged = sum(1 for s in out_steps if s["applicable"] and s["ki"] is not None)
    return {"steps": out_steps, "ki_mean": ki_rules.chain_mean(out_steps, mode), "ki_mode": mode, "ki_k": k,
            "n_applicable": sum(1 for s in out_steps if s["applicable"]), "n_judged": n_judged}


def _pipeline_chain(db, corpus: str, judge, rag, steps: list[dict], question: str | None, k: int,
                    cancel: CancelToken | None) -> Generator[Progress, None, dict]:
    """A chain through ReasoningEval's pipeline (``ki_pipeline``): ``rag`` writes queries and answers."""
    from .ki_pipeline import iter_pipeline_chain

    records = [_step_record(pos, step, question) for pos, step in enumerate(steps)]
    yield from iter_pipeline_chain(records, lambda query: search(db, corpus, query, k), rag.reply, judge.reply, cancel)
    return _chain_result([rec for rec, _ in records], ki_rules.PIPELINE, k)


def iter_chain_ki(db, corpus: str, judge: Judge, steps: list[dict], question: str | None = None, *, k: int = 3,
                  cancel: CancelToken | None = None, max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
                  mode: str = ki_rules.DEFAULT_MODE, rag=None) -> Generator[Progress, None, dict]:
    """:func:`score_chain_ki` as a generator: yields Progress (steps done) and returns its result."""
    ki_rules.check_mode(mode)
    corpus_id(db, corpus)  # fail early, before any judging, on an unknown corpus
    if mode == ki_rules.PIPELINE:
        return (yield from _pipeline_chain(db, corpus, judge, rag or judge, steps, question, k, cancel))
    out_steps = []
    started = time.monotonic()
    token_ids = None if mode == "passages-true-false" else token_ids_of(judge)
    candidates = [*YES_CANDIDATES, *NO_CANDIDATES]
    ask = ((lambda m: judge.reply(m, ki_rules.TRUE_FALSE_MAX_TOKENS)) if mode == "passages-true-false"
           else (lambda m: judge.next_token_logprobs(m, candidates)))
    yield Progress(done=0, total=len(steps), message="", started=started)
    for pos, step in enumerate(steps):
        if cancel:
            cancel.check()
        rec, claim = _step_record(pos, step, question)
        passages = _prepare_step(db, corpus, rec, step, question, k, mode)
        if passages is not None:
            _finish_step(rec, ask_one(ask, claim, passages, max_prompt_chars, mode), mode, token_ids)
        out_steps.append(rec)
        yield Progress(done=pos + 1, total=len(steps), message=rec["text"], started=started)
    return _chain_result(out_steps, mode, k)


def chains_ki(db, corpus: str, chains: Sequence[tuple[list[dict], str | None]], ask_many: AskMany, *, k: int = 3,
              token_ids: dict[str, int] | None = None, max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
              mode: str = ki_rules.DEFAULT_MODE) -> list:
    """:func:`score_chain_ki` of several ``(steps, question)`` chains, every judge prompt of them asked
    in one ``ask_many`` round (a judge reading several prompts at once). Per chain its result, or
    the KiigError it failed with (a step that overflows the judge's context fails its chain, as it
    does one chain at a time). ``token_ids``: the judge's first-token ids of the Yes/No candidates
    (probability mode). Not for ReasoningEval's pipeline (its stages depend on each other)."""
    if ki_rules.check_mode(mode) == ki_rules.PIPELINE:
        raise ValueError("the reasoningeval-pipeline mode judges one chain at a time (score_chain_ki)")
    corpus_id(db, corpus)
    records: list[list[dict]] = []
    asks: list[tuple[str, list[Passage]]] = []
    owners: list[tuple[int, dict]] = []
    for c, (steps, question) in enumerate(chains):
        records.append([])
        for pos, step in enumerate(steps):
            rec, claim = _step_record(pos, step, question)
            passages = _prepare_step(db, corpus, rec, step, question, k, mode)
            if passages is not None:
                asks.append((claim, passages))
                owners.append((c, rec))
            records[c].append(rec)
    failed: dict[int, KiigError] = {}
    for (c, rec), answer in zip(owners, ask_all(ask_many, asks, max_prompt_chars, mode) if asks else [], strict=True):
        if isinstance(answer, KiigError):
            failed.setdefault(c, answer)
        else:
            _finish_step(rec, answer, mode, token_ids)
    return [failed.get(c) or _chain_result(recs, mode, k) for c, recs in enumerate(records)]


def score_chain_ki(db, corpus: str, judge: Judge, steps: list[dict], question: str | None = None, *, k: int = 3,
                   cancel: CancelToken | None = None, max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
                   mode: str = ki_rules.DEFAULT_MODE, rag=None) -> dict:
    """KI of every step of one chain; ``ki_mean`` follows ``mode``'s rule (see ``ki_rules``; None if nothing scored).
    ``rag``: the model writing queries and RAG answers in ReasoningEval's pipeline (None: the judge)."""
    return run_to_end(iter_chain_ki(db, corpus, judge, steps, question, k=k, cancel=cancel,
                                    max_prompt_chars=max_prompt_chars, mode=mode, rag=rag))


def parse_ki_item(obj: object, line_no: int) -> dict:
    """Normalise one ``kiig ki`` input line (a ``kiig score`` output line or an input line with steps).

    Returns ``{"id", "question", "steps": [{"index", "text", "knowledge"?}], "error"?}``; raises
    InputError for a malformed line. A line without steps becomes an item error, not an input error.
    """
    where = f"input line {line_no}"
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object")
    item_id = obj.get("id", str(line_no))
    if not isinstance(item_id, (str, int)) or isinstance(item_id, bool):
        raise InputError(f"{where}: \"id\" must be a string")
    question = obj.get("question")
    if question is not None and not isinstance(question, str):
        raise InputError(f"{where}: \"question\" must be a string")
    options = obj.get("options")
    if question and isinstance(options, dict):
        question = question_text(question, options)
    raw_steps = obj.get("steps")
    out: dict = {"id": str(item_id), "question": question, "steps": []}
    if raw_steps is None or raw_steps == []:
        upstream = obj.get("error")
        out["error"] = "no steps to check" + (f" (upstream error: {upstream})" if upstream else "")
        return out
    if not isinstance(raw_steps, list):
        raise InputError(f"{where}: \"steps\" must be a list")
    out["steps"] = steps_to_judge(raw_steps, where)
    return out


def steps_to_judge(steps: Iterable[object], where: str = "chain") -> list[dict]:
    """The steps a KI pass judges: ``{"index", "text", "knowledge"?}`` from strings or step records.

    ``knowledge`` (from an LLM decomposition) is kept whenever the step has one, "" included: ""
    says the step uses no outside knowledge, so it is not applicable. Raises InputError for a step
    that is neither a string nor an object with ``"text"``.
    """
    out = []
    for i, step in enumerate(steps):
        if isinstance(step, str):
            out.append({"index": i + 1, "text": step})
        elif isinstance(step, dict) and isinstance(step.get("text"), str):
            rec = {"index": step.get("index", i + 1), "text": step["text"]}
            if step.get("knowledge") is not None:
                rec["knowledge"] = step["knowledge"]
            out.append(rec)
        else:
            raise InputError(f"{where}: step {i + 1} must be a string or an object with \"text\"")
    return out


def ki_items(db, corpus: str, judge: Judge, items: Iterable[dict], *, k: int = 3, cancel: CancelToken | None = None,
             total: int | None = None, max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
             mode: str = ki_rules.DEFAULT_MODE, rag=None) -> Iterator[Progress | ItemDone]:
    """Score many chains (items from :func:`parse_ki_item`), yielding Progress and ItemDone events.

    Each ItemDone carries the ``kiig ki`` output record; a failure inside one item (context
    overflow, a crashed worker) goes into that record's ``"error"`` and the batch goes on.
    Cancellation raises Cancelled between steps.
    """
    corpus_id(db, corpus)
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    started = time.monotonic()
    model = judge_model_ref(judge)
    done = 0
    yield Progress(done=0, total=total, message="", started=started)
    for index, item in enumerate(items):
        if cancel:
            cancel.check()
        record: dict = {"id": item.get("id"), "steps": [], "ki_mean": None, "ki_mode": mode, "ki_k": k, "model": model}
        if item.get("error"):
            record["error"] = item["error"]
        else:
            try:
                result = score_chain_ki(db, corpus, judge, item["steps"], item.get("question"), k=k, cancel=cancel,
                                        max_prompt_chars=max_prompt_chars, mode=mode, rag=rag)
                record.update(result)
            except Cancelled:
                raise
            except KiigError as exc:
                record["error"] = str(exc)
        done += 1
        yield ItemDone(index=index, result=record)
        yield Progress(done=done, total=total, message=str(record["id"]), started=started)


__all__ = [
    "DEFAULT_MAX_PROMPT_CHARS", "KI_METHOD_VERSION", "KI_MODES", "NO_CANDIDATES", "SYSTEM_PROMPT", "STOP_WORDS", "YES_CANDIDATES",
    "Answer", "AskMany", "Judge", "ask_all", "ask_one", "token_ids_of", "build_judge_messages", "build_query", "chains_ki", "is_applicable", "iter_chain_ki", "judge_claim", "judge_model_ref",
    "judge_true_false", "ki_items", "parse_ki_item", "score_chain_ki", "step_claim", "steps_to_judge", "yes_no_probability",
]
