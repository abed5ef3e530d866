"""``kiig corpus add`` on a folder of mixed PDF/DOCX/HTML/TXT files, as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import shutil

from tests.support.cli import kiig

MIXED = ["qt_guideline.pdf", "gs_guideline.pdf", "pydocx_guide.docx", "page.html", "guideline.txt",
         "scanned.pdf", "encrypted.pdf", "damaged.pdf", "damaged.docx", "garbage.pdf"]


def test_corpus_add_reports_each_file_of_a_mixed_folder(tmp_path, documents):
    folder = tmp_path / "hospital refs"
    folder.mkdir()
    for name in MIXED:
        shutil.copyfile(documents / name, folder / name)
    db = tmp_path / "s.kiig"
    run = kiig("corpus", "add", "--db", db, "--name", "refs", folder)
    assert run.returncode == 1, run.stderr  # some files were skipped
    assert "Traceback" not in run.stderr
    lines = run.stdout.splitlines()
    assert "added     qt_guideline.pdf (" in run.stdout and "added     pydocx_guide.docx (" in run.stdout
    assert "added     page.html (" in run.stdout and "added     guideline.txt (" in run.stdout
    skipped = {ln.split()[1]: lines[i + 1].strip() for i, ln in enumerate(lines) if ln.startswith("skipped")}
    assert skipped == {
        "damaged.docx": skipped["damaged.docx"], "damaged.pdf": skipped["damaged.pdf"],
        "encrypted.pdf": skipped["encrypted.pdf"], "garbage.pdf": skipped["garbage.pdf"],
        "scanned.pdf": "- no text layer: scanned document, OCR is not supported"}
    assert skipped["encrypted.pdf"].startswith("- encrypted: the PDF is password-protected")
    assert skipped["damaged.pdf"].startswith("- damaged PDF") and skipped["damaged.docx"].startswith("- damaged Word document")
    assert skipped["garbage.pdf"].startswith("- unreadable text")
    assert lines[-1].startswith("corpus 'refs': 5 added, 0 replaced, 0 unchanged, 5 skipped;")

    again = kiig("corpus", "add", "--db", db, "--name", "refs", "--json", folder)
    report = json.loads(again.stdout)
    assert {f["name"]: f["status"] for f in report["files"]} == {
        **{n: "unchanged" for n in MIXED[:5]}, **{n: "skipped" for n in MIXED[5:]}}

    found = kiig("corpus", "search", "--db", db, "--name", "refs", "--query", "rifampicin orange tears", "--k", "10", "--json")
    results = json.loads(found.stdout)["results"]
    pdf = next(r for r in results if r["file"] == "qt_guideline.pdf")
    assert isinstance(pdf["page"], int) and pdf["where"].startswith("qt_guideline.pdf, page")
    text = kiig("corpus", "search", "--db", db, "--name", "refs", "--query", "rifampicin orange tears")
    assert "qt_guideline.pdf, page" in text.stdout
