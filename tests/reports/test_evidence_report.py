"""The HTML report's chain drill-down names each evidence passage by file and page (or heading path)."""

from __future__ import annotations

from html import escape

from kiig_desktop.reports.html import render_html
from kiig_desktop.reports.summary import chain_details, summarize
from kiig_desktop.store import SessionStore
from tests.support.paged_corpus import batch_session_citing_pages


def test_report_names_the_page_of_each_evidence_passage(tmp_path):
    path = tmp_path / "pages.kiig"
    run, chain, evidence = batch_session_citing_pages(path, tmp_path)
    with SessionStore.open(path, write=False) as store:
        report = summarize(store, run, n_boot=50)
        html = render_html(report, chain_details(store, report))
    drill = html[html.index(f'<details id="chain-{chain}"'):]
    drill = drill[:drill.index("</details>")]
    cells = drill.split('<td class="evidence">')[1:]
    assert len(cells) == 2 and cells[1].startswith("</td>")  # the final answer: not judged, no evidence
    labels = [li.split("<", 1)[0].strip() for li in cells[0].split("<li>")[1:]]
    assert labels == ["NG28.pdf, page 14", "NG28.pdf, page 15", escape(evidence[2]["where"]),
                      "NG28.pdf, page 14"]  # the last one stored without its place: completed from the corpus
    assert evidence[2]["where"].startswith("guide.md > Dosing") and "&gt;" in labels[2]
    assert f"BM25 {evidence[0]['score']:.2f}" in cells[0]
