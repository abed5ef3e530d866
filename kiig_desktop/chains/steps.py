"""Split a reasoning chain into steps, keeping character offsets into the original text.

Nothing is normalised in place: every offset refers to the string passed in (``\\r\\n`` included)
and a rule-based step's ``text`` is exactly ``original[start:end]``, trimmed of surrounding
whitespace. List markers ("1.", "- ", "Step 2:") stay in the step text.

Sections come first (:func:`find_sections`):

- ``<think>...</think>``: steps come only from inside the tags, and the text after ``</think>`` is
  the final answer. An unclosed ``<think>`` runs to the end of the text; a lone ``</think>`` (its
  opening tag was part of the prompt) closes a block starting at 0. An empty think block is
  ignored for splitting: the reply after it is the reasoning.
- Otherwise (or when nothing follows ``</think>``) a trailing final-answer section is cut off: one
  of the last three non-empty lines starting with "Final answer:", "Answer:", "**Answer:**",
  "## Final Answer" and the like, or else the last line -- or the last sentence of the last line --
  saying "(Therefore,) the answer is ...", "#### 42" or holding ``\\boxed{...}``. It is never cut
  when nothing would be left of the reasoning.

``lines`` mode: "Step N" headings, when present, own everything up to the next heading (blank lines
and sub-lists included). Otherwise each numbered ("1.", "1)", "(1)", "a)", "1、") or bulleted ("-",
"*", "•", "+") item is a step; lines indented deeper than its marker (nested lists, indented
paragraphs), unmarked lines right below it (wrapped text) and bullets right below a numbered item at
the same indent belong to it. Outside lists, each non-empty line is a step, except that a line of
40+ characters without closing punctuation followed by a line starting in lower case is taken as
hard-wrapped and joined. A heading alone on its line ("## Analysis", "**Facts:**", "Step 1:") joins
what follows it.

``sentences`` mode: blank lines, list items and headings start new blocks; inside a block, sentences
end at . ! ? ... followed by space and a capital, digit or opening quote, or right after 。！？.
Closing quotes and brackets stay with their sentence. No split after known abbreviations (e.g.,
i.e., Dr., vs., etc., approx., Fig., No. 5, St., z. B., ca., ...), inside decimals, after a list
number at line start, after single-letter initials ("Dr. J. R. Smith"; "answer is C." still ends a
sentence), or before a lower-case letter.

``auto``: ``lines`` when that gives two or more steps, else ``sentences``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InputError

MODES = ("auto", "lines", "sentences", "llm")
MAX_LLM_STEPS = 64

_ITEM_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "planning": {"type": "string"},
        "knowledge": {"type": "string"},
        "step_text": {"type": "string", "minLength": 1},
    },
    "required": ["planning", "knowledge", "step_text"],
    "additionalProperties": False,
}
DECOMPOSE_SCHEMA: dict = {
    "type": "object",
    "properties": {"steps": {"type": "array", "items": _ITEM_SCHEMA, "minItems": 1, "maxItems": MAX_LLM_STEPS}},
    "required": ["steps"],
    "additionalProperties": False,
}


@dataclass
class Step:
    """One reasoning step; ``start``/``end`` are offsets into the original text."""

    index: int
    text: str
    start: int
    end: int
    planning: str | None = None
    knowledge: str | None = None
    aligned: bool = True


@dataclass
class SplitResult:
    """Steps plus the parts of the text that are not steps (think span, final answer)."""

    steps: list[Step]
    mode: str
    requested_mode: str
    think: tuple[int, int] | None
    final_answer: str | None
    final_answer_span: tuple[int, int] | None
    fallback_reason: str | None = None

    def texts(self) -> list[str]:
        return [step.text for step in self.steps]


@dataclass(frozen=True)
class Sections:
    """Where the reasoning lies in a text: steps come from ``text[start:end]``."""

    start: int
    end: int
    think: tuple[int, int] | None
    final_answer: str | None
    final_answer_span: tuple[int, int] | None


# ---------------------------------------------------------------------------------------- patterns

_NEWLINE = re.compile(r"\r\n|\r|\n")
_THINK_OPEN = re.compile(r"<\s*think(?:ing)?\s*>", re.I)
_THINK_CLOSE = re.compile(r"<\s*/\s*think(?:ing)?\s*>", re.I)

_ITEM_RE = re.compile(
    r"\s*(?:(?P<bullet>[-*•‣◦▪–+])|\(\d{1,3}\)|\d{1,3}(?:\.\d{1,3})*[.)]|\([a-zA-Z]\)|[a-z]\))(?=\s|$)"
    r"|\s*(?:\d{1,3}[、．]|（\d{1,3}）|[一二三四五六七八九十]{1,3}、)"
)
_STEP_WORDS = r"(?:step|schritt|étape|etape|paso|passo|stap|krok|шаг)"
_NUMERAL = r"[\d一二三四五六七八九十]{1,3}"
_STEP_RE = re.compile(
    r"\s*(?:#{1,6}\s*)?(?:\*\*|__)?\s*"
    r"(?:" + _STEP_WORDS + r"\s*\d{1,3}|步骤\s*" + _NUMERAL + r"|第\s*" + _NUMERAL + r"\s*步)"
    r"(?:\s*(?:\*\*|__))?\s*(?:[:.)：\-–—]|(?=\s|$))\s*(?:\*\*|__)?",
    re.I,
)
_MD_HEADING_RE = re.compile(r"\s{0,3}#{1,6}\s+\S")
_BOLD_LINE_RE = re.compile(r"\s*(\*\*|__)([^*_]{1,60})\1\s*[:：]?\s*$")

_LEAD = r"[\s>*_#]*"
_ANSWER_HEAD_RE = re.compile(
    _LEAD + r"(?:final\s+answer|answer|endg[üu]ltige\s+antwort|antwort|r[ée]ponse(?:\s+finale)?"
    r"|respuesta(?:\s+final)?|最终答案|答案)\s*[*_]*\s*(?:[:：]|$)",
    re.I,
)
_ANSWER_IS_RE = re.compile(
    _LEAD + r"(?:(?:so|thus|therefore|hence|consequently|overall|finally|in\s+conclusion)\b[\s,]*)?"
    r"(?:the\s+|my\s+|our\s+)?(?:final\s+|correct\s+|right\s+|best\s+)?(?:answer|option|choice)\s*"
    r"(?:(?:is|would\s+be|should\s+be|must\s+be)\b|[:：])",
    re.I,
)
_GSM8K_RE = re.compile(r"\s*####\s*(?!step\b)\S", re.I)

_TERM_RUN = re.compile(r"[.!?…。！？]+")
_CJK_END = "。！？"
_CLOSERS = "\"'”’)]}»」』）*_"
_OPENERS = "\"'“‘([{*_$¿¡«「『（\\"
_END_PUNCT = ".!?:;。！？：；…"
_LIST_NUMBER_RE = re.compile(r"\s*(?:[#>*_]+\s*)?(?:" + _STEP_WORDS + r"\s*)?\d{1,3}(?:\.\d{1,3})*", re.I)
_LAST_TOKEN_RE = re.compile(r"(\S+)\s*$")
_DOTTED_RE = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")
_SINGLE_LETTER_RE = re.compile(r"\s*[^\W\d_]\.")
_ABBREVIATIONS = frozenset(
    "e.g i.e dr mr mrs ms prof vs etc approx fig figs st cf eq eqs al ca resp incl jr sr vol ref dept"
    " bzw usw vgl nr abb evtl ggf inkl bspw sog mme mlle env".split()
)
# Capitalised words after which a single capital letter is a label, not an initial ("Option C.").
_LABEL_WORDS = frozenset(
    "option options answer choice vitamin type group grade stage class phase plan hepatitis item letter point"
    " lead schedule".split()
)


# ---------------------------------------------------------------------------------------- sections


def find_sections(text: str) -> Sections:
    """Locate the think block, the reasoning region and a trailing final answer."""
    opened = _THINK_OPEN.search(text)
    if opened:
        closed = _THINK_CLOSE.search(text, opened.end())
        think = (opened.end(), closed.start() if closed else len(text))
        after = closed.end() if closed else len(text)
    else:
        closed = _THINK_CLOSE.search(text)
        if closed is None:
            return _cut_final_answer(text, 0, len(text), None)
        think, after = (0, closed.start()), closed.end()
    if not text[think[0] : think[1]].strip():
        return _cut_final_answer(text, after, len(text), think)
    fa_start, fa_end = _trim(text, after, len(text))
    if fa_start < fa_end:
        return Sections(think[0], think[1], think, text[fa_start:fa_end], (fa_start, fa_end))
    return _cut_final_answer(text, think[0], think[1], think)


def _cut_final_answer(text: str, lo: int, hi: int, think: tuple[int, int] | None) -> Sections:
    cut = _final_answer_start(text, lo, hi)
    if cut is None:
        return Sections(lo, hi, think, None, None)
    fa_start, fa_end = _trim(text, cut, hi)
    return Sections(lo, cut, think, text[fa_start:fa_end], (fa_start, fa_end))


def _final_answer_start(text: str, lo: int, hi: int) -> int | None:
    lines = [ln for ln in _scan_lines(text, lo, hi) if ln.kind != "blank"]
    if not lines:
        return None
    for ln in lines[-3:]:
        if _ANSWER_HEAD_RE.match(ln.text) and text[lo : ln.start].strip():
            return ln.start
    last = lines[-1]
    if _is_answer_line(last.text) and text[lo : last.start].strip():
        return last.start
    sentences = _sentence_spans(text, last.start, last.end)
    if len(sentences) >= 2 and _is_answer_line(text[sentences[-1][0] : sentences[-1][1]]):
        return sentences[-1][0]
    return None


def _is_answer_line(line: str) -> bool:
    return bool(_ANSWER_HEAD_RE.match(line) or _ANSWER_IS_RE.match(line) or _GSM8K_RE.match(line) or "\\boxed{" in line)


# ---------------------------------------------------------------------------------------- lines


@dataclass
class _Line:
    start: int
    end: int
    text: str
    kind: str  # blank | item | step | heading | plain
    indent: int = 0
    bullet: bool = False  # an item marked by a bullet rather than a number
    bare: bool = False  # a heading with nothing after it on its line


@dataclass
class _Unit:
    start: int
    end: int
    kind: str  # item | heading | plain
    indent: int
    bullet: bool
    last: str  # text of its last line


def _scan_lines(text: str, lo: int, hi: int) -> list[_Line]:
    lines = []
    pos = lo
    while pos < hi:
        m = _NEWLINE.search(text, pos, hi)
        end = m.start() if m else hi
        lines.append(_classify(text, pos, end))
        if m is None:
            break
        pos = m.end()
    return lines


def _classify(text: str, start: int, end: int) -> _Line:
    s = text[start:end]
    if not s.strip():
        return _Line(start, end, s, "blank")
    expanded = s.expandtabs(4)
    indent = len(expanded) - len(expanded.lstrip())
    if m := _ITEM_RE.match(s):
        return _Line(start, end, s, "item", indent, bullet=m.group("bullet") is not None)
    if m := _STEP_RE.match(s):
        return _Line(start, end, s, "step", indent, bare=not s[m.end() :].strip(" \t*_#:："))
    bold = _BOLD_LINE_RE.match(s)
    if _MD_HEADING_RE.match(s) or (bold and bold.group(2).rstrip()[-1:] not in ".!?。！？"):
        return _Line(start, end, s, "heading", indent, bare=True)
    return _Line(start, end, s, "plain", indent)


def _wrapped(prev: str, nxt: str) -> bool:
    """True when ``nxt`` looks like the hard-wrapped continuation of the plain line ``prev``."""
    tail = prev.rstrip().rstrip(_CLOSERS)
    return len(prev.strip()) >= 40 and bool(tail) and tail[-1] not in _END_PUNCT and nxt.lstrip()[:1].islower()


def _joins(unit: _Unit, ln: _Line, gap: bool) -> bool:
    if unit.kind == "heading":
        return True
    if unit.kind == "item":
        if ln.indent > unit.indent:
            return True
        if ln.kind == "item":
            return ln.bullet and not unit.bullet and not gap
        return ln.kind == "plain" and not gap
    return ln.kind == "plain" and not gap and _wrapped(unit.last, ln.text)


def _block_units(lines: list[_Line]) -> list[_Unit]:
    units: list[_Unit] = []
    gap = False
    for ln in lines:
        if ln.kind == "blank":
            gap = True
            continue
        kind = "heading" if ln.bare else ln.kind
        cur = units[-1] if units else None
        if cur is not None and _joins(cur, ln, gap):
            cur.end, cur.last = ln.end, ln.text
            if cur.kind == "heading" and kind != "heading":
                cur.kind, cur.indent, cur.bullet = kind, ln.indent, ln.bullet
        else:
            units.append(_Unit(ln.start, ln.end, kind, ln.indent, ln.bullet, ln.text))
        gap = False
    return units


def _line_spans(text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    lines = _scan_lines(text, lo, hi)
    heads = [i for i, ln in enumerate(lines) if ln.kind == "step"]
    if not heads:
        return [(u.start, u.end) for u in _block_units(lines)]
    units = _block_units(lines[: heads[0]])
    first = lines[heads[0]].start
    if units and units[-1].kind == "heading":  # a title just above "Step 1"
        first = units.pop().start
    spans = [(u.start, u.end) for u in units]
    bounds = [*heads, len(lines)]
    for n, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        spans.append((first if n == 0 else lines[a].start, lines[b - 1].end))
    return spans


# ---------------------------------------------------------------------------------------- sentences


def _sentence_mode_spans(text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    blocks: list[list[int]] = []
    pending = False  # the open block holds only a heading so far
    gap = True
    for ln in _scan_lines(text, lo, hi):
        if ln.kind == "blank":
            gap = True
            continue
        if blocks and (pending or (not gap and ln.kind == "plain")):
            blocks[-1][1] = ln.end
        else:
            blocks.append([ln.start, ln.end])
        pending = ln.bare
        gap = False
    spans: list[tuple[int, int]] = []
    for start, end in blocks:
        spans.extend(_sentence_spans(text, start, end))
    return spans


def _sentence_spans(text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    spans = []
    seg = lo
    for m in _TERM_RUN.finditer(text, lo, hi):
        i, j = m.span()
        k = j
        while k < hi and text[k] in _CLOSERS:
            k += 1
        if _is_boundary(text, lo, hi, i, j, k):
            spans.append((seg, k))
            seg = k
    spans.append((seg, hi))
    return [t for t in (_trim(text, s, e) for s, e in spans) if t[0] < t[1]]


def _is_boundary(text: str, lo: int, hi: int, i: int, j: int, k: int) -> bool:
    """Does the terminator run ``text[i:j]`` (closers up to ``k``) end a sentence?"""
    run = text[i:j]
    if any(c in _CJK_END for c in run):
        return True
    if k < hi and not text[k].isspace():
        return False  # 2.5, e.g, x.y
    n = k
    while n < hi and text[n].isspace():
        n += 1
    if n >= hi:
        return True
    nxt = text[n]
    if not (nxt.isalnum() or nxt in _OPENERS):
        return False  # "5! = 120"
    if run.strip(".…"):
        return True  # ends with ! or ?
    if nxt.islower():
        return False
    return run != "." or not _period_continues(text, lo, i, nxt)


def _period_continues(text: str, lo: int, i: int, nxt: str) -> bool:
    """True when the period at ``i`` belongs to an abbreviation, initial or list number."""
    near = max(lo, i - 24)  # a list number ("12.", "## Step 3.") is short
    newline = max(text.rfind("\n", near, i), text.rfind("\r", near, i))
    line_start = newline + 1 if newline >= 0 else lo if near == lo else -1
    if line_start >= 0 and _LIST_NUMBER_RE.fullmatch(text, line_start, i):
        return True
    word = _last_token(text, lo, i)
    low = word.lower()
    if low in _ABBREVIATIONS or (low == "no" and nxt.isdigit()) or _DOTTED_RE.fullmatch(word):
        return True
    if len(word) == 1 and word.isalpha():
        prev = _last_token(text, lo, i - 1)
        if word.islower():  # "z. B.", "d. h." -- but a variable in "solve for x. Then" ends a sentence
            return _SINGLE_LETTER_RE.fullmatch(prev) is not None or _SINGLE_LETTER_RE.match(text, i + 1) is not None
        if not prev or prev[-1] in ".!?:":
            return True  # "J. Smith" opening a sentence, "Dr. J. Smith", "J. R. Smith"
        return prev[0].isupper() and prev.lower().rstrip(",;") not in _LABEL_WORDS
    return False


def _last_token(text: str, lo: int, i: int) -> str:
    m = _LAST_TOKEN_RE.search(text, max(lo, i - 80), i)
    return m.group(1).lstrip("\"'“‘([{*_") if m else ""


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


# ---------------------------------------------------------------------------------------- public API


def split_reasoning(text: str, mode: str = "auto") -> SplitResult:
    """Split ``text`` into steps by rules; ``mode`` is auto, lines or sentences."""
    if mode == "llm":
        raise InputError("the llm split mode needs a model", hint="use chains.steps_llm.split_with_llm() with a generator")
    if mode not in MODES:
        raise InputError(f"unknown split mode {mode!r}", hint="use one of: " + ", ".join(MODES))
    if not isinstance(text, str):
        raise InputError("the reasoning to split must be text")
    sec = find_sections(text)
    used = "sentences" if mode == "sentences" else "lines"
    if used == "lines":
        spans = [t for t in (_trim(text, s, e) for s, e in _line_spans(text, sec.start, sec.end)) if t[0] < t[1]]
    if used == "sentences" or (mode == "auto" and len(spans) < 2):
        used = "sentences"
        spans = _sentence_mode_spans(text, sec.start, sec.end)
    steps = [Step(n, text[s:e], s, e) for n, (s, e) in enumerate(spans)]
    return SplitResult(steps, used, mode, sec.think, sec.final_answer, sec.final_answer_span)

