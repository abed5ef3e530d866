"""The real test documents (tests/support/documents.py), built once per content and shared."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import documents as docs


@pytest.fixture(scope="session")
def documents(request) -> Path:
    """Folder of the test PDFs, Word files and HTML page (cached under .pytest_cache by content)."""
    return docs.documents(Path(request.config.cache.mkdir("kiig-documents")))
