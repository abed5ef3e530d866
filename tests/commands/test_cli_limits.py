"""Two limits of the command line, at their edges: --seed (llama.cpp seeds are 32-bit) and the cap on
how many bad lines a refused input file lists."""

from __future__ import annotations

import argparse

import pytest

from kiig_desktop.commands._common import SEED_MAX, seed_value
from kiig_desktop.strict_json import MAX_LISTED_LINES, bad_lines_error


def test_seed_accepts_exactly_zero_to_two_to_the_32_minus_one():
    assert SEED_MAX == 2**32 - 1
    assert seed_value("0") == 0 and seed_value(str(2**32 - 1)) == 2**32 - 1
    for text, words in (("-1", "between 0 and 4294967295, got -1"), (str(2**32), f"got {2**32}"),
                        ("1.5", "must be a whole number"), ("seven", "must be a whole number")):
        with pytest.raises(argparse.ArgumentTypeError, match=words):
            seed_value(text)


def _bad(n: int) -> list[tuple[int, str]]:
    return [(line, f"problem {line}") for line in range(n, 0, -1)]  # given out of order: listed by line


def test_one_bad_line_is_one_line():
    assert str(bad_lines_error("in.jsonl", _bad(1))) == "in.jsonl: line 1: problem 1 (nothing was run or stored)"


def test_bad_lines_up_to_the_cap_are_all_listed():
    lines = str(bad_lines_error("in.jsonl", _bad(MAX_LISTED_LINES))).splitlines()
    assert lines[0] == f"in.jsonl: {MAX_LISTED_LINES} bad lines (nothing was run or stored):"
    assert lines[1:] == [f"  line {i}: problem {i}" for i in range(1, MAX_LISTED_LINES + 1)]


def test_bad_lines_past_the_cap_are_counted_not_listed():
    n = MAX_LISTED_LINES + 37
    lines = str(bad_lines_error("in.jsonl", _bad(n))).splitlines()
    assert lines[0] == f"in.jsonl: {n} bad lines (nothing was run or stored):"
    assert len(lines) == 1 + MAX_LISTED_LINES + 1
    assert lines[MAX_LISTED_LINES] == f"  line {MAX_LISTED_LINES}: problem {MAX_LISTED_LINES}"
    assert lines[-1] == "  ... and 37 more"
