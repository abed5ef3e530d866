"""The HTML report's "Clinician review" section: progress, kappa and the AUROCs against the reviews.

The numbers are ``review_stats.run_review_stats`` (what ``kiig review stats`` prints); an estimate
over fewer than ``review_stats.SMALL_SAMPLE`` steps carries the report's rough-interval mark.
"""

from __future__ import annotations

import math
from html import escape

from .review_stats import SMALL_SAMPLE


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _value(e: dict, pct: bool = False) -> str:
    v = e.get("value")
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "\u2014"
    lo, hi = e.get("ci") or (None, None)
    f = (lambda x: f"{x:.1%}") if pct else (lambda x: f"{x:.3f}")
    ci = "" if lo is None or hi is None or math.isnan(lo) or math.isnan(hi) else f' <span class="ci">[{f(lo)}, {f(hi)}]</span>'
    return f"<b>{_e(f(v))}</b>{ci}"


def _n(e: dict) -> str:
    n = int(e.get("n") or 0)
    if n < SMALL_SAMPLE:
        return f'{n} <span title="fewer than {SMALL_SAMPLE} steps: a rough interval">\u26a0</span>'
    return str(n)


def reviews_section(stats: dict | None) -> list[str]:
    """The section's HTML lines (empty without review data)."""
    if not stats:
        return []
    p = stats["progress"]
    who = ", ".join(stats["reviewers"]) or "no reviewer yet"
    out = ['<h2 id="reviews">Clinician review</h2>',
           f'<p><b>{p["reviewed"]} of {p["total"]} chains reviewed</b> \u00b7 {stats["n_step_reviews"]} step reviews by {_e(who)}'
           + (f' \u00b7 {stats["n_stale"]} made on an earlier version of their chain (left out)' if stats["n_stale"] else "")
           + "</p>"]
    if not stats["n_step_reviews"]:
        return out
    ki, ig, acc = stats["ki_auroc"], stats["infogain_auroc"], stats["judge_accuracy"]
    rows = [("KI vs knowledge verdict (AUROC)", f"correct {ki['n_correct']} / incorrect {ki['n_incorrect']}", ki, False),
            ("InfoGain vs role verdict (AUROC)", f"helps {ig['n_helps']} / misleading {ig['n_misleading']}", ig, False),
            ("Judge accuracy at KI 0.5", "correct / incorrect steps", acc, True)]
    kappa = stats.get("kappa")
    if kappa:
        a, b = kappa["reviewers"]
        rows += [(f"Cohen's kappa, knowledge ({a} vs {b})", f"{kappa['knowledge'].get('n_agree', 0)} agree", kappa["knowledge"], False),
                 (f"Cohen's kappa, role ({a} vs {b})", f"{kappa['role'].get('n_agree', 0)} agree", kappa["role"], False)]
    body = "".join(f"<tr><td>{_e(name)}<br><span class=\"muted small\">{_e(detail)}</span></td>"
                   f'<td class="num">{_value(e, pct)}</td><td class="num">{_n(e)}</td></tr>' for name, detail, e, pct in rows)
    out += ['<table><thead><tr><th>Agreement</th><th>Estimate [95% bootstrap interval]</th><th>Steps</th></tr></thead>'
            f"<tbody>{body}</tbody></table>",
            '<p class="muted small">AUROC: the chance that a step the reviewers call correct (helps) scores higher than one '
            'they call incorrect (misleading); 0.5 is chance. "Cannot tell" and "irrelevant" are left out. Kappa: agreement '
            "beyond chance between two reviewers (1 perfect, 0 chance). \u26a0: fewer than 10 steps, a rough interval.</p>"]
    return out
