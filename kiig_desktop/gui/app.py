"""Entry point of the desktop application: ``kiig-desktop [SESSION.kiig | MODEL.gguf | TEXT.txt ...]``."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication, QIcon
from PySide6.QtWidgets import QApplication

from .. import __version__
from ..config import secure_data_dir

# The shared libraries Qt's xcb platform plugin loads, and the Debian package of each: without
# one, Qt aborts with "no Qt platform plugin could be initialized" and no hint which is missing.
XCB_LIBRARIES = (
    ("libxcb-cursor.so.0", "libxcb-cursor0"), ("libxcb-icccm.so.4", "libxcb-icccm4"),
    ("libxcb-keysyms.so.1", "libxcb-keysyms1"), ("libxcb-image.so.0", "libxcb-image0"),
    ("libxcb-render-util.so.0", "libxcb-render-util0"), ("libxcb-xkb.so.1", "libxcb-xkb1"),
    ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"), ("libxcb-shape.so.0", "libxcb-shape0"),
    ("libEGL.so.1", "libegl1"), ("libGL.so.1", "libgl1"),
)


def missing_x_libraries(libraries: tuple[tuple[str, str], ...] | None = None, load=ctypes.CDLL) -> list[str]:
    """The Debian packages whose library Qt's xcb plugin needs and cannot load (empty when fine, or
    when another platform than xcb is chosen: offscreen, wayland, a non-Linux system)."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if not sys.platform.startswith("linux") or (platform and not platform.startswith("xcb")):
        return []
    if not platform and not os.environ.get("DISPLAY") and os.environ.get("WAYLAND_DISPLAY"):
        return []
    missing = []
    for library, package in XCB_LIBRARIES if libraries is None else libraries:
        try:
            load(library)
        except OSError:
            missing.append(package)
    return missing


def platform_problem() -> str | None:
    """One readable line naming the missing X libraries and the apt-get line, or None."""
    missing = missing_x_libraries()
    if not missing:
        return None
    return (f"kiig-desktop: Qt's X11 (xcb) platform plugin cannot start: missing {', '.join(missing)}. "
            f"Install them with: sudo apt-get install -y {' '.join(missing)}")


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
    secure_data_dir()  # a data folder left 0777 (cache/ included) is owner-only before anything reads it
    if "--self-test" in args[1:]:
        from .selftest import main as self_test

        return self_test(args[1:])
    problem = platform_problem()
    if problem is not None and QApplication.instance() is None:
        print(problem, file=sys.stderr)
        return 2
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
