"""The text layer of a PDF, page by page: reading order, hyphens, running headers and footers.

Library: pypdfium2 (PDFium). Measured on the test documents of ``tests/support/documents.py``
(2 cores, pypdf 7.1.1 vs pypdfium2 5.15.2, whole-document text extraction):

=====================================  ==============  ==============
document                               pypdf           pypdfium2
=====================================  ==============  ==============
Qt QPdfWriter guideline, 8 pages       2.04 s          0.078 s
Ghostscript guideline, 8 pages         0.055 s         0.030 s
Ghostscript, 1,000 pages               7.35 s          1.42 s
=====================================  ==============  ==============

Quality: on Qt's PDF pypdf returns tabs between words and the "ﬁ" ligature; PDFium returns
plain spaces and "fi" and marks the hyphens it removed at line ends (U+FFFE). On a Type 3 font
without Unicode pypdf returns glyph names ("/g10/g5"), PDFium control characters: both are
caught by the garbage check below. Neither orders two columns drawn line by line across the page
(both interleave them); that is done here with PDFium's text-in-a-rectangle call. Encrypted and
damaged files fail to open in both with a clear reason. PDFium is 5-25x faster, so it is used.

Per page: the text is read in reading order (two columns found by an empty vertical strip near
the middle are read left then right, full-width lines in between stay in place), ligatures are
spelled out, a hyphen at a line end before a lower-case letter joins the word, and lines at the
top or bottom of a page whose shape (digits aside) recurs at the edge of at least two of the six
neighbouring pages (of the other page, in a two-page PDF) are dropped as running headers and
footers (each page lists them in ``PdfPage.dropped``; ``keep_running`` keeps them). Each line is
marked from PDFium's character boxes and font sizes: a heading (short, in a larger font than the
page's body text) or the start of a paragraph (a wider gap above it). Only a window of pages is held.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

_LOCK = threading.Lock()  # PDFium is not thread-safe
_LIGATURES = str.maketrans({"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
                            "\ufb05": "st", "\ufb06": "st", "\ufffe": "", "\u00ad": "", "\x02": ""})
_EDGE_LINES = 2  # lines at the top and at the bottom of a page that may be a running header/footer
_WINDOW = 3  # neighbouring pages on each side compared for running headers/footers
GARBAGE_SHARE = 0.3  # a page whose characters are more than this share non-text is unreadable
_STRIPS = (0.5, 0.47, 0.53)  # candidate column gutters, as a share of the page width (3 strips: 0.3 ms a page)


class PdfProblem(Exception):
    """The PDF cannot be imported; the message is one line for the import report."""


@dataclass
class PdfPage:
    """One page's lines after cleaning (1-based ``number``) and their marks (``_marked_lines``);
    ``garbage`` when its text is unreadable; ``dropped``: its lines left out as running headers/footers."""

    number: int
    lines: list[str]
    marks: list[str]
    garbage: bool = False
    dropped: list[str] = field(default_factory=list)


def _bad_share(text: str) -> float:
    """Share of the non-space characters that are not text (control, private use, U+FFFD, unassigned)."""
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return 0.0
    bad = sum(1 for c in chars if ord(c) < 32 or c == "\ufffd" or 0xE000 <= ord(c) <= 0xF8FF or not c.isprintable())
    return bad / len(chars)


def _shape(line: str) -> str:
    return re.sub(r"\d+", "#", " ".join(line.lower().split()))


def _gutter(textpage, width: float, height: float, n_lines: int) -> float | None:
    """x of an empty vertical strip near the middle of the page (two columns), or None."""
    if n_lines < 6:
        return None
    for share in _STRIPS:
        x = width * share
        crossing = textpage.get_text_bounded(x - 1, 0, x + 1, height)
        if len(crossing.split()) <= max(1, n_lines // 10):
            return x
    return None


def _columns(textpage, width: float, height: float, gx: float) -> str:
    """Page text with the two columns either side of ``gx`` read one after the other."""
    full: list[tuple[float, float]] = []  # y ranges of lines crossing the gutter (headings, wide lines)
    for i in range(textpage.count_rects()):
        left, bottom, right, top = textpage.get_rect(i)
        if left < gx - 1 < gx + 1 < right and textpage.get_text_bounded(gx - 1, bottom, gx + 1, top).strip():
            full.append((bottom, top))
    full.sort(key=lambda r: -r[1])
    parts: list[str] = []
    y = height
    for bottom, top in [*full, (0.0, 0.0)]:
        if top < y:  # a band of columns between full-width lines
            for x0, x1 in ((0.0, gx), (gx, width)):
                parts.append(textpage.get_text_bounded(x0, top, x1, y))
        if bottom < top:
            parts.append(textpage.get_text_bounded(0, bottom, width, top))
        y = min(y, bottom)
    return "\n".join(p for p in parts if p.strip())


def _clean(line: str) -> str:
    return " ".join(line.translate(_LIGATURES).split())


def _marked_lines(textpage, text: str) -> tuple[list[str], list[str]]:
    """Lines of ``text`` (PDFium's, one character per character index) with their marks from the
    geometry: "h" a heading (a short line in a larger font than the page's body text; "h1" much
    larger), "b" the first line of a paragraph (a wider gap above it than between its lines), ""
    a line that continues one."""
    import pypdfium2.raw as pdfium_c

    found: list[tuple[str, float, float, float]] = []  # text, bottom of its first and last character, font size
    for m in re.finditer(r"[^\r\n]+", text):
        line = _clean(m.group(0))
        if not line:
            continue
        first = m.start() + len(m.group(0)) - len(m.group(0).lstrip())
        last = m.start() + len(m.group(0).rstrip()) - 1  # a line PDFium joined at a hyphen ends lower down
        found.append((line, textpage.get_charbox(first)[1], textpage.get_charbox(last)[1],
                      pdfium_c.FPDFText_GetFontSize(textpage.raw, first)))
    if not found:
        return [], []
    weight: dict[float, int] = {}
    for line, _f, _l, size in found:
        weight[round(size, 1)] = weight.get(round(size, 1), 0) + len(line)
    body = max(weight, key=lambda k: weight[k])
    gaps = sorted(g for g in (a[2] - b[1] for a, b in zip(found, found[1:], strict=False)) if g > 0)
    usual = gaps[len(gaps) // 2] if gaps else 0.0
    marks = []
    for i, (line, bottom, _last, size) in enumerate(found):
        gap = found[i - 1][2] - bottom if i else None
        if size > body * 1.08 and len(line) < 120:
            marks.append("h1" if size >= body * 1.3 else "h")
        elif gap is not None and (gap < 0 or (usual and gap > usual * 1.4)):
            marks.append("b")
        else:
            marks.append("")
    return [f[0] for f in found], marks


def _page_lines(pdf, index: int) -> tuple[list[str], list[str]]:
    """The page's lines in reading order and their marks (see :func:`_marked_lines`; none in two columns)."""
    page = pdf[index]
    try:
        textpage = page.get_textpage()
        try:
            text = textpage.get_text_range()
            width, height = page.get_size()
            gx = _gutter(textpage, width, height, text.count("\n") + 1)
            if gx is None:
                return _marked_lines(textpage, text)
            lines = [ln for ln in map(_clean, _columns(textpage, width, height, gx).splitlines()) if ln]
            return lines, [""] * len(lines)
        finally:
            textpage.close()
    finally:
        page.close()


def _open(path: Path):
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        reason = str(exc)
        if "password" in reason.lower():
            raise PdfProblem("encrypted: the PDF is password-protected; save a copy without the password and import that") from exc
        detail = reason.split("(PDFium: ", 1)[-1].rstrip(").") if "PDFium:" in reason else reason
        raise PdfProblem(f"damaged PDF: it cannot be read ({detail})") from exc


def pages(path: Path, tick: Callable[[int, int], None] | None = None, *, keep_running: bool = False) -> Iterator[PdfPage]:
    """Cleaned pages of the PDF at ``path``, in order; ``tick(done, total)`` after each page read.

    Raises PdfProblem for an encrypted or damaged file. Running headers and footers are dropped
    (see the module docstring) unless ``keep_running``; pages are read one at a time, a few held
    for the comparison.
    """
    with _LOCK:  # held for each PDFium call, never across a yield (the consumer may stop at any time)
        pdf = _open(path)
        total = len(pdf)
    try:
        ahead: deque[PdfPage] = deque()
        behind: deque[PdfPage] = deque(maxlen=_WINDOW)
        nxt = 0

        def read_one() -> None:
            nonlocal nxt
            try:
                with _LOCK:
                    lines, marks = _page_lines(pdf, nxt)
            except Exception as exc:  # noqa: BLE001 - PDFium reports a broken page in many ways
                raise PdfProblem(f"damaged PDF: page {nxt + 1} cannot be read ({exc})") from exc
            text = "\n".join(lines)
            ahead.append(PdfPage(nxt + 1, lines, marks, garbage=_bad_share(text) > GARBAGE_SHARE))
            nxt += 1
            if tick:
                tick(nxt, total)

        while nxt < min(total, _WINDOW + 1):
            read_one()
        while ahead:
            page = ahead[0]
            neighbours = [p for p in (*behind, *list(ahead)[1:]) if not p.garbage]
            head, tail = (0, len(page.lines)) if keep_running else _running_edges(page.lines, neighbours)
            marks = page.marks[head:tail]
            if marks[:1] == ["b"]:  # measured from a header above it: the page's first line may continue a paragraph
                marks[0] = ""
            out = PdfPage(page.number, page.lines[head:tail], marks, page.garbage, page.lines[:head] + page.lines[tail:])
            behind.append(ahead.popleft())
            if nxt < total:
                read_one()
            yield out
    finally:
        with _LOCK:
            pdf.close()


def _edges(lines: list[str]) -> set[str]:
    return {_shape(ln) for ln in lines[:_EDGE_LINES] + lines[-_EDGE_LINES:]}


def _running_edges(lines: list[str], neighbours: list[PdfPage]) -> tuple[int, int]:
    """``(head, tail)``: ``lines[head:tail]`` leaves out the top and bottom lines that recur at the edges
    of two neighbours (of one in a two-page PDF)."""
    if not neighbours:
        return 0, len(lines)
    edge_sets = [_edges(p.lines) for p in neighbours]
    need = min(2, len(neighbours))

    def running(line: str) -> bool:
        shape = _shape(line)
        return sum(shape in e for e in edge_sets) >= need

    head = 0
    while head < min(_EDGE_LINES, len(lines)) and running(lines[head]):
        head += 1
    tail = len(lines)
    while tail > max(head, len(lines) - _EDGE_LINES) and running(lines[tail - 1]):
        tail -= 1
    return head, tail


def join_lines(lines: list[str]) -> str:
    """Lines of one paragraph as one string: a hyphen at a line end before a lower-case letter joins the word."""
    out = ""
    for line in lines:
        if out.endswith("-") and len(out) > 1 and out[-2].isalpha() and line[:1].islower():
            out = out[:-1] + line
        else:
            out = f"{out} {line}" if out else line
    return out
