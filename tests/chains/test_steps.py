"""Step decomposition: rule-based splitting on tricky texts, and LLM decomposition with fake models."""

from __future__ import annotations

import json

import pytest

from kiig_desktop.chains.steps import DECOMPOSE_SCHEMA, MODES, SplitResult, split_reasoning
from kiig_desktop.chains.steps_llm import split_with_llm
from kiig_desktop.errors import Cancelled, EngineError, InputError, WorkerCrashed


def assert_offsets(text: str, result: SplitResult) -> None:
    """Every rule-based step is exactly its original span, trimmed, and steps are in order."""
    last_end = 0
    for n, step in enumerate(result.steps):
        assert step.index == n
        assert step.text == text[step.start : step.end]
        assert step.text and step.text == step.text.strip()
        assert step.start >= last_end
        last_end = step.end
    if result.final_answer_span is not None:
        start, end = result.final_answer_span
        assert text[start:end] == result.final_answer
        assert all(step.end <= start for step in result.steps)


# (case id, text, requested mode, mode used, step texts, final answer)
CASES = [
    (
        "decimals",
        "The dose is 2.5 mg per kg. The child weighs 0.75 kg more than before. So the total is 3.25 mg.",
        "auto",
        "sentences",
        ["The dose is 2.5 mg per kg.", "The child weighs 0.75 kg more than before.", "So the total is 3.25 mg."],
        None,
    ),
    (
        "abbreviations",
        "Drugs such as NSAIDs, e.g. ibuprofen, reduce pain. Dr. Smith prescribed approx. 400 mg vs. placebo. "
        "See Fig. 2 for details, i.e. the dose curve. Mr. and Mrs. Lee agreed.",
        "auto",
        "sentences",
        [
            "Drugs such as NSAIDs, e.g. ibuprofen, reduce pain.",
            "Dr. Smith prescribed approx. 400 mg vs. placebo.",
            "See Fig. 2 for details, i.e. the dose curve.",
            "Mr. and Mrs. Lee agreed.",
        ],
        None,
    ),
    (
        "etc-no-st",
        "Patients came from St. Louis, Boston, etc. and were enrolled. Trial No. 5 was stopped early. The reply was No. Then we moved on.",
        "sentences",
        "sentences",
        [
            "Patients came from St. Louis, Boston, etc. and were enrolled.",
            "Trial No. 5 was stopped early.",
            "The reply was No.",
            "Then we moved on.",
        ],
        None,
    ),
    (
        "initials",
        "The method was described by Dr. J. R. Smith in 1998. It is widely used.",
        "auto",
        "sentences",
        ["The method was described by Dr. J. R. Smith in 1998.", "It is widely used."],
        None,
    ),
    (
        "option-letters-and-variables",
        "This rules out choice B. Next, consider Option C. It fits. Solve for x. Then we are done.",
        "auto",
        "sentences",
        ["This rules out choice B.", "Next, consider Option C.", "It fits.", "Solve for x.", "Then we are done."],
        None,
    ),
    (
        "quotes-and-parentheses",
        'He said "stop now." Then he left. (This was odd.) Finally it ended!',
        "auto",
        "sentences",
        ['He said "stop now."', "Then he left.", "(This was odd.)", "Finally it ended!"],
        None,
    ),
    (
        "factorial-and-questions",
        "Is 5! = 120? Yes, it is. Why? Because 5*4*3*2*1 = 120... Right.",
        "auto",
        "sentences",
        ["Is 5! = 120?", "Yes, it is.", "Why?", "Because 5*4*3*2*1 = 120...", "Right."],
        None,
    ),
    (
        "numbered-dot",
        "1. Compute the dose: 2.5 mg/kg.\n2. Multiply by weight (20 kg).\n3. The total is 50 mg.",
        "auto",
        "lines",
        ["1. Compute the dose: 2.5 mg/kg.", "2. Multiply by weight (20 kg).", "3. The total is 50 mg."],
        None,
    ),
    (
        "numbered-paren",
        "1) Recall the formula.\n2) Insert the values.\n(3) Simplify.",
        "auto",
        "lines",
        ["1) Recall the formula.", "2) Insert the values.", "(3) Simplify."],
        None,
    ),
    (
        "bullets",
        "- Aspirin inhibits COX.\n* COX makes prostaglandins.\n• Fewer prostaglandins, less pain.\n+ So pain drops.",
        "auto",
        "lines",
        [
            "- Aspirin inhibits COX.",
            "* COX makes prostaglandins.",
            "• Fewer prostaglandins, less pain.",
            "+ So pain drops.",
        ],
        None,
    ),
    (
        "nested-list",
        "1. Identify the drug\n   - it is aspirin\n   - it inhibits COX\n2. Compute the dose\n\n   * 10 mg/kg\n3. Check interactions",
        "auto",
        "lines",
        [
            "1. Identify the drug\n   - it is aspirin\n   - it inhibits COX",
            "2. Compute the dose\n\n   * 10 mg/kg",
            "3. Check interactions",
        ],
        None,
    ),
    (
        "unindented-bullets-under-numbers",
        "1. **Identify**\n- the drug is aspirin\n2. **Mechanism**\n- it blocks COX",
        "lines",
        "lines",
        ["1. **Identify**\n- the drug is aspirin", "2. **Mechanism**\n- it blocks COX"],
        None,
    ),
    (
        "continuation-lines",
        "- First we note that the patient is\n  febrile and tachycardic.\n- Next we check labs.\nThey are normal.",
        "auto",
        "lines",
        ["- First we note that the patient is\n  febrile and tachycardic.", "- Next we check labs.\nThey are normal."],
        None,
    ),
    (
        "intro-then-list",
        "Let's think step by step.\n1. a is 3.\n2. b is 4.",
        "auto",
        "lines",
        ["Let's think step by step.", "1. a is 3.", "2. b is 4."],
        None,
    ),
    (
        "step-headings-inline",
        "Step 1: Read the question.\nStep 2: Recall that aspirin inhibits COX.\nStep 3. Conclude it lowers prostaglandins.",
        "auto",
        "lines",
        [
            "Step 1: Read the question.",
            "Step 2: Recall that aspirin inhibits COX.",
            "Step 3. Conclude it lowers prostaglandins.",
        ],
        None,
    ),
    (
        "step-headings-alone",
        "Step 1:\nFind x.\nx = 4.\n\nStep 2:\nFind y.\n- y = 2x\n- y = 8",
        "auto",
        "lines",
        ["Step 1:\nFind x.\nx = 4.", "Step 2:\nFind y.\n- y = 2x\n- y = 8"],
        None,
    ),
    (
        "markdown-step-headings",
        "## Solution\n**Step 1: Identify**\nThe drug is aspirin.\n### Step 2 - Mechanism\nIt blocks COX.",
        "auto",
        "lines",
        ["## Solution\n**Step 1: Identify**\nThe drug is aspirin.", "### Step 2 - Mechanism\nIt blocks COX."],
        None,
    ),
    (
        "heading-joins-next-block",
        "### Analysis\n\nThe drug is aspirin.\n\nIt blocks COX.",
        "auto",
        "lines",
        ["### Analysis\n\nThe drug is aspirin.", "It blocks COX."],
        None,
    ),
    (
        "paragraphs",
        "First paragraph, sentence one. Sentence two.\n\nSecond paragraph here.",
        "auto",
        "lines",
        ["First paragraph, sentence one. Sentence two.", "Second paragraph here."],
        None,
    ),
    (
        "plain-lines",
        "x = 3\ny = x + 2 = 5\nso x + y = 8",
        "auto",
        "lines",
        ["x = 3", "y = x + 2 = 5", "so x + y = 8"],
        None,
    ),
    (
        "hard-wrapped-paragraph",
        "The patient presents with a fever of 39.5 degrees and a\nrash that started on the face and spread to the trunk,\n"
        "which suggests measles. Koplik spots would confirm it.",
        "auto",
        "sentences",
        [
            "The patient presents with a fever of 39.5 degrees and a\nrash that started on the face and spread to the trunk,\n"
            "which suggests measles.",
            "Koplik spots would confirm it.",
        ],
        None,
    ),
    (
        "crlf-list",
        "1. First step.\r\n2. Second step.\r\n\r\n3. Third step.\r\n",
        "auto",
        "lines",
        ["1. First step.", "2. Second step.", "3. Third step."],
        None,
    ),
    (
        "crlf-nested-and-final",
        "1. Identify\r\n   - aspirin\r\n2. Conclude\r\nFinal answer: B\r\n",
        "auto",
        "lines",
        ["1. Identify\r\n   - aspirin", "2. Conclude"],
        "Final answer: B",
    ),
    (
        "crlf-sentences",
        "We add 2.5 and 3.\r\nThen we double it,\r\ngetting 11. Done.",
        "sentences",
        "sentences",
        ["We add 2.5 and 3.", "Then we double it,\r\ngetting 11.", "Done."],
        None,
    ),
    (
        "empty-lines",
        "\n\n  First idea.\n\n\n\nSecond idea.\n\n",
        "auto",
        "lines",
        ["First idea.", "Second idea."],
        None,
    ),
    (
        "lines-mode-single-paragraph",
        "One sentence. Another sentence.",
        "lines",
        "lines",
        ["One sentence. Another sentence."],
        None,
    ),
    (
        "sentences-mode-on-list",
        "1. Compute x. Then y.\n2. Done.",
        "sentences",
        "sentences",
        ["1. Compute x.", "Then y.", "2. Done."],
        None,
    ),
    (
        "think-closed",
        "<think>\nFirst, recall X.\nThen derive Y.\n</think>\n\nThe answer is B.",
        "auto",
        "lines",
        ["First, recall X.", "Then derive Y."],
        "The answer is B.",
    ),
    (
        "think-unclosed",
        "<think>\nFirst, recall X. Then derive Y.",
        "auto",
        "sentences",
        ["First, recall X.", "Then derive Y."],
        None,
    ),
    (
        "think-close-only",
        "First, recall X.\nThen derive Y.\n</think>\nAnswer: B",
        "auto",
        "lines",
        ["First, recall X.", "Then derive Y."],
        "Answer: B",
    ),
    (
        "think-empty-block",
        "<think>\n\n</think>\n\nSince 2+2=4, doubling gives 8.\nThe answer is 8.",
        "auto",
        "sentences",
        ["Since 2+2=4, doubling gives 8."],
        "The answer is 8.",
    ),
    (
        "think-crlf",
        "<think>\r\nA is small.\r\nB is large.\r\n</think>\r\nSo B.",
        "auto",
        "lines",
        ["A is small.", "B is large."],
        "So B.",
    ),
    (
        "think-with-final-section-inside",
        "<think>\nWe add 3 and 4.\nThat gives 7.\nFinal answer: 7\n</think>",
        "auto",
        "lines",
        ["We add 3 and 4.", "That gives 7."],
        "Final answer: 7",
    ),
    (
        "final-answer-colon",
        "We add 3 and 4.\nThat gives 7.\nFinal answer: 7",
        "auto",
        "lines",
        ["We add 3 and 4.", "That gives 7."],
        "Final answer: 7",
    ),
    (
        "final-bold-answer",
        "- Aspirin blocks COX.\n- So it reduces fever.\n\n**Answer:** B",
        "auto",
        "lines",
        ["- Aspirin blocks COX.", "- So it reduces fever."],
        "**Answer:** B",
    ),
    (
        "final-answer-heading-block",
        "We add 3 and 4.\nThat gives 7.\n## Final Answer\n\nC. Seven",
        "auto",
        "lines",
        ["We add 3 and 4.", "That gives 7."],
        "## Final Answer\n\nC. Seven",
    ),
    (
        "final-therefore",
        "Aspirin blocks COX.\nCOX makes thromboxane.\nTherefore, the answer is (C).",
        "auto",
        "lines",
        ["Aspirin blocks COX.", "COX makes thromboxane."],
        "Therefore, the answer is (C).",
    ),
    (
        "final-gsm8k",
        "She sold 48/2 = 24 clips in May.\nShe sold 48+24 = 72 clips in total.\n#### 72",
        "auto",
        "lines",
        ["She sold 48/2 = 24 clips in May.", "She sold 48+24 = 72 clips in total."],
        "#### 72",
    ),
    (
        "final-boxed",
        "Let x = 2. Then x + 3 = 5.\n$\\boxed{5}$",
        "auto",
        "sentences",
        ["Let x = 2.", "Then x + 3 = 5."],
        "$\\boxed{5}$",
    ),
    (
        "final-last-sentence-of-paragraph",
        "Natalia sold 48/2 = 24 clips in May. Natalia sold 48+24 = 72 clips altogether. The answer is 72.",
        "auto",
        "sentences",
        ["Natalia sold 48/2 = 24 clips in May.", "Natalia sold 48+24 = 72 clips altogether."],
        "The answer is 72.",
    ),
    (
        "mid-text-answer-is-kept",
        "At first I thought the answer is A.\nThe answer is A, one might say.\nBut A ignores renal clearance.\nSo we pick the other drug.",
        "auto",
        "lines",
        [
            "At first I thought the answer is A.",
            "The answer is A, one might say.",
            "But A ignores renal clearance.",
            "So we pick the other drug.",
        ],
        None,
    ),
    (
        "answer-only-text-is-a-step",
        "The answer is 42.",
        "auto",
        "sentences",
        ["The answer is 42."],
        None,
    ),
    (
        "answer-isnt-not-final",
        "We try small numbers.\nThe answer isn't obvious yet.",
        "auto",
        "lines",
        ["We try small numbers.", "The answer isn't obvious yet."],
        None,
    ),
    (
        "german",
        "Die Dosis beträgt z. B. 2,5 mg pro kg. Dr. Müller empfiehlt ca. 10 mg, d. h. weniger. Das ist sicher.",
        "auto",
        "sentences",
        ["Die Dosis beträgt z. B. 2,5 mg pro kg.", "Dr. Müller empfiehlt ca. 10 mg, d. h. weniger.", "Das ist sicher."],
        None,
    ),
    (
        "german-steps",
        "Schritt 1: Dosis berechnen.\nSchritt 2: Mit dem Gewicht multiplizieren.\nAntwort: 50 mg",
        "auto",
        "lines",
        ["Schritt 1: Dosis berechnen.", "Schritt 2: Mit dem Gewicht multiplizieren."],
        "Antwort: 50 mg",
    ),
    (
        "chinese-sentences",
        "首先，计算剂量。然后乘以体重！最后检查“结果”？",
        "auto",
        "sentences",
        ["首先，计算剂量。", "然后乘以体重！", "最后检查“结果”？"],
        None,
    ),
    (
        "chinese-list-and-answer",
        "1、计算剂量为2.5毫克。\n2、乘以体重。\n答案：C",
        "auto",
        "lines",
        ["1、计算剂量为2.5毫克。", "2、乘以体重。"],
        "答案：C",
    ),
    (
        "chinese-step-headings",
        "第一步：计算剂量。\n第二步：乘以体重。",
        "auto",
        "lines",
        ["第一步：计算剂量。", "第二步：乘以体重。"],
        None,
    ),
    (
        "tabs-and-unicode",
        "1.\tÉtudier la dose.\n\t- 2,5 mg\n2.\tCalculer le total.",
        "auto",
        "lines",
        ["1.\tÉtudier la dose.\n\t- 2,5 mg", "2.\tCalculer le total."],
        None,
    ),
]


@pytest.mark.parametrize(
    ("text", "mode", "used", "expected", "final"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_split_table(text: str, mode: str, used: str, expected: list[str], final: str | None) -> None:
    result = split_reasoning(text, mode)
    assert result.texts() == expected
    assert result.mode == used
    assert result.requested_mode == mode
    assert result.final_answer == final
    assert result.fallback_reason is None
    assert all(s.planning is None and s.knowledge is None and s.aligned for s in result.steps)
    assert_offsets(text, result)
    for step in result.steps:
        assert "<think>" not in step.text and "</think>" not in step.text


@pytest.mark.parametrize("text", [c[1] for c in CASES], ids=[c[0] for c in CASES])
@pytest.mark.parametrize("mode", ["auto", "lines", "sentences"])
def test_offsets_hold_in_every_mode(text: str, mode: str) -> None:
    assert_offsets(text, split_reasoning(text, mode))


@pytest.mark.parametrize("text", ["", "   ", "\r\n\r\n\t", "<think>\n\n</think>\n", "<think>", "</think>"])
@pytest.mark.parametrize("mode", ["auto", "lines", "sentences"])
def test_empty_text_gives_no_steps(text: str, mode: str) -> None:
    result = split_reasoning(text, mode)
    assert result.steps == []
    assert result.texts() == []
    assert result.final_answer is None


def test_think_spans() -> None:
    text = "<think>\nA is small.\n</think>\n\nB"
    result = split_reasoning(text)
    assert result.think == (len("<think>"), text.index("</think>"))
    assert result.final_answer == "B"
    assert result.final_answer_span == (len(text) - 1, len(text))

    unclosed = "<think>Partial reasoning. Cut off"
    result = split_reasoning(unclosed)
    assert result.think == (7, len(unclosed))
    assert result.texts() == ["Partial reasoning.", "Cut off"]

    assert split_reasoning("No tags here.").think is None


def test_final_answer_span_points_into_original() -> None:
    text = "1. Add.\r\n2. Check.\r\n\r\n**Final Answer:** 42\r\n"
    result = split_reasoning(text)
    assert result.final_answer == "**Final Answer:** 42"
    start, end = result.final_answer_span
    assert text[start:end] == "**Final Answer:** 42"
    assert result.texts() == ["1. Add.", "2. Check."]


def test_odd_texts_never_raise() -> None:
    for text in [
        "....",
        "?!?",
        "- \n- ",
        "1.",
        "Step 1:",
        "\u3002\u3002",
        "a\u2028b",
        "#" * 50,
        "<think></think></think>",
    ]:
        for mode in ("auto", "lines", "sentences"):
            assert_offsets(text, split_reasoning(text, mode))


def test_modes_are_checked() -> None:
    assert MODES == ("auto", "lines", "sentences", "llm")
    with pytest.raises(InputError, match="needs a model"):
        split_reasoning("Some text.", "llm")
    with pytest.raises(InputError, match="unknown split mode"):
        split_reasoning("Some text.", "paragraphs")


# ---------------------------------------------------------------------------------------- LLM mode

REASONING = (
    "1. The patient has a fever of 39.5 C.\n"
    "2. Fever with a rash on the trunk suggests measles.\n"
    "3. Measles is caused by a paramyxovirus.\n"
    "Final answer: B"
)
QUESTION = "Which virus family causes the illness?"
RULE_TEXTS = [
    "1. The patient has a fever of 39.5 C.",
    "2. Fever with a rash on the trunk suggests measles.",
    "3. Measles is caused by a paramyxovirus.",
]


def item(step_text: str, planning: str = "plan", knowledge: str = "fact") -> dict:
    return {"planning": planning, "knowledge": knowledge, "step_text": step_text}


def fake(output: object, calls: list | None = None):
    """A generate_json stand-in that returns ``output`` (JSON-encoded unless already text)."""

    def generate_json(system: str, user: str, schema: dict) -> str:
        if calls is not None:
            calls.append((system, user, schema))
        return output if isinstance(output, str) or output is None else json.dumps(output)

    return generate_json


def raising(exc: BaseException):
    def generate_json(system: str, user: str, schema: dict) -> str:
        raise exc

    return generate_json


def test_llm_valid_output_locates_steps() -> None:
    calls: list = []
    output = {
        "steps": [
            item("The patient has a fever of 39.5 C.", "Note the vital signs.", "39.5 C is a fever."),
            item(
                "2. Fever with a rash on the trunk suggests measles.",
                "Form a diagnosis.",
                "Fever and rash suggest measles.",
            ),
            item("Measles is caused by a paramyxovirus.", "Name the cause.", ""),
        ]
    }
    result = split_with_llm(REASONING, QUESTION, fake(output, calls))
    assert result.fallback_reason is None
    assert (result.mode, result.requested_mode) == ("llm", "llm")
    assert result.texts() == [
        "The patient has a fever of 39.5 C.",
        "2. Fever with a rash on the trunk suggests measles.",
        "Measles is caused by a paramyxovirus.",
    ]
    for step in result.steps:
        assert step.aligned
        assert REASONING[step.start : step.end] == step.text
    assert result.steps[0].start == REASONING.index("The patient")
    assert [s.planning for s in result.steps] == ["Note the vital signs.", "Form a diagnosis.", "Name the cause."]
    assert [s.knowledge for s in result.steps] == ["39.5 C is a fever.", "Fever and rash suggest measles.", ""]
    assert result.final_answer == "Final answer: B"

    ((system, user, schema),) = calls
    assert schema == DECOMPOSE_SCHEMA
    assert "planning" in system and "knowledge" in system and "step_text" in system
    assert QUESTION in user and "3. Measles is caused by a paramyxovirus." in user
    assert "Final answer" not in user


def test_llm_whitespace_differences_still_align() -> None:
    text = "<think>\r\nThe dose is 10 mg/kg\r\nfor a 20 kg child.\r\nSo we give 200 mg.\r\n</think>\r\n200 mg"
    output = {"steps": [item("The dose is 10 mg/kg for a 20 kg child."), item("So we give  200 mg.")]}
    result = split_with_llm(text, "Dose?", fake(output))
    assert result.fallback_reason is None
    assert result.texts() == ["The dose is 10 mg/kg\r\nfor a 20 kg child.", "So we give 200 mg."]
    assert all(s.aligned and text[s.start : s.end] == s.text for s in result.steps)
    assert result.think == (7, text.index("</think>"))
    assert result.final_answer == "200 mg"


def test_llm_paraphrase_is_aligned_approximately() -> None:
    output = {
        "steps": [
            item("The patient has a 39.5 C fever."),
            item("2. Fever with a rash on the trunk suggests measles."),
            item("3. Measles is caused by a paramyxovirus."),
        ]
    }
    result = split_with_llm(REASONING, QUESTION, fake(output))
    assert result.fallback_reason is None
    first = result.steps[0]
    assert not first.aligned
    assert first.text == "The patient has a 39.5 C fever."
    assert (first.start, first.end) == (REASONING.index("The patient"), REASONING.index(" C.") + 2)
    assert REASONING[first.start : first.end] == "The patient has a fever of 39.5 C"
    assert [s.aligned for s in result.steps] == [False, True, True]


def test_llm_code_fence_is_accepted() -> None:
    raw = "```json\n" + json.dumps({"steps": [item(t) for t in RULE_TEXTS]}) + "\n```"
    result = split_with_llm(REASONING, QUESTION, fake(raw))
    assert result.fallback_reason is None
    assert result.texts() == RULE_TEXTS


BAD_OUTPUTS = [
    ("garbage", "Sure! Here are the steps: first the fever, then the rash.", "invalid JSON"),
    ("truncated", '{"steps": [{"planning": "Note the fever", "knowledge": "39.5 C is a fever", "step_te', "cut off"),
    ("truncated-early", '{"steps": [', "output cut off"),
    ("empty-output", "   ", "empty model output"),
    ("none", None, "not text"),
    ("not-object", json.dumps(["1. The patient has a fever of 39.5 C."]), "output must be an object"),
    (
        "wrong-type",
        {"steps": [{"planning": 1, "knowledge": "k", "step_text": RULE_TEXTS[0]}]},
        "output.steps[0].planning must be a string",
    ),
    ("steps-not-list", {"steps": "all of it"}, "output.steps must be an array"),
    ("empty-list", {"steps": []}, "at least 1"),
    ("too-many", {"steps": [item(RULE_TEXTS[0])] * 65}, "at most 64"),
    ("extra-top-key", {"steps": [item(t) for t in RULE_TEXTS], "answer": "B"}, "unexpected keys ['answer']"),
    ("extra-item-key", {"steps": [{**item(RULE_TEXTS[0]), "confidence": 0.9}]}, "unexpected keys ['confidence']"),
    ("missing-key", {"steps": [{"planning": "p", "step_text": RULE_TEXTS[0]}]}, "lacks the key 'knowledge'"),
    ("blank-step-text", {"steps": [item("   ")]}, "step 1 has an empty step_text"),
    (
        "not-in-reasoning",
        {"steps": [item("Quantum chromodynamics binds quarks inside protons.")]},
        "step 1 could not be located",
    ),
    ("out-of-order", {"steps": [item(RULE_TEXTS[2]), item(RULE_TEXTS[0])]}, "step 2 could not be located"),
    ("too-little-coverage", {"steps": [item("Measles")]}, "cover only"),
]


@pytest.mark.parametrize(("output", "reason"), [b[1:] for b in BAD_OUTPUTS], ids=[b[0] for b in BAD_OUTPUTS])
def test_llm_bad_output_falls_back(output: object, reason: str) -> None:
    result = split_with_llm(REASONING, QUESTION, fake(output))
    assert result.fallback_reason is not None and reason in result.fallback_reason
    assert (result.mode, result.requested_mode) == ("lines", "llm")
    assert result.texts() == RULE_TEXTS
    assert result.final_answer == "Final answer: B"
    assert all(s.planning is None and s.knowledge is None for s in result.steps)
    assert_offsets(REASONING, result)


@pytest.mark.parametrize("exc", [EngineError("model failed to load"), WorkerCrashed("the worker died (signal 11)")])
def test_llm_engine_error_falls_back(exc: Exception) -> None:
    result = split_with_llm(REASONING, QUESTION, raising(exc))
    assert result.fallback_reason == f"the model call failed: {exc.message}"
    assert result.texts() == RULE_TEXTS
    assert result.requested_mode == "llm"


def test_llm_cancel_propagates() -> None:
    with pytest.raises(Cancelled):
        split_with_llm(REASONING, QUESTION, raising(Cancelled()))


def test_llm_programming_errors_propagate() -> None:
    with pytest.raises(ZeroDivisionError):
        split_with_llm(REASONING, QUESTION, raising(ZeroDivisionError()))


def test_llm_empty_reasoning_skips_the_model() -> None:
    calls: list = []
    result = split_with_llm("<think>\n</think>\n", QUESTION, fake({"steps": []}, calls))
    assert calls == []
    assert result.steps == []
    assert result.fallback_reason == "no reasoning text to decompose"


def test_llm_fallback_on_single_paragraph_uses_sentences() -> None:
    text = "Aspirin blocks COX. COX makes thromboxane. The answer is C."
    result = split_with_llm(text, "Q?", fake("not json"))
    assert result.mode == "sentences"
    assert result.texts() == ["Aspirin blocks COX.", "COX makes thromboxane."]
    assert result.final_answer == "The answer is C."


def test_decompose_schema_shape() -> None:
    json.dumps(DECOMPOSE_SCHEMA)
    assert DECOMPOSE_SCHEMA["required"] == ["steps"]
    assert DECOMPOSE_SCHEMA["additionalProperties"] is False
    steps = DECOMPOSE_SCHEMA["properties"]["steps"]
    assert steps["type"] == "array" and steps["minItems"] == 1 and steps["maxItems"] == 64
    items = steps["items"]
    assert set(items["required"]) == {"planning", "knowledge", "step_text"} == set(items["properties"])
    assert items["additionalProperties"] is False
    assert all(p["type"] == "string" for p in items["properties"].values())


def test_generator_cannot_mutate_the_schema() -> None:
    def mutating(system: str, user: str, schema: dict) -> str:
        schema["properties"].clear()
        return "junk"

    split_with_llm(REASONING, QUESTION, mutating)
    assert set(DECOMPOSE_SCHEMA["properties"]) == {"steps"}
