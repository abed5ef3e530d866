"""Small shared widgets: plain-text labels, the message bar, empty-state hints, metric cards, plot frames."""

from __future__ import annotations

import html

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QMessageBox,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QTreeWidget,
    QVBoxLayout,
    QWidget,
)


def plain_label(text: str = "", role: str | None = None, wrap: bool = False, selectable: bool = False) -> QLabel:
    """A QLabel that never interprets its text as rich text."""
    label = QLabel()
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setText(text)
    label.setWordWrap(wrap)
    if role:
        label.setProperty("role", role)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def rich_tooltip(text: str) -> str:
    """Tooltip markup that shows ``text`` literally (Qt would otherwise guess it might be HTML)."""
    return "<div style='white-space:pre-wrap'>" + html.escape(text) + "</div>"


class ElidedLabel(QLabel):
    """One line of plain text, elided in the middle to fit; the full text is in the tooltip."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(40)
        self.full_text = ""
        self.set_full_text(text)

    def set_full_text(self, text: str) -> None:
        self.full_text = text
        self.setToolTip(rich_tooltip(text) if text else "")
        self._elide()

    def _elide(self) -> None:
        super().setText(self.fontMetrics().elidedText(self.full_text, Qt.TextElideMode.ElideMiddle, max(40, self.width())))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._elide()


class MessageBar(QFrame):
    """An inline banner for errors and notices (plain text, dismissable, never modal)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("MessageBar")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 8, 8)
        self.icon = QLabel()
        self.icon.setFixedWidth(18)
        self.label = plain_label(wrap=True, selectable=True)
        self.label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        layout.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self.label, 1)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.hide)
        self.level = "info"
        self.hide()

    def show_message(self, text: str, level: str = "error", timeout_ms: int = 0) -> None:
        self.level = level
        self.setProperty("level", level)
        self.style().unpolish(self)
        self.style().polish(self)
        self.icon.setText("⚠" if level == "error" else "ℹ")
        self.label.setText(text)
        self.show()
        if timeout_ms:
            self._timer.start(timeout_ms)
        else:
            self._timer.stop()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""


class EmptyState(QWidget):
    """A centred hint shown while a view has nothing to display."""

    def __init__(self, title: str, hint: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        icon = QLabel()
        app_icon = QApplication.windowIcon() if QApplication.instance() else None
        if app_icon is not None and not app_icon.isNull():
            icon.setPixmap(app_icon.pixmap(56, 56))
        icon.setAlignment(Qt.AlignmentFlag.AlignCenter)
        icon.setEnabled(False)
        heading = plain_label(title, "heading")
        heading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint = plain_label(hint, "muted", wrap=True)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setFixedWidth(460)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.hint)
        row.addStretch(1)
        layout.addWidget(icon)
        layout.addSpacing(6)
        layout.addWidget(heading)
        layout.addSpacing(4)
        layout.addLayout(row)
        layout.addStretch(3)


class MetricCard(QFrame):
    """A number with a caption, for the summary strip above the results."""

    def __init__(self, caption: str, tip: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setProperty("role", "card")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(2)
        self.value = plain_label("—", "metric")
        self.value.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.caption = plain_label(caption, "metric-caption", wrap=True)
        layout.addWidget(self.value)
        layout.addWidget(self.caption)
        if tip:
            self.setToolTip(tip)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_value(self, text: str, color: str | None = None) -> None:
        self.value.setText(text)
        self.value.setStyleSheet(f"color: {color};" if color else "")


class PlotFrame(QFrame):
    """A figure with a title, a caption and an export menu (PNG / SVG)."""

    export_requested = Signal(str)  # "png" | "svg"

    def __init__(self, title: str, caption: str, figure: QWidget, parent: QWidget | None = None,
                 extra: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setProperty("role", "card")
        self.figure = figure
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 6)
        layout.setSpacing(2)
        top = QHBoxLayout()
        title_label = plain_label(title)
        title_label.setStyleSheet("font-weight: 600;")
        top.addWidget(title_label)
        top.addStretch(1)
        if extra is not None:
            top.addWidget(extra)
        button = QToolButton()
        button.setText("Export")
        button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        button.setAutoRaise(True)
        menu = QMenu(button)
        menu.addAction("Export as PNG…", lambda: self.export_requested.emit("png"))
        menu.addAction("Export as SVG…", lambda: self.export_requested.emit("svg"))
        button.setMenu(menu)
        top.addWidget(button)
        layout.addLayout(top)
        self.caption = plain_label(caption, "muted", wrap=True)
        self.caption.setStyleSheet("font-size: 11px;")
        layout.addWidget(self.caption)
        layout.addWidget(figure, 1)


def compact_combo(combo, chars: int = 10):
    """Let a combo box shrink to ``chars`` characters instead of its longest item."""
    combo.setSizeAdjustPolicy(combo.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(chars)
    return combo


def scrollable(widget: QWidget) -> QScrollArea:
    """A dock's content that can shrink below its natural height on small screens."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return area


class PageArea(QScrollArea):
    """A main tab's page: fills the tab, and scrolls only when the tab is smaller than the page's
    minimum size (a small screen), so the window never has to outgrow the screen.

    ``widgetResizable`` would size a page with word-wrapped text to its preferred height and
    scroll on a large screen too; this keeps the page at max(viewport, minimum size).
    """

    def __init__(self, page: QWidget) -> None:
        super().__init__()
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.setWidgetResizable(False)
        self.setWidget(page)
        page.installEventFilter(self)

    def page(self) -> QWidget:
        return self.widget()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        if obj is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            QTimer.singleShot(0, self._fit)
        return super().eventFilter(obj, event)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        page = self.widget()
        if page is None:
            return
        need = page.minimumSizeHint().expandedTo(page.minimumSize())
        view = self.maximumViewportSize()  # the viewport without scroll bars
        width, height = max(view.width(), need.width()), max(view.height(), need.height())
        bar = self.style().pixelMetric(self.style().PixelMetric.PM_ScrollBarExtent)
        if width > view.width():  # a horizontal bar takes height from the page
            height = max(view.height() - bar, need.height())
        if height > view.height():
            width = max(view.width() - bar, need.width())
        if page.size().toTuple() != (width, height):
            page.resize(width, height)


def make_tree(headers: list[str], *, stretch: int = 0, widths: dict[int, int] | None = None,
              uniform_rows: bool = True) -> QTreeWidget:
    """A tree/table with one stretching column and fixed widths for the others."""
    tree = QTreeWidget()
    tree.setHeaderLabels(headers)
    tree.setUniformRowHeights(uniform_rows)
    header = tree.header()
    header.setStretchLastSection(False)
    header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    for col, width in (widths or {}).items():
        tree.setColumnWidth(col, width)
    return tree


def confirm(parent: QWidget, title: str, text: str) -> bool:
    """Ask Yes/No in a message box that shows ``text`` as plain text (corpus names may hold markup)."""
    box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                      parent)
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    return box.exec() == QMessageBox.StandardButton.Yes
