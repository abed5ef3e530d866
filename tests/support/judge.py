"""A scripted judge for the KI tests: no model, a fixed rule, every prompt recorded."""

from __future__ import annotations

import contextlib
import math

from kiig_desktop.errors import ContextOverflow, ModelNotFound, WorkerCrashed
from kiig_desktop.knowledge import ki as K

# a chain the scripted judge is tried on: a restatement, a true and a false claim, the answer
STEPS = [
    {"index": 1, "text": "Let us think step by step."},
    {"index": 2, "text": "Warfarin is monitored with the international normalised ratio."},
    {"index": 3, "text": "Warfarin is monitored with the platelet count and a chest x-ray."},
    {"index": 4, "text": "So the answer is B."},
]


class FakeJudge:
    """Answers from a fixed rule instead of a model; records every prompt it was given.

    By default p(Yes) is high when every content word of the claim occurs in the passages.
    """

    model_ref = {"path": "/models/fake-judge.gguf", "sha256": "f" * 64}

    def __init__(self, rule=None, overflow_above: int | None = None, fail_when: str | None = None) -> None:
        self.calls: list[list[dict]] = []
        self.rule = rule
        self.overflow_above = overflow_above
        self.fail_when = fail_when

    @staticmethod
    def claim_of(messages) -> str:
        return messages[-1]["content"].split("\n\nClaim: ", 1)[1].split("\n\n", 1)[0]

    def next_token_logprobs(self, messages, candidates):
        self.calls.append(messages)
        prompt = "".join(m["content"] for m in messages)
        if self.overflow_above is not None and len(prompt) > self.overflow_above:
            raise ContextOverflow(f"prompt of {len(prompt)} chars is too long")
        claim = self.claim_of(messages)
        if self.fail_when and self.fail_when in claim:
            raise WorkerCrashed("the judge worker died")
        if self.rule:
            p_yes = self.rule(claim, messages)
        else:
            passages = messages[-1]["content"].split("\n\nClaim: ", 1)[0].lower()
            words = K.content_terms(claim)
            p_yes = 0.9 if all(w in passages for w in words) else 0.1
        # " Yes" and "Yes" are different tokens here; "YES" would share its first token with "Yes".
        lp = {"Yes": math.log(p_yes * 0.6), " Yes": math.log(p_yes * 0.1), "yes": math.log(p_yes * 0.05),
              "No": math.log((1 - p_yes) * 0.6), " No": math.log((1 - p_yes) * 0.1), "no": math.log((1 - p_yes) * 0.05)}
        lp["YES"], lp["NO"] = lp["Yes"], lp["No"]
        return {c: lp.get(c, -30.0) for c in candidates}


class Opener:
    """Stands in for ``kiig_desktop.knowledge.judge.open_judge`` and counts model loads."""

    def __init__(self, judge: FakeJudge) -> None:
        self.judge = judge
        self.opened: list[str] = []

    @contextlib.contextmanager
    def __call__(self, spec: str, options=None):
        if spec == "missing":
            raise ModelNotFound("no model named 'missing'")
        self.opened.append(spec)
        yield self.judge
