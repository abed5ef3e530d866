"""Clinician reviews in the session file: append-only history, record hashes, survival of re-saves."""

from __future__ import annotations

import sqlite3

import pytest

from kiig_desktop.errors import InputError, StoreError
from kiig_desktop.store import SessionStore, reviews
from kiig_desktop.store.rows import record_hash
from tests.support.store_support import make_item, make_record, model_info, without_curve


def _session(tmp_path, n_chains: int = 2, n_steps: int = 3) -> tuple[SessionStore, int]:
    s = SessionStore.open(tmp_path / "r.kiig")
    scorer = s.ensure_model(model_info())
    run, _ = s.find_or_create_run("score", {"mode": "answer"}, {"scorer": scorer}, {"kiig": "test"}, seed=0)
    for i in range(n_chains):
        s.save_chain(run, f"q{i}", make_record(i, n_steps=n_steps, n_tokens=12), item=make_item(i))
    return s, run


def test_a_changed_review_keeps_its_history_and_the_latest_row_is_current(tmp_path):
    s, run = _session(tmp_path)
    with s:
        reviews.review_step(s, run, "q0", 1, "Dr A", knowledge="correct")
        reviews.review_step(s, run, "q0", 1, "Dr A", role="helps")
        current = reviews.review_step(s, run, "q0", 1, "Dr A", knowledge="incorrect", note="  wrong dose ")
        assert (current["knowledge"], current["role"], current["note"]) == ("incorrect", "helps", "wrong dose")
        history = reviews.step_reviews(s, run, history=True)
        assert [(r["knowledge"], r["role"], r["note"]) for r in history] == [
            ("correct", None, None), ("correct", "helps", None), ("incorrect", "helps", "wrong dose")]
        assert [r["created"] for r in history] == sorted(r["created"] for r in history)
        # setting the same values again adds nothing
        reviews.review_step(s, run, "q0", 1, "Dr A", knowledge="incorrect")
        assert len(reviews.step_reviews(s, run, history=True)) == 3
        [now] = reviews.step_reviews(s, run)
        assert now["id"] == history[-1]["id"] and now["stale"] is False
        # another reviewer's review of the same step is separate
        reviews.review_step(s, run, "q0", 1, "Dr B", knowledge="correct")
        assert sorted(r["reviewer"] for r in reviews.step_reviews(s, run)) == ["Dr A", "Dr B"]
        assert reviews.reviewers(s, run) == ["Dr A", "Dr B"]


def test_nothing_is_overwritten_even_with_plain_sql(tmp_path):
    s, run = _session(tmp_path)
    with s:
        reviews.review_step(s, run, "q0", 0, "Dr A", knowledge="correct")
        reviews.review_chain(s, run, "q0", "Dr A", verdict="sound")
        for table in ("step_reviews", "chain_reviews"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                s.conn.execute(f"UPDATE {table} SET note = 'changed'")


def test_reviews_survive_a_chain_resave_and_show_as_made_on_an_earlier_version(tmp_path):
    s, run = _session(tmp_path)
    with s:
        same = make_record(0, n_steps=3, n_tokens=12)
        assert reviews.review_step(s, run, "q0", 0, "Dr A", knowledge="correct", role="helps")["record_sha256"] == record_hash(same)
        reviews.review_chain(s, run, "q0", "Dr A", verdict="sound")
        old_id = s.chain_id(run, "q0")
        s.save_chain(run, "q0", same, item=make_item(0))  # the same record saved again: updated in place
        assert s.chain_id(run, "q0") == old_id
        assert [r["stale"] for r in reviews.step_reviews(s, run) + reviews.chain_reviews(s, run)] == [False, False]
        rescored = dict(without_curve(same), info_gain_mean=0.123)
        s.save_chain(run, "q0", rescored, item=make_item(0))
        [step] = reviews.step_reviews(s, run)
        [chain] = reviews.chain_reviews(s, run)
        assert (step["knowledge"], step["role"], step["stale"], chain["verdict"], chain["stale"]) == ("correct", "helps", True, "sound", True)
        assert step["record_sha256"] != record_hash(rescored)
        assert reviews.reviewed_chains(s, run) == set()  # a stale review does not count as done
        # reviewing again on the new version: a new row on the current hash, the old one kept
        again = reviews.review_step(s, run, "q0", 0, "Dr A")
        assert again["record_sha256"] == record_hash(rescored)
        assert [r["stale"] for r in reviews.step_reviews(s, run, history=True)] == [True, False]


def test_progress_counts_chains_whose_every_step_has_both_verdicts(tmp_path):
    s, run = _session(tmp_path, n_chains=3, n_steps=2)
    with s:
        s.save_chain(run, "bad", {"id": "bad", "error": "too long"})
        assert reviews.progress(s, run) == {"reviewed": 0, "total": 3}
        reviews.review_step(s, run, "q1", 0, "Dr A", knowledge="correct", role="helps")
        reviews.review_step(s, run, "q1", 1, "Dr A", knowledge="cannot_tell")
        assert reviews.progress(s, run)["reviewed"] == 0
        reviews.review_step(s, run, "q1", 1, "Dr A", role="irrelevant")
        assert reviews.progress(s, run) == {"reviewed": 1, "total": 3}
        assert reviews.reviewed_chains(s, run, "Dr B") == set()


def test_bad_reviews_are_refused_and_store_nothing(tmp_path):
    s, run = _session(tmp_path)
    with s:
        with pytest.raises(InputError, match="knowledge must be one of correct, incorrect, cannot_tell"):
            reviews.review_step(s, run, "q0", 0, "Dr A", knowledge="maybe")
        with pytest.raises(InputError, match="reviewer"):
            reviews.review_step(s, run, "q0", 0, "  ", knowledge="correct")
        with pytest.raises(StoreError, match="has no step 3"):
            reviews.review_step(s, run, "q0", 3, "Dr A", knowledge="correct")
        with pytest.raises(StoreError, match="no chain 'nope'"):
            reviews.review_chain(s, run, "nope", "Dr A", verdict="sound")
        assert reviews.step_reviews(s, run, history=True) == [] and reviews.chain_reviews(s, run, history=True) == []


def test_deleting_the_run_deletes_its_reviews(tmp_path):
    s, run = _session(tmp_path)
    with s:
        reviews.review_step(s, run, "q0", 0, "Dr A", knowledge="correct")
        s.delete_run(run)
        assert s.conn.execute("SELECT count(*) FROM step_reviews").fetchone()[0] == 0
        assert s.check() == []
