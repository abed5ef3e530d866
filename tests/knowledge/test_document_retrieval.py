"""Retrieval from an imported PDF: a paraphrased question finds the passage, as on the text version."""

from __future__ import annotations

import pytest

from kiig_desktop.knowledge import corpus
from kiig_desktop.store import SessionStore
from tests.support import documents as docs
from tests.support.paraphrases import PARAPHRASES


def _shingles(text: str, n: int = 5) -> set[str]:
    words = " ".join(text.replace("\u2019", "'").split()).split()
    return {" ".join(words[i:i + n]) for i in range(max(1, len(words) - n + 1))}


def _recall(db, name: str, facts: dict[str, dict], spans: dict[str, tuple[int, int]] | None) -> list[str]:
    """Ids of the paraphrases whose fact is in a top-3 passage (and on its page, when ``spans``)."""
    found = []
    for query, fid in PARAPHRASES:
        fact = facts[fid]
        want = _shingles(fact["text"])
        for hit in corpus.search(db, name, query, k=3):
            if not want & _shingles(hit.text):
                continue
            if spans is not None:
                lo, hi = spans[fact["title"]]
                if hit.page is None or not (hit.page <= hi and hit.page_end >= lo):
                    continue
            found.append(fid)
            break
    return found


@pytest.mark.parametrize("pdf", ["qt_guideline.pdf", "gs_guideline.pdf"])
def test_paraphrased_questions_find_the_pdf_passage_on_its_page_as_in_the_text_version(tmp_path, documents, pdf):
    from tests.knowledge.test_documents import fact_pages

    facts = {f["id"]: f for f in docs.facts()}
    with SessionStore.open(tmp_path / "s.kiig") as s:
        corpus.add_documents(s.db, "text", [documents / "guideline.txt"])
        corpus.add_documents(s.db, "pdf", [documents / pdf])
        in_text = _recall(s.db, "text", facts, None)
        in_pdf = _recall(s.db, "pdf", facts, fact_pages(docs.guideline_pages()))
    assert len(in_text) >= 0.9 * len(PARAPHRASES), sorted(set(facts) - set(in_text))
    assert set(in_text) <= set(in_pdf), sorted(set(in_text) - set(in_pdf))
