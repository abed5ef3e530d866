"""The evidence panel names where each passage comes from (file and page, or heading path), opens the
file at that page in the system's viewer, and shows the passage in context; the Corpora screen
offers every importable type and reports each file of a mixed folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QUrl
from PySide6.QtWidgets import QFileDialog

from kiig_desktop.gui.knowledge import source_opener
from kiig_desktop.knowledge.chunking import SUPPORTED_SUFFIXES
from kiig_desktop.knowledge.corpus import add_documents, remove_document
from kiig_desktop.knowledge.search import search

from ..support import documents as docs
from ..support.paged_corpus import GUIDE_MD, add_pdf_pages, write_pdf_file
from ..support.require import require
from .records import fake_record, store_fake_chain

QUERY = "metformin first-line type 2 diabetes"


def _open_chain(qtbot, window, chain: tuple[int, int]) -> None:
    run_id, chain_id = chain
    window.sessions.open_requested.emit(run_id, chain_id)
    qtbot.waitUntil(lambda: window.results.result is not None and window.results.result.chain_id == chain_id
                    and not window.results.pending, timeout=10000)
    window.results.ki_button.click()
    window.results.select_step(0)
    qtbot.waitUntil(lambda: window.ki_panel.evidence.step == 0 and bool(window.ki_panel.evidence.passages.items), timeout=10000)


def _chain_citing_the_guideline(window, tmp_path: Path) -> tuple[tuple[int, int], Path, list[dict]]:
    """A PDF guideline (pages) and a Markdown guide in corpus 'guidelines'; a chain whose KI evidence
    is what retrieval returns for the claim, plus one entry stored the old way (no file, no page)."""
    pdf = write_pdf_file(tmp_path / "NG28.pdf")
    guide = tmp_path / "guide.md"
    guide.write_text(GUIDE_MD, encoding="utf-8")

    def corpus(store):
        add_pdf_pages(store, "guidelines", pdf)
        add_documents(store.db, "guidelines", [guide])
        return [p.evidence() for p in search(store.db, "guidelines", QUERY, 3)]

    evidence = window.session.write(corpus)
    assert evidence[0]["where"] == "NG28.pdf, page 14", evidence
    old_style = {k: evidence[0][k] for k in ("source", "chunk", "score", "chunk_id")}
    steps = ["Metformin is the first-line drug for type 2 diabetes.", "So the answer is B."]
    chain = store_fake_chain(window.session, fake_record(steps))
    ki_steps = [{"index": 0, "text": steps[0], "applicable": True, "ki": 0.9, "reason": "states a factual claim",
                 "judge_p_yes": 0.6, "judge_p_no": 0.07, "query": QUERY, "claim": steps[0],
                 "evidence": [*evidence, old_style]},
                {"index": 1, "text": steps[1], "applicable": False, "ki": None, "reason": "final answer", "evidence": []}]

    def add_ki(store):
        judge = store.ensure_model({"path": "/models/judge.gguf", "sha256": "a" * 64})
        store.save_ki(chain[1], judge, "guidelines", ki_steps, 0.9)

    window.session.write(add_ki)
    return chain, pdf, ki_steps[0]["evidence"]


@pytest.mark.slow
def test_evidence_panel_names_file_and_page_and_opens_the_pdf_at_that_page(qtbot, window, tmp_path, monkeypatch):
    chain, pdf, evidence = _chain_citing_the_guideline(window, tmp_path)
    _open_chain(qtbot, window, chain)
    panel = window.ki_panel.evidence
    headings = panel.shown_evidence()
    assert headings[0].startswith("[1]  NG28.pdf, page 14  ·  chunk 13  ·  BM25 ")
    assert any(h.startswith("guide.md > Dosing") for h in (x.split("]  ", 1)[1] for x in headings)), headings
    # evidence stored before pages were recorded: completed from the same passage in the corpus
    assert headings[-1].startswith(f"[{len(evidence)}]  NG28.pdf, page 14  ·  chunk 13")
    assert [label for label, _href in panel.passages.links(0)] == ["Open NG28.pdf at page 14", "Show in context"]

    # the link opens the file through the system opener, told page 14
    opened: list[source_opener.OpenPlan] = []
    monkeypatch.setattr(source_opener, "system_open", lambda how: opened.append(how) or True)
    messages: list[tuple[str, str]] = []
    window.ki_panel.message.connect(lambda text, level: messages.append((text, level)))
    panel.passages.anchorClicked.emit(QUrl(panel.passages.links(0)[0][1]))
    qtbot.waitUntil(lambda: bool(messages), timeout=10000)
    how = opened[0]
    assert how.url.toLocalFile() == str(pdf.resolve()) and how.url.fragment() == "page=14"
    assert how.argv is None or (str(pdf.resolve()) in " ".join(how.argv) and "14" in " ".join(how.argv[1:]))
    assert messages[-1][1] == "info" and "page 14" in messages[-1][0]

    # the file moved since it was imported: one clear message, nothing opened
    pdf.rename(tmp_path / "moved.pdf")
    panel.passages.anchorClicked.emit(QUrl(panel.passages.links(0)[0][1]))
    qtbot.waitUntil(lambda: len(messages) == 2, timeout=10000)
    assert len(opened) == 1
    assert messages[-1] == (f"NG28.pdf is no longer at {pdf.resolve()}: it was moved or deleted since it was imported. "
                            "Put it back there, or import it again, to open it from here.", "error")


def test_passage_in_context_shows_the_neighbouring_pages(qtbot, window, tmp_path):
    chain, _pdf, _evidence = _chain_citing_the_guideline(window, tmp_path)
    _open_chain(qtbot, window, chain)
    panel = window.ki_panel
    panel.evidence.passages.anchorClicked.emit(QUrl(panel.evidence.passages.links(0)[1][1]))
    qtbot.waitUntil(lambda: panel.context_dialog is not None and panel.context_dialog.isVisible(), timeout=10000)
    dialog = panel.context_dialog
    assert dialog.windowTitle() == "NG28.pdf, page 14 in context"
    assert dialog.headings() == ["NG28.pdf, page 12  ·  chunk 11", "NG28.pdf, page 13  ·  chunk 12",
                                 "NG28.pdf, page 14  ·  chunk 13  ·  the cited passage", "NG28.pdf, page 15  ·  chunk 14",
                                 "NG28.pdf, page 16  ·  chunk 15"]
    assert dialog.view.passage_text(1).startswith("Before starting metformin, check renal function")
    assert dialog.view.highlighted(2) and not dialog.view.highlighted(1)  # the query's terms, in the cited one
    assert dialog.open_button.text() == "Open NG28.pdf at page 14"


def test_a_passage_no_longer_in_the_corpus_offers_no_links(qtbot, window, tmp_path):
    chain, _pdf, evidence = _chain_citing_the_guideline(window, tmp_path)
    window.session.write(lambda store: remove_document(store.db, "guidelines", "NG28.pdf"))
    _open_chain(qtbot, window, chain)
    panel = window.ki_panel.evidence
    headings = panel.shown_evidence()
    assert headings[0].startswith("[1]  NG28.pdf, page 14  ·  chunk 13")  # as the evaluation stored it
    assert headings[-1].startswith(f"[{len(evidence)}]  NG28.pdf  ·  chunk 13")  # the old entry knows only its source
    assert panel.passages.links(0) == [] and panel.passages.items[0].text is None


def test_corpora_screen_offers_every_importable_type_and_reports_each_file(qtbot, window, tmp_path, monkeypatch):
    view = window.corpora_view
    qtbot.waitUntil(lambda: window.corpora.loaded, timeout=10000)
    offered: list[str] = []
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: offered.append(a[3]) or ([], ""))
    view.files_button.click()
    assert offered and all(f"*{suffix}" in offered[0] for suffix in SUPPORTED_SUFFIXES)
    assert all(f".{kind}" in view.empty_hint.text() for kind in set(SUPPORTED_SUFFIXES.values()))

    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "guide.md").write_text(GUIDE_MD, encoding="utf-8")
    (folder / "notes.txt").write_text("Insulin is started when HbA1c stays above target.\n", encoding="utf-8")
    (folder / "scan.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00binary")
    (folder / "audit.xlsx").write_bytes(b"PK\x03\x04 a spreadsheet inside the folder: listed, with the reason")
    (folder / ".~lock.guide.md#").write_text("a hidden lock file: not listed\n", encoding="utf-8")
    spreadsheet = tmp_path / "formulary.xlsx"
    spreadsheet.write_bytes(b"PK\x03\x04 not a reference text")
    view.import_paths("mixed", [str(folder), str(spreadsheet)])
    qtbot.waitUntil(lambda: window.corpora.names() == ["mixed"] and not window.tasks.active(), timeout=20000)
    rows = {name: (status, messages) for name, status, messages in view.report_rows()}
    assert {n: s for n, (s, _m) in rows.items()} == {"guide.md": "added", "notes.txt": "added", "scan.txt": "skipped",
                                                    "audit.xlsx": "skipped", "formulary.xlsx": "skipped"}
    assert "PNG image" in rows["scan.txt"][1][0]
    assert rows["formulary.xlsx"][1][0].startswith("unsupported file type '.xlsx'")
    assert rows["audit.xlsx"][1] == [rows["formulary.xlsx"][1][0]]
    assert "2 added" in view.report_summary.text() and "3 skipped" in view.report_summary.text()

    # a search names each hit by file and heading path
    view.search_corpus.setCurrentIndex(view.search_corpus.findData("mixed"))
    view.query.setText("metformin for adults")
    view.run_search()
    qtbot.waitUntil(lambda: view.hits_tree.topLevelItemCount() > 0, timeout=10000)
    where = view.hits[0].where()
    assert where.startswith("guide.md > Dosing") and where.endswith("Adults")
    assert view.hits_tree.topLevelItem(0).text(1) == where
    assert view.preview.items[0].heading.startswith(f"[1]  {where}  ·  chunk 0")


def test_corpora_screen_reports_the_lines_dropped_as_running_headers_and_footers(qtbot, window, tmp_path):
    """A Ghostscript PDF with a running header and footer on each page: the report and the file's
    tooltip say how many lines were dropped, on how many pages."""
    require("Ghostscript (gs)", shutil.which("gs") is not None, "apt-get install ghostscript")
    pages = docs.guideline_pages(docs.facts()[:6], lines_per_page=12)
    pdf = tmp_path / "leaflet.pdf"
    docs.ghostscript("%!PS\n" + "\n".join(docs.ps_page(p, n, len(pages)) for n, p in enumerate(pages, 1)), pdf)
    view = window.corpora_view
    qtbot.waitUntil(lambda: window.corpora.loaded, timeout=10000)
    view.import_paths("leaflets", [str(pdf)])
    qtbot.waitUntil(lambda: window.corpora.names() == ["leaflets"] and not window.tasks.active()
                    and view.tree.topLevelItemCount() == 1 and view.tree.topLevelItem(0).childCount() == 1, timeout=20000)
    n = len(pages)
    said = f"{2 * n} lines on {n} of {n} pages dropped as running headers/footers"
    [(name, status, messages)] = view.report_rows()
    assert (name, status) == ("leaflet.pdf", "added") and messages[0].startswith(said), messages
    assert said in view.tree.topLevelItem(0).child(0).toolTip(0)
