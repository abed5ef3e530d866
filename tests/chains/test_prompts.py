"""One question format and one LLM-split call, whoever builds the text (scorer, judge, both prompts)."""

from __future__ import annotations

import json

from kiig_desktop.chains.datasets import DatasetItem
from kiig_desktop.chains.prompts import analyze_prompt, batch_messages, question_text
from kiig_desktop.chains.steps_llm import LLM_SPLIT_MAX_TOKENS, split_budget, split_with_model
from kiig_desktop.knowledge.ki import parse_ki_item
from kiig_desktop.runs.analysis import Question
from kiig_desktop.runs.batch_stages import build_messages

OPTIONS = {"A": "Insulin", "B": "Metformin", "C": "Aspirin"}


def test_q_is_the_question_then_one_line_per_option():
    assert question_text("Which drug?", OPTIONS) == "Which drug?\nA. Insulin\nB. Metformin\nC. Aspirin"
    assert question_text("How many?", None) == "How many?"
    assert question_text("Q", {"A": "x", "B": 3}) == "Q\nA. x"  # a non-text option is not shown


def test_every_prompt_and_the_judge_use_the_same_q():
    q = question_text("Which drug?", OPTIONS)
    assert analyze_prompt("  Which drug? ", OPTIONS).startswith("Question: " + q + "\n\n")
    assert Question("Which drug?", "Metformin", OPTIONS).prompt() == analyze_prompt("Which drug?", OPTIONS)
    item = DatasetItem(id="1", question="Which drug?", answer="Metformin", kind="mcq", options=OPTIONS, answer_idx="B")
    assert item.prompt_text() == q
    assert build_messages(item) == batch_messages("Which drug?", OPTIONS, "mcq")
    assert build_messages(item)[1]["content"].startswith("Question: " + q + "\n\n")
    parsed = parse_ki_item({"id": "1", "question": "Which drug?", "options": OPTIONS, "steps": ["x"]}, 1)
    assert parsed["question"] == q


class _FakeClient:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    def call(self, op: str, cancel=None, **args):
        self.calls.append({"op": op, **args})
        return {"text": json.dumps({"steps": [{"planning": "multiply", "knowledge": "12 x 3 = 36", "step_text": "12 times 3 is 36."}]}), "stop": "eos"}


def test_the_llm_split_is_one_greedy_call_with_one_budget():
    client = _FakeClient()
    result = split_with_model(client, "12 times 3 is 36.", "What is 12 times 3?")
    assert result.mode == "llm" and [s.text for s in result.steps] == ["12 times 3 is 36."]
    (call,) = client.calls
    assert call["op"] == "generate" and call["max_tokens"] == LLM_SPLIT_MAX_TOKENS == 1536
    assert call["temperature"] == 0.0 and call["top_k"] == 0 and call["json_schema"]


def test_the_llm_split_budget_grows_with_the_reasoning():
    long_text = " ".join(f"Step {i}: 12 times {i} is {12 * i}." for i in range(400))  # about 10,000 characters
    client = _FakeClient()
    split_with_model(client, long_text, "Times table?")
    assert client.calls[0]["max_tokens"] == split_budget(long_text) > 3 * len(long_text) // 4 > LLM_SPLIT_MAX_TOKENS
    assert split_budget("short") == LLM_SPLIT_MAX_TOKENS
