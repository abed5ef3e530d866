"""A KI evidence passage in context: the passages before and after it in its document (plain text)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QPushButton, QVBoxLayout, QWidget

from ...knowledge.corpus import Passage
from ...knowledge.search import match_spans
from ..shared.widgets import plain_label
from .evidence_panel import PassageItem, PassageView, passage_links, shown_title

CITED = "  ·  the cited passage"


class ContextDialog(QDialog):
    """The cited passage among its neighbours, in document order; ``open_requested`` opens its file."""

    open_requested = Signal(object)

    def __init__(self, cited: Passage, passages: list[Passage], query: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cited = cited
        self.setWindowTitle(f"{cited.where()} in context")
        self.resize(720, 560)
        v = QVBoxLayout(self)
        v.addWidget(plain_label(f"{cited.file or cited.source}: the passages around the one the judge read, in document "
                                "order (neighbouring passages overlap a little).", "muted", wrap=True))
        self.view = PassageView()
        items = []
        for p in passages or [cited]:
            mine = p.chunk_id == cited.chunk_id
            items.append(PassageItem(f"{p.where()}  ·  chunk {p.chunk}" + (CITED if mine else ""), p.text, shown_title(p),
                                     match_spans(p.text, query) if mine else []))
        self.view.set_items(items, "The passage is no longer in the corpus.")
        self.cited_index = next((n for n, p in enumerate(passages) if p.chunk_id == cited.chunk_id), 0)
        v.addWidget(self.view, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.open_button = QPushButton(passage_links(cited)[0][0])
        buttons.addButton(self.open_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        self.open_button.clicked.connect(lambda: self.open_requested.emit(self.cited))
        v.addWidget(buttons)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        rng = self.view.text_ranges[self.cited_index] if self.cited_index < len(self.view.text_ranges) else None
        if rng is not None:
            cursor = self.view.textCursor()
            cursor.setPosition(rng[0])
            self.view.setTextCursor(cursor)
            self.view.ensureCursorVisible()

    def headings(self) -> list[str]:
        """The passage headings shown, in order (for checks)."""
        return [item.heading for item in self.view.items]
