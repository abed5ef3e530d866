"""Entry point of the desktop application: ``kiig-desktop [SESSION.kiig | MODEL.gguf | TEXT.txt ...]``."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import TYPE_CHECKING

from .. import __version__
from ..config import secure_data_dir

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

# Qt is imported only once a window is due: `--help` and the "no display" line need none of it.
USAGE = f"""usage: kiig-desktop [-h] [--version] [--self-test] [SESSION.kiig | MODEL.gguf | TEXT.txt ...]

KIIG Desktop {__version__}: per-step InfoGain and Knowledge Index of local GGUF models, offline.
Opens the main window on the embedded default model; files named on the command line are opened:
a session (.kiig), a model (.gguf) or a reasoning text.

options:
  -h, --help   show this help and exit
  --version    show the version and exit
  --self-test  check the engine, the embedded model, a scored chain and the window; exit 0 when all work

The window needs a display (X11 or Wayland). Without one (an SSH session) use the `kiig` command
line, which computes the same numbers; `kiig --help` lists its commands.
"""

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


def no_display() -> bool:
    """True when Qt would look for an X11 or Wayland display and there is none (an SSH session)."""
    if not sys.platform.startswith("linux"):
        return False
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    display, wayland = bool(os.environ.get("DISPLAY")), bool(os.environ.get("WAYLAND_DISPLAY"))
    if not platform:
        return not (display or wayland)
    if platform.startswith("xcb"):
        return not display
    if platform.startswith("wayland"):
        return not wayland
    return False


def platform_problem() -> str | None:
    """One readable line saying there is no display, or naming the missing X libraries and the
    apt-get line; None when Qt can start. Without a display Qt itself would blame an X library."""
    if no_display():
        return ("kiig-desktop: no display (DISPLAY and WAYLAND_DISPLAY are not set, as in an SSH session): "
                "run it in a desktop session or over `ssh -X`, or use the `kiig` command line (`kiig --help`)")
    missing = missing_x_libraries()
    if not missing:
        return None
    return (f"kiig-desktop: Qt's X11 (xcb) platform plugin cannot start: missing {', '.join(missing)}. "
            f"Install them with: sudo apt-get install -y {' '.join(missing)}")


def create_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication with high-DPI rounding, names (for QSettings), icon and theme."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QIcon
    from PySide6.QtWidgets import QApplication

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
    if any(a in ("-h", "--help") for a in args[1:]):
        print(USAGE, end="")
        return 0
    if "--version" in args[1:]:
        print(f"kiig-desktop {__version__}")
        return 0
    secure_data_dir()  # a data folder left 0777 (cache/ included) is owner-only before anything reads it
    if "--self-test" in args[1:]:
        from .selftest import main as self_test

        return self_test(args[1:])
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

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
