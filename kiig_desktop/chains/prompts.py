"""The texts the models read: the question ``Q``, the reasoning prompts, and their versions.

``Q`` is defined in docs/metrics.md ("Notation"): the question, then one ``"\\nL. text"`` line per
option. The scorer, the judge and both reasoning prompts build it here, so the four places that
once wrote the option lines themselves cannot drift apart. A prompt's version is part of a run's
settings: changing a prompt's wording means a new version, so old sessions are never resumed with
a different prompt.
"""

from __future__ import annotations

from collections.abc import Mapping

ANALYZE_PROMPT_VERSION = "kiig-reasoning-prompt-1"  # the Analyze and Compare screens' prompt
BATCH_PROMPT_VERSION = "kiig-batch-prompt-1"  # dataset batch runs (`kiig run`, the Dashboard)

BATCH_SYSTEM_PROMPT = "You are a careful expert. You reason step by step before you give an answer."
_BATCH_FINAL_LINE = {
    "mcq": 'Finish with one last line of the form "Answer: <letter>", giving only the letter of the single best option.',
    "numeric": 'Finish with one last line of the form "Answer: <number>", giving only the number, without units.',
    "open": 'Finish with one last line of the form "Answer: <answer>", giving only the short final answer.',
}
_BATCH_STEPS_LINE = "Think it through step by step, one short numbered step per line (1., 2., 3., ...)."


def question_text(question: str, options: Mapping[str, object] | None) -> str:
    """``Q``: the question, then one ``"\\nL. text"`` line per option (options that are not text are left out)."""
    return question + "".join(f"\n{letter}. {text}" for letter, text in (options or {}).items() if isinstance(text, str))


def analyze_prompt(question: str, options: Mapping[str, str] | None) -> str:
    """The user message of the Analyze and Compare screens (version :data:`ANALYZE_PROMPT_VERSION`)."""
    final = "Answer: <letter>" if options else "Answer: <answer>"
    return ("Question: " + question_text(question.strip(), options)
            + f"\n\nExplain your reasoning step by step in a numbered list (1., 2., 3.), then write the final line as '{final}'.")


def batch_messages(question: str, options: Mapping[str, str] | None, kind: str) -> list[dict]:
    """System + user messages of a batch run (version :data:`BATCH_PROMPT_VERSION`): numbered steps, a fixed final line."""
    user = (f"Question: {question_text(question, options).strip()}\n\n"
            f"{_BATCH_STEPS_LINE} {_BATCH_FINAL_LINE.get(kind, _BATCH_FINAL_LINE['open'])}")
    return [{"role": "system", "content": BATCH_SYSTEM_PROMPT}, {"role": "user", "content": user}]
