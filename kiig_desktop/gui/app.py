"""Entry point of the desktop application: ``kiig-desktop [SESSION.kiig | MODEL.gguf | TEXT.txt ...]``."""

from __future__ import annotations

import signal
import sys

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication, QIcon
from PySide6.QtWidgets import QApplication

from .. import __version__


def create_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication with high-DPI rounding, names (for QSettings), icon and theme."""
    app = QApplication.instance()
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName("KIIG Desktop")
    app.setApplicationDisplayName("KIIG Desktop")
    app.setOrganizationName("KIIG")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("kiig-desktop")
    from .main_window import _icon_path
    from .shared.theme import theme

    app.setWindowIcon(QIcon(str(_icon_path())))
    theme().apply("system")
    return app


def main(argv: list[str] | None = None) -> int:
    """Open the main window on the embedded default model; extra arguments are files to open."""
    args = list(sys.argv if argv is None else argv)
    if "--self-test" in args[1:]:
        from .selftest import main as self_test

        return self_test(args[1:])
    app = create_application(args)
    from .main_window import MainWindow
    from .shared.theme import theme

    window = MainWindow()
    saved = str(window.qsettings.value("view/theme", "system"))
    if saved != "system":
        window.set_theme(saved)
    else:
        window.theme_actions[theme().mode].setChecked(True)
    window.show()
    window.start([a for a in args[1:] if not a.startswith("-")])
    # Ctrl+C in the terminal and SIGTERM (logout, `kill`, a service manager) close the window
    # cleanly: workers stopped, the session closed, an empty autosave session removed.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: _quit(app, window))
    timer = QTimer()
    timer.start(250)
    timer.timeout.connect(lambda: None)
    code = app.exec()
    return int(code)


def _quit(app: QApplication, window) -> None:
    """Close the window (its closeEvent cleans up), then end the event loop even if it stays open."""
    window.close()
    app.quit()


if __name__ == "__main__":
    sys.exit(main())
