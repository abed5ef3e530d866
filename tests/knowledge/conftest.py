"""The real test documents (tests/support/documents.py), built once per content and shared."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support import documents as docs
from tests.support.require import require

HOW = "apt-get install ghostscript libreoffice-writer-nogui; make test installs them as root"


@pytest.fixture(scope="session")
def documents(request) -> Path:
    """Folder of the test PDFs, Word file and HTML page (cached under .pytest_cache by content)."""
    require("Ghostscript (gs)", shutil.which("gs") is not None, HOW)
    return docs.documents(Path(request.config.cache.mkdir("kiig-documents")))


@pytest.fixture(scope="session")
def lo_docx(documents) -> Path:
    """lo_guide.docx, written by LibreOffice from page.html (into the same cached folder)."""
    require("LibreOffice (soffice)", shutil.which("soffice") is not None, HOW)
    return docs.libreoffice_docx(documents)
