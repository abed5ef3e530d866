"""The HTML and JSON report carry the review progress, kappa and the AUROCs, as `kiig review stats` prints them."""

from __future__ import annotations

import json
import shutil

from kiig_desktop.reports.html import render_html, render_json
from kiig_desktop.reports.review_stats import review_queue, run_review_stats
from kiig_desktop.reports.summary import summarize
from kiig_desktop.store import SessionStore, reviews
from kiig_desktop.strict_json import dumps

from .test_report import HOSTILE, chromium_dom, session  # noqa: F401 - the batch-run fixture

ODD_NAME = f"Dr <b>{HOSTILE[:20]}</b>"


def _review(path) -> int:
    with SessionStore.open(path) as s:
        [run] = [r["id"] for r in s.list_runs()]
        chains = [c for c in s.chains_for_run(run) if c["n_steps"]][:6]
        for n, c in enumerate(chains):
            for pos in range(c["n_steps"]):
                k = "correct" if (n + pos) % 2 else "incorrect"
                reviews.review_step(s, run, c["key"], pos, "Dr A", knowledge=k, role="helps" if pos % 2 else "misleading")
                reviews.review_step(s, run, c["key"], pos, ODD_NAME, knowledge=k if n % 3 else "cannot_tell")
        return run


def test_the_report_shows_review_progress_kappa_and_aurocs(session, tmp_path):  # noqa: F811
    path = tmp_path / "reviewed.kiig"
    shutil.copyfile(session, path)
    run = _review(path)
    with SessionStore.open(path, write=False) as s:
        report = summarize(s, run, n_boot=200)
        expected = run_review_stats(s, run, n_boot=200)
        total = len([c for c in s.chains_for_run(run) if c["n_steps"]])
        queue = review_queue(s, run, "Dr A")
        assert len(queue) == total - 6 and all(c["n_steps"] for c in queue)
        low = review_queue(s, run, "Dr A", "lowest_infogain")
        assert [c["info_gain_mean"] for c in low] == sorted(c["info_gain_mean"] for c in low)
    assert dumps(report.reviews) == dumps(expected)  # NaN (no role pairs) compares as null
    assert expected["progress"] == {"reviewed": 6, "total": total}
    html = render_html(report)
    assert f"<b>6 of {total} chains reviewed</b>" in html
    assert "Cohen&#x27;s kappa, knowledge" in html and f"<b>{expected['kappa']['knowledge']['value']:.3f}</b>" in html
    assert f"<b>{expected['ki_auroc']['value']:.3f}</b>" in html and "KI vs knowledge verdict (AUROC)" in html
    assert "<b>Dr" not in html and "&lt;b&gt;" in html  # the reviewer's name is text, never markup
    assert json.loads(render_json(report))["reviews"]["kappa"]["reviewers"] == sorted(["Dr A", ODD_NAME])
    # as a browser shows it: the section is there after the page's scripts ran, the name still text
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    dom, stderr = chromium_dom(page, tmp_path)
    assert f"6 of {total} chains reviewed" in dom and "KI vs knowledge verdict (AUROC)" in dom
    assert f"{expected['kappa']['knowledge']['value']:.3f}" in dom and "<b>Dr" not in dom
    assert not [ln for ln in stderr.splitlines() if "Uncaught" in ln or "Content Security Policy" in ln]


def test_a_report_without_reviews_shows_the_progress_only(session):  # noqa: F811
    with SessionStore.open(session, write=False) as s:
        report = summarize(s, None, n_boot=50)
    html = render_html(report)
    assert "Clinician review" in html and "0 of " in html and "Cohen" not in html
