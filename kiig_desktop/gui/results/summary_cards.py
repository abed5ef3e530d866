"""The Results view's header cards: mean InfoGain, mean KI (with the judge's caveat), mean ΔNLL,
answer perplexity, the final answer and the step and token counts of the chain on display."""

from __future__ import annotations

from ...runs.analysis import AnalysisResult
from ..shared.judge_note import caveat
from ..shared.metric_help import fmt_metric, metric_tip
from ..shared.theme import theme
from ..shared.widgets import CardStrip, MetricCard

SCORER_TOKENS_TIP = ("Steps scored, and the tokens the scorer read for the whole chain: the question, its options, "
                     "every step and the answer, in the scorer's own tokenizer. The generation line in Analyze counts "
                     "the tokens the subject model wrote, so the two numbers differ.")


class SummaryCards:
    """The six cards (``cards`` by key) in one ``strip``."""

    def __init__(self) -> None:
        self.cards = {
            "info_gain": MetricCard("Mean InfoGain (Δ PPL per step)", help_key="info_gain"),
            "ki": MetricCard("Mean KI (applicable steps)", help_key="ki"),
            "delta_nll": MetricCard("Mean ΔNLL (nats per step)", help_key="delta_nll"),
            "ppl": MetricCard("Answer PPL: question → final", help_key="answer_ppl"),
            "answer": MetricCard("Final answer", "The answer the reasoning states, graded against the ground truth"),
            "steps": MetricCard("Steps · scorer tokens", SCORER_TOKENS_TIP),
        }
        self.strip = CardStrip(list(self.cards.values()))

    def fill(self, result: AnalysisResult, ki: dict | None, validation: dict | None) -> None:
        """Every card for ``result``; ``ki``: its KI evaluation on display, ``validation``: its judge's."""
        r = result.record
        c = theme().colors()
        gain, dnll = r.get("info_gain_mean"), r.get("delta_nll_mean")
        self.cards["info_gain"].set_value(fmt_metric("info_gain", gain),
                                          None if gain is None else c["good"] if gain > 0 else c["bad"], gain)
        self.cards["delta_nll"].set_value(fmt_metric("delta_nll", dnll),
                                          None if dnll is None else c["good"] if dnll > 0 else c["bad"], dnll)
        steps = r.get("steps") or []
        base = (r.get("baseline") or {}).get("answer_ppl")
        last = steps[-1].get("answer_ppl") if steps else None
        self.cards["ppl"].set_value("—" if base is None or last is None else f"{base:.2f} → {last:.2f}")
        gen = result.generation or {}
        extracted = r.get("extracted_answer", gen.get("extracted_answer"))
        correct = r.get("correct", gen.get("correct"))
        if correct is None:
            self.cards["answer"].set_value(extracted or "not graded")
        else:
            mark = "✓ correct" if correct else "✗ wrong"
            text = f"{extracted} · {mark}" if extracted else "no answer found"
            self.cards["answer"].set_value(text, c["good"] if correct else c["bad"])
        self.cards["steps"].set_value(f"{len(steps)} · {r.get('n_tokens', '—')}")
        self.fill_ki(ki, validation)

    def fill_ki(self, ev: dict | None, summary: dict | None) -> None:
        """The Mean KI card: evaluation ``ev`` (None: not scored) and its judge's validation ``summary``."""
        card = self.cards["ki"]
        card.set_note(caveat(summary), bool(summary and summary.get("warning")),
                      metric_tip("ki", summary["note"] if summary else ""))
        if ev is None:
            card.set_value("not scored", theme().colors()["muted"])
            card.caption.setText("Mean KI (applicable steps)")
            return
        steps = ev.get("steps") or []
        judged = sum(1 for s in steps if s.get("applicable") and s.get("ki") is not None)
        mean = ev.get("ki_mean")
        c = theme().colors()
        card.set_value("—" if mean is None else f"{mean:.3f}", None if mean is None else c["good"] if mean >= 0.5 else c["bad"])
        earlier = "" if ev.get("current", True) else " · on an earlier version of this chain"
        card.caption.setText(f"Mean KI · {judged} of {len(steps)} steps judged{earlier}")
