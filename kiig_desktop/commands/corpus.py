"""``kiig corpus add|search|list|remove``: reference corpora inside a session file."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

from ..errors import InputError, StoreError
from ..units import human_bytes
from ._common import open_session_for_writing, print_json
from ._progress import ProgressLine


def register(sub) -> None:
    p = sub.add_parser("corpus", help="import and search reference corpora (for the Knowledge Index)")
    csub = p.add_subparsers(dest="corpus_command", metavar="ACTION", parser_class=type(p))
    csub.required = True

    a = csub.add_parser("add", help="import PDF, .docx, HTML, .txt, .md and .jsonl files (or folders) into a named corpus")
    a.add_argument("--db", required=True, help="the session file (created if missing)")
    a.add_argument("--name", required=True, help="corpus name (created on first import)")
    a.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to import")
    a.add_argument("--max-chunk-chars", type=int, default=800, help="largest chunk in characters (default 800)")
    a.add_argument("--overlap-chars", type=int, default=120, help="overlap between chunks of a section (default 120)")
    a.add_argument("--json", action="store_true", help="print the import report as JSON")
    a.set_defaults(func=run_add)

    s = csub.add_parser("search", help="rank a corpus's passages for a natural-language query (BM25)")
    s.add_argument("--db", required=True, help="the session file")
    s.add_argument("--name", required=True, help="corpus name")
    s.add_argument("--query", required=True, help="a question or statement in plain words")
    s.add_argument("--k", type=int, default=5, help="number of passages (default 5)")
    s.add_argument("--json", action="store_true", help='print {"results": [{"source", "chunk", "text", "score", ...}]}')
    s.set_defaults(func=run_search)

    ls = csub.add_parser("list", help="list the corpora of a session")
    ls.add_argument("--db", required=True, help="the session file")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=run_list)

    r = csub.add_parser("remove", help="remove a corpus, or one file/document from it")
    r.add_argument("--db", required=True, help="the session file")
    r.add_argument("--name", required=True, help="corpus name")
    r.add_argument("--source", default=None, help="only this imported file name or document id")
    r.set_defaults(func=run_remove)


def _open(db: str, *, write: bool, create: bool = False):
    from ..store import SessionStore

    if not create and not Path(db).expanduser().exists():
        raise InputError(f"no session file {db}", hint="create one with `kiig corpus add --db FILE ...`")
    return open_session_for_writing(db, create=create) if write else SessionStore.open(db, create=create, write=False)


def _sql_error(exc: sqlite3.Error, db: str, action: str) -> StoreError:
    return StoreError(f"cannot {action} {db}: {exc}")


def run_add(args: argparse.Namespace) -> int:
    from ..knowledge.corpus import add_documents

    missing = [p for p in args.paths if not Path(p).expanduser().exists()]
    if missing:
        raise InputError(f"no such file or folder: {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    line = None if args.json else ProgressLine("corpus add (KiB)")
    with _open(args.db, write=True, create=True) as store:
        try:
            with store.transaction("import a corpus into"):
                report = add_documents(store.db, args.name, args.paths, progress=line.update if line else None,
                                       max_chunk_chars=args.max_chunk_chars, overlap_chars=args.overlap_chars)
        finally:
            if line:
                line.close()
    if args.json:
        print_json(report.to_dict())
    else:
        for f in report.files:
            print(f.line())
        print(report.summary())
    return 1 if report.skipped else 0


def run_search(args: argparse.Namespace) -> int:
    from ..knowledge.corpus import search

    with _open(args.db, write=False) as store:
        try:
            hits = search(store.db, args.name, args.query, args.k)
        except sqlite3.Error as exc:
            raise _sql_error(exc, args.db, "search") from exc
    if args.json:
        print_json({"results": [{"source": h.source, "chunk": h.chunk, "text": h.text, "score": h.score,
                                 "title": h.title, "chunk_id": h.chunk_id, "file": h.file, "page": h.page,
                                 "page_end": h.page_end, "where": h.where()} for h in hits]})
        return 0
    if not hits:
        print("no matching passages", file=sys.stderr)
    for rank, h in enumerate(hits, 1):
        text = " ".join(h.text.split())
        print(f"{rank}. [{h.score:.2f}] {h.where()} #{h.chunk}\n   {text[:400]}{'...' if len(text) > 400 else ''}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from ..knowledge.corpus import list_corpora

    with _open(args.db, write=False) as store:
        try:
            rows = list_corpora(store.db)
        except sqlite3.Error as exc:
            raise _sql_error(exc, args.db, "read") from exc
    if args.json:
        print_json({"corpora": rows})
    elif not rows:
        print("no corpora in this session", file=sys.stderr)
    else:
        for r in rows:
            print(f"{r['name']}: {r['files']} files, {r['documents']} documents, {r['chunks']} chunks, "
                  f"{human_bytes(r['bytes'])} (created {r['created']})")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from ..knowledge.corpus import remove_corpus, remove_document

    with _open(args.db, write=True) as store, store.transaction("remove a corpus from"):
        if args.source:
            remove_document(store.db, args.name, args.source)
        else:
            remove_corpus(store.db, args.name)
    what = f"{args.source!r} from corpus {args.name!r}" if args.source else f"corpus {args.name!r}"
    print(f"removed {what}")
    return 0
