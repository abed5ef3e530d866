"""PDF, Word and HTML reference documents made by real producers: passages, pages, heading paths, hard cases."""

from __future__ import annotations

import re
import shutil

import pytest

from kiig_desktop.errors import Cancelled
from kiig_desktop.events import CancelToken
from kiig_desktop.knowledge import corpus
from kiig_desktop.knowledge.documents import NO_TEXT_LAYER
from kiig_desktop.knowledge.search import Passage
from kiig_desktop.store import SessionStore
from tests.support import documents as docs


@pytest.fixture
def store(tmp_path):
    with SessionStore.open(tmp_path / "s.kiig") as s:
        yield s


def rows(db, name="g"):
    """(file, text, page, page_end, title, char_start, char_end) of every passage, in order."""
    return db.execute("""SELECT f.name, k.text, k.page, k.page_end, k.title, k.char_start, k.char_end FROM corpus_chunks k
                         JOIN corpus_documents d ON d.id = k.document_id JOIN corpus_files f ON f.id = d.file_id
                         JOIN corpora c ON c.id = k.corpus_id WHERE c.name = ? ORDER BY k.id""", [name]).fetchall()


def flat(text: str) -> str:
    """Whitespace collapsed; PostScript's StandardEncoding prints ' as a right quote (U+2019)."""
    return " ".join(text.replace("\u2019", "'").split())


def split_words(pages) -> list[str]:
    """Words the layout hyphenated at a line end, whole."""
    lines = [text for page in pages for kind, text in page if kind == "p" and text]
    out = []
    for a, b in zip(lines, lines[1:], strict=False):
        if a.endswith("-") and a[-2:-1].isalpha():
            out.append(re.sub(r"\W+$", "", a.split()[-1][:-1] + b.split()[0]))
    return out


def fact_pages(pages) -> dict[str, tuple[int, int]]:
    """Title -> (first, last) page its heading and body lines are printed on."""
    spans: dict[str, list[int]] = {}
    current = None
    for n, page in enumerate(pages, 1):
        for kind, text in page:
            if kind == "h":
                current = text
            if current and text:
                spans.setdefault(current, []).append(n)
    return {t: (min(p), max(p)) for t, p in spans.items()}


@pytest.mark.parametrize("pdf", ["qt_guideline.pdf", "gs_guideline.pdf"])
def test_a_pdf_from_each_producer_imports_with_its_pages(store, documents, pdf):
    report = corpus.add_documents(store.db, "g", [documents / pdf])
    assert [f.status for f in report.files] == ["added"], report.files[0].messages
    pages = docs.guideline_pages()
    got = rows(store.db)
    assert all(1 <= r[2] <= r[3] <= len(pages) for r in got)
    assert {r[2] for r in got} == set(range(1, len(pages) + 1))
    assert any(r[3] > r[2] for r in got), "a paragraph running on to the next page spans two pages"
    spans = fact_pages(pages)
    for fact in docs.facts():
        first = flat(fact["text"])[:60]
        holding = [r for r in got if first in flat(r[1])]
        assert holding, f"{fact['title']!r} not found whole in {pdf}"
        lo, hi = spans[fact["title"]]
        assert any(r[2] <= hi and r[3] >= lo for r in holding), (fact["title"], lo, hi, [(r[2], r[3]) for r in holding])
        # its heading (a larger font) is the section title, and the passage starts with the paragraph
        assert any(flat(r[4]) == fact["title"] and flat(r[1]).startswith(first) for r in holding), holding


@pytest.mark.parametrize("pdf", ["qt_guideline.pdf", "gs_guideline.pdf"])
def test_running_headers_and_footers_are_dropped_and_hyphens_joined(store, documents, pdf):
    corpus.add_documents(store.db, "g", [documents / pdf])
    text = flat("\n".join(r[1] for r in rows(store.db)))
    assert docs.HEADER not in text and "KIIG test document" not in text
    assert not re.search(r"Page \d+ of \d+", text)
    words = split_words(docs.guideline_pages())
    assert len(words) >= 5
    missing = [w for w in words if w not in text]
    assert not missing, missing
    assert not re.search(r"[a-z]- [a-z]", text), "a line-end hyphen left in a word"


def test_a_wider_gap_between_lines_ends_a_paragraph(store, tmp_path):
    """Ghostscript PDF: a heading and two paragraphs whose last lines are as long as the others."""
    first = ["Anticoagulant clinics review every patient on warfarin at least once in twelve weeks,",
             "and more often while the dose is changing or after a new interacting drug is started."]
    second = ["Direct oral anticoagulants need no routine monitoring of the clotting time, although",
              "kidney function is checked every year because several are cleared by the kidneys."]
    ps = ["%!PS", "/Helvetica-Bold findfont 12 scalefont setfont 72 720 moveto (Anticoagulant clinics) show",
          "/Helvetica findfont 10 scalefont setfont"]
    for y, line in zip((700, 686, 658, 644), first + second, strict=True):
        ps.append(f"72 {y} moveto ({line}) show")
    pdf = tmp_path / "clinic.pdf"
    docs.ghostscript("\n".join([*ps, "showpage"]), pdf)
    corpus.add_documents(store.db, "g", [pdf])
    [(name, text, page, page_end, title, _s, _e)] = rows(store.db)
    assert (name, page, page_end, title) == ("clinic.pdf", 1, 1, "Anticoagulant clinics")
    assert text == " ".join(first) + "\n\n" + " ".join(second)


def test_two_columns_are_read_one_after_the_other(store, documents):
    corpus.add_documents(store.db, "g", [documents / "two_column.pdf"])
    text = flat(" ".join(r[1] for r in rows(store.db)))
    assert text.startswith("Anticoagulants: two columns on one page")
    assert flat(docs.LEFT) in text and flat(docs.RIGHT) in text
    assert text.index(flat(docs.LEFT)) < text.index(flat(docs.RIGHT))


def test_a_python_docx_document_keeps_headings_as_sections_and_tables_as_rows(store, documents):
    report = corpus.add_documents(store.db, "g", [documents / "pydocx_guide.docx"])
    assert [f.status for f in report.files] == ["added"]
    by_text = {flat(r[1]): r for r in rows(store.db)}
    adults = next(r for t, r in by_text.items() if "500 mg once daily" in t)
    assert adults[0] == "pydocx_guide.docx" and adults[4] == "Dosing > Adults" and adults[2] is None
    assert any("Iodinated contrast | Withhold metformin before the scan" in t for t in by_text)
    hit = corpus.search(store.db, "g", "metformin starting dose adults", k=1)[0]
    assert hit.where() == "pydocx_guide.docx > Dosing > Adults"


def test_a_libreoffice_document_keeps_headings_as_sections_and_tables_as_rows(store, lo_docx):
    report = corpus.add_documents(store.db, "g", [lo_docx])
    assert [f.status for f in report.files] == ["added"]
    got = rows(store.db)
    monitoring = next(r for r in got if "international normalised ratio daily" in r[1])
    assert monitoring[4] == "Anticoagulation protocol > Warfarin > Monitoring"
    assert any("Warfarin | Vitamin K" in flat(r[1]) for r in got)


def test_html_keeps_headings_and_drops_scripts_styles_and_navigation(store, documents):
    report = corpus.add_documents(store.db, "g", [documents / "page.html"])
    assert [f.status for f in report.files] == ["added"]
    got = rows(store.db)
    text = " ".join(r[1] for r in got)
    for dropped in ("script text", "tracking", "font-family", "navigation link", "menu item", "banner", "copyright"):
        assert dropped not in text, dropped
    titles = {r[4] for r in got}
    assert "Anticoagulation protocol > Warfarin > Monitoring" in titles
    assert "Anticoagulation protocol > Heparin" in titles
    assert "Warfarin | Vitamin K" in text and "Heparin | Protamine" in text


HARD = {
    "scanned.pdf": NO_TEXT_LAYER,
    "encrypted.pdf": "encrypted: the PDF is password-protected",
    "damaged.pdf": "damaged PDF: it cannot be read",
    "truncated.pdf": "damaged PDF: it cannot be read",
    "damaged.docx": "damaged Word document: it cannot be read",
    "garbage.pdf": "unreadable text: more than 30% of the characters are not letters",
}


def test_a_mixed_folder_imports_every_readable_file_and_says_why_each_other_one_is_skipped(store, documents, tmp_path):
    folder = tmp_path / "refs"
    folder.mkdir()
    for name in ["qt_guideline.pdf", "pydocx_guide.docx", "page.html", "guideline.txt", *HARD]:
        shutil.copyfile(documents / name, folder / name)
    report = corpus.add_documents(store.db, "g", [folder])
    status = {f.name: (f.status, f.messages) for f in report.files}
    for name, reason in HARD.items():
        assert status[name][0] == "skipped" and status[name][1][0].startswith(reason), (name, status[name])
        assert "\n" not in status[name][1][0]
    assert sorted(n for n, (s, _m) in status.items() if s == "added") == [
        "guideline.txt", "page.html", "pydocx_guide.docx", "qt_guideline.pdf"]
    assert {r[0] for r in rows(store.db)} == {"guideline.txt", "page.html", "pydocx_guide.docx", "qt_guideline.pdf"}


def test_a_thousand_page_pdf_streams_with_progress_and_cancels_cleanly(store, documents):
    big = documents / "big.pdf"
    seen = []
    token = CancelToken()

    def progress(p):
        seen.append(p.done)
        if p.done * 4 >= p.total:  # a quarter of the way through
            token.cancel()

    corpus.add_documents(store.db, "keep", [documents / "guideline.txt"])
    before = store.conn.execute("SELECT count(*) FROM corpus_chunks").fetchone()[0]
    with pytest.raises(Cancelled):
        corpus.add_documents(store.db, "g", [big], progress=progress, cancel=token)
    assert store.conn.execute("SELECT count(*) FROM corpus_chunks").fetchone()[0] == before
    assert [c["name"] for c in corpus.list_corpora(store.db)] == ["keep"]
    assert len(set(seen)) > 3 and seen == sorted(seen)

    seen.clear()
    report = corpus.add_documents(store.db, "g", [big], progress=lambda p: seen.append((p.done, p.total)))
    assert report.files[0].status == "added"
    assert seen[-1][0] == seen[-1][1] and len({d for d, _t in seen}) > 50
    got = rows(store.db)
    assert max(r[3] for r in got) == docs.BIG_PAGES and min(r[2] for r in got) == 1
    text = "\n".join(r[1] for r in got[:200])
    assert "Page 1 of" not in text and docs.HEADER not in text


def test_passages_say_where_they_come_from_and_where_the_file_is(store, documents):
    corpus.add_documents(store.db, "g", [documents / "gs_guideline.pdf", documents / "guideline.txt"])
    hit = next(h for h in corpus.search(store.db, "g", "rifampicin orange urine tears", k=5) if h.file == "gs_guideline.pdf")
    assert hit.page is not None and hit.where().startswith("gs_guideline.pdf, page")
    [again] = corpus.get_chunks(store.db, [hit.chunk_id])
    assert (again.page, again.page_end, again.file, again.title) == (hit.page, hit.page_end, hit.file, hit.title)
    assert corpus.source_path(store.db, hit.chunk_id) == (documents / "gs_guideline.pdf").resolve()
    assert corpus.source_path(store.db, 10**9) is None
    ev = hit.evidence()
    assert ev["file"] == "gs_guideline.pdf" and ev["page"] == hit.page and ev["chunk_id"] == hit.chunk_id
    txt = next(h for h in corpus.search(store.db, "g", "rifampicin orange urine tears", k=5) if h.file == "guideline.txt")
    assert txt.where() == "guideline.txt" and "page" not in txt.evidence()


def test_where_labels():
    def p(**kw) -> Passage:
        return Passage(**{"source": "NG28.pdf", "chunk": 0, "text": "", "score": 0.0, "chunk_id": 1, "file": "NG28.pdf", **kw})

    assert p(page=14, page_end=14, title="NG28").where() == "NG28.pdf, page 14"
    assert p(page=14, page_end=15).where() == "NG28.pdf, pages 14-15"
    assert p(source="guide.docx", file="guide.docx", title="Dosing > Adults").where() == "guide.docx > Dosing > Adults"
    assert p(source="my_notes.txt", file="my_notes.txt", title="my notes").where() == "my_notes.txt"
    assert p(source="cf-statins", file="facts.jsonl", title="Statins").where() == "facts.jsonl > cf-statins > Statins"
    assert p(source="notes.txt", file=None, title=None).where() == "notes.txt"


def test_pdfium_is_not_held_between_pages(documents):
    from kiig_desktop.knowledge import pdf_text

    reading = pdf_text.pages(documents / "qt_guideline.pdf")
    first = next(reading)
    assert first.number == 1
    assert pdf_text._LOCK.acquire(blocking=False), "a consumer that stops reading must not block every other PDF import"
    pdf_text._LOCK.release()
    assert [p.number for p in pdf_text.pages(documents / "two_column.pdf")] == [1]
    reading.close()


def test_a_pdf_paragraph_that_never_ends_is_cut_to_bound_memory(tmp_path):
    """Ghostscript PDF: 40 pages of equal lines, no heading, no gap: one paragraph of ~160,000 characters."""
    from kiig_desktop.knowledge import documents

    line = "Equal lines of guideline text without any break in the layout keep one paragraph going on "
    ps = ["%!PS", "/Helvetica findfont 10 scalefont setfont"]
    for n in range(40):
        ps += [f"72 {740 - 14 * i} moveto ({line[: 80 - i % 3]} {n} {i}) show" for i in range(50)] + ["showpage"]
    pdf = tmp_path / "endless.pdf"
    docs.ghostscript("\n".join(ps), pdf)
    starts: list[int] = []
    blocks = list(documents.pdf_blocks(pdf, lambda m: None, None, starts))
    assert len(starts) == 40 and all(b[0] == "para" for b in blocks)
    assert sum(len(b[1]) for b in blocks) > 150_000
    assert max(len(b[1]) for b in blocks) <= documents.PARA_LIMIT + 200 and len(blocks) >= 3
