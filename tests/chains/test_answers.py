"""Final-answer extraction from realistic model outputs, and correctness checks."""

from __future__ import annotations

import pytest

from kiig_desktop.chains.answers import extract_answer, grade, is_correct, parse_number
from kiig_desktop.chains.datasets import DatasetItem

OPTS = {"A": "Insulin glargine", "B": "Metformin", "C": "Glipizide", "D": "Pioglitazone"}
ORGS = {"A": "Escherichia coli", "B": "Staphylococcus aureus", "C": "Streptococcus pneumoniae", "D": "Listeria"}

MCQ_CASES = [
    # (model output, options, expected letter)
    ("The answer is (C).", None, "C"),
    ("**C**", None, "C"),
    ("Answer: C) Metformin", None, "C"),
    ("Metformin lowers hepatic glucose output and rarely causes hypoglycemia.\nB. Metformin", OPTS, "B"),
    ("After weighing the options, the correct option is B", OPTS, "B"),
    ("A patient with new type 2 diabetes should start metformin. The answer is metformin.", OPTS, "B"),
    ("A 55-year-old patient...\nA is wrong because insulin is not first line.\nB", OPTS, "B"),
    ("The answer is A because basal insulin is needed when HbA1c is very high.", OPTS, "A"),
    ("I think the answer is A. Wait, actually the answer is D.", OPTS, "D"),
    ("Option A is incorrect. Option B is correct.", OPTS, "B"),
    ("Final Answer: **(d)**", OPTS, "D"),
    ("Reasoning done.\n\\boxed{B}", OPTS, "B"),
    ("I would choose C since it stimulates insulin release.", OPTS, "C"),
    ("Insulin is not first line. Therefore, C is correct.", OPTS, "C"),
    (
        "Let's consider each option:\n**A**: insulin - not first line\n**B**: metformin - first line\n"
        "**C**: sulfonylurea\n**D**: glitazone\n\nThe best answer is **B**.",
        OPTS,
        "B",
    ),
    ("Options analysis: A) insulin is wrong; D) pioglitazone causes edema.\nAnswer: B", OPTS, "B"),
    ("answer: b", OPTS, "B"),
    ("The correct answer is option B, metformin.", OPTS, "B"),
    ("The most appropriate next step is B.", OPTS, "B"),
    ("(B) is the correct answer.", OPTS, "B"),
    ("I'd go with metformin", OPTS, "B"),
    ("Metformin", OPTS, "B"),
    ("The answer is: Glipizide", OPTS, "C"),
    ("The answer is C - glipizide, a sulfonylurea.", OPTS, "C"),
    ("**Answer:** A", OPTS, "A"),
    # option text named instead of the letter; the longer, exact name wins
    (
        "Gram-positive diplococci point to pneumococcus. The most likely organism is Streptococcus pneumoniae.",
        ORGS,
        "C",
    ),
    # tricky: none of these states an answer
    ("A patient presents with polyuria. A careful history is important.", OPTS, None),
    ("The answer is A patient-centred approach, not a drug.", OPTS, None),
    ("Vitamin C is the best known antioxidant.", None, None),
    ("The answer is E", OPTS, None),  # E is not an option
    ("E. coli is the most common cause of urinary infections", None, None),
    ("", OPTS, None),
]

NUMERIC_CASES = [
    ("She has 40 + 2 left.\n#### 42", "42"),
    ("The answer is $1,234.50", "1234.50"),
    ("5 + 37 = 42 apples", "42"),
    ("So the result is \\boxed{42}.", "42"),
    ("The discount is 42%", "42"),
    ("The temperature fell to -5 degrees.", "-5"),
    ("10 - 4 = 6", "6"),
    ("She has 1,234 stickers left.", "1234"),
    ("The answer is 3 x 4 = 12 apples.", "12"),
    ("Final answer: -17", "-17"),
    ("So the total is 12 kg.\n**Answer:** 12 kg", "12"),
    ("Therefore the answer is 1,000,000 dollars.", "1000000"),
    ("Total cost = $45.\nThe answer is 45.", "45"),
    ("The answer is 7. The check: 3 + 5 = 8 is not needed.", "7"),
    ("x = -3.5", "-3.5"),
    ("The answer is \u22128", "-8"),
    ("I first guessed the answer is 10, but recounting, the answer is 12.", "12"),
    ("Answer: 12. Step 2 of the check uses 99 marbles.", "12"),
    ("Each of the 3 friends pays $14.\n#### 14", "14"),
    ("He drank H2O all day and ran 5 km.", "5"),
    ("She ate 3/4 of the pie, so the answer is 3/4.", "0.75"),
    ("Each gets 12/4 = 3 slices", "3"),
    # documented limits: numbers written in words are not parsed, and no stray number is returned
    ("He buys 6 boxes. The answer is forty-two.", None),
    ("No numbers here", None),
]


@pytest.mark.parametrize(("text", "options", "expected"), MCQ_CASES)
def test_extract_mcq(text: str, options: dict[str, str] | None, expected: str | None) -> None:
    assert extract_answer(text, "mcq", options) == expected


@pytest.mark.parametrize(("text", "expected"), NUMERIC_CASES)
def test_extract_numeric(text: str, expected: str | None) -> None:
    assert extract_answer(text, "numeric") == expected


def test_table_is_large_enough() -> None:
    assert len(MCQ_CASES) + len(NUMERIC_CASES) >= 30


def test_extract_open_takes_last_statement_or_last_line() -> None:
    assert extract_answer("Capital? The answer is Lyon. No wait, the answer is Paris.", "open") == "Paris"
    assert extract_answer("Thinking...\n\nParis", "open") == "Paris"
    assert extract_answer("  \n ", "open") is None


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown answer kind"):
        extract_answer("42", "essay")


def test_lowercase_option_keys_are_accepted() -> None:
    assert extract_answer("The answer is (b).", "mcq", {"a": "x", "b": "y"}) == "B"


def _mcq_item(letter: str = "B") -> DatasetItem:
    return DatasetItem(id="q", question="Q?", answer=OPTS[letter], kind="mcq", options=OPTS, answer_idx=letter)


def _num_item(answer: str) -> DatasetItem:
    return DatasetItem(id="n", question="Q?", answer=answer, kind="numeric")


def test_is_correct_mcq_letters_case_insensitive() -> None:
    item = _mcq_item("B")
    assert is_correct("B", item)
    assert is_correct("b", item)
    assert is_correct(" B ", item)
    assert not is_correct("C", item)
    assert not is_correct(None, item)
    assert not is_correct("", item)
    assert is_correct("metformin", item)  # option text instead of the letter
    assert not is_correct("glipizide", item)


def test_is_correct_numeric_tolerance() -> None:
    item = _num_item("1234.5")
    assert is_correct("1234.50", item)
    assert is_correct("1,234.5", item)
    assert is_correct("1234.5000001", item)  # relative difference 8e-11
    assert not is_correct("1234.6", item)
    assert not is_correct("1235", item)
    assert is_correct("-4", _num_item("-4"))
    assert not is_correct("4", _num_item("-4"))
    assert is_correct("0", _num_item("0"))
    assert not is_correct("0.001", _num_item("0"))
    assert not is_correct("forty-two", _num_item("42"))
    big = _num_item("1000000")
    assert is_correct("1000000.5", big)  # 5e-7 relative: inside 1e-6
    assert not is_correct("1000002", big)  # 2e-6 relative: outside


def test_is_correct_open_ignores_case_punctuation_articles() -> None:
    item = DatasetItem(id="o", question="Q?", answer="The Eiffel Tower", kind="open")
    assert is_correct("eiffel tower.", item)
    assert is_correct("**The Eiffel  Tower**", item)
    assert not is_correct("Big Ben", item)


def test_parse_number() -> None:
    assert parse_number("1,234.50") == 1234.5
    assert parse_number("$-3") == -3.0
    assert parse_number("42%") == 42.0
    assert parse_number("1 and 2") is None
    assert parse_number("none") is None


def test_grade_combines_extraction_and_correctness() -> None:
    assert grade("Reasoning...\nThe answer is (B).", _mcq_item("B")) == ("B", True)
    assert grade("The answer is (C).", _mcq_item("B")) == ("C", False)
    assert grade("6 * 7 = 42\n#### 42", _num_item("42")) == ("42", True)
    assert grade("I cannot decide.", _num_item("42")) == (None, False)
