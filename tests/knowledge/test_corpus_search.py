"""Search: safe FTS queries from hostile text, and retrieval quality on the demo corpus."""

from __future__ import annotations

import json
import re

import pytest
import sqlite_utils

from kiig_desktop.knowledge import corpus
from kiig_desktop.knowledge.search import FTS_TOKENIZE, match_spans, sanitize_query
from kiig_desktop.resources import resource_path
from kiig_desktop.store import corpus_schema
from tests.support.paraphrases import PARAPHRASES

DEMO = resource_path("corpus", "clinical_facts.jsonl")


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    db = sqlite_utils.Database(tmp_path_factory.mktemp("demo") / "demo.db")
    corpus_schema.apply(db)
    report = corpus.add_documents(db, "clinical", [DEMO])
    assert report.files[0].status == "added" and not report.files[0].messages
    yield db
    db.close()


def test_demo_corpus_shape():
    records = [json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(records) >= 40
    assert len({r["id"] for r in records}) == len(records)
    assert all(r["title"] and 80 <= len(r["text"]) <= 800 for r in records)


HOSTILE = [
    "", "   ", "?!.,;:", "AND", "OR", "NOT", "NEAR", "and or not near", "AND OR NOT NEAR AND",
    "NEAR(warfarin heparin, 2)", 'what is "warfarin', "'single quotes' and \"double\"", '""', '"', "\"\"\"''",
    "warfarin*", "*", "^metformin", "text: warfarin", "title:metformin", "{title text}: x", "corpus_tag : c1",
    "c1", "(((", ")", "(a OR b", "- -- + ++ ~", "NOT NOT warfarin", "warfarin NOT heparin", "-warfarin +heparin",
    "SELECT * FROM corpus_chunks; DROP TABLE corpora;--", "\\", "\x00", "a\x00b", "\u200b\u200d", "💊 dose? 🙂",
    "糖尿病の治療は？", "e\u0301te\u0301", "مرض السكري", "C++ vs C#", "vitamin_b12", "100% of 5 mg/kg",
    "x" * 5000, " ".join(["warfarin"] * 500), "line one\nline two\ttab", "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
    "What's the patient's INR?", "Is it true that NSAIDs (e.g. ibuprofen) can't harm kidneys?",
]

SAFE = re.compile(r'^(?:"[^"\s]+"(?: OR "[^"\s]+")*)?$')


@pytest.mark.parametrize("text", HOSTILE)
def test_sanitize_produces_safe_fts_expression(text, demo_db):
    expr = sanitize_query(text)
    assert SAFE.match(expr), expr
    assert expr.count('"') <= 64  # at most 32 terms
    if expr:  # valid on its own as an FTS5 query...
        demo_db.execute("SELECT count(*) FROM corpus_fts WHERE corpus_fts MATCH ?", [expr]).fetchone()
    corpus.search(demo_db, "clinical", text, k=3)  # ...and inside search() it never raises


def test_sanitize_drops_stop_words_and_operators():
    assert sanitize_query("What is the dose of adrenaline?") == '"dose" OR "adrenaline"'
    assert sanitize_query("warfarin AND NOT heparin NEAR aspirin") == '"warfarin" OR "heparin" OR "aspirin"'
    assert sanitize_query("The Who") == '"the" OR "who"'  # only stop words: keep them rather than nothing
    assert sanitize_query("Type 2 diabetes, type 2!") == '"type" OR "2" OR "diabetes"'  # deduplicated


def test_operators_in_questions_are_plain_words(demo_db):
    hits = corpus.search(demo_db, "clinical", "NOT the aPTT -- is heparin monitored with it OR NEAR it?", k=1)
    assert hits[0].source == "cf-heparin"


def test_stop_words_do_not_swamp_ranking(demo_db):
    noisy = "so what is it that there would be with the one which is in all of this about the lithium, and why?"
    assert corpus.search(demo_db, "clinical", noisy, k=1)[0].source == "cf-lithium"


def test_search_result_fields_and_order(demo_db):
    hits = corpus.search(demo_db, "clinical", "warfarin INR target", k=5)
    assert 1 <= len(hits) <= 5
    assert hits[0].source == "cf-warfarin" and hits[0].title == "Warfarin and the INR" and hits[0].chunk == 0
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(h.score > 0 and h.chunk_id > 0 and h.text for h in hits)
    assert corpus.get_chunks(demo_db, [hits[0].chunk_id])[0].text == hits[0].text
    assert corpus.search(demo_db, "clinical", "zzzz qqqq") == []
    with pytest.raises(Exception, match="k must be"):
        corpus.search(demo_db, "clinical", "warfarin", k=0)


def test_paraphrases_cover_the_demo_corpus():
    ids = {json.loads(line)["id"] for line in DEMO.read_text(encoding="utf-8").splitlines() if line.strip()}
    assert {pid for _q, pid in PARAPHRASES} == ids


@pytest.mark.parametrize(("query", "expected"), PARAPHRASES)
def test_paraphrased_query_finds_source_in_top_3(demo_db, query, expected):
    hits = corpus.search(demo_db, "clinical", query, k=3)
    assert expected in [h.source for h in hits], [(h.source, round(h.score, 2)) for h in hits]


def test_match_spans_mark_what_the_index_matches():
    text = "ACE Inhibitors cause a dry cough; the inhibitor blocks <b>bradykinin</b> breakdown in the café."
    spans = match_spans(text, "Why does an ACE inhibitor cause coughing? (cafe)")
    assert [text[a:b] for a, b in spans] == ["ACE", "Inhibitors", "cause", "cough", "inhibitor", "café"]
    assert spans == sorted(spans) and all(b <= c for (_a, b), (c, _d) in zip(spans, spans[1:], strict=False))
    # a query of stop words only keeps them, as search does
    assert [text[a:b] for a, b in match_spans(text, "the and of")] == ["the", "the"]
    assert match_spans("", "cough") == [] and match_spans(text, "  ?! ") == []
    assert match_spans("\ue000 cough \ue001", "cough") == [(2, 7)]  # marker-like characters in the text


def test_match_spans_use_the_index_tokenizer():
    assert f"tokenize='{FTS_TOKENIZE}'" in " ".join(corpus_schema.CORPUS_DDL)


def test_match_spans_agree_with_search(demo_db):
    query = "Why does lisinopril cause a dry cough?"
    hit = corpus.search(demo_db, "clinical", query, 1)[0]
    marked = {hit.text[a:b].casefold() for a, b in match_spans(hit.text, query)}
    assert {"lisinopril", "cough", "dry"} <= marked
