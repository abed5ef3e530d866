"""Running headers and footers of real PDFs (Ghostscript, Qt): what is dropped is counted in the report,
a page or a document of nothing but repeated lines is never called scanned."""

from __future__ import annotations

import pytest

from kiig_desktop.knowledge import corpus
from kiig_desktop.store import SessionStore
from tests.support import documents as docs

from .test_documents import flat, rows

DROPPED = "dropped as running headers/footers"


@pytest.fixture
def store(tmp_path):
    with SessionStore.open(tmp_path / "s.kiig") as s:
        yield s


def chart_pages(n: int) -> list[list[tuple[str, str]]]:
    """Pages of a ward chart: two lines, the same on every page but for the digits (bed number, hours)."""
    return [[("p", f"Observation chart for ward 7, bed {bed}"), ("p", f"Record the NEWS2 score every {bed % 3 + 2} hours")]
            for bed in range(1, n + 1)]


def make(producer: str, pages: list[list[tuple[str, str]]], out) -> None:
    """``pages`` with the running header and "Page N of M" footer, by Ghostscript or Qt's QPdfWriter."""
    if producer == "gs":
        docs.ghostscript("%!PS\n" + "\n".join(docs.ps_page(p, n, len(pages)) for n, p in enumerate(pages, 1)), out)
    else:
        docs.qt_pdf({"kind": "text", "header": docs.HEADER, "pages": pages}, out)


@pytest.mark.parametrize("pdf", ["qt_guideline.pdf", "gs_guideline.pdf"])
def test_lines_dropped_as_running_headers_and_footers_are_counted_in_the_report(store, documents, pdf):
    n = len(docs.guideline_pages())
    report = corpus.add_documents(store.db, "g", [documents / pdf])
    [f] = report.files
    said = f"{2 * n} lines on {n} of {n} pages {DROPPED} (repeated at the top or bottom of the neighbouring pages), " \
           f"e.g. {docs.HEADER!r}"
    assert f.status == "added" and said in f.messages, f.messages
    assert said in corpus.list_files(store.db, "g")[0]["warnings"]  # kept with the file: the Corpora screen's tooltip
    assert docs.HEADER not in flat(" ".join(r[1] for r in rows(store.db)))


def test_pages_holding_only_the_running_header_and_footer_are_not_called_scanned(store, tmp_path):
    pages = docs.guideline_pages(docs.facts()[:6], lines_per_page=12)
    pages.insert(2, [])  # "this page is intentionally left blank", but for the header and footer
    pdf = tmp_path / "leaflet.pdf"
    make("gs", pages, pdf)
    [f] = corpus.add_documents(store.db, "g", [pdf]).files
    assert f.status == "added", f.messages
    assert not any("no text layer" in m for m in f.messages), f.messages
    n = len(pages)
    assert any(m.startswith(f"{2 * n} lines on {n} of {n} pages {DROPPED}") for m in f.messages), f.messages


@pytest.mark.parametrize("producer", ["gs", "qt"])
def test_a_pdf_of_nothing_but_repeated_lines_is_imported_not_called_scanned(store, tmp_path, producer):
    """Every line (header, two body lines, footer) recurs on every page but for its digits: all would be
    dropped as running headers/footers, and the file was reported as a scan without a text layer."""
    pdf = tmp_path / f"chart_{producer}.pdf"
    make(producer, chart_pages(5), pdf)
    [f] = corpus.add_documents(store.db, "g", [pdf]).files
    assert f.status == "added", f.messages
    assert f.messages == ["every line repeats on every page (digits aside): kept, not dropped as running headers/footers"]
    got = rows(store.db)
    text = flat(" ".join(r[1] for r in got))
    for bed in range(1, 6):
        assert f"Observation chart for ward 7, bed {bed}" in text and f"Page {bed} of 5" in text
    assert min(r[2] for r in got) == 1 and max(r[3] for r in got) == 5  # the passages keep their pages
