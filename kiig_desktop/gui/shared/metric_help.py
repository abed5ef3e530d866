"""One sentence per metric, and where its full definition lives (docs/metrics.md, shipped with the app).

Tooltips on table headers, cards and plots take their text from here, so a metric is explained
the same way everywhere; a "more" link opens the section of the metric documentation in the
app's help window (``help_dialog``).
"""

from __future__ import annotations

import html

HELP_SCHEME = "kiig-help"

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


# How every screen writes a metric's value (a chain's mean as its steps' metric): Results, Compare
# and Sessions show the same digits for the same number.
FORMATS = {"info_gain": "+.3f", "delta_nll": "+.4f", "answer_nll": ".4f", "answer_ppl": ".3f", "ki": ".3f",
           "entropy_bits": ".3f", "p_correct": ".3f", "seq_ppl": ".3f"}


def fmt_metric(key: str, value: float | None) -> str:
    """``value`` of metric ``key`` (``info_gain`` or ``info_gain_mean`` alike) as the app shows it; "—" when None."""
    if value is None:
        return "—"
    spec = FORMATS.get(key.removesuffix("_mean"), ".4f")
    text = format(value, spec)
    return format(0.0, spec.lstrip("+")) if float(text) == 0 else text  # never "-0.000"


def help_href(anchor: str = "") -> str:
    """The href of a "more" link: the app's own help window at that section (``help_dialog``)."""
    return f"{HELP_SCHEME}:metrics.md#{anchor}"


def anchor_of(href: str) -> str:
    """The section of a "more" link's href ("" for any other link)."""
    return href.partition("#")[2] if href.startswith(f"{HELP_SCHEME}:") else ""


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
    return (f"<div style='white-space:pre-wrap'>{body}<br><a href='{help_href(anchor)}'>more</a> "
            f"<span style='color:gray'>(Help → Metric Definitions, docs/metrics.md#{anchor})</span></div>")


def more_link(key: str) -> str:
    """A rich-text "more" link for a label (its ``linkActivated`` opens ``help_dialog.open_metric_help``)."""
    return f"<a href='{help_href(METRICS[key][2])}'>more</a>"
