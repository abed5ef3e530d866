"""The KI judge's validation next to every KI number: the score, a warning below AUROC 0.7, or
"not validated" with the command to run (``store.judge_validation``; ``kiig judge-check``)."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel

from ...store import judge_validation
from .widgets import plain_label


def evaluation_validation(ev: dict | None) -> dict | None:
    """The validation summary of the judge behind a stored KI evaluation (None without an evaluation)."""
    if not ev:
        return None
    judge = ev.get("judge") or {}
    checked = judge_validation.lookup(judge.get("sha256"), ev.get("method"))
    reviewed = judge_validation.lookup_reviews(judge.get("sha256"), ev.get("method"))
    return judge_validation.summary(checked, str(judge.get("path") or "JUDGE"), reviewed)


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
