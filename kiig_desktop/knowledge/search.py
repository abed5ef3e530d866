"""Search over a reference corpus: natural-language query -> safe FTS5 expression -> BM25 ranking.

Queries are questions or reasoning steps, never search syntax. ``sanitize_query`` keeps only word
tokens (so quotes, brackets, ``*``, ``:``, ``^`` and the operators ``AND``/``OR``/``NOT``/``NEAR``
lose any special meaning), drops English stop words, and joins the remaining terms as quoted
strings with ``OR``. BM25 then rewards passages that contain more of the terms and rarer ones.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import PurePath

from ..errors import InputError
from ..store.corpus_schema import FTS_TOKENIZE
from .chunking import title_from_name

# Word tokens as FTS5's unicode61 tokenizer sees them: runs of letters and digits (no underscore).
_WORD = re.compile(r"[^\W_]+")

MAX_QUERY_TERMS = 32
# The index's tokenizer (store/corpus_schema.py): match_spans must split and stem exactly like it.
MAX_K = 100

# BM25 column weights for (corpus_tag, title, text): the tag only restricts the search.
_BM25 = "bm25(corpus_fts, 0.0, 2.0, 1.0)"

STOP_WORDS: frozenset[str] = frozenset(
    """
    a about above after again against all also am an and any are aren as at be because been before
    being below between both but by can cannot could couldn did didn do does doesn doing don down
    during each either else etc ever every few for from further had hadn has hasn have haven having
    he her here hers herself him himself his how however i if in into is isn it its itself just let
    lets ll may me might more most must mustn my myself neither no nor not now of off on once only
    or other ought our ours ourselves out over own per quite rather re really s same shall shan she
    should shouldn so some such t than that the their theirs them themselves then there these they
    this those though through thus to too under until up upon us ve very via was wasn we were weren
    what whatever when whenever where whereas whether which while who whom whose why will with
    within without won would wouldn yes yet you your yours yourself yourselves
    near true false correct incorrect following statement answer question option options choice
    best likely
    """.split()
)


@dataclass
class Passage:
    """One search hit; ``score`` is the negated BM25 value (higher is better).

    ``file`` is the imported file's name in the corpus, ``page``/``page_end`` the 1-based pages a
    passage of a PDF covers (None for other files), ``title`` the heading path of its section.
    """

    source: str
    chunk: int
    text: str
    score: float
    chunk_id: int
    title: str | None = None
    page: int | None = None
    page_end: int | None = None
    file: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def evidence(self) -> dict:
        """A KI step's evidence entry: source, chunk, score, chunk_id; file, page, page_end, title when
        known; ``where`` (:meth:`where`), so the evidence names its place even after the corpus changed."""
        ev: dict = {"source": self.source, "chunk": self.chunk, "score": self.score, "chunk_id": self.chunk_id}
        ev.update({k: v for k, v in (("file", self.file), ("page", self.page), ("page_end", self.page_end),
                                     ("title", self.title)) if v is not None})
        ev["where"] = self.where()
        return ev

    def where(self) -> str:
        """Where the passage comes from, for people: "NG28.pdf, page 14", "guide.docx > Dosing > Adults"."""
        return passage_label(self.file or self.source, self.page, self.page_end, self.title,
                             record=self.source if self.file and self.source != self.file else None)


def passage_label(file: str, page: int | None = None, page_end: int | None = None, title: str | None = None,
                  record: str | None = None) -> str:
    """The label of :meth:`Passage.where` from its parts (also for evidence dicts read back from a session).

    ``record`` is the id of a ``.jsonl`` record. A title that is only the file's stem (a file with
    no headings) is left out.
    """
    label = file + (f" > {record}" if record else "")
    if page is not None:
        return f"{label}, pages {page}-{page_end}" if page_end is not None and page_end > page else f"{label}, page {page}"
    if title and title not in (PurePath(file).stem, title_from_name(file), record):
        return f"{label} > {title}"
    return label


def word_tokens(text: str) -> list[str]:
    """Lower-cased word tokens of ``text`` (letters/digits runs, as the FTS tokenizer splits)."""
    return [t.casefold() for t in _WORD.findall(text or "")]


def content_terms(text: str, *, keep_stop_if_empty: bool = False) -> list[str]:
    """Distinct non-stop-word tokens of ``text`` in order of first appearance."""
    tokens = word_tokens(text)
    kept = list(dict.fromkeys(t for t in tokens if t not in STOP_WORDS))
    if not kept and keep_stop_if_empty:
        kept = list(dict.fromkeys(tokens))
    return kept


def sanitize_query(text: str, max_terms: int = MAX_QUERY_TERMS) -> str:
    """Turn natural language into a safe FTS5 MATCH expression: ``"t1" OR "t2" ...``.

    Every term is a plain word token wrapped in double quotes, so no input can produce an FTS
    syntax error. Stop words are dropped; a query made only of stop words keeps them (so that
    e.g. "The Who" still finds something). Returns ``""`` when the text has no word at all.
    """
    return _quoted(content_terms(text, keep_stop_if_empty=True)[:max_terms])


def corpus_id(db, name: str) -> int:
    """Id of the corpus called ``name``; InputError (listing the known names) when there is none."""
    row = db.execute("SELECT id FROM corpora WHERE name = ?", [name]).fetchone()
    if row is None:
        names = [r[0] for r in db.execute("SELECT name FROM corpora ORDER BY name").fetchall()]
        known = ", ".join(repr(n) for n in names) if names else "none yet (add one with `kiig corpus add`)"
        raise InputError(f"no corpus named {name!r} in this session; corpora: {known}")
    return int(row[0])


def _quoted(terms: list[str]) -> str:
    return " OR ".join(f'"{t}"' for t in terms)


def informative_terms(db, terms: list[str]) -> list[str]:
    """``terms`` without those absent from the index and those in more than half of all passages.

    FTS5's BM25 clamps the IDF of a term found in more than half of the indexed rows to 1e-6, so
    such a term cannot change the ranking; matching it would only make SQLite score nearly every
    passage (most of the search time on a large corpus). When every term is that common, all the
    terms found are kept, so a query of common words still returns something.
    """
    total = db.execute("SELECT coalesce(sum(n_chunks), 0) FROM corpus_files").fetchone()[0]
    counts = [(t, db.execute("SELECT count(*) FROM corpus_fts WHERE corpus_fts MATCH ?",
                             [f'{{title text}} : "{t}"']).fetchone()[0]) for t in terms]
    present = [t for t, n in counts if n > 0]
    return [t for t, n in counts if 0 < n and 2 * n <= total] or present


def search(db, name: str, query: str, k: int = 5) -> list[Passage]:
    """Top-``k`` passages of corpus ``name`` for a natural-language ``query`` (BM25, best first).

    The query is reduced to its content terms as in :func:`sanitize_query`, minus the terms too
    common to rank by (see :func:`informative_terms`). Passages matching none of the remaining
    terms are not returned, so fewer than ``k`` (or no) results is normal.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    k = min(k, MAX_K)
    cid = corpus_id(db, name)
    terms = informative_terms(db, content_terms(query, keep_stop_if_empty=True)[:MAX_QUERY_TERMS])
    if not terms:
        return []
    match = f"{{title text}} : ({_quoted(terms)})"
    if db.execute("SELECT count(*) FROM corpora").fetchone()[0] > 1:  # restrict to this corpus inside the index
        match = f'corpus_tag : "c{cid}" AND {match}'
    sql = f"""
        SELECT {PASSAGE_COLUMNS}, hits.score
        FROM (SELECT rowid AS rid, -{_BM25} AS score FROM corpus_fts
              WHERE corpus_fts MATCH ? ORDER BY {_BM25} LIMIT ?) AS hits
        JOIN corpus_chunks AS c ON c.id = hits.rid {PASSAGE_JOINS}
        ORDER BY hits.score DESC, c.id
    """
    return [passage_from_row(row[:-1], float(row[-1])) for row in db.execute(sql, [match, k]).fetchall()]


# What a Passage is read from: a chunk ``c`` joined with its document ``d`` and file ``f``.
PASSAGE_COLUMNS = "c.id, c.chunk, c.title, c.text, d.source, c.page, c.page_end, f.name"
PASSAGE_JOINS = "JOIN corpus_documents AS d ON d.id = c.document_id JOIN corpus_files AS f ON f.id = d.file_id"


def passage_from_row(row: tuple, score: float = 0.0) -> Passage:
    """A Passage from the PASSAGE_COLUMNS of one row."""
    cid_, chunk, title, text, source, page, page_end, file = row
    return Passage(source=source, chunk=int(chunk), text=text, score=score, chunk_id=int(cid_), title=title,
                   page=page, page_end=page_end, file=file)


def match_spans(text: str, query: str) -> list[tuple[int, int]]:
    """Character ranges of ``text`` that the query's content terms match in the corpus index.

    The text is tokenised and stemmed by FTS5 itself (an in-memory table with the index's
    tokenizer, read back with ``highlight()``), so "inhibitors" is marked for the term "inhibitor"
    exactly when search would match it. Ranges are sorted and do not overlap.
    """
    terms = content_terms(query, keep_stop_if_empty=True)[:MAX_QUERY_TERMS]
    if not terms or not text:
        return []
    marks = [chr(c) for c in range(0xE000, 0xF900) if chr(c) not in text][:2]
    if len(marks) < 2:
        return []
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(f"CREATE VIRTUAL TABLE t USING fts5(x, tokenize='{FTS_TOKENIZE}')")
        conn.execute("INSERT INTO t(rowid, x) VALUES (1, ?)", [text])
        row = conn.execute("SELECT highlight(t, 0, ?, ?) FROM t WHERE t MATCH ?", [*marks, _quoted(terms)]).fetchone()
    finally:
        conn.close()
    spans: list[tuple[int, int]] = []
    pos, start = 0, None
    for ch in row[0] if row else "":
        if ch == marks[0]:
            start = pos
        elif ch == marks[1] and start is not None:
            if spans and spans[-1][1] == start:
                spans[-1] = (spans[-1][0], pos)
            else:
                spans.append((start, pos))
            start = None
        else:
            pos += 1
    return spans
