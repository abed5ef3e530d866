"""The Dashboard's review line: progress, kappa and the KI / InfoGain AUROCs against the reviewers."""

from __future__ import annotations

import math

from PySide6.QtWidgets import QLabel

from ..shared.widgets import plain_label


def review_label() -> QLabel:
    label = plain_label("", "muted", wrap=True, selectable=True)
    label.setAccessibleName("Clinician review")
    label.setVisible(False)
    return label


def _estimate(name: str, e: dict) -> str:
    v = e.get("value")
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return f"{name} — (n {e.get('n', 0)})"
    lo, hi = e.get("ci") or (math.nan, math.nan)
    ci = "" if lo is None or hi is None or math.isnan(lo) or math.isnan(hi) else f" [{lo:.2f}, {hi:.2f}]"
    return f"{name} {v:.2f}{ci}, n {e['n']}" + (" ⚠" if e.get("small") else "")


def review_text(stats: dict | None) -> str:
    """One or two lines: "42 of 120 chains reviewed", then the agreement numbers once there are reviews."""
    if not stats:
        return ""
    p = stats["progress"]
    text = f"Clinician review: {p['reviewed']} of {p['total']} chains reviewed"
    if not stats["n_step_reviews"]:
        return text + " (Results → Review tab, or `kiig review import`)."
    text += f" by {', '.join(stats['reviewers'])}" + (f"; {stats['n_stale']} stale reviews left out" if stats["n_stale"] else "")
    parts = [_estimate("KI vs knowledge AUROC", stats["ki_auroc"]), _estimate("InfoGain vs role AUROC", stats["infogain_auroc"]),
             _estimate("judge accuracy", stats["judge_accuracy"])]
    if stats.get("kappa"):
        parts.append(_estimate(f"kappa {' / '.join(stats['kappa']['reviewers'])} (knowledge)", stats["kappa"]["knowledge"]))
    return text + ".\n" + " · ".join(parts) + (" · ⚠ fewer than 10 steps: a rough interval" if any(" ⚠" in p for p in parts) else "")


def show_reviews(label: QLabel, stats: dict | None) -> None:
    label.setText(review_text(stats))
    label.setVisible(bool(stats))
