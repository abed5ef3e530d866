"""Light and dark palettes (following the system unless the user picks one), colours and scales.

Every view asks this module for colours, so a palette change repaints tables, token highlights
and plots consistently. Series colours are the Okabe-Ito set (readable for colour-blind users).
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

SERIES = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#8C6D31", "#F0E442"]
MODES = ("system", "light", "dark")
# Diverging colours for signed metrics (InfoGain, ΔNLL, KI around 0.5): the default pair is blue and
# orange, told apart by every common colour-vision deficiency; "red-green" keeps the old pair.
PALETTES = ("blue-orange", "red-green")
_SIGNED = {
    ("blue-orange", False): ("#1f66b5", "#c75000"), ("blue-orange", True): ("#5aa7f0", "#f08c3c"),
    ("red-green", False): ("#1a7f37", "#c62828"), ("red-green", True): ("#4cc26b", "#ff6b6b"),
}
_TINT = {"blue-orange": ("#2a7bd0", "#e07b1a"), "red-green": ("#2e9e5b", "#d1495b")}
UP, DOWN = "▲", "▼"


def sign_symbol(value: float | None) -> str:
    """▲ for a positive value, ▼ for a negative one, nothing for zero or missing (the sign is never colour alone)."""
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value) or value == 0:
        return ""
    return UP if value > 0 else DOWN

_LIGHT = {
    "window": "#f5f6f8", "base": "#ffffff", "alt": "#f0f2f5", "text": "#1d2330", "muted": "#5f6b7a",
    "button": "#eceff3", "highlight": "#2f6fde", "highlight_text": "#ffffff", "border": "#d3d8e0",
    "plot_bg": "#ffffff", "plot_fg": "#1d2330", "grid": "#e3e7ed", "card": "#ffffff",
    "good": "#1a7f37", "bad": "#c62828", "accent": "#2f6fde", "hover": "#2f6fde",
}
_DARK = {
    "window": "#1f232a", "base": "#171a1f", "alt": "#232830", "text": "#e3e7ee", "muted": "#9aa5b4",
    "button": "#2b3039", "highlight": "#4c8dff", "highlight_text": "#ffffff", "border": "#3a404b",
    "plot_bg": "#171a1f", "plot_fg": "#d5dbe4", "grid": "#2c323c", "card": "#262b33",
    "good": "#4cc26b", "bad": "#ff6b6b", "accent": "#6aa3ff", "hover": "#6aa3ff",
}


class Theme(QObject):
    """The active palette; ``changed`` fires after a switch (views repaint their plots then)."""

    changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.mode = "system"
        self.dark = False
        self.palette = PALETTES[0]
        hints = QGuiApplication.styleHints()
        if hasattr(hints, "colorSchemeChanged"):
            hints.colorSchemeChanged.connect(self._system_changed)

    def colors(self) -> dict[str, str]:
        """The palette's colours; ``good``/``bad`` follow the chosen signed palette."""
        base = _DARK if self.dark else _LIGHT
        good, bad = _SIGNED[(self.palette, self.dark)]
        return {**base, "good": good, "bad": bad}

    def set_palette(self, name: str) -> None:
        """Switch the signed-metric colours (``blue-orange`` or ``red-green``) and repaint."""
        self.palette = name if name in PALETTES else PALETTES[0]
        self.apply(self.mode)

    def color(self, name: str) -> QColor:
        return QColor(self.colors()[name])

    def _system_dark(self) -> bool:
        hints = QGuiApplication.styleHints()
        scheme = hints.colorScheme() if hasattr(hints, "colorScheme") else Qt.ColorScheme.Unknown
        if scheme == Qt.ColorScheme.Dark:
            return True
        if scheme == Qt.ColorScheme.Light:
            return False
        return QGuiApplication.palette().color(QPalette.ColorRole.Window).lightness() < 128

    def _system_changed(self, *_args) -> None:
        if self.mode == "system":
            self.apply("system")

    def apply(self, mode: str) -> None:
        """Switch to ``system``, ``light`` or ``dark`` and install the palette on the application."""
        self.mode = mode if mode in MODES else "system"
        self.dark = self._system_dark() if self.mode == "system" else self.mode == "dark"
        app = QApplication.instance()
        if app is not None:
            app.setStyle("Fusion")
            app.setPalette(build_palette(self.colors()))
            app.setStyleSheet(stylesheet(self.colors(), self.dark))
        pg.setConfigOptions(background=self.colors()["plot_bg"], foreground=self.colors()["plot_fg"], antialias=True)
        self.changed.emit()


def build_palette(c: dict[str, str]) -> QPalette:
    p = QPalette()
    role = QPalette.ColorRole
    for r, key in ((role.Window, "window"), (role.Base, "base"), (role.AlternateBase, "alt"), (role.Text, "text"),
                   (role.WindowText, "text"), (role.Button, "button"), (role.ButtonText, "text"),
                   (role.Highlight, "highlight"), (role.HighlightedText, "highlight_text"), (role.ToolTipBase, "card"),
                   (role.ToolTipText, "text"), (role.PlaceholderText, "muted"), (role.Link, "accent")):
        p.setColor(r, QColor(c[key]))
    muted = QColor(c["muted"])
    for r in (role.Text, role.WindowText, role.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, r, muted)
    return p


def stylesheet(c: dict[str, str], dark: bool = False) -> str:
    """A light touch on top of Fusion: cards, headings, the message bar, empty-state hints."""
    return f"""
QGroupBox {{ font-weight: 600; border: 1px solid {c['border']}; border-radius: 6px; margin-top: 14px;
             padding: 10px 8px 8px 8px; background: {c['card']}; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 10px; padding: 0 4px; color: {c['text']}; }}
QLabel[role="heading"] {{ font-size: 15px; font-weight: 600; }}
QLabel[role="muted"] {{ color: {c['muted']}; }}
QLabel[role="empty"] {{ color: {c['muted']}; font-size: 14px; padding: 24px; }}
QFrame[role="card"] {{ background: {c['card']}; border: 1px solid {c['border']}; border-radius: 6px; }}
QLabel[role="metric"] {{ font-size: 18px; font-weight: 600; }}
QLabel[role="metric-caption"] {{ color: {c['muted']}; font-size: 11px; }}
QLabel[role="warning"] {{ color: {c['bad']}; font-weight: 600; }}
QFrame#MessageBar {{ border-radius: 6px; }}
QFrame#MessageBar[level="error"] {{ background: {'#4a2326' if dark else '#fdecea'}; border: 1px solid {c['bad']}; }}
QFrame#MessageBar[level="info"] {{ background: {'#1f3350' if dark else '#e8f0fe'}; border: 1px solid {c['accent']}; }}
QTabWidget::pane {{ border-top: 1px solid {c['border']}; }}
QTabBar::tab {{ padding: 6px 16px 5px 16px; border: none; border-bottom: 3px solid transparent;
               color: {c['muted']}; }}
QTabBar::tab:selected {{ color: {c['text']}; font-weight: 600; border-bottom: 3px solid {c['accent']}; background: {c['card']}; }}
QTabBar::tab:hover:!selected {{ color: {c['text']}; border-bottom: 3px solid {c['border']}; }}
QPushButton[role="primary"] {{ background: {c['accent']}; color: white; border: 2px solid {c['accent']};
                               border-radius: 4px; padding: 4px 12px; font-weight: 600; }}
QPushButton[role="primary"]:disabled {{ background: {c['border']}; color: {c['muted']}; border-color: {c['border']}; }}
QPushButton[role="primary"]:hover {{ background: {c['highlight']}; }}
QPushButton:focus, QToolButton:focus, QComboBox:focus, QCheckBox:focus, QRadioButton:focus, QSpinBox:focus,
QLineEdit:focus, QPlainTextEdit:focus, QTextEdit:focus, QAbstractItemView:focus {{
    outline: 2px solid {c['accent']}; }}
QTabBar {{ outline: none; }}
QTabBar::tab:selected:focus {{ border: 2px solid {c['accent']}; border-bottom: 3px solid {c['accent']}; }}
QPushButton:focus, QToolButton:focus {{ border: 2px solid {c['accent']}; border-radius: 4px; }}
QPushButton[role="primary"]:focus {{ border: 2px solid {c['text']}; }}
QAbstractItemView:focus, QPlainTextEdit:focus, QTextEdit:focus, QLineEdit:focus, QGraphicsView:focus,
QFrame[role="card"]:focus {{ border: 2px solid {c['accent']}; }}
QLabel[role="metric-sign"] {{ font-size: 15px; font-weight: 600; }}
"""


THEME: Theme | None = None


def theme() -> Theme:
    """The application's theme object (created on first use, after the QApplication)."""
    global THEME
    if THEME is None:
        THEME = Theme()
    return THEME


# ------------------------------------------------------------------------------------- scales


def probability_color(p: float | None, dark: bool) -> QColor | None:
    """Background for a token with probability ``p``: none when confident, then stronger as ``p``
    falls (pale to deep orange with the colour-blind-safe palette, amber to red with red/green)."""
    if p is None or not math.isfinite(p) or p >= 0.9:
        return None
    t = 1.0 - max(0.0, min(1.0, p)) / 0.9  # 0 at p=0.9 .. 1 at p=0
    if theme().palette != "red-green":
        start, end, u = QColor("#fdd49e"), QColor("#d95f0e"), t
    elif t < 0.5:
        start, end, u = QColor("#f4d35e"), QColor("#f08a4b"), t / 0.5
    else:
        start, end, u = QColor("#f08a4b"), QColor("#d1495b"), (t - 0.5) / 0.5
    color = QColor(
        round(start.red() + (end.red() - start.red()) * u),
        round(start.green() + (end.green() - start.green()) * u),
        round(start.blue() + (end.blue() - start.blue()) * u),
    )
    color.setAlpha(round((110 if dark else 90) + 110 * t))
    return color


def diverging_color(value: float | None, scale: float, dark: bool) -> QColor | None:
    """Blue (or green) for positive, orange (or red) for negative, alpha by ``|value| / scale``;
    None for missing/zero."""
    if value is None or not math.isfinite(value) or scale <= 0 or value == 0:
        return None
    strength = min(1.0, abs(value) / scale)
    positive, negative = _TINT[theme().palette]
    base = QColor(positive if value > 0 else negative)
    base.setAlpha(round((35 if not dark else 55) + 150 * strength))
    return base


def sequential_color(value: float | None, lo: float, hi: float, dark: bool) -> QColor | None:
    """Grey-violet tint growing with ``value`` in [lo, hi] (perplexity and entropy columns); kept apart
    from the blue and orange of the signed metrics."""
    if value is None or not math.isfinite(value) or hi <= lo:
        return None
    t = max(0.0, min(1.0, (value - lo) / (hi - lo)))
    color = QColor("#a99bd6" if dark else "#7a68b8")
    color.setAlpha(round(20 + 120 * t))
    return color
