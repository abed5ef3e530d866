"""The desktop app's analysis helpers (no model, no Qt): questions, grading, step offsets, keys."""

from __future__ import annotations

import pytest

from kiig_desktop.errors import InputError
from kiig_desktop.runs.analysis import Question, StepDraft, analysis_key, grade_text, locate_steps, split_text

MCQ = Question("Which drug first?", "Metformin", {"A": "Insulin", "B": "Metformin"})


def test_question_kind_letter_and_validation():
    assert MCQ.kind == "mcq" and MCQ.correct_letter() == "B"
    assert Question("q", "42").kind == "numeric" and Question("q", "metformin").kind == "open"
    assert Question("q", "x", {"A": "a", "B": "b"}, "A").correct_letter() == "A"
    for bad in (Question("", "x"), Question("q", " "), Question("q", "c", {"A": "a", "B": "b"}),
                Question("q", "a", {"A": "a"}), Question("q", "a", {"A": "a", "B": " "})):
        with pytest.raises(InputError):
            bad.validate()
    MCQ.validate()
    assert MCQ.item() == {"question": "Which drug first?", "answer": "Metformin", "kind": "mcq",
                          "options": {"A": "Insulin", "B": "Metformin"}, "answer_idx": "B"}
    assert "B. Metformin" in MCQ.prompt() and "Answer: <letter>" in MCQ.prompt()
    assert Question.from_item(MCQ.item()) == Question("Which drug first?", "Metformin", MCQ.options, "B")


def test_grading():
    assert grade_text(MCQ, "1. Metformin first.\nAnswer: B") == ("B", True)
    assert grade_text(MCQ, "So the answer is A.") == ("A", False)
    assert grade_text(Question("2+2?", "4"), "2 + 2 = 4\n#### 4") == ("4", True)
    assert grade_text(MCQ, "") == (None, None)


def test_split_and_locate_keep_offsets_into_the_text():
    text = "1. First step.\n2. Second step.\nAnswer: B"
    out = split_text(text, "auto")
    assert [s.text for s in out.steps] == ["1. First step.", "2. Second step."]
    assert all(text[s.start : s.end] == s.text for s in out.steps)
    assert out.final_answer and "B" in out.final_answer
    edited = locate_steps(text, [StepDraft("2. Second step."), StepDraft("not in the text"), out.steps[0]])
    assert (edited[0].start, edited[0].end) == (15, 30)
    assert edited[1].start is None
    assert edited[2].start == 0  # an unchanged step keeps its offsets even out of order


def test_chain_key_is_the_identity_of_the_work():
    a = analysis_key(MCQ, [StepDraft("x"), StepDraft("y")])
    assert a == analysis_key(MCQ, [StepDraft("x", 0, 1), StepDraft("y")])
    assert a != analysis_key(MCQ, [StepDraft("y"), StepDraft("x")])
    assert a != analysis_key(Question("Which drug first?", "Insulin", MCQ.options), [StepDraft("x"), StepDraft("y")])
