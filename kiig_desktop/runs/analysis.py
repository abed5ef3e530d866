"""One interactive analysis as the desktop app runs it: prompt, generate, split, score, save, reload.

Pure core (no Qt): the GUI's worker threads drive these generators and turn their yields into
signals. A chain record is the ``kiig score`` output line (docs/cli.md) plus the step
offsets from the splitter and the graded final answer, so what the app shows after reopening a
session is exactly what was computed.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..chains.answers import extract_answer, is_correct, parse_number
from ..chains.prompts import ANALYZE_PROMPT_VERSION, analyze_prompt
from ..chains.steps import split_reasoning
from ..engine.models import ModelInfo
from ..errors import InputError
from ..events import CancelToken, Progress
from ..metrics.infogain import METHOD_VERSION, iter_score_chain
from ..store.codec import canonical_json, sha256_text
from .chain import generation_record, iter_generation
from .provenance import stamp
from .score import model_row

ANALYZE_METHOD = "kiig-analyze-1"


@dataclass
class Question:
    """What the user asks and the ground truth InfoGain measures against."""

    question: str
    answer: str
    options: dict[str, str] | None = None
    answer_idx: str | None = None

    @property
    def kind(self) -> str:
        if self.options:
            return "mcq"
        return "numeric" if parse_number(self.answer) is not None else "open"

    def correct_letter(self) -> str | None:
        """The correct option letter: ``answer_idx``, else the option whose text is the answer."""
        if not self.options:
            return None
        if self.answer_idx and self.answer_idx in self.options:
            return self.answer_idx
        wanted = self.answer.strip().casefold()
        return next((k for k, v in self.options.items() if v.strip().casefold() == wanted), None)

    def validate(self) -> None:
        if not self.question.strip():
            raise InputError("enter a question first")
        if not self.answer.strip():
            raise InputError("enter the ground-truth answer: InfoGain measures how each step moves the model toward it")
        if self.options is not None:
            if len(self.options) < 2:
                raise InputError("a multiple-choice question needs at least two options")
            if any(not v.strip() for v in self.options.values()):
                raise InputError("every option needs a text")
            if self.correct_letter() is None:
                raise InputError("mark which option is correct (or make the answer equal one option's text)")

    def item(self) -> dict[str, Any]:
        """The item as the session stores it."""
        out: dict[str, Any] = {"question": self.question, "answer": self.answer, "kind": self.kind}
        if self.options:
            out["options"] = dict(self.options)
            out["answer_idx"] = self.correct_letter()
        return out

    def prompt(self) -> str:
        return analyze_prompt(self.question, self.options)

    @classmethod
    def from_item(cls, item: dict | None) -> Question | None:
        if not item or not isinstance(item.get("question"), str):
            return None
        options = item.get("options") if isinstance(item.get("options"), dict) else None
        return cls(item["question"], str(item.get("answer") or ""), options, item.get("answer_idx"))


@dataclass
class StepDraft:
    """A step about to be scored; ``start``/``end`` index the reasoning text when known."""

    text: str
    start: int | None = None
    end: int | None = None


@dataclass
class SplitOutcome:
    steps: list[StepDraft]
    final_answer: str | None
    mode: str
    note: str | None = None


@dataclass
class GenerationSettings:
    max_tokens: int = 160
    temperature: float = 0.0
    seed: int = 0

    def to_dict(self) -> dict:
        return {"max_tokens": self.max_tokens, "temperature": self.temperature, "seed": self.seed, "prompt": ANALYZE_PROMPT_VERSION}


@dataclass
class AnalysisResult:
    """A scored chain and where it was saved."""

    record: dict
    run_id: int
    chain_id: int
    item: dict
    generation: dict | None = None
    ki: list[dict] = field(default_factory=list)
    run: dict | None = None


# --------------------------------------------------------------------------------- generation


def reasoning_messages(q: Question) -> list[dict]:
    return [{"role": "user", "content": q.prompt()}]


def grade_text(q: Question, text: str) -> tuple[str | None, bool | None]:
    """The final answer stated in ``text`` and whether it is right (None: nothing to grade)."""
    if not text.strip() or not q.answer.strip():
        return None, None
    extracted = extract_answer(text, q.kind, q.options)

    class _Item:  # the fields is_correct reads
        kind = q.kind
        answer = q.answer
        answer_idx = q.correct_letter()

    return extracted, is_correct(extracted, _Item)


def iter_generate(client, q: Question, settings: GenerationSettings, cancel: CancelToken | None = None) -> Generator[dict, None, dict]:
    """Stream the subject model's reasoning (token events); return the generation as the store keeps it."""
    result = yield from iter_generation(client, reasoning_messages(q), cancel=cancel, max_tokens=settings.max_tokens,
                                        temperature=settings.temperature, seed=settings.seed, top_k=3)
    extracted, correct = grade_text(q, result["text"])
    return generation_record(result, extracted, correct, tokens_per_s=result.get("tokens_per_s"), settings=settings.to_dict())


# --------------------------------------------------------------------------------- steps


def split_text(text: str, mode: str) -> SplitOutcome:
    """Rule-based split keeping offsets (``llm`` mode is driven by the caller with a model)."""
    result = split_reasoning(text, mode)
    return SplitOutcome([StepDraft(s.text, s.start, s.end) for s in result.steps], result.final_answer, result.mode,
                        result.fallback_reason)


def locate_steps(text: str, steps: Sequence[StepDraft]) -> list[StepDraft]:
    """Fill missing offsets by finding each step's text in order (edited steps may not be found)."""
    out, cursor = [], 0
    for s in steps:
        if s.start is not None and s.end is not None and text[s.start : s.end] == s.text:
            out.append(s)
            cursor = s.end
            continue
        pos = text.find(s.text, cursor) if s.text else -1
        if pos >= 0:
            out.append(StepDraft(s.text, pos, pos + len(s.text)))
            cursor = pos + len(s.text)
        else:
            out.append(StepDraft(s.text, None, None))
    return out


# --------------------------------------------------------------------------------- scoring


def analysis_key(q: Question, steps: Sequence[StepDraft]) -> str:
    """Same question and steps in the same run = the same work (saving again replaces it)."""
    return "chain-" + sha256_text(canonical_json({"item": q.item(), "steps": [s.text for s in steps]}))[:16]


def iter_score_steps(client, q: Question, steps: Sequence[StepDraft], *, mode: str = "answer", reasoning: str | None = None,
                     cancel: CancelToken | None = None) -> Generator[Progress, None, dict]:
    """Score the steps with ``client``; return the full record (id, mode, model, offsets, graded answer)."""
    q.validate()
    texts = [s.text.strip() for s in steps]
    if not texts or any(not t for t in texts):
        raise InputError("there are no steps to score (split the reasoning first; empty steps are not allowed)")
    core = yield from iter_score_chain(client, q.question, q.answer, texts, q.options, q.correct_letter(), cancel=cancel)
    record: dict[str, Any] = {"id": analysis_key(q, steps), "mode": mode, "model": client.model_ref(), **core}
    for out, draft in zip(record["steps"], steps, strict=True):
        if draft.start is not None and draft.end is not None:
            out["start"], out["end"] = draft.start, draft.end
    if reasoning is not None:
        record["reasoning"] = reasoning  # the text the step offsets refer to
        extracted, correct = grade_text(q, reasoning)
        record["extracted_answer"] = extracted
        if correct is not None:
            record["correct"] = correct
    return stamp(record, client)


# --------------------------------------------------------------------------------- storage


def analyze_settings(record: dict, split_mode: str, source: str, backend: dict, generation: GenerationSettings | None) -> dict:
    """What makes two ``analyze`` runs the same work (chains of equal settings share one run)."""
    return {
        "method": ANALYZE_METHOD, "infogain": METHOD_VERSION, "mode": record.get("mode", "answer"), "split": split_mode,
        "source": source, "generation": generation.to_dict() if generation else None,
        "backend": {k: backend.get(k) for k in ("n_ctx", "n_gpu_layers", "n_batch", "flash_attn")},
    }


def save_analysis(store, *, q: Question, record: dict, scorer: ModelInfo, scorer_backend: dict, split_mode: str,
                  subject: ModelInfo | None = None, subject_ref: dict | None = None, generation: dict | None = None,
                  generation_settings: GenerationSettings | None = None, name: str | None = None) -> tuple[int, int]:
    """Save one scored chain (one transaction) in its ``analyze`` run; return (run_id, chain_id)."""
    models = {"scorer": store.ensure_model(model_row(scorer, record["model"]))}
    gen = None
    if subject is not None and subject_ref is not None:
        models["subject"] = store.ensure_model(model_row(subject, subject_ref))
        if generation is not None:
            gen = {**generation, "model_id": models["subject"]}
    source = "generated" if gen is not None else "text"
    settings = analyze_settings(record, split_mode, source, scorer_backend, generation_settings if gen else None)
    versions = {"kiig": __version__, "llama_cpp_python": scorer_backend.get("llama_cpp_python"),
                "system_info": scorer_backend.get("system_info"), "build": scorer_backend.get("build")}
    seed = generation_settings.seed if gen is not None and generation_settings is not None else None
    run_id, _ = store.find_or_create_run("analyze", settings, models, versions, seed=seed, name=name)
    chain_id = store.save_chain(run_id, record["id"], record, item=q.item(), generation=gen)
    store.set_run_status(run_id, "finished")
    return run_id, chain_id


def save_result(store, **analysis: Any) -> AnalysisResult:
    """:func:`save_analysis`, then the chain as the session now holds it (what every screen shows)."""
    run_id, chain_id = save_analysis(store, **analysis)
    return load_result(store, run_id, chain_id)


def load_result(store, run_id: int, chain_id: int) -> AnalysisResult:
    """Everything the results view shows for a stored chain, exactly as saved."""
    record = store.load_chain(chain_id)
    return AnalysisResult(
        record=record, run_id=run_id, chain_id=chain_id, item=store.load_item(chain_id) or {},
        generation=store.load_generation(chain_id), ki=store.load_ki(chain_id), run=store.get_run(run_id),
    )


