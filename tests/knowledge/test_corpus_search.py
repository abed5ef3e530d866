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


# Paraphrased questions (different wording from the passages) -> the passage that answers them.
PARAPHRASES = [
    ("Which tablet do doctors normally begin with for a new type 2 diabetic?", "cf-metformin"),
    ("What glycated hemoglobin level is enough to call it diabetes?", "cf-hba1c"),
    ("How much quick sugar should someone with a low glucose reading take?", "cf-hypoglycaemia"),
    ("What are the three features of ketoacidosis in diabetics and how is it managed?", "cf-dka"),
    ("At what blood pressure reading is someone said to be hypertensive?", "cf-hypertension"),
    ("Why do people on lisinopril get a tickly cough?", "cf-ace-inhibitors"),
    ("What lab value tracks how well warfarin is thinning the blood?", "cf-warfarin"),
    ("How do you reverse bleeding in a patient on warfarin?", "cf-warfarin-reversal"),
    ("What antidote neutralises heparin?", "cf-heparin"),
    ("Which blood test detects injury to the heart muscle in a heart attack?", "cf-troponin"),
    ("How does aspirin stop platelets clumping?", "cf-aspirin"),
    ("Where and how should epinephrine be injected for a severe allergic reaction?", "cf-anaphylaxis"),
    ("Thyroid blood tests in an underactive thyroid gland: what happens to TSH?", "cf-hypothyroidism"),
    ("Which antibodies cause an overactive thyroid with bulging eyes?", "cf-graves"),
    ("What does a low ferritin tell you about anemia?", "cf-iron-deficiency"),
    ("Which vitamin shortage leads to large red cells and nerve damage?", "cf-b12"),
    ("How much folate should women take before getting pregnant?", "cf-folic-acid"),
    ("What is the time window for clot-busting alteplase after a stroke starts?", "cf-stroke-thrombolysis"),
    ("How quickly should antibiotics be given in sepsis?", "cf-sepsis"),
    ("Which bacterium most often causes pneumonia caught in the community?", "cf-pneumonia"),
    ("How many months does treatment for TB take?", "cf-tb-treatment"),
    ("Which tuberculosis drug turns tears and urine orange?", "cf-rifampicin"),
    ("Which TB medicine can damage eyesight?", "cf-ethambutol"),
    ("What is the reliever inhaler for asthmatics?", "cf-asthma"),
    ("What spirometry ratio confirms COPD in smokers?", "cf-copd"),
    ("Which medicines help patients with a weak heart pump live longer?", "cf-heart-failure"),
    ("Can a normal NT-proBNP exclude heart failure in someone breathless?", "cf-bnp"),
    ("How is stroke risk estimated for an irregularly irregular heartbeat?", "cf-atrial-fibrillation"),
    ("Why does someone on digoxin see yellow?", "cf-digoxin"),
    ("What ECG changes come with a high potassium, and what is given first?", "cf-hyperkalaemia"),
    ("What happens if low sodium is corrected too fast?", "cf-hyponatraemia"),
    ("What creatinine rise defines acute kidney injury?", "cf-aki"),
    ("Why can ibuprofen cause stomach ulcers?", "cf-nsaids"),
    ("How is H. pylori eradicated?", "cf-h-pylori"),
    ("Where does appendix pain usually move to?", "cf-appendicitis"),
    ("Which antibody test screens for gluten intolerance?", "cf-coeliac"),
    ("What is given to protect the liver after an acetaminophen overdose?", "cf-paracetamol-overdose"),
    ("Which drug reverses an overdose of heroin or morphine with pinpoint pupils?", "cf-opioid-overdose"),
    ("What bone disease do children get without enough vitamin D?", "cf-vitamin-d"),
    ("What do urate crystals look like under polarised light?", "cf-gout"),
    ("Which antibody is most specific for rheumatoid arthritis?", "cf-rheumatoid"),
    ("Which symptoms suggest meningitis with a purple rash?", "cf-meningitis"),
    ("Which mosquito spreads malaria parasites?", "cf-malaria"),
    ("Below what CD4 count is HIV called AIDS?", "cf-hiv"),
    ("Which blood marker shows an ongoing hepatitis B infection?", "cf-hepatitis-b"),
    ("What causes the bullseye rash after a tick bite?", "cf-lyme"),
    ("Can a D-dimer rule out a clot in the lungs?", "cf-pulmonary-embolism"),
    ("Which drug prevents seizures in pre-eclampsia?", "cf-preeclampsia"),
    ("Why are newborn babies given a vitamin K injection?", "cf-vitamin-k-newborn"),
    ("Which side effects of lithium affect the thyroid and kidneys?", "cf-lithium"),
    ("Which brain cells are lost in Parkinson disease and what drug helps most?", "cf-parkinsons"),
    ("Which enzyme do statins block?", "cf-statins"),
    ("How fast and deep should chest compressions be in CPR?", "cf-cpr"),
    ("What illness do sailors get without vitamin C?", "cf-scurvy"),
    ("Why must thiamine be given before glucose to alcoholics?", "cf-wernicke"),
]


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
