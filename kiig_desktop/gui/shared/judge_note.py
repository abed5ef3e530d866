"""The KI judge's validation next to every KI number: the score, a warning below AUROC 0.7, or
"not validated" with where the GUI runs the check (``store.judge_validation``; ``runs.judge_check``)."""

from __future__ import annotations

import math

from PySide6.QtWidgets import QLabel

from ...store import judge_validation
from .widgets import plain_label

CHECK_HINT = "Check judge in the Knowledge Index panel, or Analysis → Check KI Judge"


def gui_summary(summary: dict | None) -> dict | None:
    """``summary`` with its "not validated" note pointing at the GUI's check, not at a command line."""
    if summary is None or summary.get("validated"):
        return summary
    return {**summary, "note": f"Judge not validated: its KI cannot be trusted until checked ({CHECK_HINT})."}


def evaluation_validation(ev: dict | None) -> dict | None:
    """The validation summary of the judge behind a stored KI evaluation (None without an evaluation)."""
    if not ev:
        return None
    judge = ev.get("judge") or {}
    checked = judge_validation.lookup(judge.get("sha256"), ev.get("method"))
    reviewed = judge_validation.lookup_reviews(judge.get("sha256"), ev.get("method"))
    return gui_summary(judge_validation.summary(checked, str(judge.get("path") or "JUDGE"), reviewed))


def caveat(summary: dict | None, short: bool = False) -> str:
    """The judge's validity in a few words, for a card (``short``: a slide's line) beside the mean KI
    ("" without KI); the full sentence is the summary's note."""
    if summary is None:
        return ""
    if not summary.get("validated"):
        return "⚠ not validated" if short else "⚠ Judge not validated: KI untrusted"
    auroc = summary.get("auroc")
    value = f"{auroc:.2f}" if isinstance(auroc, int | float) and math.isfinite(auroc) else "undefined"
    if summary.get("warning"):
        at_chance = not isinstance(auroc, int | float) or not math.isfinite(auroc) or auroc < 0.6
        if short:
            return f"⚠ AUROC {value}: {'at chance' if at_chance else 'weak'}, KI unreliable"
        return f"⚠ Judge {'at chance' if at_chance else 'weak'}: AUROC {value}"
    return f"AUROC {value}" if short else f"Judge AUROC {value}"


def validation_label() -> QLabel:
    """A label for :func:`show_validation` (hidden until there is something to say)."""
    label = plain_label("", "muted", wrap=True)
    label.setVisible(False)
    return label


def show_validation(label: QLabel, summary: dict | None) -> None:
    """Show the note of ``summary`` in ``label``, styled as a warning when the judge is weak or unchecked."""
    label.setVisible(summary is not None)
    if summary is None:
        return
    label.setText(summary["note"])
    label.setProperty("role", "warning" if summary.get("warning") else "muted")
    label.style().unpolish(label)
    label.style().polish(label)
