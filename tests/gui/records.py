"""Hand-made chain records (the ``kiig score`` shape) for GUI tests that need no model."""

from __future__ import annotations

import math

from kiig_desktop.engine.models import ModelInfo
from kiig_desktop.runs.analysis import Question, save_analysis

QUESTION = Question(
    "Which drug is first-line for type 2 diabetes?",
    "Metformin",
    {"A": "Insulin", "B": "Metformin", "C": "Glipizide"},
    "B",
)


def fake_record(steps: list[str], reasoning: str | None = None, options: bool = True, seed: int = 1) -> dict:
    """A self-consistent record: NLL falls step by step, option B gains probability."""
    nll = [2.0 + 0.1 * seed]
    for k in range(len(steps)):
        nll.append(nll[-1] - 0.3 + 0.25 * ((k + seed) % 3 == 0))

    def opts(k: int) -> dict:
        if not options:
            return {}
        pb = min(0.9, 0.2 + 0.15 * k)
        probs = {"A": (1 - pb) * 0.6, "B": pb, "C": (1 - pb) * 0.4}
        ent = -sum(p * math.log2(p) for p in probs.values())
        return {"option_probs": probs, "entropy_bits": ent, "p_correct": pb}

    text = reasoning if reasoning is not None else "\n".join(steps)
    out_steps, pos = [], 0
    for i, step in enumerate(steps):
        start = text.find(step, pos)
        entry = {
            "index": i, "text": step, "answer_nll": nll[i + 1], "answer_ppl": math.exp(nll[i + 1]),
            "delta_nll": nll[i] - nll[i + 1], "info_gain": math.exp(nll[i]) - math.exp(nll[i + 1]),
            "seq_ppl": 10.0 - i, **opts(i + 1),
        }
        if start >= 0:
            entry["start"], entry["end"] = start, start + len(step)
            pos = start + len(step)
        out_steps.append(entry)
    tokens = [w for step in steps for w in step.split(" ")]
    step_of = [i for i, step in enumerate(steps) for _ in step.split(" ")]
    n = len(out_steps)
    return {
        "id": f"fake-{seed}", "mode": "answer", "model": {"path": "/models/fake.gguf", "sha256": "f" * 64},
        "n_tokens": len(tokens) + 12,
        "baseline": {"answer_nll": nll[0], "answer_ppl": math.exp(nll[0]), "seq_ppl": 11.0, **opts(0)},
        "steps": out_steps,
        "info_gain_mean": sum(s["info_gain"] for s in out_steps) / n,
        "delta_nll_mean": sum(s["delta_nll"] for s in out_steps) / n,
        "paper_info_gain": 0.5, "paper_mean": 9.0,
        "token_curve": {
            "token_ids": list(range(len(tokens))), "pieces": [" " + t for t in tokens],
            "surprisal_bits": [float(1 + (i % 5)) for i in range(len(tokens))],
            "entropy_bits": [float(2 + (i % 3)) for i in range(len(tokens))],
            "step": step_of,
        },
        "reasoning": text,
        "extracted_answer": "B",
        "correct": True,
    }


def fake_model() -> ModelInfo:
    return ModelInfo(id="file:/models/fake.gguf", name="fake", path="/models/fake.gguf", source="folder", size=1)


def store_fake_chain(session, record: dict, q: Question = QUESTION) -> tuple[int, int]:
    """Save ``record`` in the window's session as the app would; returns (run_id, chain_id)."""
    return session.write(lambda st: save_analysis(st, q=q, record=record, scorer=fake_model(), scorer_backend={},
                                                  split_mode="auto"))
