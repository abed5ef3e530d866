"""The reasoning text: tokens tinted by probability, steps highlighted, always plain text.

Model output goes in through ``QTextCursor.insertText`` with a ``QTextCharFormat`` (never
``insertHtml``), and pasted text is accepted as plain text only, so markup in a model's reply or
an imported file is shown literally.
"""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QTextEdit

from ..shared.theme import probability_color, theme


class ReasoningView(QTextEdit):
    """A plain-text editor/viewer that can colour tokens and highlight step spans."""

    step_hovered = Signal(int)
    step_clicked = Signal(int)

    def __init__(self, parent=None, read_only: bool = False) -> None:
        super().__init__(parent)
        self.setAcceptRichText(False)
        self.setReadOnly(read_only)
        self.setLineWrapMode(QTextEdit.LineWrapMode.WidgetWidth)
        self.setMouseTracking(True)
        font = QFont(self.font())
        font.setPointSizeF(max(font.pointSizeF(), 10.0))
        self.setFont(font)
        self.document().setDocumentMargin(10)
        self.spans: list[tuple[int, int] | None] = []
        self.tokens: list[tuple[int, int, float]] = []  # (start, end, logprob) of coloured tokens
        self._selected: int | None = None
        self._hovered: int | None = None
        self._hover_emitted = -1
        theme().changed.connect(self._recolor)

    # ------------------------------------------------------------------ content

    def clear_all(self) -> None:
        self.spans, self.tokens = [], []
        self._selected = self._hovered = None
        self.clear()
        self.setCurrentCharFormat(QTextCharFormat())

    def set_plain(self, text: str) -> None:
        self.clear_all()
        self.setPlainText(text)

    def append_token(self, text: str, logprob: float | None) -> None:
        """Append one streamed token at the end, tinted by its probability."""
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        start = cursor.position()
        cursor.insertText(text, self._token_format(logprob))
        self.tokens.append((start, cursor.position(), logprob if logprob is not None else float("nan")))
        bar = self.verticalScrollBar()
        if bar.value() >= bar.maximum() - 40:
            bar.setValue(bar.maximum())

    def set_tokens(self, text: str, tokens: list[dict]) -> None:
        """Show ``text`` with the generation's token colours (when the tokens spell the text)."""
        self.clear_all()
        if "".join(str(t.get("text", "")) for t in tokens) != text:
            self.setPlainText(text)
            return
        for t in tokens:
            self.append_token(str(t.get("text", "")), t.get("logprob"))
        self.moveCursor(QTextCursor.MoveOperation.Start)

    def _token_format(self, logprob: float | None) -> QTextCharFormat:
        fmt = QTextCharFormat()
        p = math.exp(logprob) if logprob is not None and math.isfinite(logprob) else None
        color = probability_color(p, theme().dark)
        if color is not None:
            fmt.setBackground(color)
        if p is not None:
            fmt.setToolTip(f"p = {p:.3f}")
        return fmt

    def _recolor(self) -> None:
        cursor = QTextCursor(self.document())
        for start, end, lp in self.tokens:
            cursor.setPosition(start)
            cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
            cursor.setCharFormat(self._token_format(lp))
        self._update_selections()

    def strip_token_colors(self) -> None:
        """Forget token colours (the text was edited, so they no longer describe it)."""
        if not self.tokens:
            return
        cursor = QTextCursor(self.document())
        cursor.select(QTextCursor.SelectionType.Document)
        cursor.setCharFormat(QTextCharFormat())
        self.tokens = []

    # ------------------------------------------------------------------ steps

    def set_spans(self, spans: list[tuple[int, int] | None]) -> None:
        self.spans = list(spans)
        self._selected = self._hovered = None
        self._update_selections()

    def set_highlight(self, selected: int | None, hovered: int | None = None) -> None:
        previous = self._selected
        self._selected = selected if selected is not None and selected >= 0 else None
        self._hovered = hovered if hovered is not None and hovered >= 0 else None
        self._update_selections()
        # scroll to a newly selected step only: hovering elsewhere must not pull the text back
        if self._selected != previous and self._selected is not None and self._selected < len(self.spans) \
                and self.spans[self._selected]:
            cursor = QTextCursor(self.document())
            cursor.setPosition(min(self.spans[self._selected][0], self.document().characterCount() - 1))
            self.setTextCursor(cursor)
            self.ensureCursorVisible()

    def _update_selections(self) -> None:
        extras = []
        c = theme().colors()
        for i, span in enumerate(self.spans):
            if span is None:
                continue
            color = None
            if i == self._selected:
                color = QColor(c["accent"])
                color.setAlpha(70)
            elif i == self._hovered:
                color = QColor(c["hover"])
                color.setAlpha(35)
            if color is None:
                continue
            sel = QTextEdit.ExtraSelection()
            cursor = QTextCursor(self.document())
            end = min(span[1], self.document().characterCount() - 1)
            cursor.setPosition(min(span[0], end))
            cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
            sel.cursor = cursor
            sel.format.setBackground(color)
            extras.append(sel)
        self.setExtraSelections(extras)

    def highlighted_text(self) -> str | None:
        """The text of the selected step's span as shown (for tests and accessibility)."""
        if self._selected is None or self._selected >= len(self.spans) or self.spans[self._selected] is None:
            return None
        start, end = self.spans[self._selected]
        return self.toPlainText()[start:end]

    def step_at(self, pos: int) -> int | None:
        for i, span in enumerate(self.spans):
            if span is not None and span[0] <= pos < span[1]:
                return i
        return None

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().mouseMoveEvent(event)
        if not self.spans:
            return
        pos = self.cursorForPosition(event.position().toPoint()).position()
        step = self.step_at(pos)
        step = -1 if step is None else step
        if step != self._hover_emitted:
            self._hover_emitted = step
            self.step_hovered.emit(step)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().mouseReleaseEvent(event)
        if self.spans and event.button() == Qt.MouseButton.LeftButton and not self.textCursor().hasSelection():
            step = self.step_at(self.cursorForPosition(event.position().toPoint()).position())
            if step is not None:
                self.step_clicked.emit(step)

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._hover_emitted != -1:
            self._hover_emitted = -1
            self.step_hovered.emit(-1)
        super().leaveEvent(event)

    def insertFromMimeData(self, source) -> None:  # noqa: N802 - Qt override
        """Paste as plain text only (HTML on the clipboard is never interpreted)."""
        if source.hasText():
            self.textCursor().insertText(source.text())

