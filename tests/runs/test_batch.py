"""`kiig run` end to end on the real embedded model: generation, grading, InfoGain, KI, kill -9 and resume."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from kiig_desktop.chains.answers import extract_answer, is_correct
from kiig_desktop.chains.datasets import load_dataset
from kiig_desktop.engine.client import EngineClient
from kiig_desktop.errors import Cancelled
from kiig_desktop.events import CancelToken
from kiig_desktop.reports.summary import summarize
from kiig_desktop.resources import resource_path
from kiig_desktop.runs.batch import BatchConfig, batch_key, iter_batch
from kiig_desktop.runs.batch_stages import build_messages, item_seed
from kiig_desktop.store import SessionStore
from tests.support.batch import drive, snapshot
from tests.support.cli import kiig, kiig_popen
from tests.support.corpus import demo_corpus_session
from tests.support.process import count_rows, freeze, kill_group, wait_until
from tests.support.sample_data import write_samples

pytestmark = pytest.mark.slow  # runs whole batches on the real model, kills and resumes them

MAX_TOKENS = "80"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """Two clinical MCQ items and one arithmetic item in one file (generic layout)."""
    return write_samples(tmp_path_factory.mktemp("data") / "mixed.jsonl", slice(2), slice(1))


@pytest.fixture(scope="module")
def corpus_db(tmp_path_factory) -> Path:
    """A session holding only the demo corpus; tests copy it."""
    return demo_corpus_session(tmp_path_factory.mktemp("corpus") / "corpus.kiig")


def _run_args(dataset: Path, db: Path) -> list[str]:
    return ["run", "--dataset", str(dataset), "--layout", "generic", "--models", "default", "--scorer", "default",
            "--judge", "default", "--corpus", "clinical", "--db", str(db), "--max-tokens", MAX_TOKENS]


@pytest.fixture(scope="module")
def reference(mixed, corpus_db, tmp_path_factory) -> Path:
    """One uninterrupted run with InfoGain and KI, its 3 items generated, scored and judged at once
    (the resumed runs below go one at a time: the same stored results prove parallel = sequential)."""
    db = tmp_path_factory.mktemp("ref") / "ref.kiig"
    shutil.copy(corpus_db, db)
    r = kiig(*_run_args(mixed, db), "--parallel", "3")
    assert r.returncode == 0, r.stderr
    assert "SmolLM2" in r.stdout and "kiig report" in r.stderr
    return db


def test_run_stores_graded_scored_and_judged_chains(reference, mixed):
    items = {it.id: it for it in load_dataset(mixed, "generic").items}
    with SessionStore.open(reference, write=False) as store:
        (run,) = [r for r in store.list_runs() if r["kind"] == "batch"]
        assert run["status"] == "finished" and run["n_chains"] == 3 and run["n_errors"] == 0
        assert set(run["models"]) == {"subject", "scorer", "judge"}
        s = run["settings"]
        assert s["generation"]["temperature"] == 0.0 and s["generation"]["max_tokens"] == int(MAX_TOKENS)
        assert s["ki"]["corpus"] == "clinical" and len(s["ki"]["corpus_fingerprint"]) == 64 and len(s["dataset_sha256"]) == 64
        sha = run["models"]["subject"]["sha256"]
        for chain in store.chains_for_run(run["id"]):
            record, gen = store.load_chain(chain["id"]), store.load_generation(chain["id"])
            item = items[record["id"]]
            assert chain["key"] == batch_key(sha, item.id)
            # the answer extraction is wired to the stored generation text
            extracted = extract_answer(gen["text"], item.kind, item.options)
            assert gen["extracted_answer"] == record["extracted_answer"] == extracted
            assert gen["correct"] == record["correct"] == chain["correct"] == is_correct(extracted, item)
            assert gen["model_id"] == run["models"]["subject"]["id"] and gen["seed"] == item_seed(0, item.id)
            assert len(gen["tokens"]) == record["n_generated_tokens"] <= int(MAX_TOKENS)
            # InfoGain scored the generated text's steps against the ground truth
            assert record["steps"] and record["model"]["sha256"] == sha
            assert all(s["text"] in gen["text"] for s in record["steps"])
            assert record["info_gain_mean"] == pytest.approx(sum(s["info_gain"] for s in record["steps"]) / len(record["steps"]))
            assert set(record["timing"]) == {"generation_s", "scoring_s", "ki_s", "total_s"}
            assert record["timing"]["generation_s"] > 0 and record["timing"]["ki_s"] > 0
            # KI: stored per step with its evidence, applicable steps judged
            (ki,) = store.load_ki(chain["id"])
            assert ki["corpus"] == "clinical" and len(ki["steps"]) == len(record["steps"])
            assert [s["applicable"] for s in ki["steps"]] == [s["applicable"] for s in record["steps"]]
            judged = [s["ki"] for s in ki["steps"] if s["applicable"] and s["ki"] is not None]
            assert record["ki_mean"] == (pytest.approx(sum(judged) / len(judged)) if judged else None)
            assert store.load_item(chain["id"])["id"] == item.id


def test_kill_9_part_way_then_resume_gives_identical_results(reference, mixed, corpus_db, tmp_path):
    db = tmp_path / "killed.kiig"
    shutil.copy(corpus_db, db)
    # one item at a time: a group's chains are committed together, leaving no moment to kill between them
    proc = kiig_popen(*_run_args(mixed, db), "--parallel", "1", stdout=subprocess.DEVNULL)
    wait_until(lambda: count_rows(db) >= 1, "a first chain was saved", proc)
    freeze(proc)  # nothing is saved between counting and killing
    done = count_rows(db)
    kill_group(proc)  # the CLI and its model worker, mid-batch
    assert 1 <= done < 3
    r = kiig(*_run_args(mixed, db))
    assert r.returncode == 0, r.stderr
    assert f"{done} of 3 chains already done" in r.stderr
    assert snapshot(db) == snapshot(reference)
    with SessionStore.open(db, write=False) as store:
        assert store.check() == []
    html = tmp_path / "report.html"
    r = kiig("report", "--db", str(db), "--format", "html", "--output", str(html))
    assert r.returncode == 0, r.stderr
    assert 'id="summary-table"' in html.read_text() and "SmolLM2" in html.read_text()


class CountingFactory:
    """Counts the engine workers a batch opens (the subject that is also the scorer shares one)."""

    def __init__(self) -> None:
        self.opened: list[str] = []

    def __call__(self, info, options):
        self.opened.append(Path(info.path).name)
        return EngineClient(info, options)


def test_two_models_cancel_resume_and_paired_differences(tmp_path, builtin_path):
    """A byte-padded copy of the embedded model is a second model (new sha256) that must behave identically."""
    twin = tmp_path / "twin.gguf"
    shutil.copy(builtin_path, twin)
    with open(twin, "ab") as fh:
        fh.write(b"padding")
    dataset = resource_path("datasets", "clinical_mcq.jsonl")
    config = BatchConfig(max_tokens=48, limit=2)
    with SessionStore.open(tmp_path / "two.kiig") as store:
        cancel = CancelToken()
        factory = CountingFactory()
        gen = iter_batch(store, dataset, ["default", str(twin)], "default", config=config, cancel=cancel, client_factory=factory)
        with pytest.raises(Cancelled):
            drive(gen, stop_after=1, cancel=cancel)
        (run,) = store.list_runs()
        assert run["status"] == "cancelled" and run["n_chains"] == 1
        factory = CountingFactory()
        records, summary = drive(iter_batch(store, dataset, ["default", str(twin)], "default", config=config,
                                             client_factory=factory))
        assert factory.opened == [builtin_path.name, "twin.gguf"]  # subject 1 = scorer: one worker
        assert (summary.reloaded, summary.done, summary.errors, summary.total) == (1, 3, 0, 4)
        assert store.get_run(run["id"])["status"] == "finished"
        report = summarize(store, run["id"], n_boot=200)
    assert [m.name for m in report.models][1] == "twin"
    first, twin_model = report.models
    for item_id in report.item_ids():
        a, b = report.result(item_id, first.key), report.result(item_id, twin_model.key)
        assert (a.extracted_answer, a.info_gain_mean, a.n_tokens) == (b.extracted_answer, b.info_gain_mean, b.n_tokens)
    for p in report.pairs:
        if p.metric == "ki_mean":  # no judge in this run
            assert p.diff.n == 0 and first.metrics["ki_mean"].n == 0
        else:
            assert p.diff.n == 2 and p.diff.mean == 0.0 and p.direction == "unclear", p


def test_prompt_and_expected_errors(tmp_path, mixed):
    items = load_dataset(mixed, "generic").items
    mcq, numeric = items[0], items[2]
    assert "letter" in build_messages(mcq)[1]["content"] and "B. Metformin" in build_messages(mcq)[1]["content"]
    assert "number" in build_messages(numeric)[1]["content"]
    assert item_seed(0, "a") == item_seed(0, "a") != item_seed(1, "a")
    db = str(tmp_path / "x.kiig")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "question": "Q?"}) + "\n")
    cases = [  # (argv, the one error line)
        (["run", "--dataset", str(tmp_path / "none.jsonl"), "--models", "default", "--scorer", "default", "--db", db],
         f"no dataset file {tmp_path / 'none.jsonl'}"),
        (["run", "--dataset", str(bad), "--models", "default", "--scorer", "default", "--db", db],
         f"{bad}: line 1: missing answer (nothing was run or stored)"),
        (["run", "--dataset", str(mixed), "--models", "default", "--scorer", "default", "--judge", "default", "--db", db],
         "--judge and --corpus go together: KI needs a judge model and a reference corpus"),
        (["run", "--dataset", str(mixed), "--models", "no-such-model", "--scorer", "default", "--db", db, "--layout", "generic"],
         "no model named 'no-such-model'"),
        (["run", "--dataset", str(mixed), "--models", "default", "default", "--scorer", "default", "--db", db, "--layout", "generic"],
         "the same model file is named twice in --models"),
    ]
    for argv, message in cases:
        r = kiig(*argv, timeout=120)
        assert r.returncode == 2, (argv, r.stderr)
        assert r.stderr.splitlines()[0] == f"kiig: error: {message}", r.stderr
        assert "Traceback" not in r.stderr
