"""Where a KI evidence passage comes from, for people, and the passages around it in its document.

Evidence stored by a KI evaluation names its passage (``source``, ``chunk``, ``chunk_id``) and,
since corpus format 3, its ``file``, ``page``/``page_end``, ``title`` and ``where``. Evidence
stored earlier has only some of that: :func:`evidence_where` shows what is known, completed from the
passage still in the corpus when it is the same one.
"""

from __future__ import annotations

from .search import PASSAGE_COLUMNS, PASSAGE_JOINS, Passage, passage_from_row, passage_label

CONTEXT_PASSAGES = 2  # neighbours shown on each side of a passage in context


def same_passage(evidence: dict, passage: Passage | None) -> bool:
    """Whether the stored passage still is the one the evaluation retrieved (ids can be reused)."""
    return passage is not None and passage.source == evidence.get("source") and passage.chunk == evidence.get("chunk")


def evidence_where(evidence: dict, passage: Passage | None = None) -> str:
    """``"NG28.pdf, page 14"``, ``"guide.docx > Dosing > Adults"``: the stored ``where``, else the
    label of the passage in the corpus (when it is the same one), else what the evidence records."""
    if isinstance(evidence.get("where"), str) and evidence["where"]:
        return evidence["where"]
    if same_passage(evidence, passage):
        return passage.where()
    source = str(evidence.get("source") or "?")
    file = evidence.get("file")
    page, page_end = evidence.get("page"), evidence.get("page_end")
    return passage_label(str(file or source), page if isinstance(page, int) else None,
                         page_end if isinstance(page_end, int) else None, evidence.get("title"),
                         record=source if file and source != file else None)


def passage_context(db, chunk_id: int, around: int = CONTEXT_PASSAGES) -> list[Passage]:
    """The passage ``chunk_id`` with up to ``around`` passages before and after it in its document,
    in document order (empty when the passage is gone)."""
    row = db.execute("SELECT document_id, chunk FROM corpus_chunks WHERE id = ?", [int(chunk_id)]).fetchone()
    if row is None:
        return []
    rows = db.execute(f"SELECT {PASSAGE_COLUMNS} FROM corpus_chunks AS c {PASSAGE_JOINS} "
                      "WHERE c.document_id = ? AND c.chunk BETWEEN ? AND ? ORDER BY c.chunk",
                      [row[0], int(row[1]) - around, int(row[1]) + around]).fetchall()
    return [passage_from_row(r) for r in rows]
