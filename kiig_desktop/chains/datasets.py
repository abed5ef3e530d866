"""Dataset import and validation: MedQA-style MCQ, GSM8K-style word problems and ``kiig score`` input.

Files are JSON Lines (``.jsonl``/``.json``/``.ndjson``) or CSV (``.csv``; ``.tsv`` is tab separated).
Three row layouts are understood:

- ``mcq`` (MedQA-style): ``question``, ``options`` as ``{"A": text, ...}`` or ``[text, ...]`` (letters
  A, B, ... in order), and ``answer_idx`` and/or ``answer`` (the text of the correct option, or its
  letter); when both are given they must agree.
- ``gsm8k``: ``question`` and ``answer``, a worked solution whose last line is ``#### <number>``.
  The item's ``answer`` becomes the number without thousands separators; the solution above it is
  kept as ``reference_reasoning`` (with GSM8K calculator annotations ``<<48/2=24>>`` removed).
- ``generic``: the ``kiig score`` input line of docs/cli.md (``id``, ``question``, ``answer``,
  ``options``?, ``answer_idx``?, ``steps``?, ``reasoning``?). Options and ``#### n`` answers are
  handled as above when present, but not required.

``layout="auto"`` picks one layout per file: ``generic`` when any row has ``steps`` or ``reasoning``,
``mcq`` when most rows have ``options``, ``gsm8k`` when most answers have a ``####`` line, else
``generic``. Rows that do not fit the chosen layout are reported, never imported half-right.

A row without an ``id`` gets its line number as id (``"7"``); integer ids are accepted and turned into
strings. CSV columns: ``question``, ``answer``, ``answer_idx``, ``id``, ``steps`` (a JSON array),
``reasoning``, and options either as one ``options`` column holding JSON or as one column per letter
(``A``, ``B``, ... or ``option_a``, ``option_b``, ...); empty cells count as absent.

Every bad row becomes a :class:`RowError` with its line number (for CSV, the line on which the row
starts; ``0`` for problems with the whole file) and a reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiig_desktop.errors import InputError

from .dataset_files import RowError, _csv_rows, _file_format, _iter_jsonl, _open_checked, _type_name, iter_jsonl
from .prompts import question_text

__all__ = ["LAYOUTS", "Dataset", "DatasetItem", "RowError", "iter_jsonl", "load_dataset", "parse_score_line"]

LAYOUTS = ("mcq", "gsm8k", "generic")
_LAYOUT_ALIASES = {"medqa": "mcq", "score": "generic", "kiig": "generic"}
_GSM_LINE = re.compile(r"^\s*####\s*(?P<num>.*?)\s*$")
_NUMBER = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$|^[+-]?\.\d+$")
_CALC_ANNOTATION = re.compile(r"<<[^<>\n]*>>")


@dataclass
class DatasetItem:
    """One question with its ground truth, ready for ``kiig score`` or a model prompt."""

    id: str
    question: str
    answer: str
    kind: str  # "mcq" | "numeric" | "open"
    options: dict[str, str] | None = None
    answer_idx: str | None = None
    steps: list[str] | None = None
    step_knowledge: list[str | None] | None = None  # per step, when the input gave steps as objects with "knowledge"
    reasoning: str | None = None
    reference_reasoning: str | None = None
    line: int = 0

    def to_score_input(self) -> dict[str, Any]:
        """The ``kiig score`` input line (docs/cli.md); absent optional fields are left out."""
        out: dict[str, Any] = {"id": self.id, "question": self.question, "answer": self.answer}
        if self.options is not None:
            out["options"] = dict(self.options)
            out["answer_idx"] = self.answer_idx
        if self.steps is not None:
            out["steps"] = self.given_steps() if self.step_knowledge is not None else list(self.steps)
        if self.reasoning is not None:
            out["reasoning"] = self.reasoning
        return out

    def given_steps(self) -> list[dict[str, str]]:
        """The given steps as ``{"text", "knowledge"?}`` objects (empty list when none were given)."""
        known = self.step_knowledge or [None] * len(self.steps or [])
        return [{"text": t} if k is None else {"text": t, "knowledge": k} for t, k in zip(self.steps or [], known, strict=True)]

    def prompt_text(self) -> str:
        """``Q`` as docs/metrics.md defines it: the question, then ``"\\nA. text"`` per option."""
        return question_text(self.question, self.options)


@dataclass
class Dataset:
    """The result of :func:`load_dataset`: valid items plus one error per rejected row."""

    path: str
    layout: str
    items: list[DatasetItem]
    errors: list[RowError]
    format: str = field(default="jsonl")

    @property
    def ok(self) -> bool:
        """True when the file had at least one item and no bad rows."""
        return bool(self.items) and not self.errors


# --------------------------------------------------------------------------------------------- rows


class _RowProblem(Exception):
    """Internal: the reasons a row was rejected."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _norm_text(text: str) -> str:
    return " ".join(text.split()).casefold()


def _parse_options(raw: Any, problems: list[str]) -> dict[str, str] | None:
    """Options as an ordered ``{letter: text}`` dict, or None after appending to ``problems``."""
    if isinstance(raw, list):
        if len(raw) > 26:
            problems.append(f"too many options ({len(raw)}; at most 26)")
            return None
        pairs = [(chr(ord("A") + i), v) for i, v in enumerate(raw)]
    elif isinstance(raw, dict):
        pairs = list(raw.items())
    else:
        problems.append(f'options must be an object {{"A": text, ...}} or an array, got {_type_name(raw)}')
        return None
    options: dict[str, str] = {}
    ok = True
    for key, text in pairs:
        letter = key.strip().upper() if isinstance(key, str) else ""
        if not (len(letter) == 1 and "A" <= letter <= "Z"):
            problems.append(f"option key {key!r} is not a single letter")
            ok = False
        elif letter in options:
            problems.append(f"option {letter} is given twice")
            ok = False
        elif not isinstance(text, str):
            problems.append(f"option {letter} must be a string, got {_type_name(text)}")
            ok = False
        elif not text.strip():
            problems.append(f"option {letter} is empty")
            ok = False
        else:
            options[letter] = text  # verbatim, like steps: the answer matching ignores surrounding space
    if ok and len(options) < 2:
        problems.append("options need at least two choices")
        ok = False
    return dict(sorted(options.items())) if ok else None


def _resolve_letter(options: dict[str, str], answer: str | None, answer_idx: Any, problems: list[str]) -> str | None:
    """The correct letter from ``answer_idx`` and/or ``answer``; they must agree when both are given."""
    letters = ", ".join(options)
    idx_letter = None
    if answer_idx is not None:
        if not isinstance(answer_idx, str):
            problems.append(f"answer_idx must be a letter string, got {_type_name(answer_idx)}")
            return None
        idx_letter = answer_idx.strip().upper()
        if idx_letter not in options:
            problems.append(f"answer_idx {answer_idx!r} is not among the options ({letters})")
            return None
    text_letter = None
    if answer is not None:
        matches = [k for k, v in options.items() if _norm_text(v) == _norm_text(answer)]
        if len(matches) > 1:
            if idx_letter is None:
                problems.append(f"answer {answer!r} matches several options ({', '.join(matches)}); give answer_idx")
                return None
            text_letter = idx_letter if idx_letter in matches else matches[0]
        elif matches:
            text_letter = matches[0]
        elif answer.strip().upper() in options:
            text_letter = answer.strip().upper()  # the answer given as the letter itself
        elif idx_letter is None:
            problems.append(
                f"options without a resolvable correct letter: answer {answer!r} equals no option and there is no answer_idx"
            )
            return None
    if idx_letter is None and text_letter is None:
        problems.append("options without a resolvable correct letter: give answer_idx or an answer equal to one option")
        return None
    if idx_letter is not None and text_letter is not None and idx_letter != text_letter:
        problems.append(
            f"answer_idx {idx_letter} ({options[idx_letter]!r}) disagrees with answer {answer!r} (option {text_letter})"
        )
        return None
    if idx_letter is not None and text_letter is None and answer is not None:
        problems.append(f"answer {answer!r} does not match option {idx_letter} ({options[idx_letter]!r})")
        return None
    return idx_letter or text_letter


def _split_gsm8k(answer: str) -> tuple[str, str] | None:
    """``(number, worked solution)`` when the last non-empty line is ``#### <number>``; else None."""
    lines = answer.strip().splitlines()
    if not lines:
        return None
    m = _GSM_LINE.match(lines[-1])
    if not m:
        return None
    num = m.group("num").replace(" ", "")
    if not _NUMBER.match(num):
        return None
    num = num.replace(",", "").lstrip("+")
    reasoning = _CALC_ANNOTATION.sub("", "\n".join(lines[:-1])).strip()
    return num, reasoning


def _has_gsm_marker(answer: Any) -> bool:
    return isinstance(answer, str) and any(ln.lstrip().startswith("####") for ln in answer.splitlines())


def _parse_row(obj: dict[str, Any], line: int, layout: str) -> DatasetItem:
    """Validate one row for ``layout``; raises ``_RowProblem`` listing every problem found."""
    problems: list[str] = []

    def text_field(name: str, required: bool) -> str | None:
        value = obj.get(name)
        if value is None:
            if required:
                problems.append(f"missing {name}")
            return None
        if not isinstance(value, str):
            problems.append(f"{name} must be a string, got {_type_name(value)}")
            return None
        if not value.strip():
            problems.append(f"{name} is empty" if required else f"{name} is empty (leave it out instead)")
            return None
        return value.strip()

    raw_id = obj.get("id")
    if raw_id is None:
        item_id = str(line)
    elif isinstance(raw_id, int) and not isinstance(raw_id, bool):
        item_id = str(raw_id)
    elif isinstance(raw_id, str) and raw_id.strip():
        item_id = raw_id.strip()
    else:
        item_id = ""
        problems.append(f"id must be a non-empty string or an integer, got {_type_name(raw_id)} {raw_id!r}")

    question = text_field("question", required=True)
    has_options = obj.get("options") is not None
    answer = text_field("answer", required=not has_options)  # with options, answer_idx may stand alone
    reasoning = text_field("reasoning", required=False)

    steps, step_knowledge = _parse_steps(obj.get("steps"), problems)

    kind = "open"
    options = answer_idx = reference = None
    if layout == "mcq" and not has_options:
        problems.append("missing options (the file was read as multiple choice; mixed files: --layout generic)")
    if has_options:
        kind = "mcq"
        options = _parse_options(obj["options"], problems)
        if options is not None and not any(p.startswith("answer ") for p in problems):
            answer_idx = _resolve_letter(options, answer, obj.get("answer_idx"), problems)
            if answer_idx is not None:
                answer = options[answer_idx]
    elif obj.get("answer_idx") is not None:
        problems.append("answer_idx given without options")
    elif answer is not None:
        split = _split_gsm8k(answer)
        if split is not None:
            answer, reference = split
            kind = "numeric"
        elif layout == "gsm8k" or _has_gsm_marker(answer):
            problems.append("GSM8K answer without a final '#### <number>' line")
        elif _NUMBER.match(answer.strip()):
            kind = "numeric"

    if problems:
        raise _RowProblem(problems)
    assert question is not None and answer is not None
    return DatasetItem(
        id=item_id,
        question=question.strip(),
        answer=answer,
        kind=kind,
        options=options,
        answer_idx=answer_idx,
        steps=steps,
        step_knowledge=step_knowledge,
        reasoning=reasoning,
        reference_reasoning=reference,
        line=line,
    )


def _parse_steps(raw: Any, problems: list[str]) -> tuple[list[str] | None, list[str | None] | None]:
    """Given steps: strings, or objects ``{"text", "knowledge"?}`` (what ``kiig score`` writes and an
    LLM decomposition yields); the knowledge list is None when no step carries any."""
    if raw is None:
        return None, None
    if not isinstance(raw, list) or not raw:
        problems.append(f"steps must be a non-empty array of strings or objects, got {_type_name(raw)}")
        return None, None
    texts: list[str] = []
    knowledge: list[str | None] = []
    for i, entry in enumerate(raw):
        know = None
        if isinstance(entry, dict):
            text, know = entry.get("text"), entry.get("knowledge")
            if know is not None and not isinstance(know, str):
                problems.append(f"steps[{i}].knowledge must be a string, got {_type_name(know)}")
                return None, None
        else:
            text = entry
        if not (isinstance(text, str) and text.strip()):
            where = f"steps[{i}].text" if isinstance(entry, dict) else f"steps[{i}]"
            problems.append(f"{where} must be a non-empty string, got {_type_name(text)}")
            return None, None
        texts.append(text)  # verbatim (docs/cli.md): surrounding space and U+2028 are part of the step
        knowledge.append(know.strip() if know is not None else None)
    return texts, knowledge if any(k is not None for k in knowledge) else None


def parse_score_line(obj: Any, line: int) -> DatasetItem:
    """Validate one ``kiig score`` input line (generic layout).

    Raises ``InputError("line N: reason")``. A line without ``id`` gets ``str(line)`` as its id.
    """
    if not isinstance(obj, dict):
        raise InputError(f"line {line}: not a JSON object (got {_type_name(obj)})")
    try:
        return _parse_row(obj, line, "generic")
    except _RowProblem as exc:
        raise InputError(f"line {line}: {exc}") from None


# ----------------------------------------------------------------------------------- file reading


def _normalise_layout(layout: str) -> str:
    name = _LAYOUT_ALIASES.get(layout.lower(), layout.lower())
    if name != "auto" and name not in LAYOUTS:
        raise InputError(f"unknown dataset layout {layout!r}", hint="use auto, mcq, gsm8k or generic")
    return name


def _detect_layout(objs: list[dict[str, Any]]) -> str:
    if not objs or any("steps" in o or "reasoning" in o for o in objs):
        return "generic"
    if 2 * sum(o.get("options") is not None for o in objs) > len(objs):
        return "mcq"
    if 2 * sum(_has_gsm_marker(o.get("answer")) for o in objs) > len(objs):
        return "gsm8k"
    return "generic"


def load_dataset(path: str | Path, layout: str = "auto", encoding: str = "utf-8") -> Dataset:
    """Read and validate a JSONL or CSV dataset.

    Bad rows never raise: each lands in ``Dataset.errors`` with its line number. Raises
    ``InputError`` for a missing, unreadable or binary file, or an unknown layout/encoding.
    """
    wanted = _normalise_layout(layout)
    p, head = _open_checked(path, encoding)
    fmt = _file_format(p, head, encoding)
    errors: list[RowError] = []
    if fmt == "jsonl":
        if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
            errors.append(RowError(0, "the file looks like one JSON array; write one JSON object per line"))
        rows = list(_iter_jsonl(p, encoding))
        header_line = 0
    else:
        rows, file_errors, header_line = _csv_rows(p, encoding, "\t" if fmt == "tsv" else ",")
        errors.extend(file_errors)
    objs = [(n, r) for n, r in rows if not isinstance(r, RowError)]
    errors.extend(r for _, r in rows if isinstance(r, RowError))
    chosen = wanted if wanted != "auto" else _detect_layout([o for _, o in objs])

    items: list[DatasetItem] = []
    first_seen: dict[str, int] = {}
    for n, obj in objs:
        try:
            item = _parse_row(obj, n, chosen)
        except _RowProblem as exc:
            errors.append(RowError(n, str(exc)))
            continue
        if item.id in first_seen:
            errors.append(RowError(n, f"duplicate id {item.id!r} (first seen on line {first_seen[item.id]})"))
            continue
        first_seen[item.id] = n
        items.append(item)
    if not rows and not errors:
        if header_line:
            errors.append(RowError(header_line, "no data rows after the CSV header"))
        else:
            errors.append(RowError(0, "empty file: no data rows"))
    errors.sort(key=lambda e: e.line)
    return Dataset(path=str(p), layout=chosen, items=items, errors=errors, format=fmt)
