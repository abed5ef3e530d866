"""The evidence behind one step's Knowledge Index: claim, query, verdict, judge odds, passages.

Passages (and their source names) are corpus text: they go into the document with
``QTextCursor.insertText`` and a ``QTextCharFormat`` only, never as HTML, so markup inside a
passage is shown literally. The query's matching terms are marked with a highlight format that
carries :data:`HIGHLIGHT_PROP`, which lets tests read back exactly what is highlighted.

Each passage is headed by where it comes from (file and page, or heading path: "NG28.pdf, page 14")
and, while it is still in the corpus, two links: open the file (at that page) in the system's
viewer, and show the passage in context (its neighbours in the document).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import PurePath

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QColor, QFont, QTextBlockFormat, QTextCharFormat, QTextCursor, QTextFormat
from PySide6.QtWidgets import QFormLayout, QStackedWidget, QTextBrowser, QVBoxLayout, QWidget

from ...knowledge.corpus import Passage
from ...knowledge.provenance import evidence_where, same_passage
from ...knowledge.search import match_spans
from ...metrics.calibration import apply as apply_calibration
from ..shared.theme import theme
from ..shared.widgets import plain_label

HIGHLIGHT_PROP = int(QTextFormat.Property.UserProperty) + 1
OPEN, CONTEXT = "open", "context"  # link actions: kiig:open/N, kiig:context/N (N: the passage's position)


@dataclass
class PassageItem:
    """One passage as shown: a heading line, optional title, the text (None: not available), and
    links under the heading as (label, action)."""

    heading: str
    text: str | None
    title: str | None = None
    spans: list[tuple[int, int]] = field(default_factory=list)
    title_spans: list[tuple[int, int]] = field(default_factory=list)
    note: str = ""
    links: list[tuple[str, str]] = field(default_factory=list)


def passage_item(rank: int, evidence: dict, passage: Passage | None, query: str) -> PassageItem:
    """The shown form of one stored evidence entry and its stored passage (None when gone)."""
    score = evidence.get("score")
    score_text = f"BM25 {score:.2f}" if isinstance(score, (int, float)) and math.isfinite(score) else "BM25 —"
    heading = f"[{rank}]  {evidence_where(evidence, passage)}  ·  chunk {evidence.get('chunk', '?')}  ·  {score_text}"
    if passage is None:
        return PassageItem(heading, None, note="The passage is no longer in the corpus (it was removed or re-imported "
                                               "since this evaluation).")
    title = shown_title(passage)
    return PassageItem(heading, passage.text, title, match_spans(passage.text, query),
                       match_spans(title or "", query), links=passage_links(passage))


def shown_title(passage: Passage) -> str | None:
    """The passage's section title as a line of its own, unless the heading already names it (a
    heading path) or it is only the file's name (a PDF, a file without headings)."""
    title = passage.title
    stem = PurePath(passage.file or passage.source).stem
    if not title or title in passage.where() or title in (stem, re.sub(r"[_\-]+", " ", stem).strip()):
        return None
    return title


def passage_links(passage: Passage) -> list[tuple[str, str]]:
    """The actions offered under a passage that is still in the corpus."""
    file = passage.file or passage.source
    opener = f"Open {file} at page {passage.page}" if passage.page is not None else f"Open {file}"
    return [(opener, OPEN), ("Show in context", CONTEXT)]


def passage_heading(rank: int, passage: Passage) -> str:
    """The heading of a search hit: rank, where it comes from, chunk, score."""
    return f"[{rank}]  {passage.where()}  ·  chunk {passage.chunk}  ·  BM25 {passage.score:.2f}"


class PassageView(QTextBrowser):
    """Read-only passages with the query's matching terms highlighted (plain text only); a link
    under a heading emits :attr:`action` (its action, the passage's position)."""

    action = Signal(str, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.anchorClicked.connect(self._link)
        self.setAcceptRichText(False)
        self.setUndoRedoEnabled(False)
        self.document().setDocumentMargin(8)
        self.items: list[PassageItem] = []
        self.text_ranges: list[tuple[int, int] | None] = []  # document range of each passage's text
        self.empty_text = ""
        theme().changed.connect(self._rethemed)  # a bound slot: disconnected when the view is deleted

    def _rethemed(self) -> None:
        self.set_items(self.items, self.empty_text)

    def _formats(self) -> dict[str, QTextCharFormat]:
        c = theme().colors()
        base = QTextCharFormat()
        base.setForeground(QColor(c["text"]))
        heading = QTextCharFormat(base)
        heading.setFontWeight(QFont.Weight.DemiBold)
        heading.setForeground(QColor(c["accent"]))
        title = QTextCharFormat(base)
        title.setFontWeight(QFont.Weight.DemiBold)
        muted = QTextCharFormat(base)
        muted.setForeground(QColor(c["muted"]))
        muted.setFontItalic(True)
        mark = QTextCharFormat(base)
        mark.setBackground(QColor("#7a5a00" if theme().dark else "#ffe08a"))
        mark.setProperty(HIGHLIGHT_PROP, True)
        link = QTextCharFormat(base)
        link.setForeground(QColor(c["accent"]))
        link.setFontUnderline(True)
        return {"base": base, "heading": heading, "title": title, "muted": muted, "mark": mark, "link": link}

    def _link(self, url: QUrl) -> None:
        action, _, n = url.path().partition("/")
        if url.scheme() == "kiig" and n.isdigit():
            self.action.emit(action, int(n))

    def links(self, n: int) -> list[tuple[str, str]]:
        """(label, href) of the links of passage ``n``, read back from the document."""
        out: list[tuple[str, str]] = []
        block = self.document().begin()
        while block.isValid():
            it = block.begin()
            while not it.atEnd():
                frag = it.fragment()
                href = frag.charFormat().anchorHref()
                if frag.charFormat().isAnchor() and href.endswith(f"/{n}"):
                    out.append((frag.text(), href))
                it += 1
            block = block.next()
        return out

    def set_items(self, items: list[PassageItem], empty_text: str = "No passages.") -> None:
        self.items = list(items)
        self.empty_text = empty_text
        self.text_ranges = []
        self.clear()
        f = self._formats()
        cursor = QTextCursor(self.document())
        if not items:
            cursor.insertText(empty_text, f["muted"])
        for n, item in enumerate(items):
            block = QTextBlockFormat()
            block.setTopMargin(0 if n == 0 else 12)
            block.setBottomMargin(2)
            if n:
                cursor.insertBlock(block)
            else:
                cursor.setBlockFormat(block)
            cursor.insertText(item.heading, f["heading"])
            if item.links:
                cursor.insertBlock(QTextBlockFormat())
                for k, (label, action) in enumerate(item.links):
                    if k:
                        cursor.insertText("   ·   ", f["muted"])
                    link = QTextCharFormat(f["link"])
                    link.setAnchor(True)
                    link.setAnchorHref(f"kiig:{action}/{n}")
                    cursor.insertText(label, link)
            if item.title:
                cursor.insertBlock(QTextBlockFormat())
                _insert_marked(cursor, item.title, item.title_spans, f["title"], f["mark"])
            cursor.insertBlock(QTextBlockFormat())
            if item.text is None:
                cursor.insertText(item.note, f["muted"])
                self.text_ranges.append(None)
                continue
            start = cursor.position()
            _insert_marked(cursor, item.text, item.spans, f["base"], f["mark"])
            self.text_ranges.append((start, cursor.position()))
        self.moveCursor(QTextCursor.MoveOperation.Start)

    def highlighted(self, n: int) -> list[tuple[int, int]]:
        """Highlighted character ranges of passage ``n``'s text, read back from the document."""
        rng = self.text_ranges[n] if 0 <= n < len(self.text_ranges) else None
        if rng is None:
            return []
        start, end = rng
        out: list[tuple[int, int]] = []
        block = self.document().findBlock(start)
        while block.isValid() and block.position() < end:
            it = block.begin()
            while not it.atEnd():
                frag = it.fragment()
                if frag.charFormat().boolProperty(HIGHLIGHT_PROP):
                    a, b = max(frag.position(), start), min(frag.position() + frag.length(), end)
                    if a < b:
                        out.append((a - start, b - start))
                it += 1
            block = block.next()
        return out

    def passage_text(self, n: int) -> str | None:
        """Passage ``n``'s text exactly as the document holds it (None when not available)."""
        rng = self.text_ranges[n] if 0 <= n < len(self.text_ranges) else None
        if rng is None:
            return None
        cursor = QTextCursor(self.document())
        cursor.setPosition(rng[0])
        cursor.setPosition(rng[1], QTextCursor.MoveMode.KeepAnchor)
        return cursor.selectedText().replace("\u2029", "\n")


def _insert_marked(cursor: QTextCursor, text: str, spans: list[tuple[int, int]], base: QTextCharFormat,
                   mark: QTextCharFormat) -> None:
    """Insert ``text`` (plain) with the ``spans`` in the highlight format."""
    pos = 0
    for a, b in sorted(spans):
        if a < pos or b > len(text) or a >= b:
            continue
        if a > pos:
            cursor.insertText(text[pos:a], base)
        cursor.insertText(text[a:b], mark)
        pos = b
    if pos < len(text):
        cursor.insertText(text[pos:], base)


def verdict_text(ks: dict) -> str:
    """Applicability and reason in words."""
    reason = str(ks.get("reason") or "")
    if not ks.get("applicable"):
        return f"Not applicable (n/a): {reason or 'no factual claim'}. Left out of the mean KI."
    if ks.get("ki") is None:
        return f"Applicable, not judged: {reason or 'no judgement'}. Left out of the mean KI."
    return f"Applicable: {reason or 'states a factual claim'}."


def judge_text(ks: dict) -> str:
    """The judge's first-token probabilities (or its True/False reply) and the KI they give."""
    p_yes, p_no, ki = ks.get("judge_p_yes"), ks.get("judge_p_no"), ks.get("ki")
    if isinstance(ks.get("judge_reply"), str) and isinstance(ki, (int, float)):
        return f"Reply {ks['judge_reply']!r}  →  KI {ki:.0f}"
    if "query_reply" in ks and isinstance(ki, (int, float)):
        return f"Not asked (no query)  →  KI {ki:.0f} by ReasoningEval's rule"
    if not isinstance(ki, (int, float)):
        return "Not asked." if not ks.get("applicable") or not ks.get("evidence") else "No probability on Yes or No."
    if isinstance(p_yes, (int, float)) and isinstance(p_no, (int, float)):
        return f"P(yes) {p_yes:.4f}  ·  P(no) {p_no:.4f}  →  KI {ki:.3f}"
    return f"KI {ki:.3f}"


def rag_text(ks: dict) -> str:
    """The RAG answer of ReasoningEval's pipeline (model output, shown as plain text)."""
    answer = ks.get("rag_answer")
    if isinstance(answer, str):
        return answer.strip() or "(empty answer)"
    return "Not asked: the query writer replied None (no knowledge to check)." if ks.get("query_reply") else "Not asked."


class EvidencePanel(QWidget):
    """What the judge saw for the focused step, and what it answered; ``open_requested`` and
    ``context_requested`` carry a shown passage (a :class:`Passage` still in the corpus)."""

    open_requested = Signal(object)
    context_requested = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.stack = QStackedWidget()
        self.hint = plain_label("", "muted", wrap=True)
        self.hint.setContentsMargins(4, 8, 4, 8)
        hint_box = QWidget()
        hv = QVBoxLayout(hint_box)
        hv.setContentsMargins(0, 0, 0, 0)
        hv.addWidget(self.hint)
        hv.addStretch(1)
        self.stack.addWidget(hint_box)

        body = QWidget()
        v = QVBoxLayout(body)
        v.setContentsMargins(0, 0, 0, 0)
        v.setSpacing(6)
        self.heading = plain_label("", "heading")
        self.step_text = plain_label("", wrap=True, selectable=True)
        v.addWidget(self.heading)
        v.addWidget(self.step_text)
        form = QFormLayout()
        form.setContentsMargins(0, 2, 0, 2)
        form.setHorizontalSpacing(10)
        form.setVerticalSpacing(4)
        self.fields = {}
        tips = {"claim": "The step without its lead-in, as the judge reads it",
                "query": "The retrieval query built from the claim (BM25 over the corpus)",
                "rag": "ReasoningEval's pipeline: the RAG model's answer to the query, written from the passages below; "
                       "the judge decides whether the claim agrees with it",
                "judge": "The judge's probability that its reply starts with Yes / No; KI = P(yes) / (P(yes) + P(no)); "
                         "or its True/False reply"}
        self.form = form
        for key, title in (("verdict", "Verdict"), ("claim", "Claim"), ("query", "Query"), ("rag", "RAG answer"),
                           ("judge", "Judge")):
            label = plain_label("", wrap=True, selectable=True)
            self.fields[key] = label
            caption = plain_label(title, "muted")
            caption.setToolTip(tips.get(key, ""))
            label.setToolTip(tips.get(key, ""))
            form.addRow(caption, label)
        v.addLayout(form)
        self.passages_caption = plain_label("Retrieved passages", "muted", wrap=True)
        self.passages_caption.setStyleSheet("font-weight: 600;")
        v.addWidget(self.passages_caption)
        self.passages = PassageView()
        self.passages.action.connect(self._passage_action)
        self.shown: list[Passage | None] = []  # the corpus passage behind each shown one (None: gone)
        v.addWidget(self.passages, 1)
        self.stack.addWidget(body)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)
        self.step: int | None = None
        self.show_hint("Select a step to see the passages the judge read.")

    def show_hint(self, text: str) -> None:
        self.step = None
        self.hint.setText(text)
        self.stack.setCurrentIndex(0)

    def show_step(self, row: int, ks: dict, chunks: dict[int, Passage], claim: str, query: str,
                  calibration: dict | None = None) -> None:
        """Show step ``row`` (0-based) from its stored KI step ``ks`` and the passages by chunk id;
        with a ``calibration`` (a stored Platt fit) its calibrated KI too, beside the raw one."""
        self.step = row
        ki = ks.get("ki")
        calibrated = (apply_calibration(ki, calibration["a"], calibration["b"])
                      if calibration and isinstance(ki, (int, float)) and "judge_reply" not in ks else None)
        if not ks.get("applicable"):
            value = "KI n/a"
        else:
            value = f"KI {ki:.3f}" if isinstance(ki, (int, float)) else "KI —"
            if calibrated is not None:
                value += f"  ·  calibrated {calibrated:.3f}"
        self.heading.setText(f"Step {row + 1}  ·  {value}")
        self.step_text.setText(str(ks.get("text") or ""))
        self.fields["verdict"].setText(verdict_text(ks))
        self.fields["claim"].setText(claim or "—")
        self.fields["query"].setText(query if ks.get("applicable") else f"{query or '—'} (not searched)")
        pipeline = "query_reply" in ks
        self.form.setRowVisible(self.fields["rag"], pipeline)
        self.fields["rag"].setText(rag_text(ks) if pipeline else "")
        self.fields["judge"].setText(judge_text(ks) + (f"  ·  calibrated {calibrated:.3f}" if calibrated is not None else ""))
        evidence = list(ks.get("evidence") or [])
        items = []
        self.shown = []
        for rank, ev in enumerate(evidence, 1):
            passage = chunks.get(ev.get("chunk_id")) if isinstance(ev.get("chunk_id"), int) else None
            passage = passage if same_passage(ev, passage) else None
            self.shown.append(passage)
            items.append(passage_item(rank, ev, passage, query))
        self.passages_caption.setText(f"Retrieved passages · {len(items)}, best first, query terms highlighted"
                                      if items else "Retrieved passages")
        empty = ("Not searched: the step makes no factual claim." if not ks.get("applicable")
                 else "The corpus returned no passage for this query.")
        self.passages.set_items(items, empty)
        self.stack.setCurrentIndex(1)

    def shown_evidence(self) -> list[str]:
        """The passage headings shown (for checks)."""
        return [item.heading for item in self.passages.items]

    def _passage_action(self, action: str, n: int) -> None:
        passage = self.shown[n] if 0 <= n < len(self.shown) else None
        if passage is None:
            return
        (self.open_requested if action == OPEN else self.context_requested).emit(passage)
