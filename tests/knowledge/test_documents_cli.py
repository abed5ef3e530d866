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
    # files of other types are listed as skipped with the reason; hidden files and folders are not
    (folder / "formulary.xlsx").write_bytes(b"PK\x03\x04 a spreadsheet")
    (folder / "minutes").mkdir()
    shutil.copyfile(documents / "pydocx_guide.docx", folder / "minutes" / "README")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / ".git").mkdir()
    shutil.copyfile(documents / "guideline.txt", folder / ".git" / "notes.txt")
    db = tmp_path / "s.kiig"
    run = kiig("corpus", "add", "--db", db, "--name", "refs", folder)
    assert run.returncode == 1, run.stderr  # some files were skipped
    assert "Traceback" not in run.stderr
    lines = run.stdout.splitlines()
    assert "added     qt_guideline.pdf (" in run.stdout and "added     pydocx_guide.docx (" in run.stdout
    assert "added     page.html (" in run.stdout and "added     guideline.txt (" in run.stdout
    qt = lines.index(next(ln for ln in lines if ln.startswith("added     qt_guideline.pdf (")))
    assert lines[qt + 1].startswith("          - 16 lines on 8 of 8 pages dropped as running headers/footers"), lines[qt + 1]
    skipped = {ln.split()[1]: lines[i + 1].strip() for i, ln in enumerate(lines) if ln.startswith("skipped")}
    assert skipped == {
        "damaged.docx": skipped["damaged.docx"], "damaged.pdf": skipped["damaged.pdf"],
        "encrypted.pdf": skipped["encrypted.pdf"], "garbage.pdf": skipped["garbage.pdf"],
        "scanned.pdf": "- no text layer: scanned document, OCR is not supported",
        "formulary.xlsx": "- unsupported file type '.xlsx' (supported: .docx, .htm, .html, .jsonl, .markdown, .md, "
                          ".pdf, .text, .txt)",
        "minutes/README": skipped["minutes/README"]}
    assert skipped["minutes/README"].startswith("- unsupported file type (no extension) (supported: .docx,")
    assert skipped["encrypted.pdf"].startswith("- encrypted: the PDF is password-protected")
    assert skipped["damaged.pdf"].startswith("- damaged PDF") and skipped["damaged.docx"].startswith("- damaged Word document")
    assert skipped["garbage.pdf"].startswith("- unreadable text")
    assert lines[-1].startswith("corpus 'refs': 5 added, 0 replaced, 0 unchanged, 7 skipped;")
    assert ".DS_Store" not in run.stdout and ".git" not in run.stdout

    again = kiig("corpus", "add", "--db", db, "--name", "refs", "--json", folder)
    assert again.returncode == 1
    report = json.loads(again.stdout)
    assert {f["name"]: f["status"] for f in report["files"]} == {
        **{n: "unchanged" for n in MIXED[:5]}, **{n: "skipped" for n in [*MIXED[5:], "formulary.xlsx", "minutes/README"]}}
    xlsx = next(f for f in report["files"] if f["name"] == "formulary.xlsx")
    assert xlsx["messages"][0].startswith("unsupported file type '.xlsx'") and xlsx["kind"] is None

    found = kiig("corpus", "search", "--db", db, "--name", "refs", "--query", "rifampicin orange tears", "--k", "10", "--json")
    results = json.loads(found.stdout)["results"]
    pdf = next(r for r in results if r["file"] == "qt_guideline.pdf")
    assert isinstance(pdf["page"], int) and pdf["where"].startswith("qt_guideline.pdf, page")
    text = kiig("corpus", "search", "--db", db, "--name", "refs", "--query", "rifampicin orange tears")
    assert "qt_guideline.pdf, page" in text.stdout
