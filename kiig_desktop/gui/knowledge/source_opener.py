"""Open a reference file in the system's viewer, at a PDF page where the viewer can be told one.

What was found out (Debian 12, xdg-utils 1.1.3): ``QDesktopServices.openUrl`` hands a file URL to
``xdg-open``, whose generic path drops the ``#page=N`` fragment (``file_url_to_path`` strips
everything from ``#``), so the viewer opens page 1; Windows' and macOS' openers were not tried here
and are not relied on. A viewer started directly takes the page on its command line, so on Linux
the default PDF application (``xdg-mime query default application/pdf``) is started with its own
page argument when it is one of :data:`PAGE_ARGS` (Evince and Papers ``--page-index``, Atril,
Xreader, Okular, Zathura, qpdfview, MuPDF, Sioyek, and the browsers' PDF viewers, which honour
``#page=N``). Any other viewer gets the file through ``openUrl`` and the user is told which page
to go to."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QProcess, QUrl
from PySide6.QtGui import QDesktopServices

# The default PDF application's program name -> its arguments; {file} the path, {url} the file URL
# with #page=N, {page} the 1-based page.
PAGE_ARGS: dict[str, tuple[str, ...]] = {
    **{name: ("--page-index={page}", "{file}") for name in ("evince", "papers", "atril", "xreader")},
    "okular": ("--page", "{page}", "{file}"),
    "zathura": ("--page={page}", "{file}"),
    "qpdfview": ("--unique", "{file}#{page}"),
    "mupdf": ("{file}", "{page}"),
    "mupdf-gl": ("{file}", "{page}"),
    "sioyek": ("--page", "{page}", "{file}"),
    **{name: ("{url}",) for name in ("firefox", "firefox-esr", "chromium", "chromium-browser", "google-chrome",
                                     "google-chrome-stable", "microsoft-edge", "brave-browser")},
}


@dataclass
class OpenPlan:
    """How a file is opened: ``argv`` (a viewer told the page) or ``url`` (the system's opener)."""

    argv: list[str] | None
    url: QUrl
    at_page: bool  # whether the viewer is told the page


def file_url(path: Path, page: int | None) -> QUrl:
    """The file's URL, with ``#page=N`` for a PDF page (what browsers' and Acrobat's viewers read)."""
    url = QUrl.fromLocalFile(str(path))
    if page is not None and path.suffix.lower() == ".pdf":
        url.setFragment(f"page={page}")
    return url


def plan(path: Path, page: int | None, viewer: str | None) -> OpenPlan:
    """How to open ``path`` at ``page`` when ``viewer`` (a program path or name, or None) shows PDFs."""
    url = file_url(path, page)
    name = Path(viewer).name if viewer else ""
    args = PAGE_ARGS.get(name)
    if page is None or path.suffix.lower() != ".pdf" or args is None:
        return OpenPlan(None, url, False)
    fields = {"file": str(path), "page": str(page), "url": url.toString()}
    return OpenPlan([str(viewer), *(a.format(**fields) for a in args)], url, True)


def default_pdf_viewer() -> str | None:
    """The program of the desktop's default PDF application (Linux/BSD desktops), or None."""
    if sys.platform in ("win32", "darwin") or shutil.which("xdg-mime") is None:
        return None
    try:
        entry = subprocess.run(["xdg-mime", "query", "default", "application/pdf"], capture_output=True, text=True,
                               timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not entry.endswith(".desktop") or "/" in entry:
        return None
    home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    dirs = [home, *(os.environ.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share").split(":")]
    for d in dirs:
        desktop = Path(d) / "applications" / entry
        try:
            lines = desktop.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        exec_line = next((line[5:] for line in lines if line.startswith("Exec=")), "")
        try:
            words = shlex.split(exec_line)
        except ValueError:
            return None
        program = words[0] if words else None
        return (shutil.which(program) or None) if program else None
    return None


def system_open(how: OpenPlan) -> bool:
    """Start the viewer told the page (detached: it outlives the app), else hand the URL to the
    system's opener (xdg-open, ShellExecute, open). Tests replace this function."""
    if how.argv is not None and QProcess.startDetached(how.argv[0], how.argv[1:])[0]:
        return True
    how.at_page = False
    return QDesktopServices.openUrl(how.url)


def open_source(path: Path | None, page: int | None, name: str, viewer: str | None) -> tuple[bool, str]:
    """Open the file ``name`` imported from ``path`` (at ``page`` for a PDF, with ``viewer``, the
    :func:`default_pdf_viewer` looked up off the GUI thread): (opened, what to tell the user)."""
    if path is None:
        return False, f"{name}: the corpus no longer records where this file was imported from."
    if not path.is_file():
        return False, (f"{name} is no longer at {path}: it was moved or deleted since it was imported. "
                       "Put it back there, or import it again, to open it from here.")
    how = plan(path, page, viewer)
    if not system_open(how):
        return False, f"No application opens {name} on this system ({path})."
    if how.at_page:
        return True, f"Opened {name} at page {page} in {Path(how.argv[0]).name}."
    if page is None:
        return True, f"Opened {name} in the system viewer."
    return True, (f"Opened {name} in the system viewer; go to page {page} there (this viewer cannot be told a "
                  "page: Evince, Okular, Zathura, qpdfview, MuPDF, Sioyek and web browsers can).")
