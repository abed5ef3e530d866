"""Benchmark importing documents: a 1,000-page PDF and a folder of 200 mixed PDF/DOCX/HTML/TXT files.

The documents are made by the producers the tests use (``tests/support/documents.py``):
Ghostscript and Qt's QPdfWriter for the PDFs, python-docx for the Word files, the demo corpus's
clinical facts as their text. Each import runs in a fresh child process into a new session file
(``SessionStore``: WAL, synchronous=FULL), as ``kiig corpus add`` does; the child reports its wall
time and its peak resident memory (VmHWM) against its memory just before the import (with the
PDF and Word libraries already loaded).

    python benchmarks/bench_documents.py [--pages 1000] [--docs 200] [--out benchmarks/results/documents.json]

It also times whole-document text extraction with pypdf and pypdfium2 on the Qt guideline and the
big PDF (pypdf comes with the `test` extra, which `make test` installs): the measurement behind the choice in
``kiig_desktop/knowledge/pdf_text.py``. Not a timed test: it prints numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine, proc_status, save  # noqa: E402

from tests.support import documents as docs  # noqa: E402


def make_folder(folder: Path, n: int, qt_pdf: Path) -> dict[str, int]:
    """``n`` documents: 30% Ghostscript PDFs, 10% Qt PDFs, 25% DOCX, 15% HTML, 20% TXT, each a slice of the facts."""
    import docx

    facts = docs.facts()
    counts = {"pdf_gs": int(n * 0.3), "pdf_qt": int(n * 0.1), "docx": int(n * 0.25), "html": int(n * 0.15)}
    counts["txt"] = n - sum(counts.values())
    folder.mkdir(parents=True, exist_ok=True)

    def pick(i: int) -> list[dict]:
        start = (i * 7) % len(facts)
        return (facts * 2)[start:start + 12]

    for i in range(counts["pdf_gs"]):
        pages = docs.guideline_pages(pick(i))
        docs.ghostscript("%!PS\n" + "\n".join(docs.ps_page(p, k, len(pages)) for k, p in enumerate(pages, 1)),
                         folder / f"gs_{i:03}.pdf")
    for i in range(counts["pdf_qt"]):
        shutil.copyfile(qt_pdf, folder / f"qt_{i:03}.pdf")
    for i in range(counts["docx"]):
        d = docx.Document()
        for f in pick(i):
            d.add_heading(f["title"], level=1)
            d.add_paragraph(f["text"])
        d.save(folder / f"word_{i:03}.docx")
    for i in range(counts["html"]):
        body = "".join(f"<h2>{f['title']}</h2><p>{f['text']}</p>" for f in pick(i))
        (folder / f"page_{i:03}.html").write_text(f"<html><head><script>var x=1;</script></head><body><nav>menu</nav>"
                                                  f"<h1>Facts {i}</h1>{body}</body></html>", encoding="utf-8")
    for i in range(counts["txt"]):
        (folder / f"notes_{i:03}.txt").write_text("".join(f"{f['title']}\n\n{f['text']}\n\n" for f in pick(i)),
                                                  encoding="utf-8")
    return counts


def compare_libraries(pdfs: dict[str, Path], repeat: int) -> dict:
    """Whole-document text extraction time of pypdf and pypdfium2 (the choice in knowledge/pdf_text.py):
    the median of ``repeat`` interleaved runs."""
    import pypdf  # not a dependency: the comparison only
    import pypdfium2

    def with_pypdf(path: Path) -> int:
        return sum(len(page.extract_text()) for page in pypdf.PdfReader(path).pages)

    def with_pdfium(path: Path) -> int:
        doc = pypdfium2.PdfDocument(str(path))
        try:
            return sum(len(doc[i].get_textpage().get_text_range()) for i in range(len(doc)))
        finally:
            doc.close()

    out = {"pypdf": pypdf.__version__, "pypdfium2": str(pypdfium2.version.PYPDFIUM_INFO),
           "pdfium": str(pypdfium2.version.PDFIUM_INFO), "seconds": {}}
    for name, path in pdfs.items():
        runs: dict[str, list[float]] = {"pypdf": [], "pypdfium2": []}
        for _ in range(repeat):
            for lib, fn in (("pypdf", with_pypdf), ("pypdfium2", with_pdfium)):
                t = time.perf_counter()
                fn(path)
                runs[lib].append(time.perf_counter() - t)
        row = {lib: round(statistics.median(v), 3) for lib, v in runs.items()}
        row["ratio"] = round(row["pypdf"] / row["pypdfium2"], 1)
        out["seconds"][name] = row
    return out


def child(path: str) -> None:
    """Import ``path`` into a new session and print the numbers as JSON (run in a fresh process)."""
    import docx  # noqa: F401 - the readers' libraries are loaded before the baseline: the peak is the import's
    import pypdfium2  # noqa: F401

    from kiig_desktop.knowledge import corpus
    from kiig_desktop.store import SessionStore

    with tempfile.TemporaryDirectory() as tmp:
        with SessionStore.open(Path(tmp) / "s.kiig") as store:
            base = proc_status(os.getpid(), "VmRSS") or 0
            t = time.perf_counter()
            report = corpus.add_documents(store.db, "bench", [path])
            elapsed = time.perf_counter() - t
            peak = proc_status(os.getpid(), "VmHWM") or 0
        session_mb = (Path(tmp) / "s.kiig").stat().st_size / 2**20
        statuses: dict[str, int] = {}
        for f in report.files:
            statuses[f.status] = statuses.get(f.status, 0) + 1
        print(json.dumps({"import_s": round(elapsed, 2), "peak_rss_mb": round(peak / 2**20, 1),
                          "rss_before_mb": round(base / 2**20, 1), "peak_over_start_mb": round((peak - base) / 2**20, 1),
                          "files": statuses, "chunks": report.n_chunks_written, "session_mb": round(session_mb, 1)}))


def measure(path: Path, repeat: int) -> dict:
    """``repeat`` imports of ``path``, each in a fresh process: the medians, and every run."""
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, __file__, "--child", str(path)], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parents[1])
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    result = dict(runs[-1])
    for key in ("import_s", "peak_rss_mb", "rss_before_mb", "peak_over_start_mb"):
        result[key] = round(statistics.median(r[key] for r in runs), 2)
    result["runs"] = [{k: r[k] for k in ("import_s", "peak_over_start_mb")} for r in runs]
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=docs.BIG_PAGES)
    ap.add_argument("--docs", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5, help="runs of each measurement; the medians are reported")
    ap.add_argument("--out", default=None, help="write the numbers as JSON here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        big = root / "big.pdf"
        docs.big_pdf(big, args.pages)
        qt = root / "qt.pdf"
        docs.qt_pdf({"kind": "text", "header": docs.HEADER, "pages": docs.guideline_pages()}, qt)
        counts = make_folder(root / "mixed", args.docs, qt)
        made_s = time.perf_counter() - t
        libraries = compare_libraries({"qt_guideline_8_pages": qt, f"gs_{args.pages}_pages": big}, args.repeat)
        pdf = measure(big, args.repeat)
        mixed = measure(root / "mixed", args.repeat)
        pdf.update(pages=args.pages, mb=round(big.stat().st_size / 2**20, 1))
        mixed.update(documents=args.docs, kinds=counts,
                     mb=round(sum(f.stat().st_size for f in (root / "mixed").iterdir()) / 2**20, 1))
    result = {"machine": machine(), "repeat": args.repeat, "make_documents_s": round(made_s, 1), "pdf_libraries": libraries,
              "pdf_1000_pages": pdf, "mixed_folder": mixed}
    print(f"text extraction, pypdf vs pypdfium2 (s): {libraries['seconds']}")
    print(f"{args.pages}-page PDF ({pdf['mb']} MB): {pdf['import_s']} s, {pdf['chunks']} chunks, "
          f"peak RSS {pdf['peak_rss_mb']} MB ({pdf['peak_over_start_mb']} MB over the start)")
    print(f"{args.docs} mixed documents ({mixed['mb']} MB, {counts}): {mixed['import_s']} s, {mixed['chunks']} chunks, "
          f"peak RSS {mixed['peak_rss_mb']} MB ({mixed['peak_over_start_mb']} MB over the start), files {mixed['files']}")
    save(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
