"""Real test documents for the PDF/DOCX/HTML importers, made by real producers, cached by content.

The text is the demo corpus (55 clinical facts, ``resources/corpus/clinical_facts.jsonl``) laid out
as a guideline: one heading per fact, lines wrapped at a fixed width with long words hyphenated at
line ends, a running header and a "Page N of M" footer on every page. Producers:

- ``qt_guideline.pdf``: Qt's QPdfWriter (``tests/support/qt_pdf.py`` in a subprocess, offscreen);
- ``gs_guideline.pdf``, ``two_column.pdf``, ``garbage.pdf``, ``big.pdf``: Ghostscript's pdfwrite
  from PostScript written here (``two_column.pdf`` draws its two columns line by line across, so
  the content order is not the reading order; ``garbage.pdf`` uses a Type 3 font whose glyphs
  have no Unicode meaning, as broken subset fonts do);
- ``scanned.pdf``: QPdfWriter drawing a picture of text (no text layer);
- ``encrypted.pdf``: pypdf encrypting ``qt_guideline.pdf`` with a user password;
- ``damaged.pdf`` / ``truncated.pdf`` / ``damaged.docx``: garbage after a PDF header, a PDF cut
  at 60%, a Word file cut in half;
- ``pydocx_guide.docx`` (python-docx: headings, paragraphs, a table), ``page.html`` (navigation,
  header, footer, scripts, styles) and, by :func:`libreoffice_docx`, ``lo_guide.docx`` (LibreOffice
  converting ``page.html``).

``documents(cache_root)`` builds them once per content of this file, qt_pdf.py and the producers'
versions, into ``cache_root/<key>/``. Ghostscript and LibreOffice are Debian packages
(``ghostscript``, ``libreoffice-writer-nogui``; ``make test`` installs them as root).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from kiig_desktop.resources import resource_path

HERE = Path(__file__).resolve().parent
HEADER = "Clinical facts guideline - KIIG test document"
WIDTH = 84
LINES_PER_PAGE = 46
BIG_PAGES = 1000


def facts() -> list[dict]:
    path = resource_path("corpus", "clinical_facts.jsonl")
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def wrap_hyphenated(text: str, width: int = WIDTH) -> list[str]:
    """Lines of at most ``width`` characters; a long word at a line end is split with a hyphen."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        room = width - len(line) - (1 if line else 0)
        if len(word) <= room:
            line = f"{line} {word}" if line else word
            continue
        if len(word) >= 8 and room >= 5 and word.isalpha():
            cut = room - 1
            cut = max(3, min(cut, len(word) - 3))
            lines.append(f"{line} {word[:cut]}-" if line else f"{word[:cut]}-")
            line = word[cut:]
            continue
        lines.append(line)
        line = word
    if line:
        lines.append(line)
    return lines


def guideline_pages(items: list[dict] | None = None, lines_per_page: int = LINES_PER_PAGE) -> list[list[tuple[str, str]]]:
    """Pages of (kind, text) lines: ("h", heading) and ("p", body line); a fact may continue on the next page."""
    pages: list[list[tuple[str, str]]] = [[]]
    for fact in items or facts():
        block = [("h", fact["title"])] + [("p", ln) for ln in wrap_hyphenated(fact["text"])] + [("p", "")]
        for entry in block:
            if len(pages[-1]) >= lines_per_page:
                pages.append([])
            pages[-1].append(entry)
    return pages


def guideline_text() -> str:
    """The same facts as plain text (heading, blank line, paragraph): the text version of the PDFs."""
    return "".join(f"{f['title']}\n\n{f['text']}\n\n" for f in facts())


def page_of(pages: list[list[tuple[str, str]]], title: str) -> int:
    """1-based page on which the heading ``title`` is printed."""
    return next(n for n, page in enumerate(pages, 1) if ("h", title) in page)


# -- Ghostscript ------------------------------------------------------------------------------


def _ps_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def ps_page(lines: list[tuple[str, str]], number: int, total: int) -> str:
    out = ["/Helvetica findfont 8 scalefont setfont", f"72 760 moveto {_ps_string(HEADER)} show",
           f"500 40 moveto {_ps_string(f'Page {number} of {total}')} show"]
    y = 730
    for kind, text in lines:
        font = "/Helvetica-Bold findfont 11" if kind == "h" else "/Helvetica findfont 10"
        if text:
            out.append(f"{font} scalefont setfont 72 {y} moveto {_ps_string(text)} show")
        y -= 14
    out.append("showpage")
    return "\n".join(out)


def ghostscript(ps: str, out: Path) -> None:
    """Run Ghostscript's pdfwrite (``gs``, on PATH) on PostScript source ``ps``."""
    gs = shutil.which("gs") or "gs"
    src = out.with_suffix(".ps")
    src.write_text(ps, encoding="latin-1")
    subprocess.run([gs, "-q", "-dSAFER", "-dNOPAUSE", "-dBATCH", "-sDEVICE=pdfwrite", f"-sOutputFile={out}", str(src)],
                   check=True, capture_output=True, timeout=600)
    src.unlink()


def gs_guideline(out: Path) -> None:
    pages = guideline_pages()
    ghostscript("%!PS\n" + "\n".join(ps_page(p, n, len(pages)) for n, p in enumerate(pages, 1)), out)


LEFT = ("Left column. Warfarin dosing is guided by the international normalised ratio, with a usual target "
        "between two and three for atrial fibrillation and venous thromboembolism. Vitamin K reverses its effect.")
RIGHT = ("Right column. Heparin acts within minutes by enhancing antithrombin, and unfractionated heparin is "
         "monitored with the activated partial thromboplastin time. Protamine reverses its effect.")


def two_column(out: Path) -> None:
    """One page: a full-width heading, then two columns drawn line by line across (left 1, right 1, left 2 ...)."""
    left, right = textwrap.wrap(LEFT, 40), textwrap.wrap(RIGHT, 40)
    ps = ["%!PS", "/Helvetica-Bold findfont 12 scalefont setfont",
          f"72 730 moveto {_ps_string('Anticoagulants: two columns on one page')} show",
          "/Helvetica findfont 10 scalefont setfont"]
    for i in range(max(len(left), len(right))):
        y = 700 - 14 * i
        if i < len(left):
            ps.append(f"72 {y} moveto {_ps_string(left[i])} show")
        if i < len(right):
            ps.append(f"320 {y} moveto {_ps_string(right[i])} show")
    ghostscript("\n".join(ps + ["showpage"]), out)


def garbage(out: Path) -> None:
    """Two pages in a Type 3 font whose glyphs are named g1..g26 at codes 1..26: no Unicode anywhere."""
    procs = "\n".join(f"Encoding {i} /g{i} put CharProcs /g{i} {{ {400 + 10 * i} 0 0 0 500 700 setcachedevice "
                       f"50 0 moveto {100 + 15 * i} 600 lineto 450 0 lineto fill }} put" for i in range(1, 27))
    font = f"""/BoxFont 8 dict begin
/FontType 3 def /FontMatrix [0.001 0 0 0.001 0 0] def /FontBBox [0 0 800 700] def
/Encoding 256 array def 0 1 255 {{Encoding exch /.notdef put}} for
/CharProcs 28 dict def CharProcs /.notdef {{ 400 0 0 0 0 0 setcachedevice }} put
{procs}
/BuildGlyph {{ exch /CharProcs get exch 2 copy known not {{pop /.notdef}} if get exec }} def
/BuildChar {{ 1 index /Encoding get exch get 1 index /BuildGlyph get exec }} def
currentdict end /BoxFont exch definefont pop
"""
    body = []
    for page in range(2):
        body.append("/BoxFont findfont 12 scalefont setfont")
        for i, line in enumerate(wrap_hyphenated(" ".join(f["text"] for f in facts()[page * 3: page * 3 + 3]), 70)):
            coded = "".join(chr(ord(c.lower()) - 96) if c.isalpha() and c.isascii() else " " for c in line)
            body.append(f"72 {740 - 14 * i} moveto {_ps_string(coded)} show")
        body.append("showpage")
    ghostscript("%!PS\n" + font + "\n".join(body), out)


def big_pdf(out: Path, pages: int = BIG_PAGES) -> None:
    """``pages`` pages of guideline text (the facts over and over), header and footer on each."""
    items = facts()
    lines = [ln for f in items for ln in [("h", f["title"])] + [("p", x) for x in wrap_hyphenated(f["text"])]]
    per = 30
    ps = ["%!PS"]
    for n in range(1, pages + 1):
        start = ((n - 1) * per) % len(lines)
        chunk = (lines * 2)[start:start + per]
        ps.append(ps_page(chunk, n, pages))
    ghostscript("\n".join(ps), out)


# -- Qt, python-docx, LibreOffice, pypdf ------------------------------------------------------


def qt_pdf(spec: dict, out: Path) -> None:
    """Run tests/support/qt_pdf.py (QPdfWriter, offscreen) on ``spec``."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as fh:
        json.dump(spec, fh)
    try:
        subprocess.run([sys.executable, str(HERE / "qt_pdf.py"), fh.name, str(out)], check=True, capture_output=True,
                       timeout=600, env=env)
    finally:
        os.unlink(fh.name)


HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Anticoagulation protocol</title>
<style>body { font-family: sans-serif } .nav a { color: red }</style>
<script>var tracking = "script text must never be imported"; function menu() { return 1; }</script>
</head><body>
<header><p>Hospital intranet banner text</p></header>
<nav class="nav"><a href="/">Home navigation link</a> <a href="/a">Another menu item</a></nav>
<h1>Anticoagulation protocol</h1>
<p>This local protocol covers warfarin and heparin on the wards.</p>
<h2>Warfarin</h2>
<h3>Monitoring</h3>
<p>Check the international normalised ratio daily until it is stable within the target range of two to three.</p>
<h2>Heparin</h2>
<p>Unfractionated heparin is monitored with the activated partial thromboplastin time;
protamine sulfate reverses it in an emergency.</p>
<table><tr><th>Drug</th><th>Reversal agent</th></tr><tr><td>Warfarin</td><td>Vitamin K</td></tr>
<tr><td>Heparin</td><td>Protamine</td></tr></table>
<footer><p>Footer copyright notice</p></footer>
<script>document.write("more script text")</script>
</body></html>
"""


def pydocx(out: Path) -> None:
    import docx

    d = docx.Document()
    d.add_heading("Dosing", level=1)
    d.add_paragraph("General advice for prescribers applies to every age group.")
    d.add_heading("Adults", level=2)
    d.add_paragraph("Start metformin at 500 mg once daily with the evening meal and increase gradually.")
    d.add_heading("Children", level=2)
    d.add_paragraph("Metformin is not licensed for children under ten years of age.")
    d.add_heading("Interactions", level=1)
    table = d.add_table(rows=3, cols=2)
    for r, (a, b) in enumerate([("Drug", "Effect"), ("Iodinated contrast", "Withhold metformin before the scan"),
                                ("Alcohol", "Raises the risk of lactic acidosis")]):
        table.cell(r, 0).text, table.cell(r, 1).text = a, b
    d.save(out)


def libreoffice_docx(folder: Path) -> Path:
    """``folder/lo_guide.docx``: LibreOffice (``soffice``, on PATH) converting ``folder/page.html``; made once."""
    out = folder / "lo_guide.docx"
    if out.exists():
        return out
    html = folder / "page.html"
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["soffice", f"-env:UserInstallation=file://{tmp}/profile", "--headless", "--convert-to",
                        "docx:MS Word 2007 XML", "--outdir", tmp, str(html)], check=True, capture_output=True, timeout=300)
        shutil.move(Path(tmp) / (html.stem + ".docx"), folder / f".{out.name}.part")
        (folder / f".{out.name}.part").rename(out)
    return out


def encrypt(src: Path, out: Path) -> None:
    import pypdf

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(src))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    with open(out, "wb") as fh:
        writer.write(fh)


def build(folder: Path) -> None:
    """Write every test document into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    pages = guideline_pages()
    qt_pdf({"kind": "text", "header": HEADER, "pages": pages}, folder / "qt_guideline.pdf")
    qt_pdf({"kind": "image", "header": HEADER, "pages": pages[:2]}, folder / "scanned.pdf")
    gs_guideline(folder / "gs_guideline.pdf")
    two_column(folder / "two_column.pdf")
    garbage(folder / "garbage.pdf")
    big_pdf(folder / "big.pdf")
    encrypt(folder / "qt_guideline.pdf", folder / "encrypted.pdf")
    (folder / "damaged.pdf").write_bytes(b"%PDF-1.7\n" + hashlib.sha256(b"x").digest() * 64)
    whole = (folder / "gs_guideline.pdf").read_bytes()
    (folder / "truncated.pdf").write_bytes(whole[: len(whole) * 6 // 10])  # a download cut short
    (folder / "guideline.txt").write_text(guideline_text(), encoding="utf-8")
    (folder / "page.html").write_text(HTML, encoding="utf-8")
    pydocx(folder / "pydocx_guide.docx")
    whole = (folder / "pydocx_guide.docx").read_bytes()
    (folder / "damaged.docx").write_bytes(whole[: len(whole) // 2])


def _key() -> str:
    h = hashlib.sha256()
    for f in (HERE / "documents.py", HERE / "qt_pdf.py", Path(resource_path("corpus", "clinical_facts.jsonl"))):
        h.update(f.read_bytes())
    gs = subprocess.run(["gs", "--version"], capture_output=True, text=True).stdout if shutil.which("gs") else ""
    h.update(gs.encode())
    return h.hexdigest()[:16]


def documents(cache_root: Path) -> Path:
    """The folder of test documents, built on first use for this content (see the module docstring)."""
    folder = cache_root / _key()
    if (folder / ".complete").exists():
        return folder
    tmp = cache_root / f".build-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    build(tmp)
    (tmp / ".complete").write_text("ok\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


if __name__ == "__main__":
    print(documents(Path(sys.argv[1])))
