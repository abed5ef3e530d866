"""The About dialog: versions of everything involved and the llama.cpp build info."""

from __future__ import annotations

import importlib.metadata
import platform

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import Qt, qVersion
from PySide6.QtGui import QGuiApplication, QIcon
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from ... import __version__
from .widgets import plain_label


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def about_text(build_info: dict | None) -> str:
    """Plain text with versions and the llama.cpp build facts (from a running engine worker)."""
    lines = [
        f"KIIG Desktop {__version__}",
        f"Python {platform.python_version()} on {platform.platform()}",
        f"Qt {qVersion()} · PySide6 {pyside_version}",
        f"pyqtgraph {_version('pyqtgraph')} · numpy {_version('numpy')} · gguf {_version('gguf')}",
        f"llama-cpp-python {_version('llama_cpp_python')}",
        "",
        "llama.cpp build",
    ]
    if build_info:
        gpu = build_info.get("gpu_offload")
        lines += [
            f"  GPU offload: {'supported' if gpu else 'not available in this build (CPU only)'}",
            f"  threads: {build_info.get('n_threads')} · batch: {build_info.get('n_batch')}",
            f"  system info: {build_info.get('system_info') or 'unknown'}",
        ]
    else:
        lines.append("  (load a model to read the build info from its worker process)")
    lines += ["", "Models run in a separate worker process; nothing leaves this machine."]
    return "\n".join(lines)


class AboutDialog(QDialog):
    def __init__(self, icon: QIcon, build_info: dict | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About KIIG Desktop")
        self.setMinimumWidth(560)
        layout = QVBoxLayout(self)
        head = QHBoxLayout()
        logo = QLabel()
        logo.setPixmap(icon.pixmap(64, 64))
        head.addWidget(logo, 0, Qt.AlignmentFlag.AlignTop)
        titles = QVBoxLayout()
        titles.addWidget(plain_label("KIIG Desktop", "heading"))
        titles.addWidget(plain_label("See how local language models reason, step by step: per-step InfoGain and the "
                                     "Knowledge Index, fully offline.", "muted", wrap=True))
        head.addLayout(titles, 1)
        layout.addLayout(head)
        self.details = QPlainTextEdit(about_text(build_info))
        self.details.setReadOnly(True)
        self.details.setMinimumHeight(200)
        layout.addWidget(self.details)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        copy = buttons.addButton("Copy", QDialogButtonBox.ButtonRole.ActionRole)
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.details.toPlainText()))
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
