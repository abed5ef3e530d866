"""A dock panel that collapses to a narrow strip (its name, vertical) and expands again.

On a 1366-pixel screen the Models dock would otherwise take a third of the width on every tab;
collapsed it keeps one click (or its keyboard button) away.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QDockWidget, QHBoxLayout, QLabel, QStackedWidget, QToolButton, QVBoxLayout, QWidget

STRIP_WIDTH = 30


class _VerticalLabel(QLabel):
    """The dock's name written bottom to top, for the collapsed strip."""

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.translate(0, self.height())
        painter.rotate(-90)
        painter.drawText(0, 0, self.height(), self.width(), Qt.AlignmentFlag.AlignCenter, self.text())
        painter.end()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        hint = super().sizeHint()
        return QSize(hint.height(), hint.width())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return self.sizeHint()


class CollapsibleDock(QDockWidget):
    """A QDockWidget with a «/» button in its title bar that folds it into a strip."""

    collapsed_changed = Signal(bool)

    def __init__(self, title: str, widget: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(title, parent)
        self.collapsed = False
        self._width = 310
        self.content = widget
        self.stack = QStackedWidget()
        self.stack.addWidget(widget)
        strip = QWidget()
        strip_layout = QVBoxLayout(strip)
        strip_layout.setContentsMargins(2, 4, 2, 4)
        self.expand_button = QToolButton()
        self.expand_button.setText("»")
        self.expand_button.setToolTip(f"Show the {title} panel")
        self.expand_button.setAccessibleName(f"Expand {title}")
        self.expand_button.clicked.connect(lambda: self.set_collapsed(False))
        strip_layout.addWidget(self.expand_button, 0, Qt.AlignmentFlag.AlignHCenter)
        strip_layout.addWidget(_VerticalLabel(title), 1)
        self.stack.addWidget(strip)
        self.setWidget(self.stack)

        bar = QWidget()
        bar_layout = QHBoxLayout(bar)
        bar_layout.setContentsMargins(8, 2, 2, 2)
        self.title_label = QLabel(title)
        self.title_label.setStyleSheet("font-weight: 600;")
        self.collapse_button = QToolButton()
        self.collapse_button.setText("«")
        self.collapse_button.setAutoRaise(True)
        self.collapse_button.setToolTip(f"Fold the {title} panel into a strip at the window's edge")
        self.collapse_button.setAccessibleName(f"Collapse {title}")
        self.collapse_button.clicked.connect(lambda: self.set_collapsed(True))
        bar_layout.addWidget(self.title_label, 1)
        bar_layout.addWidget(self.collapse_button)
        self._bar = bar
        self._empty_bar = QWidget()
        self.setTitleBarWidget(bar)

    def set_collapsed(self, on: bool) -> None:
        """Fold into (or open from) the strip; the width before folding comes back on opening."""
        if on == self.collapsed:
            return
        self.collapsed = on
        if on:
            self._width = max(self.width(), 240)
            self.stack.setCurrentIndex(1)
            self.setTitleBarWidget(self._empty_bar)
            self.setFixedWidth(STRIP_WIDTH)
            self.expand_button.setFocus()
        else:
            self.setTitleBarWidget(self._bar)
            self.setMinimumWidth(0)
            self.setMaximumWidth(16777215)
            self.stack.setCurrentIndex(0)
            self.setMinimumWidth(240)
            main = self.parent()
            if hasattr(main, "resizeDocks"):
                main.resizeDocks([self], [self._width], Qt.Orientation.Horizontal)
            self.collapse_button.setFocus()
        self.collapsed_changed.emit(on)
