"""Small shared widgets: plain-text labels, the message bar, empty-state hints, metric cards, plot frames."""

from __future__ import annotations

import html
from collections.abc import Callable

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


STATUS_TEXT_MAX = 260  # px: a status-bar label's longest text (a long session or model name is elided)


def fit_text(label: QLabel, text: str, max_px: int = STATUS_TEXT_MAX) -> None:
    """Put ``text`` in a plain label elided in the middle to ``max_px`` (the whole text in its tooltip)."""
    shown = label.fontMetrics().elidedText(text, Qt.TextElideMode.ElideMiddle, max_px)
    label.setText(shown)
    label.setToolTip(rich_tooltip(text) if shown != text else "")


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
    """A banner for errors and notices (plain text, dismissable, never modal).

    After :meth:`float_over` it is an overlay on the top edge of another widget: showing and hiding
    it moves nothing below it (a button about to be clicked stays where it is).
    """

    MARGIN = 8

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._anchor: QWidget | None = None
        self._offset: Callable[[], int] = lambda: 0
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
        self._place()
        self.show()
        self.raise_()
        if timeout_ms:
            self._timer.start(timeout_ms)
        else:
            self._timer.stop()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""

    def float_over(self, anchor: QWidget, offset: Callable[[], int] = lambda: 0) -> None:
        """Overlay the top of ``anchor`` (a sibling in the same parent), ``offset()`` px below its top
        edge, and follow it when it moves or is resized."""
        self._anchor, self._offset = anchor, offset
        self.setParent(anchor.parentWidget())
        anchor.installEventFilter(self)
        self.hide()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        if obj is self._anchor and event.type() in (QEvent.Type.Resize, QEvent.Type.Move) and self.isVisible():
            self._place()
        return False

    def _place(self) -> None:
        if self._anchor is None:
            return
        area = self._anchor.geometry()
        width = max(120, area.width() - 2 * self.MARGIN)
        layout = self.layout()
        height = layout.totalHeightForWidth(width) if layout.hasHeightForWidth() else self.sizeHint().height()
        self.setGeometry(area.x() + self.MARGIN, area.y() + self._offset() + 4, width, height)


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


CARD_MIN_WIDTH = 150  # px: a caption of about thirty characters fits on two lines


class MetricCard(QFrame):
    """A number with a caption, for the summary strip above the results.

    The value never elides or clips: its label asks for its full text width, and the strip
    (:class:`CardStrip`) wraps cards onto a second row when they do not fit side by side. A
    signed value shows ▲/▼ beside it (the sign is never colour alone); ``help_key`` adds the
    metric's one-sentence tooltip and a "more" link to its definition (the app's help window).
    """

    def __init__(self, caption: str, tip: str = "", parent: QWidget | None = None, help_key: str | None = None) -> None:
        super().__init__(parent)
        self.setProperty("role", "card")
        self.setFocusPolicy(Qt.FocusPolicy.TabFocus)  # reachable from the keyboard; screen readers read its name
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(2)
        row = QHBoxLayout()
        row.setSpacing(6)
        self.value = plain_label("—", "metric")
        self.sign = plain_label("", "metric-sign")
        self.sign.hide()
        row.addWidget(self.value)
        row.addWidget(self.sign)
        row.addStretch(1)
        layout.addLayout(row)
        self.caption = plain_label(caption, "metric-caption", wrap=True)
        self.caption.setMinimumHeight(2 * self.caption.fontMetrics().lineSpacing() + 2)  # two lines always fit
        layout.addWidget(self.caption)
        self.note = plain_label("", "metric-caption", wrap=True)  # a caveat under the caption (set_note)
        self.note.hide()
        layout.addWidget(self.note)
        bottom = row
        self.more: QLabel | None = None
        if help_key:
            from .help_dialog import open_metric_help
            from .metric_help import metric_tip, more_link

            self.more = QLabel(more_link(help_key))
            self.more.setTextFormat(Qt.TextFormat.RichText)
            self.more.linkActivated.connect(lambda href: open_metric_help(self, href))
            self.more.setProperty("role", "metric-caption")
            self.more.setObjectName("more-link")  # the only rich text: the app's own link, never data
            self.more.setAccessibleName(f"More about {caption}")
            bottom.addWidget(self.more, 0, Qt.AlignmentFlag.AlignTop)
            tip = metric_tip(help_key)
        self.setMinimumWidth(CARD_MIN_WIDTH)
        if tip:
            self.setToolTip(tip)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._name()

    def set_value(self, text: str, color: str | None = None, signed: float | None = None) -> None:
        """Show ``text`` (in ``color``); ``signed`` (a number) adds ▲ or ▼ by its sign."""
        from .theme import sign_symbol

        self.value.setText(text)
        self.value.setStyleSheet(f"color: {color};" if color else "")
        symbol = sign_symbol(signed)
        self.sign.setText(symbol)
        self.sign.setStyleSheet(f"color: {color};" if color else "")
        self.sign.setVisible(bool(symbol))
        self.updateGeometry()
        self._name()

    def set_note(self, text: str, warning: bool = False, tip: str | None = None) -> None:
        """A line under the caption (a warning in the warning colour); ``tip`` replaces the card's tooltip."""
        self.note.setText(text)
        self.note.setProperty("role", "warning" if warning else "metric-caption")
        self.note.style().unpolish(self.note)
        self.note.style().polish(self.note)
        self.note.setVisible(bool(text))
        if tip is not None:
            self.setToolTip(tip)
        self._name()

    def _name(self) -> None:
        note = f" ({self.note.text()})" if self.note.text() else ""
        self.setAccessibleName(f"{self.caption.text()}: {self.value.text()}{note}")

    def elided(self) -> bool:
        """Whether the value does not fit its label (a screen-size test checks this never happens)."""
        needed = self.value.fontMetrics().horizontalAdvance(self.value.text())
        return self.value.isVisible() and needed > self.value.contentsRect().width() + 1


class CardStrip(QWidget):
    """Metric cards in as many columns as fit (one row on wide screens, two or three when narrow)."""

    def __init__(self, cards: list[QWidget], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from PySide6.QtWidgets import QGridLayout

        self.cards = cards
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(8)
        self._columns = 0
        self._place(len(cards))

    def _visible(self) -> list[QWidget]:
        return [c for c in self.cards if not c.isHidden()]

    def _place(self, columns: int) -> None:
        if columns == self._columns:
            return
        self._columns = columns
        for card in self.cards:
            self.grid.removeWidget(card)
        for i in range(self.grid.columnCount()):
            self.grid.setColumnStretch(i, 0)
        for i, card in enumerate(self.cards):
            self.grid.addWidget(card, i // columns, i % columns)
        for i in range(columns):
            self.grid.setColumnStretch(i, 1)

    def _fits(self, columns: int, width: int) -> bool:
        cards = self.cards
        widest = max((c.minimumSizeHint().width() for c in cards), default=0)
        return columns * widest + (columns - 1) * self.grid.spacing() <= width

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self.reflow()

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:  # a card's value changed width
            self.reflow()
        return super().event(event)

    def reflow(self) -> None:
        """Choose the number of columns for the current width."""
        n = len(self.cards)
        for columns in (n, (n + 1) // 2, (n + 2) // 3, 2, 1):
            if columns >= 1 and self._fits(columns, self.width()):
                self._place(columns)
                return
        self._place(1)

    def minimumSizeHint(self):  # noqa: N802 - Qt override
        """As narrow as one column of cards (the strip reflows), as tall as the current rows."""
        hint = super().minimumSizeHint()
        widest = max((c.minimumSizeHint().width() for c in self.cards), default=0)
        hint.setWidth(widest)
        return hint


class PlotFrame(QFrame):
    """A figure with a title, a caption and an export menu (PNG / SVG)."""

    export_requested = Signal(str)  # "png" | "svg"

    def __init__(self, title: str, caption: str, figure: QWidget, parent: QWidget | None = None,
                 extra: QWidget | None = None, help_key: str | None = None) -> None:
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
        self.export_button = button
        layout.addLayout(top)
        self.caption = plain_label(caption, "muted", wrap=True)
        self.caption.setStyleSheet("font-size: 11px;")
        self.caption.setMinimumHeight(2 * self.caption.fontMetrics().lineSpacing() + 2)  # splitters ignore wrapping
        layout.addWidget(self.caption)
        layout.addWidget(figure, 1)
        if help_key:  # the metric's sentence and "more" link on the title and caption
            from .metric_help import metric_tip

            title_label.setToolTip(metric_tip(help_key))
            self.caption.setToolTip(metric_tip(help_key))
        figure.setAccessibleName(title)
        figure.setAccessibleDescription(caption)
        button.setAccessibleName(f"Export {title}")


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


class FormArea(QScrollArea):
    """A form that scrolls vertically and is never narrower than its controls: its minimum width
    follows the form's (a longer model name or status widens it), so nothing hides at the edge."""

    def __init__(self, form: QWidget) -> None:
        super().__init__()
        self.setWidget(form)
        self.setWidgetResizable(True)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        form.installEventFilter(self)
        self._fit()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        if obj is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            QTimer.singleShot(0, self, self._fit)  # cancelled with the widget
        return super().eventFilter(obj, event)

    def _fit(self) -> None:
        form = self.widget()
        if form is not None:
            bar = self.style().pixelMetric(self.style().PixelMetric.PM_ScrollBarExtent)
            self.setMinimumWidth(form.minimumSizeHint().width() + bar + 2 * self.frameWidth() + 2)


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
            QTimer.singleShot(0, self, self._fit)  # cancelled with the widget
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
