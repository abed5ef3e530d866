"""KI passes in runs/ki.py without Qt: the panel's one-chain pass and the file pass with resume."""

from __future__ import annotations

import pytest

from kiig_desktop.events import ItemDone, Message, run_to_end
from kiig_desktop.knowledge.ki import REASON_NO_KNOWLEDGE, parse_ki_item, steps_to_judge
from kiig_desktop.runs.ki import KI_METHOD_VERSION, iter_ki_file, iter_stored_chain_ki, ki_settings, save_chain_ki
from kiig_desktop.store import SessionStore
from tests.support.corpus import add_demo_corpus
from tests.support.judge import FakeJudge
from tests.support.store_support import model_info

RECORD = {"steps": [
    {"index": 1, "text": "Metformin is the first-line drug for type 2 diabetes.", "knowledge": "Metformin is first-line for type 2 diabetes."},
    {"index": 2, "text": "So the answer is B.", "knowledge": ""},
    {"index": 3, "text": "Insulin lowers blood glucose."},
]}
ITEM = {"question": "Which drug is first-line for type 2 diabetes?", "options": {"A": "Insulin", "B": "Metformin"}}


@pytest.fixture
def store(tmp_path):
    with SessionStore.open(tmp_path / "s.kiig", create=True, write=True) as s:
        add_demo_corpus(s.db)
        yield s


def test_every_pass_judges_the_same_steps():
    steps = steps_to_judge(RECORD["steps"])
    assert steps == [{"index": 1, "text": RECORD["steps"][0]["text"], "knowledge": RECORD["steps"][0]["knowledge"]},
                     {"index": 2, "text": "So the answer is B.", "knowledge": ""},
                     {"index": 3, "text": "Insulin lowers blood glucose."}]
    assert parse_ki_item({"id": "x", "steps": RECORD["steps"]}, 1)["steps"] == steps


def test_settings_carry_the_method_version(store):
    s = ki_settings(store.db, "clinical", 3, 6000)
    assert s["method"] == KI_METHOD_VERSION and s["corpus"] == "clinical" and s["k"] == 3 and s["corpus_fingerprint"]


def test_one_stored_chain_is_judged_and_saved(store):
    out = run_to_end(iter_stored_chain_ki(store.db, "clinical", FakeJudge(), RECORD, ITEM, k=3))
    first, second, third = out["steps"]
    assert first["applicable"] and first["ki"] is not None and first["claim"] and first["query"]
    assert not second["applicable"] and second["reason"] == REASON_NO_KNOWLEDGE  # "" = no knowledge used
    assert third["applicable"]
    run_id, _ = store.find_or_create_run("analyze", {"x": 1}, {}, {})
    chain_id = store.save_chain(run_id, "c1", {"id": "c1", "steps": RECORD["steps"]}, item=ITEM)
    saved = save_chain_ki(store, chain_id, model_info(), "clinical", out)
    assert len(saved) == 1 and saved[0]["ki_mean"] == pytest.approx(out["ki_mean"])


def test_a_file_pass_resumes_with_the_same_records(store):
    items = [parse_ki_item({"id": f"c{i}", "question": ITEM["question"], "steps": RECORD["steps"]}, i) for i in (1, 2)]
    for it, i in zip(items, (1, 2), strict=True):
        it["_source"] = {"id": f"c{i}"}
    judge = FakeJudge()
    first = [e for e in _events(iter_ki_file(store, "clinical", judge, items)) if isinstance(e, ItemDone)]
    calls = len(judge.calls)
    again = list(_events(iter_ki_file(store, "clinical", judge, items)))
    assert len(judge.calls) == calls  # nothing judged twice
    assert isinstance(again[0], Message) and "2 chains already done" in again[0].text
    done = [e for e in again if isinstance(e, ItemDone)]
    assert [e.skipped for e in done] == [True, True]
    assert [e.result["ki_mean"] for e in done] == pytest.approx([e.result["ki_mean"] for e in first])


def _events(gen):
    while True:
        try:
            yield next(gen)
        except StopIteration:
            return
