"""The metric definitions (docs/metrics.md, shipped inside the app) in a window of the app's own.

The "more" links of the metric cards and Help → Metric Definitions open it at a section: it needs
no browser and no network. A missing file is said in the window, never a silent failure.
"""

from __future__ import annotations

import re

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTextBrowser, QVBoxLayout, QWidget

from ...resources import docs_path
from .metric_help import anchor_of

DOC = "metrics.md"


def section_anchor(heading: str) -> str:
    """The anchor a Markdown heading gets on GitHub (lower case, punctuation dropped, spaces → -)."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


class MetricHelp(QDialog):
    """docs/metrics.md rendered, opened at a section."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("metric-help")
        self.setWindowTitle("Metric definitions")
        self.resize(760, 620)
        self.error = QLabel()
        self.error.setTextFormat(Qt.TextFormat.PlainText)  # a path is data, never markup
        self.error.setWordWrap(True)
        self.error.setProperty("role", "error")
        self.error.hide()
        self.browser = QTextBrowser()
        self.browser.setOpenLinks(False)  # nothing leaves the app
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.error)
        layout.addWidget(self.browser, 1)
        layout.addWidget(buttons)
        self.loaded = False

    def load(self) -> bool:
        """Read the shipped definitions; False (and the reason shown) when they are missing."""
        path = docs_path(DOC)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            self.error.setText(f"The metric definitions are missing from this installation ({path}: "
                               f"{exc.strerror or exc}). Reinstall KIIG Desktop to restore them.")
            self.error.show()
            self.browser.clear()
            self.loaded = False
            return False
        self.error.hide()
        self.browser.setMarkdown(text)
        self.loaded = True
        return True

    def show_section(self, anchor: str = "") -> bool:
        """Show the window at the heading whose anchor is ``anchor`` (the top when empty or unknown)."""
        ok = self.load()
        self.show()
        self.raise_()
        self.activateWindow()
        if ok:
            self.browser.moveCursor(QTextCursor.MoveOperation.Start)
            block = self.heading(anchor) if anchor else None
            if block is not None:
                self.browser.setTextCursor(QTextCursor(block))
                top = self.browser.document().documentLayout().blockBoundingRect(block).top()
                self.browser.verticalScrollBar().setValue(int(top))
        return ok

    def heading(self, anchor: str):
        """The document's heading block with that anchor, or None."""
        block = self.browser.document().begin()
        while block.isValid():
            if block.blockFormat().headingLevel() and section_anchor(block.text()) == anchor:
                return block
            block = block.next()
        return None


def open_metric_help(widget: QWidget, anchor: str = "") -> MetricHelp:
    """The metric definitions at ``anchor`` (or a "more" link's href), in one help window per main window."""
    anchor = anchor_of(anchor) or anchor
    top = widget.window()
    dialog = top.findChild(MetricHelp, "metric-help", Qt.FindChildOption.FindDirectChildrenOnly)
    if dialog is None:
        dialog = MetricHelp(top)
        dialog.setWindowFlag(Qt.WindowType.Window)
    dialog.show_section(anchor)
    return dialog
