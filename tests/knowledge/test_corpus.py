"""Reference corpus import: chunking, idempotent re-import, replacement, bad input, atomicity."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest
import sqlite_utils

from kiig_desktop.errors import Cancelled, InputError
from kiig_desktop.events import CancelToken, Progress
from kiig_desktop.knowledge import corpus
from kiig_desktop.knowledge.chunking import Packer, chunk_record_text
from kiig_desktop.store import corpus_schema


@pytest.fixture
def db(tmp_path_factory):
    """A corpus database outside ``tmp_path``: tests import that folder, which would list the database as skipped."""
    database = sqlite_utils.Database(tmp_path_factory.mktemp("db") / "session.db")
    database.execute("PRAGMA foreign_keys = ON")
    corpus_schema.apply(database)
    yield database
    database.close()


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def chunks(db, name="c"):
    return db.execute("""SELECT d.source, k.chunk, k.title, k.text, k.char_start, k.char_end FROM corpus_chunks k
                         JOIN corpus_documents d ON d.id = k.document_id JOIN corpora c ON c.id = k.corpus_id
                         WHERE c.name = ? ORDER BY d.source, k.chunk""", [name]).fetchall()


def fts_terms(db) -> dict[str, int]:
    """Document count per indexed term, read from the FTS index itself (catches stale entries)."""
    db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.corpus_vocab USING fts5vocab(main, corpus_fts, 'row')")
    return dict(db.execute("SELECT term, doc FROM temp.corpus_vocab").fetchall())


MD = """---
title: front matter is skipped
---
# Diabetes

Type 2 diabetes is usually treated first with [metformin](https://example.org/m).

## Diagnosis
An HbA1c of 6.5% or more confirms diabetes.

Kidney disease
--------------

Metformin is avoided when the eGFR is below 30.
"""


def test_schema_apply_is_idempotent(db):
    corpus_schema.apply(db)
    corpus_schema.apply(db)
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert {"corpora", "corpus_files", "corpus_documents", "corpus_chunks", "corpus_fts"} <= names


def test_markdown_sections_titles_offsets(db, tmp_path):
    path = write(tmp_path / "diabetes.md", MD)
    report = corpus.add_documents(db, "c", [path])
    assert [f.status for f in report.files] == ["added"]
    rows = chunks(db)
    assert [r[2] for r in rows] == ["Diabetes", "Diabetes > Diagnosis", "Diabetes > Kidney disease"]
    assert rows[0][3] == "Type 2 diabetes is usually treated first with metformin."  # link text kept, URL dropped
    text = path.read_text()
    for _src, _n, _title, body, start, end in rows[1:]:
        assert text[start:end] == body  # offsets point into the decoded document
    assert "front matter" not in " ".join(r[3] for r in rows)


def test_txt_and_jsonl_sources(db, tmp_path):
    write(tmp_path / "notes_on_gout.txt", "Gout is caused by urate crystals.\n\nColchicine treats acute attacks.\n")
    write(tmp_path / "facts.jsonl", "\n".join(json.dumps(r) for r in [
        {"id": "f1", "title": "Scurvy", "text": "Scurvy is caused by a lack of vitamin C."},
        {"id": 2, "text": "Rickets is caused by a lack of vitamin D."},
    ]) + "\n")
    report = corpus.add_documents(db, "c", [tmp_path])
    assert sorted(f.name for f in report.added) == ["facts.jsonl", "notes_on_gout.txt"]
    rows = chunks(db)
    assert {r[0] for r in rows} == {"f1", "2", "notes_on_gout.txt"}
    assert [r[2] for r in rows if r[0] == "notes_on_gout.txt"] == ["notes on gout"]
    hits = corpus.search(db, "c", "what does vitamin C deficiency cause?", k=1)
    assert hits[0].source == "f1" and hits[0].title == "Scurvy"


def test_chunk_size_limit_and_overlap():
    sentences = [f"Sentence number {i} talks about topic {i} in some detail." for i in range(60)]
    text = " ".join(sentences)
    out = chunk_record_text(text, "T", max_chunk_chars=300, overlap_chars=60)
    assert len(out) > 5
    assert all(len(c.text) <= 300 for c in out)
    for prev, nxt in zip(out, out[1:], strict=False):
        # the next chunk starts with the end of the previous one (a whole sentence or word run)
        head = nxt.text[:40]
        assert head in prev.text
    joined = " ".join(c.text for c in out)
    assert all(s in joined for s in sentences)  # nothing lost


def test_packer_never_exceeds_limit_with_unbreakable_text():
    packer = Packer(200, 50)
    out = packer.add("x" * 1000, 0, 1000, "t") + packer.add("short paragraph", 1002, 1017, "t") + packer.finish()
    assert all(len(c.text) <= 200 for c in out)
    assert sum(c.text.count("x") for c in out) >= 1000


def test_reimport_unchanged_is_noop(db, tmp_path):
    write(tmp_path / "a.md", MD)
    write(tmp_path / "b.jsonl", json.dumps({"id": "b1", "text": "Heparin is reversed by protamine."}) + "\n")
    first = corpus.add_documents(db, "c", [tmp_path])
    ids_before = db.execute("SELECT id FROM corpus_chunks ORDER BY id").fetchall()
    second = corpus.add_documents(db, "c", [tmp_path])
    assert [f.status for f in second.files] == ["unchanged", "unchanged"]
    assert second.n_chunks_written == 0
    assert db.execute("SELECT id FROM corpus_chunks ORDER BY id").fetchall() == ids_before
    assert [f.n_chunks for f in second.files] == [f.n_chunks for f in first.files]
    assert fts_terms(db)["protamin"] == 1  # porter stem, indexed once


def test_changed_file_replaces_its_chunks(db, tmp_path):
    path = write(tmp_path / "drug.txt", "Warfarin is monitored with the INR.\n")
    corpus.add_documents(db, "c", [path])
    write(path, "Heparin is monitored with the aPTT.\n")
    report = corpus.add_documents(db, "c", [path])
    assert [f.status for f in report.files] == ["replaced"]
    assert [r[3] for r in chunks(db)] == ["Heparin is monitored with the aPTT."]
    assert corpus.search(db, "c", "warfarin INR") == []
    terms = fts_terms(db)
    assert "warfarin" not in terms and "inr" not in terms and terms["heparin"] == 1  # no stale index entries


def test_changed_chunk_settings_rechunk(db, tmp_path):
    path = write(tmp_path / "long.txt", "\n\n".join(f"Paragraph {i} " + "word " * 40 for i in range(10)))
    corpus.add_documents(db, "c", [path])
    n1 = len(chunks(db))
    report = corpus.add_documents(db, "c", [path], max_chunk_chars=200, overlap_chars=0)
    assert report.files[0].status == "replaced" and "re-chunked" in report.files[0].messages[0]
    assert len(chunks(db)) > n1


def test_jsonl_duplicate_and_missing_ids_are_warnings(db, tmp_path):
    lines = [
        json.dumps({"id": "x", "text": "first"}),
        json.dumps({"id": "x", "text": "second with the same id"}),
        json.dumps({"text": "no id at all"}),
    ]
    path = write(tmp_path / "p.jsonl", "\n".join(lines) + "\n")
    report = corpus.add_documents(db, "c", [path])
    fr = report.files[0]
    assert fr.status == "added" and fr.n_documents == 2
    text = "\n".join(fr.messages)
    assert "line 2: duplicate id 'x'" in text and "line 3: no usable" in text
    assert {r[0] for r in chunks(db)} == {"x", "p.jsonl:3"}


def test_jsonl_bad_lines_refuse_the_whole_import(db, tmp_path):
    good = write(tmp_path / "good.txt", "Metformin is first-line therapy for type 2 diabetes.\n")
    lines = [
        json.dumps({"id": "x", "text": "first"}),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"id": "y"}),
    ]
    path = write(tmp_path / "p.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(InputError) as err:
        corpus.add_documents(db, "c", [good, path])
    text = err.value.message
    assert str(path) in text and "3 bad lines" in text
    assert "line 2: not valid JSON" in text and "line 3: expected a JSON object" in text and "line 4: no \"text\"" in text
    assert corpus.list_corpora(db) == [] and chunks(db) == []  # nothing kept, the good file neither


def test_bad_files_are_skipped_with_clear_messages(db, tmp_path):
    good = write(tmp_path / "good.txt", "Aspirin inhibits cyclo-oxygenase.\n")
    binary = write(tmp_path / "blob.txt", b"\x00\x01\x02binary\x00data")
    pdf = write(tmp_path / "paper.md", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    empty = write(tmp_path / "empty.md", "")
    blank = write(tmp_path / "blank.txt", "\n   \n\t\n")
    other = write(tmp_path / "slides.pptx", "irrelevant")
    fake = write(tmp_path / "slides.pdf", "irrelevant")
    report = corpus.add_documents(db, "c", [good, binary, pdf, empty, blank, other, fake, tmp_path / "missing.txt"])
    msgs = {f.name: f.messages[0] for f in report.files if f.status == "skipped"}
    assert "NUL bytes" in msgs["blob.txt"]
    assert "PDF" in msgs["paper.md"]
    assert msgs["empty.md"] == "empty file"
    assert "empty" in msgs["blank.txt"]
    assert "unsupported file type '.pptx'" in msgs["slides.pptx"]
    assert msgs["slides.pdf"].startswith("damaged PDF: it cannot be read")
    assert msgs["missing.txt"] == "no such file or folder"
    assert [f.name for f in report.added] == ["good.txt"]


def test_unreadable_file(db, tmp_path, monkeypatch):
    import builtins

    import kiig_desktop.knowledge.corpus as mod

    path = write(tmp_path / "secret.txt", "hidden\n")

    def denied(file, *args, **kwargs):
        if Path(file) == path:
            raise PermissionError(13, "Permission denied")
        return builtins.open(file, *args, **kwargs)

    monkeypatch.setattr(mod, "open", denied, raising=False)
    report = corpus.add_documents(db, "c", [path])
    assert report.files[0].status == "skipped"
    assert report.files[0].messages == ["cannot read: Permission denied"]


def test_special_file_is_not_read(db, tmp_path):
    import os

    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)  # opening it would block forever
    report = corpus.add_documents(db, "c", [fifo])
    assert report.files[0].messages == ["not a regular file"]


def test_read_error_part_way_keeps_previous_version(db, tmp_path, monkeypatch):
    import kiig_desktop.knowledge.corpus as mod

    path = write(tmp_path / "a.txt", "Version one.\n")
    corpus.add_documents(db, "c", [path])
    write(path, "".join(f"Paragraph {i}.\n\n" for i in range(5000)))
    real_open_text = mod.open_text

    class Flaky:
        def __init__(self, fh):
            self.fh, self.n = fh, 0
            self.buffer = fh.buffer

        def readline(self, limit=-1):
            self.n += 1
            if self.n > 3000:
                raise OSError(5, "Input/output error")
            return self.fh.readline(limit)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(mod, "open_text", lambda p, enc: Flaky(real_open_text(p, enc)))
    report = corpus.add_documents(db, "c", [path])
    fr = report.files[0]
    assert fr.status == "skipped" and "read failed part-way: Input/output error" in fr.messages[0]
    assert "the version imported earlier is kept" in fr.messages
    assert [r[3] for r in chunks(db)] == ["Version one."]


def test_wrong_encoding_is_replaced_and_reported(db, tmp_path):
    latin1 = write(tmp_path / "latin1.txt", "Caf\xe9 au lait and cr\xe8me br\xfbl\xe9e.\n".encode("latin-1"))
    utf16 = write(tmp_path / "utf16.txt", "Na\u00efve B\u00e9zier text in UTF-16.\n".encode("utf-16"))
    report = corpus.add_documents(db, "c", [latin1, utf16])
    by_name = {f.name: f for f in report.files}
    assert by_name["latin1.txt"].status == "added"
    assert "4 byte(s) were not valid utf-8" in by_name["latin1.txt"].messages[0]
    assert by_name["utf16.txt"].status == "added" and not by_name["utf16.txt"].messages
    texts = {r[0]: r[3] for r in chunks(db)}
    assert texts["latin1.txt"].startswith("Caf\ufffd au lait")
    assert texts["utf16.txt"] == "Na\u00efve B\u00e9zier text in UTF-16."
    assert corpus.search(db, "c", "naive bezier")[0].source == "utf16.txt"  # diacritics folded


def test_duplicate_names_in_one_import(db, tmp_path):
    a = write(tmp_path / "a" / "notes.md", "Statins inhibit HMG-CoA reductase.\n")
    b = write(tmp_path / "b" / "notes.md", "Lithium causes tremor.\n")
    report = corpus.add_documents(db, "c", [a, b, a])  # the same file twice is imported once
    assert [f.status for f in report.files] == ["added", "skipped"]
    assert "duplicate name 'notes.md'" in report.files[1].messages[0]
    # a folder import names files by their relative path, so the two do not clash
    report = corpus.add_documents(db, "d", [tmp_path])
    assert sorted(f.name for f in report.added) == ["a/notes.md", "b/notes.md"]


def test_jsonl_id_clashing_with_other_file(db, tmp_path):
    write(tmp_path / "one.jsonl", json.dumps({"id": "shared", "text": "from one"}) + "\n")
    write(tmp_path / "two.jsonl", json.dumps({"id": "shared", "text": "from two"}) + "\n"
          + json.dumps({"id": "own", "text": "only in two"}) + "\n")
    report = corpus.add_documents(db, "c", [tmp_path])
    two = next(f for f in report.files if f.name == "two.jsonl")
    assert two.status == "added" and two.n_documents == 1
    assert "already used by 'one.jsonl'" in two.messages[0]


def test_cancel_mid_import_leaves_corpus_unchanged(db, tmp_path):
    first = write(tmp_path / "keep.txt", "Old content about warfarin.\n")
    corpus.add_documents(db, "c", [first])
    before = chunks(db)
    write(first, "New content about heparin.\n")
    big = write(tmp_path / "big.jsonl", "".join(json.dumps({"id": f"r{i}", "text": f"record {i} text"}) + "\n"
                                                 for i in range(3000)))
    token = CancelToken()
    seen = []

    def progress(p: Progress) -> None:
        seen.append(p)
        if p.message == "big.jsonl" and len(seen) > 3:
            token.cancel()

    with pytest.raises(Cancelled):
        corpus.add_documents(db, "c", [first, big], progress=progress, cancel=token)
    assert chunks(db) == before
    assert fts_terms(db).get("heparin") is None
    assert [c["name"] for c in corpus.list_corpora(db)] == ["c"]
    with pytest.raises(Cancelled):  # a new corpus cancelled part-way does not appear at all
        tok = CancelToken()
        corpus.add_documents(db, "fresh", [big], progress=lambda p: tok.cancel() if p.done else None, cancel=tok)
    assert [c["name"] for c in corpus.list_corpora(db)] == ["c"]


def test_crash_mid_import_rolls_back(db, tmp_path, monkeypatch):
    path = write(tmp_path / "a.txt", "Alpha paragraph.\n")
    corpus.add_documents(db, "c", [path])
    write(tmp_path / "b.txt", "Beta paragraph.\n")
    write(path, "Changed alpha.\n")
    import kiig_desktop.knowledge.corpus as mod

    real = mod.chunk_text_stream

    def boom(fh, name, *a, **kw):
        if name == "b.txt":
            raise KeyboardInterrupt
        yield from real(fh, name, *a, **kw)

    monkeypatch.setattr(mod, "chunk_text_stream", boom)
    with pytest.raises(KeyboardInterrupt):
        corpus.add_documents(db, "c", [path, tmp_path / "b.txt"])
    assert [r[3] for r in chunks(db)] == ["Alpha paragraph."]


def _import_peak(db, path: Path, name: str) -> tuple[int, corpus.ImportReport]:
    tracemalloc.start()
    try:
        report = corpus.add_documents(db, name, [path])
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, report


@pytest.mark.slow
def test_huge_single_line_file_streams_in_bounded_memory(db, tmp_path):
    sentence = "Bounded memory import keeps only a small window of this long line in memory. "
    peaks = []
    for n in (20_000, 80_000):  # 1.5 MB and 6 MB, each on one single line
        path = tmp_path / f"huge{n}.txt"
        with open(path, "w", encoding="utf-8") as fh:
            for _ in range(n):
                fh.write(sentence)
        peak, report = _import_peak(db, path, f"c{n}")
        assert report.files[0].status == "added" and report.files[0].n_chunks > n // 12
        peaks.append(peak)
    assert peaks[1] < peaks[0] * 1.2 + 200_000, f"Python memory grows with the file: {peaks}"
    assert peaks[1] < 4_000_000
    longest = db.execute("SELECT max(length(text)) FROM corpus_chunks").fetchone()[0]
    assert longest <= 800


def test_progress_reports_kib(db, tmp_path):
    write(tmp_path / "a.txt", "x y z\n" * 2000)
    events: list[Progress] = []
    corpus.add_documents(db, "c", [tmp_path], progress=events.append)
    assert events and events[-1].done == events[-1].total and events[-1].total >= 11


def test_list_remove_and_isolation(db, tmp_path):
    write(tmp_path / "one" / "a.txt", "Malaria is spread by Anopheles mosquitoes.\n")
    write(tmp_path / "two" / "b.jsonl", json.dumps({"id": "b1", "text": "Malaria is caused by Plasmodium."}) + "\n"
          + json.dumps({"id": "b2", "text": "Lyme disease is spread by ticks."}) + "\n")
    corpus.add_documents(db, "first", [tmp_path / "one"])
    corpus.add_documents(db, "second", [tmp_path / "two"])
    assert [h.source for h in corpus.search(db, "first", "malaria")] == ["a.txt"]
    assert [h.source for h in corpus.search(db, "second", "malaria")] == ["b1"]
    listing = {c["name"]: c for c in corpus.list_corpora(db)}
    assert listing["second"]["documents"] == 2 and listing["second"]["files"] == 1
    corpus.remove_document(db, "second", "b1")
    assert [h.source for h in corpus.search(db, "second", "malaria lyme")] == ["b2"]
    # the file counts as changed now: importing it again restores the record
    assert corpus.add_documents(db, "second", [tmp_path / "two"]).files[0].status == "replaced"
    corpus.remove_document(db, "second", "b.jsonl")
    assert corpus.list_corpora(db)[1]["chunks"] == 0
    corpus.remove_corpus(db, "first")
    assert [c["name"] for c in corpus.list_corpora(db)] == ["second"]
    assert "anophel" not in fts_terms(db)
    with pytest.raises(InputError, match="no corpus named 'first'"):
        corpus.search(db, "first", "malaria")
    with pytest.raises(InputError, match="no file or document"):
        corpus.remove_document(db, "second", "nope")


def test_list_files_and_documents(db, tmp_path):
    write(tmp_path / "docs" / "a.md", "# Malaria\n\nMalaria is spread by Anopheles mosquitoes.\n")
    write(tmp_path / "docs" / "b.jsonl", "".join(json.dumps({"id": f"b{i}", "title": f"B {i}", "text": f"Fact {i}."}) + "\n"
                                                 for i in range(3)))
    corpus.add_documents(db, "c", [tmp_path / "docs"])
    files = corpus.list_files(db, "c")
    assert [(f["name"], f["kind"], f["documents"], f["chunks"]) for f in files] == [("a.md", "md", 1, 1), ("b.jsonl", "jsonl", 3, 3)]
    assert all(f["bytes"] > 0 and f["imported"] and f["warnings"] == [] for f in files)
    docs, total = corpus.list_documents(db, "c", "b.jsonl", limit=2)
    assert total == 3 and docs == [{"source": "b0", "title": "B 0", "chunks": 1}, {"source": "b1", "title": "B 1", "chunks": 1}]
    with pytest.raises(InputError, match="no file named"):
        corpus.list_documents(db, "c", "nope.md")
    with pytest.raises(InputError, match="no corpus named"):
        corpus.list_files(db, "other")


def test_bad_arguments(db, tmp_path):
    with pytest.raises(InputError):
        corpus.add_documents(db, "  ", [tmp_path])
    with pytest.raises(InputError, match="overlap_chars"):
        corpus.add_documents(db, "c", [tmp_path], max_chunk_chars=200, overlap_chars=150)
    with pytest.raises(InputError, match="max_chunk_chars"):
        corpus.add_documents(db, "c", [tmp_path], max_chunk_chars=10)
    report = corpus.add_documents(db, "c", [tmp_path])  # an empty folder
    assert report.skipped and "folder holds no files to import (supported: .docx," in report.skipped[0].messages[0]
    assert corpus.list_corpora(db) == []  # nothing imported, no empty corpus left behind
