"""Every judge takes the scorer's engine options: `kiig ki` and `kiig judge-check` as real subprocesses
on the embedded model, the options reaching the worker (its reported n_ctx, GPU layers, threads,
batch) and the stored provenance of the KI numbers; a prompt too long for the judge's context is one
message naming both sizes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiig_desktop.errors import ContextOverflow
from kiig_desktop.knowledge import judging
from kiig_desktop.resources import resource_path
from kiig_desktop.store import SessionStore
from kiig_desktop.store import judge_validation as validation
from tests.support.paths import ROOT

OPTIONS = ["--n-gpu-layers", "1", "--n-ctx", "2048", "--threads", "1", "--n-batch", "64"]
WANT = {"n_ctx": 2048, "n_gpu_layers": 1, "n_threads": 1, "n_batch": 64}


def _kiig(data_dir: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KIIG_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "kiig_desktop", *map(str, argv)], capture_output=True, text=True,
                          env=env, timeout=900, cwd=ROOT)


def _session(tmp_path: Path) -> Path:
    db = tmp_path / "s.kiig"
    done = _kiig(tmp_path / "data", "corpus", "add", "--db", db, "--name", "clinical",
                 resource_path("corpus", "clinical_facts.jsonl"))
    assert done.returncode == 0, done.stderr
    return db


def _chain(path: Path) -> Path:
    line = {"id": "c1", "question": "Which test monitors warfarin therapy?",
            "steps": ["Warfarin therapy is monitored with the INR.", "So the answer is the INR."]}
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    return path


def _subset(path: Path) -> Path:
    from kiig_desktop.runs import judge_check as jc

    claims = jc.load_claims()
    picked = [c for c in claims if c["label"]][:2] + [c for c in claims if not c["label"]][:2]
    path.write_text("".join(json.dumps(c) + "\n" for c in picked), encoding="utf-8")
    return path


@pytest.mark.slow
def test_ki_options_reach_the_engine_and_the_stored_provenance(tmp_path):
    db = _session(tmp_path)
    out = tmp_path / "ki.jsonl"
    done = _kiig(tmp_path / "data", "ki", "--model", "default", "--db", db, "--corpus", "clinical",
                 "--input", _chain(tmp_path / "in.jsonl"), "--output", out, "--k", "2", *OPTIONS)
    assert done.returncode == 0, done.stderr
    assert "GPU offload is not available" in done.stderr  # the CPU build says so instead of ignoring the flag
    record = json.loads(out.read_text().splitlines()[0])
    used = record["build"]["engine_options"]
    assert {k: used[k] for k in WANT} == WANT  # as the worker reports them: llama.cpp's n_ctx included
    assert used["cpu_variant"] == record["build"]["cpu_variant"]
    with SessionStore.open(db, create=False, write=False) as store:
        run = next(r for r in store.list_runs() if r["kind"] == "ki")
        chain = store.chains_for_run(run["id"])[0]["id"]
        stored = store.load_ki(chain)[0]["build"]["engine_options"]
    assert {k: stored[k] for k in WANT} == WANT


@pytest.mark.slow
def test_judge_check_options_reach_the_engine_and_the_stored_validation(tmp_path):
    claims = _subset(tmp_path / "claims.jsonl")
    done = _kiig(tmp_path / "data", "judge-check", "--model", "default", "--json", "--claims", claims, "--k", "1", *OPTIONS)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert {k: result["engine_options"][k] for k in WANT} == WANT
    kept = json.loads((tmp_path / "data" / validation.FILE_NAME).read_text())
    (entry,) = kept.values()
    assert {k: entry["engine_options"][k] for k in WANT} == WANT
    # same load (template, CPU/GPU): the stored check is reused; another n_ctx does not change answers
    again = _kiig(tmp_path / "data", "judge-check", "--model", "default", "--json", "--claims", claims, "--k", "1",
                  "--n-gpu-layers", "1", "--n-ctx", "1024")
    assert again.returncode == 0 and json.loads(again.stdout)["cached"] is True


@pytest.mark.slow
def test_a_judge_prompt_longer_than_the_context_is_one_message_with_both_sizes(tmp_path):
    db = _session(tmp_path)
    out = tmp_path / "ki.jsonl"
    done = _kiig(tmp_path / "data", "ki", "--model", "default", "--db", db, "--corpus", "clinical",
                 "--input", _chain(tmp_path / "in.jsonl"), "--output", out, "--k", "6", "--n-ctx", "256")
    assert done.returncode == 1, done.stderr  # an item error: the batch goes on
    error = json.loads(out.read_text().splitlines()[0])["error"]
    first = error.splitlines()[0]
    assert first.startswith("judge prompt is ") and first.endswith("tokens; the judge's context is 256 (--n-ctx)")
    assert int(first.split()[3]) > 256
    assert "Traceback" not in done.stderr


def test_an_overflow_is_never_asked_again_shorter():
    asked: list[int] = []

    def ask_many(prompts):
        asked.extend(len(p[1]["content"]) for p in prompts)
        return [ContextOverflow("x", needed=3000, n_ctx=2048) for _ in prompts]

    from kiig_desktop.knowledge.search import Passage

    passages = [Passage(source="s", chunk=0, text="word " * 400, score=1.0, chunk_id=1, title=None)]
    (got,) = judging.ask_all(ask_many, [("a claim", passages)], 6000, "probability")
    assert len(asked) == 1  # asked once, at full length
    assert isinstance(got, ContextOverflow) and got.message == "judge prompt is 3000 tokens; the judge's context is 2048 (--n-ctx)"
