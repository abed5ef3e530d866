"""One sentence per metric, and where its full definition lives (docs/metrics.md in the repository).

Tooltips on table headers, cards and plots take their text from here, so a metric is explained
the same way everywhere; a "more" link opens the section of the metric documentation.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QUrl

DOCS = Path(__file__).resolve().parents[3] / "docs" / "metrics.md"

# key -> (name, one sentence, section anchor in docs/metrics.md)
METRICS: dict[str, tuple[str, str, str]] = {
    "info_gain": ("InfoGain", "How much the step lowered the answer's perplexity (before minus after; "
                  "positive: the step moved the scorer toward the answer).", "infogain"),
    "delta_nll": ("ΔNLL", "How much the step lowered the answer's mean negative log-likelihood in nats "
                  "(positive: closer to the answer).", "infogain"),
    "answer_ppl": ("Answer perplexity", "How surprised the scorer is by the answer after this prefix "
                   "(lower: more certain).", "scoring-one-prefix"),
    "answer_nll": ("Answer NLL", "Mean negative log-likelihood in nats of the answer tokens after this prefix.",
                   "scoring-one-prefix"),
    "entropy_bits": ("Option entropy", "Spread of the scorer's probability over the option letters in bits "
                     "(0: all on one option).", "multiple-choice-options"),
    "p_correct": ("P(correct)", "The scorer's probability of the correct option letter after this prefix.",
                  "multiple-choice-options"),
    "seq_ppl": ("Sequence perplexity", "Perplexity of the whole sequence, as the paper's code computes it "
                "(paper-parity mode only).", "paper-parity-mode-whole-sequence-perplexity-as-reasoningevals-code-computes-it"),
    "ki": ("Knowledge Index", "The judge's probability that the reference corpus supports the step's factual "
           "claim (n/a: the step makes none).", "knowledge-index-ki"),
    "surprisal": ("Token surprisal", "How unexpected each reasoning token was to the scorer, in bits.", "token-curve"),
    "option_probs": ("Option probabilities", "The scorer's probability of each option letter after each prefix.",
                     "multiple-choice-options"),
}


def docs_url(anchor: str = "") -> QUrl:
    """The metric documentation (a file URL when the repository's docs are present)."""
    if DOCS.exists():
        url = QUrl.fromLocalFile(str(DOCS))
        if anchor:
            url.setFragment(anchor)
        return url
    return QUrl(f"docs/metrics.md#{anchor}" if anchor else "docs/metrics.md")


def metric_sentence(key: str) -> str:
    """The metric's name and its one-sentence explanation (plain text)."""
    name, sentence, _anchor = METRICS[key]
    return f"{name}: {sentence}"


def metric_tip(key: str, extra: str = "") -> str:
    """Tooltip markup: the sentence, optional extra lines, and where "more" is (docs/metrics.md § section)."""
    name, sentence, anchor = METRICS[key]
    body = f"<b>{html.escape(name)}</b>: {html.escape(sentence)}"
    if extra:
        body += "<br>" + html.escape(extra).replace("\n", "<br>")
    return (f"<div style='white-space:pre-wrap'>{body}<br><a href='{docs_url(anchor).toString()}'>more</a> "
            f"<span style='color:gray'>(docs/metrics.md#{anchor})</span></div>")


def more_link(key: str) -> str:
    """A rich-text "more" link for a label (open it with ``setOpenExternalLinks(True)``)."""
    return f"<a href='{docs_url(METRICS[key][2]).toString()}'>more</a>"
