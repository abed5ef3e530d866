"""Final-answer extraction from free model output, and correctness against a dataset item.

Multiple choice (``kind="mcq"``): the letter is taken, in order of trust, from

1. explicit answer statements -- "The answer is (C)", "Answer: C) Metformin", "the correct option is
   B", "Option C is correct", "I would choose C", ``\\boxed{C}``, or a statement that names the option
   text ("The answer is metformin"); the LAST such statement wins, so letters discussed earlier in
   the reasoning never override the conclusion;
2. layout cues -- a last line that is only a letter ("C", "(C)", "**C**"), a last line "C. Metformin"
   or "C) Metformin", a last line equal to an option's text, or a bold letter ``**C**``.

A letter must be one of the option keys (A-E when no options are given). The article "A" ("A patient
presents ...") is never read as a letter: a bare capital followed by a lowercase word only counts
after an answer cue and when the word is a connective ("A because ...") or the option's own text.

Numeric (``kind="numeric"``): the last ``#### n``, ``\\boxed{n}`` or answer statement ("The answer is
$1,234.50", "Final answer: -3"); else the last number in the text ("= 42 apples", "42%"). Thousands
separators, currency signs, percent signs and trailing units are dropped; the result is a plain
decimal string such as ``"-1234.50"``. A fraction "3/4" becomes ``"0.75"``. Numbers written in
words ("forty-two") are not parsed: an answer statement in words returns None rather than an
unrelated earlier number.

Open answers (``kind="open"``): the rest of the last answer statement, else the last non-empty line.
"""

from __future__ import annotations

import math
import re
from typing import Any

_DEFAULT_LETTERS = "ABCDE"

# An answer cue: "answer is", "final answer:", "the correct option is", "answer would be", ...
_CUE = re.compile(
    r"""(?ix)
    \b(?:(?:final|correct|right|best|most\s+(?:likely|appropriate)|true)\s+)?
    (?:answer(?:\s+(?:choice|option))?|(?:correct|right|best|appropriate|likely)\s+(?:option|choice|response)
       |(?<=most\s)(?:likely|appropriate)(?:\s+[a-z]+){1,3}?)
    \b[\s*_]*(?:is|would\s+be|should\s+be|must\s+be|will\s+be|=|:|-)[\s*_]*:?
    (?:\s*(?:therefore|thus|clearly|probably|likely|most\s+likely|definitely|then|indeed|actually),?)?
    [ \t*_]*(?=(?P<rest>[^\n]*))
    """
)
_CHOOSE = re.compile(
    r"(?i)\bI(?:\s+would|'d|\s+will|\s+'ll)?\s+(?:choose|select|pick|go\s+with)\b[ \t]*(?=(?P<rest>[^\n]*))"
)
# "Option C is correct", "(C) is the right answer", "C is correct." at a sentence start.
_LETTER_IS_CORRECT = re.compile(
    r"(?<!\w)(?P<pre>(?i:option|choice)\s+)?[(\[*]*(?P<letter>[A-Z])[)\]*]*\s+is\s+(?:the\s+)?(?i:correct|right|best)\b"
)
_BOXED = re.compile(r"\\boxed\{(?:\\text\{)?\s*\(?(?P<inner>[^{}]*?)\)?\s*\}?\s*\}")
_BOLD_LETTER = re.compile(r"\*\*\s*\(?(?P<letter>[A-Z])[).:]?\s*\*\*")
_LETTER_LINE = re.compile(r"^[\s>*_#]*[(\[]?(?P<letter>[A-Za-z])[)\].:]?[\s*_.]*$")
_LETTER_TEXT_LINE = re.compile(r"^[\s>*_#-]*(?:\((?P<p>[A-Z])\)|(?P<l>[A-Z])[).:])\s+(?P<text>\S.*?)[\s*_.]*$")
_CONNECTIVES = {"because", "since", "as", "which", "given", "due", "from", "for", "and", "is", "was", "based", "in"}
_LEADING_MARKER = re.compile(r"(?i)^(?:option|choice|letter)\s+")
_REST_LETTER = re.compile(r"^[(\[{*_\"']*(?P<letter>[A-Za-z])(?P<close>[)\]}*_]*)['\"]?(?P<after>.*)$", re.S)

_NUM = re.compile(
    r"(?<![\w.,])(?:(?P<sign>[-\u2212+])[ \t]?)?(?:\$[ \t]?)?(?P<sign2>-)?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?!\d)"
)
_FRACTION_TAIL = re.compile(r"/(\d+)(?![\d/.,]\d)")
_GSM = re.compile(r"####[ \t]*(?P<rest>[^\n]*)")
_NUMBER_WORD = re.compile(
    r"(?i)^[\s$*_(]*(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    r"fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|"
    r"hundred|thousand|million|a\s+(?:hundred|thousand|dozen))\b(?!\s+of\b)"
)
_SENTENCE_END = re.compile(r"\.(?=\s|$)|[!?;]")


def _norm(text: str) -> str:
    """Lowercase, drop punctuation and markdown, collapse spaces (for comparing free text)."""
    text = re.sub(r"[^\w\s%.-]|(?<!\d)\.|\.(?!\d)", " ", text.casefold())
    words = [w for w in text.split() if w not in ("a", "an", "the")]
    return " ".join(words)


# ------------------------------------------------------------------------------------------ mcq


def _letter_in_rest(rest: str, options: dict[str, str] | None, letters: str) -> str | None:
    """The letter an answer statement's remainder names, by letter or by option text."""
    rest = _LEADING_MARKER.sub("", rest.strip())
    m = _REST_LETTER.match(rest)
    if m and m.group("letter").upper() in letters:
        letter, after = m.group("letter"), m.group("after")
        upper = letter.upper()
        wrapped = bool(m.group("close")) or rest[0] in "([{*_\"'"
        if wrapped and (letter.isupper() or m.group("close")):
            return upper  # "(C)", "**C**", "C)", "c)"
        if not after.strip(" \t.!*_"):
            return upper  # a letter alone at the end of the statement: "answer: b"
        if letter.isupper():
            if not after or after[0] in ".,;:!?-\u2013\u2014":
                return upper  # "C", "C.", "C - metformin"
            if after[0].isspace():
                word = after.split()[0].strip(".,;:!?")
                if word.lower() in _CONNECTIVES or word[:1].isupper() or word[:1] in "(-\u2013\u2014":
                    return upper  # "C because ...", "C Metformin"
                if options and upper in options and _norm(after).startswith(_norm(options[upper])):
                    return upper  # "A metformin" where option A is metformin
    if options and not re.match(r"(?i)\s*not\b", rest):
        return _option_named(rest, options)
    return None


def _option_named(text: str, options: dict[str, str]) -> str | None:
    """The option whose text appears earliest in ``text`` (longest on ties), matched as whole words."""
    best: tuple[int, int, str] | None = None
    low = text.casefold()
    for letter, opt in options.items():
        needle = opt.strip().casefold().rstrip(".")
        if not needle:
            continue
        m = re.search(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", low)
        if m and (best is None or (m.start(), -len(needle)) < (best[0], best[1])):
            best = (m.start(), -len(needle), letter)
    return best[2] if best else None


def _extract_letter(text: str, options: dict[str, str] | None) -> str | None:
    letters = "".join(options) if options else _DEFAULT_LETTERS
    letters = letters.upper()
    found: list[tuple[int, str]] = []
    for rx in (_CUE, _CHOOSE):
        for m in rx.finditer(text):
            letter = _letter_in_rest(m.group("rest"), options, letters)
            if letter:
                found.append((m.start(), letter))
    for m in _LETTER_IS_CORRECT.finditer(text):
        before = text[: m.start()].rstrip(" \t")
        starts_sentence = not before or before[-1] in ".!?:;,\n" or m.group(0)[0] in "([*"
        if m.group("letter") in letters and (m.group("pre") or starts_sentence):
            found.append((m.start(), m.group("letter")))
    for m in _BOXED.finditer(text):
        letter = _letter_in_rest(m.group("inner"), options, letters)
        if letter:
            found.append((m.start(), letter))
    if found:
        return max(found)[1]

    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if lines:
        last = lines[-1]
        m = _LETTER_LINE.match(last)
        if m and m.group("letter").upper() in letters and (m.group("letter").isupper() or "(" in last):
            return m.group("letter").upper()
        m = _LETTER_TEXT_LINE.match(last)
        if m:
            letter, said = m.group("p") or m.group("l"), m.group("text")
            if letter in letters:
                if options is None and (said[:1].isupper() or said[:1].isdigit()):
                    return letter
                if options and _norm(said).startswith(_norm(options[letter])):
                    return letter
        if options:
            bare = _norm(last)
            for letter, opt in options.items():
                if bare == _norm(opt):
                    return letter
    bold = [m.group("letter") for m in _BOLD_LETTER.finditer(text) if m.group("letter") in letters]
    return bold[-1] if bold else None


# -------------------------------------------------------------------------------------- numeric


def _numbers(text: str) -> list[tuple[int, str]]:
    """``(position, normalised number)`` for every number in ``text``."""
    out: list[tuple[int, str]] = []
    consumed = -1
    for m in _NUM.finditer(text):
        if m.start() < consumed:
            continue  # the denominator of a fraction already read
        negative = bool(m.group("sign2"))
        if m.group("sign") in ("-", "\u2212"):
            before = text[: m.start()].rstrip()
            negative = not (before and (before[-1].isdigit() or before[-1] in ")]%"))  # else "10 - 4"
        value = m.group("num").replace(",", "")
        frac = _FRACTION_TAIL.match(text, m.end())
        if frac and value.isdigit() and int(frac.group(1)) != 0 and text[m.start() - 1 : m.start()] != "/":
            quotient = int(value) / int(frac.group(1))
            value = str(int(quotient)) if quotient.is_integer() else f"{quotient:.10g}"
            consumed = frac.end()
        out.append((m.start(), ("-" if negative else "") + value))
    return out


def _number_in_statement(rest: str) -> str | None | bool:
    """The number an answer statement gives; False when it gives one in words; None when none."""
    cut = _SENTENCE_END.search(rest)
    sentence = rest[: cut.start()] if cut else rest
    if _NUMBER_WORD.match(sentence):
        return False
    nums = _numbers(sentence)
    if not nums:
        return None
    eq = sentence.rfind("=")
    after = [n for pos, n in nums if pos > eq] if eq >= 0 else []
    return after[0] if after else nums[0][1]


def _extract_number(text: str) -> str | None:
    found: list[tuple[int, str | bool]] = []
    for m in _GSM.finditer(text):
        nums = _numbers(m.group("rest"))
        if nums:
            found.append((m.start(), nums[0][1]))
    for m in _BOXED.finditer(text):
        nums = _numbers(m.group("inner"))
        if nums:
            found.append((m.start(), nums[-1][1]))
    for m in _CUE.finditer(text):
        value = _number_in_statement(m.group("rest"))
        if value is not None:
            found.append((m.start(), value))
    if found:
        value = max(found, key=lambda f: f[0])[1]
        return value if isinstance(value, str) else None
    nums = _numbers(text)
    return nums[-1][1] if nums else None


def _extract_open(text: str) -> str | None:
    statements = [m.group("rest") for m in _CUE.finditer(text)]
    candidates = [s for s in statements if s.strip(" *_.")] or [ln for ln in text.splitlines() if ln.strip()]
    if not candidates:
        return None
    return candidates[-1].strip().strip("*_").strip().rstrip(".").strip() or None


# ---------------------------------------------------------------------------------------- public


def extract_answer(text: str, kind: str, options: dict[str, str] | None = None) -> str | None:
    """The final answer stated in a model's output, or None when none is found.

    ``kind`` is ``"mcq"`` (returns an uppercase letter), ``"numeric"`` (a decimal string without
    thousands separators) or ``"open"`` (the stated answer text).
    """
    if not text or not text.strip():
        return None
    if kind == "mcq":
        opts = {k.strip().upper(): v for k, v in options.items()} if options else None
        return _extract_letter(text, opts)
    if kind == "numeric":
        return _extract_number(text)
    if kind == "open":
        return _extract_open(text)
    raise ValueError(f"unknown answer kind {kind!r} (expected mcq, numeric or open)")


def parse_number(text: str) -> float | None:
    """A float from a number as written ("1,234.50", "$-3", "42%"), or None."""
    nums = _numbers(text.strip())
    if len(nums) != 1:
        return None
    try:
        value = float(nums[0][1])
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def is_correct(extracted: str | None, item: Any) -> bool:
    """Whether an extracted answer matches ``item`` (a DatasetItem or anything with the same fields).

    MCQ: the letter, case-insensitive (an extracted option text also counts). Numeric: relative
    tolerance 1e-6. Open: equal after lowercasing and dropping punctuation, articles and extra spaces.
    """
    if extracted is None or not str(extracted).strip():
        return False
    extracted = str(extracted).strip()
    kind = getattr(item, "kind", "open")
    if kind == "mcq":
        letter = getattr(item, "answer_idx", None)
        if letter and extracted.upper() == letter.strip().upper():
            return True
        return len(extracted) > 1 and _norm(extracted) == _norm(item.answer)
    if kind == "numeric":
        got, want = parse_number(extracted), parse_number(item.answer)
        if got is None or want is None:
            return False
        return math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-12)
    return _norm(extracted) == _norm(item.answer)


def grade(text: str, item: Any) -> tuple[str | None, bool]:
    """Extract the answer from ``text`` for ``item`` and say whether it is correct."""
    extracted = extract_answer(text, item.kind, getattr(item, "options", None))
    return extracted, is_correct(extracted, item)
