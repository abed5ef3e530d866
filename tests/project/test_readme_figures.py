"""Every figure the README quotes comes from a file in benchmarks/results (or is declared not to be a
measurement: a target, a setting, a size on screen...), and equals that file's value as rounded in
the README. docs/figures.json holds the sources: a list of [quote, [figure spec, ...]], where the
quote is a piece of the README and each spec gives one number of the quote, in order:

- ``"FILE:KEY/KEY/0/KEY"`` the value at that path of benchmarks/results/FILE;
- ``"= EXPR"`` an arithmetic expression over such ``[FILE:PATH]`` values (ratios, percentages, MiB);
- ``"max FILE:PATH"`` / ``"min FILE:PATH"`` the extreme over a path whose ``*`` parts take every key;
- ``"not measured: WHY"`` for a number that is not a result (WHY one of NOT_MEASURED).

A figure is a number with a unit (s, ms, tok/s, MB, MiB, %, x, nats, ...) or any decimal number
outside code, or a number in a table cell that holds only numbers. A figure no quote covers fails the test with its line."""

from __future__ import annotations

import json
import re

from tests.support.paths import ROOT

README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results"
FIGURES = ROOT / "docs" / "figures.json"
NOT_MEASURED = ("a target", "a setting", "a threshold", "a size on screen", "a confidence level", "a definition",
                "a version", "a reference")

NUMBER = r"(?<![\d.,])(?:(?<![\w.])[-−+])?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
UNITS = r"(?:tok/s|ms|s|MB|MiB|GB|KB|x|%|nats|items/min|chunks/s|minutes|points)"
FIGURE = re.compile(rf"(?<![\w.\-/]){NUMBER}(?:\s?(?:-|–|to)\s?{NUMBER})?\s?{UNITS}(?!\w)")
DECIMAL = re.compile(r"(?<![\w.])(?<![A-Za-z]-)[-−+]?\d+\.\d+(?![\w.]|\.\d)")  # 0.33, 16.9/16.4: any decimal in prose
NUMERIC_CELL = re.compile(r"^[\s\d.,%x\[\]−+\-/*()]*\d[\s\d.,%x\[\]−+\-/*()]*$")


def _code_spans(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"```.*?```|`[^`\n]*`", text, flags=re.S)]


def figures(text: str) -> list[tuple[int, str]]:
    """(offset, number text) of every figure of a markdown text, in order."""
    code = _code_spans(text)
    spans = []
    for pattern in (FIGURE, DECIMAL):
        for m in pattern.finditer(text):
            if not any(a <= m.start() < b for a, b in code):
                spans.append((m.start(), m.end()))
    for row in re.finditer(r"^\|.*\|$", text, flags=re.M):
        offset = row.start() + 1
        for cell in row.group(0)[1:-1].split("|"):
            if NUMERIC_CELL.match(cell):
                spans.append((offset, offset + len(cell)))
            offset += len(cell) + 1
    found = {a + m.start(): m.group(0) for a, b in spans for m in re.finditer(NUMBER, text[a:b])}
    return sorted(found.items())


def _value(spec: str) -> float:
    def at(ref: str) -> float:
        name, _, path = ref.partition(":")
        value = json.loads((RESULTS / name).read_text(encoding="utf-8"))
        for key in path.split("/"):
            value = value[int(key)] if isinstance(value, list) else value[key]
        return float(value)

    if spec.startswith(("max ", "min ")):  # the largest or smallest value over a path with * parts
        name, _, path = spec[4:].partition(":")
        values = [json.loads((RESULTS / name).read_text(encoding="utf-8"))]
        for key in path.split("/"):
            values = [x for v in values for x in ((v.values() if isinstance(v, dict) else v) if key == "*" else
                                                   [v[int(key)] if isinstance(v, list) else v[key]])]
        return float((max if spec.startswith("max") else min)(values))
    if spec.startswith("="):
        expr = re.sub(r"\[([^\[\]]+\.json:[^\[\]]*)\]", lambda m: repr(at(m.group(1))), spec[1:])
        assert re.fullmatch(r"(?:[\d.e+\-*/(), ]|min|max)+", expr), f"not an arithmetic expression: {spec}"
        return float(eval(expr, {"__builtins__": {}, "min": min, "max": max}))  # noqa: S307 - digits and operators only, checked above
    return at(spec)


def _equal_as_quoted(quoted: str, value: float) -> bool:
    number = quoted.replace("−", "-").replace(",", "").lstrip("+")
    decimals = len(number.split(".")[1]) if "." in number else 0
    return abs(value - float(number)) <= 0.5 * 10 ** -decimals + 1e-9


def _entries() -> list[tuple[str, list[str]]]:
    return [(q, specs) for q, specs in json.loads(FIGURES.read_text(encoding="utf-8"))["quotes"]]


def test_every_figure_in_the_readme_has_a_source():
    text = README.read_text(encoding="utf-8")
    covered: set[int] = set()
    for quote, _ in _entries():
        for m in re.finditer(re.escape(quote), text):
            covered.update(range(m.start(), m.end()))
    missing = [f"README line {text.count(chr(10), 0, pos) + 1}: {number!r} in "
               f"{text[max(0, pos - 50):pos + 30]!r} has no source in docs/figures.json"
               for pos, number in figures(text) if pos not in covered]
    assert missing == [], "\n".join(missing)


def test_every_sourced_figure_equals_its_results_file():
    text = README.read_text(encoding="utf-8")
    problems = []
    for quote, specs in _entries():
        if quote not in text:
            problems.append(f"docs/figures.json quotes {quote!r}, which is not in the README")
            continue
        numbers = [n for _, n in figures(quote)]
        if len(numbers) != len(specs):
            problems.append(f"{quote!r} holds figures {numbers} but docs/figures.json gives {len(specs)} sources")
            continue
        for number, spec in zip(numbers, specs, strict=True):
            if spec.startswith("not measured: "):
                if spec.removeprefix("not measured: ") not in NOT_MEASURED:
                    problems.append(f"{number} in {quote!r}: {spec!r} is not one of {NOT_MEASURED}")
                continue
            value = _value(spec)
            if not _equal_as_quoted(number, value):
                problems.append(f"README says {number} in {quote!r}; {spec} gives {value:g}")
    assert problems == [], "\n".join(problems)


def test_the_check_finds_figures_and_catches_a_wrong_one():
    sample = "took 7 s (`x 3 s`), prefill 47,423 tok/s, 6.6x\n\n| 4 | 0.86 | name 2 |\n"
    assert [n for _, n in figures(sample)] == ["7", "47,423", "6.6", "4", "0.86"]
    assert _equal_as_quoted("47,423", 47423.18) and not _equal_as_quoted("44,500", 47423.18)
    assert _equal_as_quoted("−1.52", -1.5186) and _equal_as_quoted("87", 0.8743 * 100)
    assert _value("= 100 * [generation.json:generation_tok_s_median] / [generation.json:generation_tok_s_median]") == 100
