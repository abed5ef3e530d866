"""Reference corpora in a session database: import, search, list and remove.

A session may hold several named corpora. Importing reads ``.txt``, ``.md``, ``.jsonl``, ``.pdf``,
``.docx`` and ``.html`` files (or whole folders; documents: :mod:`kiig_desktop.knowledge.documents`), chunks them (see :mod:`kiig_desktop.knowledge.chunking`) and indexes the chunks
with SQLite FTS5; :func:`search` ranks them with BM25 (see :mod:`kiig_desktop.knowledge.search`).

Re-importing a file whose bytes (SHA-256) and chunk settings are unchanged does nothing; a changed
file replaces all of its chunks. One call to :func:`add_documents` is one transaction: if it is
cancelled, interrupted or fails, the corpus is left exactly as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..errors import InputError
from ..events import CancelToken, Progress
from ..files import file_sha256
from ..strict_json import bad_lines_error
from .chunking import (
    CHUNKER_VERSION,
    SNIFF_BYTES,
    Chunk,
    DocStart,
    check_chunk_settings,
    chunk_jsonl_stream,
    chunk_text_stream,
    open_text,
    replacements,
    reset_replacements,
    sniff,
)
from .collect import collect
from .documents import DOCUMENT_KINDS, DocumentProblem, document_stream
from .search import PASSAGE_COLUMNS, PASSAGE_JOINS, Passage, corpus_id, passage_from_row, sanitize_query, search

__all__ = [
    "FileReport", "ImportReport", "Passage", "add_documents", "corpus_fingerprint", "get_chunks", "list_corpora", "list_documents",
    "list_files", "remove_corpus", "remove_document", "sanitize_query", "search", "source_path",
]

MAX_MESSAGES_PER_FILE = 20
_BATCH = 256


@dataclass
class FileReport:
    """What happened to one file: ``status`` is added, unchanged, replaced or skipped."""

    path: str
    name: str
    status: str
    kind: str | None = None
    n_documents: int = 0
    n_chunks: int = 0
    messages: list[str] = field(default_factory=list)

    def line(self) -> str:
        head = f"{self.status:<9} {self.name}"
        if self.status in ("added", "replaced", "unchanged"):
            docs = f"{self.n_documents} documents, " if self.kind == "jsonl" else ""
            head += f" ({docs}{self.n_chunks} chunks)"
        return head + "".join(f"\n          - {m}" for m in self.messages)


@dataclass
class ImportReport:
    """Per-file outcome of one :func:`add_documents` call."""

    corpus: str
    files: list[FileReport] = field(default_factory=list)

    def _with(self, status: str) -> list[FileReport]:
        return [f for f in self.files if f.status == status]

    @property
    def added(self) -> list[FileReport]:
        return self._with("added")

    @property
    def unchanged(self) -> list[FileReport]:
        return self._with("unchanged")

    @property
    def replaced(self) -> list[FileReport]:
        return self._with("replaced")

    @property
    def skipped(self) -> list[FileReport]:
        return self._with("skipped")

    @property
    def n_chunks_written(self) -> int:
        return sum(f.n_chunks for f in self.files if f.status in ("added", "replaced"))

    def summary(self) -> str:
        return (f"corpus {self.corpus!r}: {len(self.added)} added, {len(self.replaced)} replaced, "
                f"{len(self.unchanged)} unchanged, {len(self.skipped)} skipped; "
                f"{self.n_chunks_written} chunks written")

    def to_dict(self) -> dict:
        return {"corpus": self.corpus, "files": [asdict(f) for f in self.files], "summary": self.summary()}


class _SkipFile(Exception):
    """Abandon one file (its savepoint is rolled back) with a message for the report."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InputError("a corpus needs a non-empty name")
    name = name.strip()
    if len(name) > 200 or any(ord(ch) < 32 for ch in name):
        raise InputError(f"unusable corpus name {name[:40]!r}: at most 200 characters, no control characters")
    return name


def _reader(path: Path, encoding: str | None):
    """The file open as text (``encoding`` known) or, for a binary document, a context holding nothing."""
    return open_text(path, encoding) if encoding else contextlib.nullcontext(None)


def _delete_file_rows(db, file_id: int) -> None:
    conn = db.conn
    conn.execute("DELETE FROM corpus_chunks WHERE document_id IN (SELECT id FROM corpus_documents WHERE file_id = ?)", [file_id])
    conn.execute("DELETE FROM corpus_documents WHERE file_id = ?", [file_id])
    conn.execute("DELETE FROM corpus_files WHERE id = ?", [file_id])


def _import_file(db, cid: int, path: Path, fr: FileReport, settings: str, cancel: CancelToken | None,
                 tick: Callable[[int], None], max_chunk_chars: int, overlap_chars: int,
                 bad_lines: list[tuple[int, str]]) -> None:
    """Import one file into corpus ``cid`` (inside the caller's transaction); fills ``fr``.

    Malformed JSONL lines are appended to ``bad_lines``; the caller refuses the whole import then.
    """
    conn = db.conn
    binary = fr.kind in ("pdf", "docx")
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
        encoding, problem = (None, None if head else "empty file") if binary else sniff(head)
        if problem:
            raise _SkipFile(problem)
        if not binary and not head.strip(b" \t\r\n\x0c"):
            with open(path, "rb") as fh:  # a file of blanks is empty too; read no more than needed
                while block := fh.read(1 << 16):
                    if block.strip(b" \t\r\n\x0c"):
                        break
                else:
                    raise _SkipFile("empty file (only whitespace)")
        digest = file_sha256(path, cancel)
        size = path.stat().st_size
    except OSError as exc:
        raise _SkipFile(f"cannot read: {exc.strerror or exc}") from exc
    old = conn.execute("SELECT id, sha256, settings, n_documents, n_chunks FROM corpus_files WHERE corpus_id = ? AND name = ?",
                       [cid, fr.name]).fetchone()
    if old and old[1] == digest and old[2] == settings:
        fr.status, fr.n_documents, fr.n_chunks = "unchanged", int(old[3]), int(old[4])
        return
    warnings: list[str] = []
    extra = 0

    def warn(msg: str) -> None:
        nonlocal extra
        if len(warnings) < MAX_MESSAGES_PER_FILE:
            warnings.append(msg)
        else:
            extra += 1

    with db.atomic():
        if old:
            _delete_file_rows(db, int(old[0]))
        file_id = conn.execute(
            "INSERT INTO corpus_files (corpus_id, name, path, kind, sha256, size, encoding, settings, imported) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [cid, fr.name, str(path.resolve()), fr.kind, digest, size, encoding, settings, _now()]).lastrowid
        reset_replacements()
        n_docs = n_chunks = 0
        doc_id: int | None = None
        doc_chunks = 0
        batch: list[tuple] = []

        def flush() -> None:
            conn.executemany("INSERT INTO corpus_chunks (corpus_id, document_id, chunk, title, text, char_start, char_end, "
                             "page, page_end) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", batch)
            batch.clear()

        def close_doc() -> None:
            if doc_id is not None:
                conn.execute("UPDATE corpus_documents SET n_chunks = ? WHERE id = ?", [doc_chunks, doc_id])

        try:
            with _reader(path, encoding) as fh:
                raw = getattr(fh, "buffer", None)

                def progress_tick() -> None:
                    if cancel:
                        cancel.check()
                    tick(raw.tell() if raw else 0)

                def pages_tick(done: int, total: int) -> None:
                    if cancel:
                        cancel.check()
                    tick(size * done // max(1, total))

                if fr.kind in DOCUMENT_KINDS:
                    stream = document_stream(path, fh, fr.kind, fr.name, max_chunk_chars=max_chunk_chars,
                                             overlap_chars=overlap_chars, warn=warn, tick=progress_tick,
                                             page_tick=pages_tick)
                elif fr.kind == "jsonl":
                    stream = chunk_jsonl_stream(fh, fr.name, max_chunk_chars=max_chunk_chars, overlap_chars=overlap_chars,
                                                warn=warn, tick=progress_tick,
                                                bad=lambda n, reason: bad_lines.append((n, reason)))
                else:
                    stream = chunk_text_stream(fh, fr.name, fr.kind, max_chunk_chars=max_chunk_chars,
                                               overlap_chars=overlap_chars, tick=progress_tick)
                for item in stream:
                    if isinstance(item, DocStart):
                        if batch:
                            flush()
                        close_doc()
                        doc_id, doc_chunks = None, 0
                        clash = conn.execute("SELECT d.file_id, f.name FROM corpus_documents d JOIN corpus_files f "
                                             "ON f.id = d.file_id WHERE d.corpus_id = ? AND d.source = ?",
                                             [cid, item.source]).fetchone()
                        if clash:
                            where = "earlier in this file" if clash[0] == file_id else f"by {clash[1]!r}"
                            msg = f"name {item.source!r} is already used {where}"
                            if item.line is None:
                                raise _SkipFile(msg + "; remove that document first or rename this file")
                            warn(f"line {item.line}: duplicate id {item.source!r} (already used {where}); skipped")
                            continue
                        doc_id = conn.execute("INSERT INTO corpus_documents (corpus_id, file_id, source, title) VALUES (?, ?, ?, ?)",
                                              [cid, file_id, item.source, item.title]).lastrowid
                        n_docs += 1
                    elif isinstance(item, Chunk) and doc_id is not None:
                        batch.append((cid, doc_id, doc_chunks, item.title, item.text, item.start, item.end,
                                      item.page, item.page_end))
                        doc_chunks += 1
                        n_chunks += 1
                        if len(batch) >= _BATCH:
                            flush()
                            if cancel:
                                cancel.check()
                if batch:
                    flush()
                close_doc()
        except DocumentProblem as exc:
            raise _SkipFile(str(exc)) from exc
        except OSError as exc:
            raise _SkipFile(f"read failed part-way: {exc.strerror or exc}; nothing from this file was kept") from exc
        bad = replacements()
        if bad:
            warnings.insert(0, f"{bad} byte(s) were not valid {encoding} and were replaced by U+FFFD; re-save the file as UTF-8")
        if extra:
            warnings.append(f"... and {extra} more warnings")
        if n_chunks == 0:
            raise _SkipFile("no text found" + (f" ({warnings[0]})" if warnings else ""))
        conn.execute("UPDATE corpus_files SET n_documents = ?, n_chunks = ?, warnings = ? WHERE id = ?",
                     [n_docs, n_chunks, json.dumps(warnings) if warnings else None, file_id])
    fr.status = "replaced" if old else "added"
    fr.n_documents, fr.n_chunks = n_docs, n_chunks
    fr.messages.extend(warnings)
    if old and old[1] == digest:
        fr.messages.insert(0, "re-chunked with new chunk settings")


def add_documents(db, name: str, paths: list[str | Path], *, progress: Callable[[Progress], None] | None = None,
                  cancel: CancelToken | None = None, max_chunk_chars: int = 800, overlap_chars: int = 120) -> ImportReport:
    """Import files/folders into corpus ``name`` (created if new) in one transaction.

    Unchanged files are left alone, changed files replace their chunks, unreadable, binary or
    empty files, and files of other types in a folder, are skipped with a message. A malformed JSONL line refuses the whole import
    (InputError listing every bad line, nothing kept), as for every other input file. ``progress`` receives :class:`Progress` in KiB read.
    Cancellation (``cancel``) or any exception rolls back the whole call.
    """
    name = _check_name(name)
    problem = check_chunk_settings(max_chunk_chars, overlap_chars)
    if problem:
        raise InputError(problem)
    report = ImportReport(corpus=name)
    files = collect(paths)
    settings = json.dumps({"max_chunk_chars": max_chunk_chars, "overlap_chars": overlap_chars, "chunker": CHUNKER_VERSION},
                          sort_keys=True)
    total_kib = max(1, sum(entry[3] for entry in files) // 1024)
    started = time.monotonic()
    done_bytes = 0

    def tick(pos: int, label: str = "") -> None:
        if progress:
            progress(Progress(done=min(total_kib, (done_bytes + pos) // 1024), total=total_kib, message=label, started=started))

    refused: list[str] = []
    with db.atomic():
        row = db.conn.execute("SELECT id FROM corpora WHERE name = ?", [name]).fetchone()
        created = row is None
        cid = int(row[0]) if row else db.conn.execute("INSERT INTO corpora (name, created) VALUES (?, ?)",
                                                      [name, _now()]).lastrowid
        for path, fname, kind, size, skipped in files:
            if skipped is not None:
                report.files.append(FileReport(str(path), fname, "skipped", kind, messages=[skipped]))
                continue
            if cancel:
                cancel.check()
            tick(0, fname)
            fr = FileReport(str(path), fname, "skipped", kind)
            bad_lines: list[tuple[int, str]] = []
            try:
                _import_file(db, cid, path, fr, settings, cancel, lambda pos, n=fname: tick(pos, n),
                             max_chunk_chars, overlap_chars, bad_lines)
            except _SkipFile as exc:
                fr.status = "skipped"
                fr.messages.insert(0, str(exc))
                if db.conn.execute("SELECT 1 FROM corpus_files WHERE corpus_id = ? AND name = ?", [cid, fname]).fetchone():
                    fr.messages.append("the version imported earlier is kept")
            if bad_lines:
                refused.append(bad_lines_error(path, bad_lines).message)
            report.files.append(fr)
            done_bytes += size
        if refused:  # one policy for bad lines (docs/cli.md): list them all, import nothing
            raise InputError("\n".join(refused))
        tick(0, "done")
        if created and not any(f.status != "skipped" for f in report.files):
            db.conn.execute("DELETE FROM corpora WHERE id = ?", [cid])  # do not leave an empty corpus behind
    return report


def list_corpora(db) -> list[dict]:
    """Corpora in this session with their counts: name, created, files, documents, chunks, bytes."""
    rows = db.execute("""
        SELECT c.name, c.created,
               (SELECT count(*) FROM corpus_files f WHERE f.corpus_id = c.id),
               (SELECT count(*) FROM corpus_documents d WHERE d.corpus_id = c.id),
               (SELECT count(*) FROM corpus_chunks k WHERE k.corpus_id = c.id),
               (SELECT coalesce(sum(size), 0) FROM corpus_files f WHERE f.corpus_id = c.id)
        FROM corpora c ORDER BY c.name""").fetchall()
    return [{"name": r[0], "created": r[1], "files": r[2], "documents": r[3], "chunks": r[4], "bytes": r[5]} for r in rows]


def list_files(db, name: str) -> list[dict]:
    """Files imported into corpus ``name``: name, kind, documents, chunks, bytes, imported, warnings."""
    cid = corpus_id(db, name)
    rows = db.execute("SELECT name, kind, n_documents, n_chunks, size, imported, warnings FROM corpus_files "
                      "WHERE corpus_id = ? ORDER BY name", [cid]).fetchall()
    return [{"name": r[0], "kind": r[1], "documents": r[2], "chunks": r[3], "bytes": r[4], "imported": r[5],
             "warnings": json.loads(r[6]) if r[6] else []} for r in rows]


def list_documents(db, name: str, file_name: str, limit: int = 1000) -> tuple[list[dict], int]:
    """Documents of one imported file (source, title, chunks), at most ``limit``, and how many it has."""
    cid = corpus_id(db, name)
    row = db.execute("SELECT id FROM corpus_files WHERE corpus_id = ? AND name = ?", [cid, file_name]).fetchone()
    if row is None:
        raise InputError(f"corpus {name!r} has no file named {file_name!r}")
    total = db.execute("SELECT count(*) FROM corpus_documents WHERE file_id = ?", [row[0]]).fetchone()[0]
    docs = db.execute("SELECT source, title, n_chunks FROM corpus_documents WHERE file_id = ? ORDER BY id LIMIT ?",
                      [row[0], int(limit)]).fetchall()
    return [{"source": d[0], "title": d[1], "chunks": d[2]} for d in docs], int(total)


def remove_corpus(db, name: str) -> None:
    """Delete corpus ``name`` with all its files, documents, chunks and index entries."""
    cid = corpus_id(db, name)
    with db.atomic():
        for table in ("corpus_chunks", "corpus_documents", "corpus_files"):
            db.conn.execute(f"DELETE FROM {table} WHERE corpus_id = ?", [cid])
        db.conn.execute("DELETE FROM corpora WHERE id = ?", [cid])


def remove_document(db, name: str, source: str) -> None:
    """Delete one imported file (by its name) or one document (by its ``source``) from corpus ``name``.

    Removing a single record of a ``.jsonl`` file marks that file as changed, so importing it
    again restores the record.
    """
    cid = corpus_id(db, name)
    with db.atomic():
        frow = db.conn.execute("SELECT id FROM corpus_files WHERE corpus_id = ? AND name = ?", [cid, source]).fetchone()
        if frow:
            _delete_file_rows(db, int(frow[0]))
            return
        drow = db.conn.execute("SELECT id, file_id, n_chunks FROM corpus_documents WHERE corpus_id = ? AND source = ?",
                               [cid, source]).fetchone()
        if drow is None:
            raise InputError(f"corpus {name!r} has no file or document named {source!r}")
        doc_id, file_id, n = int(drow[0]), int(drow[1]), int(drow[2])
        db.conn.execute("DELETE FROM corpus_chunks WHERE document_id = ?", [doc_id])
        db.conn.execute("DELETE FROM corpus_documents WHERE id = ?", [doc_id])
        db.conn.execute("UPDATE corpus_files SET n_documents = n_documents - 1, n_chunks = n_chunks - ?, sha256 = 'edited' "
                        "WHERE id = ?", [n, file_id])
        left = db.conn.execute("SELECT count(*) FROM corpus_documents WHERE file_id = ?", [file_id]).fetchone()[0]
        if not left:
            db.conn.execute("DELETE FROM corpus_files WHERE id = ?", [file_id])


def corpus_fingerprint(db, name: str) -> str:
    """SHA-256 over the corpus's files (name, content hash, chunk settings): changes when its content does."""
    cid = corpus_id(db, name)
    h = hashlib.sha256()
    for row in db.execute("SELECT name, sha256, settings FROM corpus_files WHERE corpus_id = ? ORDER BY name", [cid]):
        h.update(json.dumps(list(row)).encode())
    return h.hexdigest()


def get_chunks(db, chunk_ids: Iterable[int]) -> list[Passage]:
    """The stored passages with these ids (score 0), in the order given; unknown ids are left out."""
    out: list[Passage] = []
    for cid_ in chunk_ids:
        row = db.execute(f"SELECT {PASSAGE_COLUMNS} FROM corpus_chunks AS c {PASSAGE_JOINS} WHERE c.id = ?",
                         [int(cid_)]).fetchone()
        if row:
            out.append(passage_from_row(row))
    return out


def source_path(db, chunk_id: int) -> Path | None:
    """The path the file holding this passage was imported from (to open it at its page), or None."""
    row = db.execute("SELECT f.path FROM corpus_chunks AS c JOIN corpus_documents AS d ON d.id = c.document_id "
                     "JOIN corpus_files AS f ON f.id = d.file_id WHERE c.id = ?", [int(chunk_id)]).fetchone()
    return Path(row[0]) if row and row[0] else None
