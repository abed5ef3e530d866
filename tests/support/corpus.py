"""The demo corpus (resources/corpus/clinical_facts.jsonl, 55 clinical facts) as the tests load it."""

from __future__ import annotations

from pathlib import Path

from kiig_desktop.resources import resource_path

DEMO_CORPUS = resource_path("corpus", "clinical_facts.jsonl")


def add_demo_corpus(db, name: str = "clinical") -> None:
    """Add the demo corpus as ``name`` to an open session database (``store.db``)."""
    from kiig_desktop.knowledge.corpus import add_documents

    add_documents(db, name, [DEMO_CORPUS])


def demo_corpus_session(path: Path, name: str = "clinical") -> Path:
    """A session file at ``path`` holding only the demo corpus (tests copy it)."""
    from kiig_desktop.store import SessionStore

    with SessionStore.open(path) as store:
        add_demo_corpus(store.db, name)
    return path
