"""Re-saving a chain keeps what hangs off it (issue 27, item 1: a Compare deleted a chain's saved KI).

Every path that saves a chain a run already has -- Analyze re-scoring, Compare, a resumed batch or
KI pass, an import -- goes through ``SessionStore.save_chain``; these tests hold it to: same
record, everything kept as it was; changed record, the KI kept and marked as made on an earlier
version; never a cascade delete. The last test is the issue's reproduction on the real embedded model.
"""

from __future__ import annotations

import hashlib
import shutil

import pytest

from kiig_desktop.events import ItemDone, run_to_end
from kiig_desktop.knowledge import corpus
from kiig_desktop.resources import resource_path
from kiig_desktop.runs.analysis import GenerationSettings, Question
from kiig_desktop.runs.compare import CompareRequest, iter_compare
from kiig_desktop.runs.ki import CancellableJudge, iter_stored_chain_ki, save_chain_ki
from kiig_desktop.runs.score import model_row
from kiig_desktop.store import SessionStore
from kiig_desktop.store.chain_rows import record_digest
from kiig_desktop.store.codec import canonical_json
from kiig_desktop.store.export import export_run, import_jsonl
from tests.support.paths import DATA
from tests.support.store_support import SHA_J, make_generation, make_item, make_ki_steps, make_record, model_info


@pytest.fixture
def store(tmp_path):
    with SessionStore.open(tmp_path / "s.kiig") as s:
        yield s


def _chain_with_ki(store: SessionStore) -> tuple[int, int, int]:
    scorer = store.ensure_model(model_info())
    judge = store.ensure_model(model_info(SHA_J, "/models/judge.gguf"))
    run, _ = store.find_or_create_run("analyze", {"x": 1}, {"scorer": scorer}, {})
    chain = store.save_chain(run, "q1", make_record(1, n_steps=4, n_tokens=40), item=make_item(1),
                             generation=make_generation(1, scorer))
    store.save_ki(chain, judge, "demo", make_ki_steps(1, 4), 0.625)
    return run, chain, judge


def _ki_rows(store: SessionStore) -> list[tuple]:
    return store.conn.execute(
        "SELECT e.id, e.ki_mean, s.id, s.ki, v.id, v.source FROM ki_evaluations e JOIN ki_steps s ON s.evaluation_id = e.id "
        "LEFT JOIN ki_evidence v ON v.ki_step_id = s.id ORDER BY e.id, s.id, v.id").fetchall()


def test_an_unchanged_re_save_keeps_the_chain_and_its_ki(store):
    run, chain, _ = _chain_with_ki(store)
    before_ki, before_steps = _ki_rows(store), store.conn.execute("SELECT id FROM steps ORDER BY id").fetchall()
    again = store.save_chain(run, "q1", make_record(1, n_steps=4, n_tokens=40), item=make_item(1),
                             generation=make_generation(1, 1))
    assert again == chain
    assert _ki_rows(store) == before_ki and before_ki
    assert store.conn.execute("SELECT id FROM steps ORDER BY id").fetchall() == before_steps
    [ev] = store.load_ki(chain)
    assert ev["current"] and ev["ki_mean"] == 0.625
    assert store.chains_for_run(run)[0]["ki_mean"] == 0.625  # not reset from the record, which has no KI
    assert store.conn.execute("SELECT count(*) FROM generations").fetchone()[0] == 1
    assert store.check() == []


def test_a_changed_re_save_keeps_the_ki_marked_as_made_on_an_earlier_version(store):
    run, chain, judge = _chain_with_ki(store)
    before_ki = _ki_rows(store)
    old_steps = [r[0] for r in store.conn.execute("SELECT id FROM steps WHERE pos < 3 ORDER BY pos")]
    changed = make_record(2, n_steps=3, n_tokens=30)
    again = store.save_chain(run, "q1", changed, item=make_item(1))
    assert again == chain
    assert _ki_rows(store) == before_ki  # nothing cascaded
    [ev] = store.load_ki(chain)
    assert not ev["current"] and ev["chain_sha256"] != store.conn.execute(
        "SELECT record_sha256 FROM chains WHERE id = ?", (chain,)).fetchone()[0]
    assert [r[0] for r in store.conn.execute("SELECT id FROM steps ORDER BY pos")] == old_steps  # updated in place
    assert store.load_chain(chain)["steps"][0]["text"] == changed["steps"][0]["text"]
    assert store.load_generation(chain) is None  # the old generation does not describe the new record
    # a KI saved with the new record is current; the other judge's stays marked
    other = store.ensure_model(model_info("d" * 64, "/models/judge2.gguf"))
    store.save_chain(run, "q1", changed, ki={"judge_model_id": other, "corpus": "demo", "steps": make_ki_steps(2, 3),
                                             "ki_mean": 0.5})
    assert [(e["judge_model_id"], e["current"]) for e in store.load_ki(chain)] == [(judge, False), (other, True)]
    assert store.check() == []


def test_the_digest_is_that_of_the_record_as_loaded(store):
    run, chain, _ = _chain_with_ki(store)
    loaded = store.load_chain(chain)
    stored = store.conn.execute("SELECT record, record_sha256 FROM chains WHERE id = ?", (chain,)).fetchone()
    assert stored[1] == hashlib.sha256(canonical_json(loaded).encode("utf-8", "surrogatepass")).hexdigest()
    curve = store.conn.execute("SELECT token_ids, pieces, surprisal_bits, entropy_bits, step, extra FROM token_curves "
                               "WHERE chain_id = ?", (chain,)).fetchone()
    assert record_digest(stored[0], curve) == stored[1]


@pytest.mark.parametrize("version", [1, 2])
def test_migrated_sessions_get_digests_and_current_ki(tmp_path, version):
    path = tmp_path / "old.kiig"
    shutil.copyfile(DATA / f"session_v{version}.kiig", path)
    with SessionStore.open(path, create=False) as s:
        [run] = s.list_runs()
        for light in s.chains_for_run(run["id"]):
            digest = s.conn.execute("SELECT record_sha256 FROM chains WHERE id = ?", (light["id"],)).fetchone()[0]
            assert digest == hashlib.sha256(canonical_json(s.load_chain(light["id"])).encode("utf-8", "surrogatepass")).hexdigest()
        q0 = s.chain_id(run["id"], "q0")
        [ev] = s.load_ki(q0)
        assert ev["current"]
        s.save_chain(run["id"], "q0", s.load_chain(q0), item=s.load_item(q0))  # an unchanged re-save
        assert s.load_ki(q0) == [ev]


def test_an_export_keeps_which_version_the_ki_was_made_on(tmp_path, store):
    run, chain, _ = _chain_with_ki(store)
    store.save_chain(run, "q1", make_record(2, n_steps=3, n_tokens=30))
    out = tmp_path / "x.jsonl"
    export_run(store, run, "jsonl", out, None)
    with SessionStore.open(tmp_path / "b.kiig") as b:
        [summary] = import_jsonl(b, out)
        [ev] = b.load_ki(b.chain_id(summary["run_id"], "q1"))
        assert not ev["current"]


@pytest.mark.slow
def test_a_compare_over_a_chain_with_ki_keeps_the_ki(tmp_path, client):
    """The issue's reproduction: score a chain, judge its KI, run a Compare over it, reopen the session."""
    model = client.model
    request = CompareRequest(Question("What is 12 times 3? Explain step by step.", "36"), GenerationSettings(max_tokens=64))
    path = tmp_path / "c.kiig"

    def compare(store: SessionStore):
        gen = iter_compare([model], request, acquire=lambda info, cancel: client, save=lambda fn: fn(store))
        done = [e.result for e in _drain(gen) if isinstance(e, ItemDone)]
        assert len(done) == 1, "the embedded model wrote no reasoning for the question; choose another"
        return done[0]

    with SessionStore.open(path) as store:
        corpus.add_documents(store.db, "clinical", [resource_path("corpus", "clinical_facts.jsonl")])
        first = compare(store)  # the chain, scored and saved as Analyze saves it (save_result)
        out = run_to_end(iter_stored_chain_ki(store.db, "clinical", CancellableJudge(client, None), first.record, first.item, k=3))
        saved = save_chain_ki(store, first.chain_id, model_row(client.model, client.model_ref()), "clinical", out)
        again = compare(store)
        assert (again.run_id, again.chain_id) == (first.run_id, first.chain_id)  # the same chain key re-saved
        assert again.ki == saved  # what the Compare screen shows
    with SessionStore.open(path, write=False) as store:
        ki = store.load_ki(first.chain_id)
        assert [(e["ki_mean"], e["current"], e["steps"]) for e in ki] == [(saved[0]["ki_mean"], True, saved[0]["steps"])]
        assert store.chains_for_run(first.run_id)[0]["ki_mean"] == saved[0]["ki_mean"]


def _drain(gen):
    while True:
        try:
            yield next(gen)
        except StopIteration:
            return
