"""PDF, Word (.docx) and HTML reference documents as passages, with their page or heading path.

Each reader turns a file into blocks, ``("heading", level, text)`` and ``("para", text)``, and
:func:`chunk_document` packs them with the same rules as text files (:class:`chunking.Packer`:
sections, size, overlap). The character span of a passage is its place in the document's text as
read here: the paragraphs joined by blank lines.

- PDF (:mod:`.pdf_text`, PDFium): one block per paragraph (a wider gap above a line, or a line much
  shorter than the page's median one, ends a paragraph); a short line in a larger font than the
  body text is a heading (two levels, by size), so the title is the heading path, else the file's
  stem. A paragraph may run on to the next page, so a passage records the first and last page it
  covers; one longer than PARA_LIMIT characters is cut there (bounded memory). No text layer at all
  (PDFium finds no character): skipped ("no text layer: scanned document, OCR is not supported");
  pages without characters or with unreadable text are listed in the report, and so is how many
  lines were dropped as running headers/footers, on how many pages (a page that held nothing else
  is not called scanned). A PDF whose every line would be dropped (all of them repeat on every
  page, digits aside: a chart, a label sheet) is imported with them, and the report says so:
  such lines are its content, not noise. Encrypted and damaged files are skipped.
- DOCX (python-docx): paragraphs in order; "Heading N"/"Title" styles start sections; each table
  row is one paragraph, its cells joined by " | ". The title is the heading path ("Dosing >
  Adults").
- HTML (standard library ``html.parser``, fed in blocks): ``h1``-``h6`` start sections; text in
  ``script``, ``style``, ``nav``, ``header``, ``footer``, ``noscript``, ``template``, ``svg``,
  ``aside`` and ``form`` is dropped; block elements (``p``, ``li``, ``tr``, ``div`` ...) end paragraphs.
"""

from __future__ import annotations

import re
import zipfile
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import TextIO

from . import pdf_text
from .chunking import HEADING_SEPARATOR, Chunk, DocStart, Packer, title_from_name

DOCUMENT_KINDS = ("pdf", "docx", "html")
MAX_DOCX_XML_BYTES = 256 * 1024 * 1024  # word/document.xml unpacked; a larger one is refused (zip bomb)
NO_TEXT_LAYER = "no text layer: scanned document, OCR is not supported"
PARA_LIMIT = 64 * 1024  # characters of a PDF paragraph held at once; a longer one is cut there
_SHORT_LINE = 0.7  # a PDF line shorter than this share of the page's median line ends a paragraph


class DocumentProblem(Exception):
    """The document cannot be imported; the message is one line for the import report."""


def _page_ranges(numbers: list[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"``."""
    out: list[str] = []
    for n in numbers:
        if out and int(out[-1].split("-")[-1]) == n - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{n}"
        else:
            out.append(str(n))
    return ", ".join(out)


@dataclass
class _PdfTally:
    """What one reading of a PDF found: pages without characters, with unreadable text, and the lines
    dropped as running headers/footers (how many, on which pages, the first one)."""

    n_pages: int = 0
    n_lines: int = 0
    empty: list[int] = field(default_factory=list)
    garbage: list[int] = field(default_factory=list)
    dropped: int = 0
    dropped_pages: int = 0
    example: str = ""


def pdf_blocks(path: Path, warn: Callable[[str], None], tick: Callable[[int, int], None] | None,
               page_starts: list[int]) -> Iterator[tuple]:
    """Paragraph blocks of a PDF; ``page_starts`` gets the document offset where each page begins.

    A PDF whose every line was dropped as a running header/footer (every line repeats on every page,
    digits aside: a chart, a label sheet) is read again keeping them: such a document is all content.
    """
    try:
        tally = _PdfTally()
        yield from _pdf_paragraphs(pdf_text.pages(path, tick), tally, page_starts)
        if not tally.n_lines and tally.dropped:  # nothing was yielded: read it again from the start
            page_starts.clear()
            tally = _PdfTally()
            yield from _pdf_paragraphs(pdf_text.pages(path, tick, keep_running=True), tally, page_starts)
            warn("every line repeats on every page (digits aside): kept, not dropped as running headers/footers")
    except pdf_text.PdfProblem as exc:
        raise DocumentProblem(str(exc)) from exc
    n_pages, empty, garbage = tally.n_pages, tally.empty, tally.garbage
    if garbage and len(garbage) + len(empty) == n_pages:
        raise DocumentProblem(f"unreadable text: more than {pdf_text.GARBAGE_SHARE:.0%} of the characters are not "
                              "letters (fonts without a Unicode map); re-export the PDF with its text, OCR is not supported")
    if n_pages and len(empty) == n_pages:
        raise DocumentProblem(NO_TEXT_LAYER)
    if empty:
        warn(f"page(s) {_page_ranges(empty)} of {n_pages} have no text layer (scanned?); OCR is not supported")
    if garbage:
        warn(f"page(s) {_page_ranges(garbage)} of {n_pages} have unreadable text (fonts without a Unicode map); skipped")
    if tally.dropped:
        example = tally.example if len(tally.example) <= 80 else tally.example[:79] + "\u2026"
        warn(f"{tally.dropped} lines on {tally.dropped_pages} of {n_pages} pages dropped as running headers/footers "
             f"(repeated at the top or bottom of the neighbouring pages), e.g. {example!r}")


def _pdf_paragraphs(pages: Iterable[pdf_text.PdfPage], tally: _PdfTally, page_starts: list[int]) -> Iterator[tuple]:
    """Paragraph and heading blocks of ``pages``, counting in ``tally`` what was left out."""
    pos = 0  # offset in the document text of the next character
    para: list[str] = []
    para_start = para_chars = 0

    def flush() -> Iterator[tuple]:
        nonlocal pos, para
        if para:
            text = pdf_text.join_lines(para)
            yield ("para", text, para_start, para_start + len(text))
            pos = para_start + len(text) + 2
            para = []

    for page in pages:
        tally.n_pages += 1
        if page.dropped and not page.garbage:
            tally.dropped += len(page.dropped)
            tally.dropped_pages += 1
            tally.example = tally.example or page.dropped[0]
        if page.garbage:
            tally.garbage.append(page.number)
            page_starts.append(pos)
            continue
        if not page.lines:
            if not page.dropped:  # PDFium found no characters on it
                tally.empty.append(page.number)
            page_starts.append(pos)
            continue
        tally.n_lines += len(page.lines)
        typical = sorted(len(ln) for ln in page.lines)[len(page.lines) // 2]  # PDFium joins hyphenated lines
        page_starts.append(pos + (len(pdf_text.join_lines(para)) + 1 if para else 0))
        for line, mark in zip(page.lines, page.marks, strict=True):
            if mark.startswith("h"):
                yield from flush()
                yield ("heading", 1 if mark == "h1" else 2, line)
                pos += len(line) + 2
                continue
            if mark == "b":
                yield from flush()
            if not para:
                para_start, para_chars = pos, 0
            para.append(line)
            para_chars += len(line) + 1
            if len(line) < _SHORT_LINE * typical or para_chars > PARA_LIMIT:  # bounded memory
                yield from flush()
    yield from flush()


def docx_blocks(path: Path) -> Iterator[tuple]:
    """Heading and paragraph blocks of a Word document (tables row by row)."""
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("word/document.xml")
            if info.file_size > MAX_DOCX_XML_BYTES:
                raise DocumentProblem(f"too large: its text part unpacks to {info.file_size // 2**20} MiB "
                                      f"(at most {MAX_DOCX_XML_BYTES // 2**20} MiB)")
        import docx
        from docx.table import Table
        from docx.text.paragraph import Paragraph

        document = docx.Document(str(path))
    except DocumentProblem:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
        raise DocumentProblem(f"damaged Word document: it cannot be read ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - python-docx/lxml raise many kinds for a broken file
        raise DocumentProblem(f"damaged Word document: it cannot be read ({type(exc).__name__}: {exc})") from exc
    names = {st.style_id: st.name or "" for st in document.styles}  # Paragraph.style looks each one up: 60% of the time
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = " ".join(item.text.split())
            if not text:
                continue
            style = names.get(item._p.style or "", "")
            m = re.match(r"(?:Heading|heading)\s*(\d)$", style)
            if m or style == "Title":
                yield ("heading", int(m.group(1)) if m else 1, text)
            else:
                yield ("para", text)
        elif isinstance(item, Table):
            for row in item.rows:
                cells: list[str] = []
                for cell in row.cells:
                    text = " ".join(cell.text.split())
                    if text and (not cells or cells[-1] != text):  # merged cells repeat their text
                        cells.append(text)
                if cells:
                    yield ("para", " | ".join(cells))


_DROP = {"script", "style", "nav", "header", "footer", "noscript", "template", "svg", "aside", "form", "head"}
_BLOCK = {"p", "div", "li", "tr", "br", "section", "article", "main", "blockquote", "pre", "table", "ul", "ol",
          "dl", "dt", "dd", "figcaption", "caption", "td", "th", "body", "hr"}
_VOID = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "track", "wbr"}


class _HtmlBlocks(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple] = []
        self.text: list[str] = []
        self.dropping: list[str] = []
        self.heading: int | None = None
        self.cell = False

    def _end_block(self) -> None:
        text = " ".join("".join(self.text).split())
        self.text = []
        if text:
            self.blocks.append(("heading", self.heading, text) if self.heading else ("para", text))

    def handle_starttag(self, tag: str, attrs) -> None:
        if self.dropping:
            if tag in _DROP and tag not in _VOID:
                self.dropping.append(tag)
            return
        if tag in _DROP:
            self.dropping.append(tag)
        elif re.fullmatch(r"h[1-6]", tag):
            self._end_block()
            self.heading = int(tag[1])
        elif tag in ("td", "th"):
            if self.text and "".join(self.text).strip():
                self.text.append(" | ")
        elif tag in _BLOCK:
            self._end_block()

    def handle_endtag(self, tag: str) -> None:
        if self.dropping:
            if tag in self.dropping:
                del self.dropping[len(self.dropping) - 1 - self.dropping[::-1].index(tag):]
            return
        if re.fullmatch(r"h[1-6]", tag):
            self._end_block()
            self.heading = None
        elif tag in _BLOCK and tag not in ("td", "th"):
            self._end_block()

    def handle_data(self, data: str) -> None:
        if not self.dropping:
            self.text.append(data)


def html_blocks(fh: TextIO, tick: Callable[[], None] | None = None) -> Iterator[tuple]:
    """Heading and paragraph blocks of an HTML page, read in 64 KiB pieces."""
    parser = _HtmlBlocks()
    while block := fh.read(1 << 16):
        parser.feed(block)
        yield from parser.blocks
        parser.blocks.clear()
        if tick:
            tick()
    parser.close()
    parser._end_block()
    yield from parser.blocks


def chunk_blocks(blocks: Iterable[tuple], name: str, *, max_chunk_chars: int, overlap_chars: int,
                 page_starts: list[int] | None = None) -> Iterator[DocStart | Chunk]:
    """DocStart and chunks for ``blocks``; with ``page_starts`` each chunk gets its first and last page.

    A ``("para", text)`` block is placed at the next offset of the document text (paragraphs joined
    by blank lines); a ``("para", text, start, end)`` block brings its own.
    """
    fallback = title_from_name(name)
    yield DocStart(source=name, title=fallback)
    packer = Packer(max_chunk_chars, overlap_chars)
    headings: list[str] = []
    pos = 0

    def paged(chunks: list[Chunk]) -> list[Chunk]:
        if page_starts is not None:
            for c in chunks:
                c.page = max(1, bisect_right(page_starts, c.start))
                c.page_end = max(c.page, bisect_right(page_starts, max(c.start, c.end - 1)))
        return chunks

    for block in blocks:
        if block[0] == "heading":
            level, text = block[1], block[2]
            headings = headings[: level - 1] + [""] * max(0, level - 1 - len(headings)) + [text]
            pos += len(text) + 2
            continue
        text = block[1]
        start, end = (block[2], block[3]) if len(block) > 2 else (pos, pos + len(text))
        pos = end + 2
        title = HEADING_SEPARATOR.join(h for h in headings if h) or fallback
        yield from paged(packer.add(text, start, end, title))
    yield from paged(packer.finish())


def document_stream(path: Path, fh: TextIO | None, kind: str, name: str, *, max_chunk_chars: int, overlap_chars: int,
                    warn: Callable[[str], None], tick: Callable[[], None] | None = None,
                    page_tick: Callable[[int, int], None] | None = None) -> Iterator[DocStart | Chunk]:
    """DocStart and chunks of one document of ``kind`` (pdf, docx, html; ``fh``: the HTML file open as text).

    Raises DocumentProblem (possibly part-way) when the file cannot be imported; ``page_tick(done,
    total)`` follows the pages of a PDF, and may raise to cancel.
    """
    sizes = {"max_chunk_chars": max_chunk_chars, "overlap_chars": overlap_chars}
    if kind == "pdf":
        page_starts: list[int] = []
        return chunk_blocks(pdf_blocks(path, warn, page_tick, page_starts), name, page_starts=page_starts, **sizes)
    if kind == "docx":
        return chunk_blocks(docx_blocks(path), name, **sizes)
    if kind == "html" and fh is not None:
        return chunk_blocks(html_blocks(fh, tick), name, **sizes)
    raise ValueError(f"not a document kind: {kind!r}")
