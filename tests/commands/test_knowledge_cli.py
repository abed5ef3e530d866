"""``kiig ki`` with a fake judge: output format, session storage, resume, errors."""

from __future__ import annotations

import json
import math
import sys
import types

import pytest

from kiig_desktop import cli
from kiig_desktop.resources import resource_path
from kiig_desktop.store import SessionStore
from tests.support.cli import kiig_main as kiig
from tests.support.cli import read_jsonl
from tests.support.judge import FakeJudge, Opener


@pytest.fixture
def opener(monkeypatch):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["corpus", "ki"])
    op = Opener(FakeJudge(fail_when="zebra"))
    monkeypatch.setitem(sys.modules, "kiig_desktop.knowledge.judge", types.SimpleNamespace(open_judge=op))
    return op


@pytest.fixture
def session(tmp_path, opener):
    db = tmp_path / "s.kiig"
    assert cli.main(["corpus", "add", "--db", str(db), "--name", "clinical",
                     str(resource_path("corpus", "clinical_facts.jsonl"))]) == 0
    return db


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_ki_on_demo_chains(tmp_path, capsys, session, opener):
    out_path = tmp_path / "ki.jsonl"
    code, _out, err = kiig(capsys, "ki", "--model", "judge.gguf", "--db", session, "--corpus", "clinical",
                           "--input", resource_path("chains", "clinical_chains.jsonl"), "--output", out_path)
    assert code == 0, err
    assert opener.opened == ["judge.gguf"]
    assert out_path.stat().st_mode & 0o777 == 0o600
    lines = read_jsonl(out_path)
    chains = read_jsonl(resource_path("chains", "clinical_chains.jsonl"))
    assert [r["id"] for r in lines] == [c["id"] for c in chains]
    for rec, chain in zip(lines, chains, strict=True):
        assert rec["model"] == FakeJudge.model_ref and "error" not in rec
        assert [s["text"] for s in rec["steps"]] == chain["steps"]
        for step, label in zip(rec["steps"], chain["step_labels"], strict=True):
            assert set(step) >= {"index", "text", "applicable", "ki", "evidence"}
            if label["expected"] == "not_applicable":
                assert step["applicable"] is False and step["ki"] is None and step["evidence"] == []
            else:
                assert step["applicable"] and 0.0 <= step["ki"] <= 1.0
                assert label["source"] in [e["source"] for e in step["evidence"]]
                assert all(set(e) >= {"source", "chunk", "score"} for e in step["evidence"])
        judged = [s["ki"] for s in rec["steps"] if s["applicable"]]
        assert math.isclose(rec["ki_mean"], sum(judged) / len(judged))

    with SessionStore.open(session, create=False, write=False) as store:
        runs = [r for r in store.list_runs() if r["kind"] == "ki"]
        assert len(runs) == 1 and runs[0]["status"] == "finished"
        chains_rows = store.chains_for_run(runs[0]["id"])
        assert [c["key"] for c in chains_rows] == [c["id"] for c in chains]
        evaluation = store.load_ki(chains_rows[0]["id"])[0]
        assert evaluation["corpus"] == "clinical" and evaluation["judge"]["sha256"] == "f" * 64
        assert [s["applicable"] for s in evaluation["steps"]] == [s["applicable"] for s in lines[0]["steps"]]
        assert evaluation["steps"][2]["evidence"][0]["source"] == "cf-metformin"
        assert store.load_item(chains_rows[0]["id"])["question"] == chains[0]["question"]


def test_ki_resume_skips_done_chains_and_writes_same_output(tmp_path, capsys, session, opener):
    inp = write_jsonl(tmp_path / "in.jsonl", [
        {"id": "a", "steps": ["Warfarin is monitored with the INR.", "So the answer is B."]},
        {"id": "b", "steps": [{"index": 1, "text": "Rifampicin turns urine orange-red."}]},
    ])
    args = ["ki", "--model", "j", "--db", session, "--corpus", "clinical", "--input", inp]
    assert kiig(capsys, *args, "--output", tmp_path / "1.jsonl")[0] == 0
    calls = len(opener.judge.calls)
    code, _out, err = kiig(capsys, *args, "--output", tmp_path / "2.jsonl")
    assert code == 0 and "2 chains already done in this session" in err
    assert len(opener.judge.calls) == calls  # nothing judged again
    assert (tmp_path / "1.jsonl").read_text() == (tmp_path / "2.jsonl").read_text()
    # a changed step text is judged again, the unchanged chain is reused
    write_jsonl(tmp_path / "in.jsonl", [
        {"id": "a", "steps": ["Warfarin is monitored with the aPTT.", "So the answer is B."]},
        {"id": "b", "steps": [{"index": 1, "text": "Rifampicin turns urine orange-red."}]},
    ])
    code, _out, err = kiig(capsys, *args, "--output", tmp_path / "3.jsonl")
    assert code == 0 and "1 chains already done" in err and len(opener.judge.calls) == calls + 1
    assert read_jsonl(tmp_path / "3.jsonl")[0]["steps"][0]["text"] == "Warfarin is monitored with the aPTT."


def test_ki_item_errors_exit_1(tmp_path, capsys, session):
    inp = write_jsonl(tmp_path / "in.jsonl", [
        {"id": "bad", "steps": ["A zebra is a striped horse used to monitor warfarin."]},
        {"id": "upstream", "steps": [], "error": "longer than the context"},
        {"id": "good", "steps": ["Warfarin is monitored with the INR."]},
    ])
    out_path = tmp_path / "out.jsonl"
    code, _out, err = kiig(capsys, "ki", "--model", "j", "--db", session, "--corpus", "clinical", "--input", inp,
                           "--output", out_path)
    assert code == 1 and "3 chains, 2 with errors" in err
    bad, upstream, good = read_jsonl(out_path)
    assert bad["error"] == "the judge worker died" and bad["ki_mean"] is None
    assert upstream["error"] == "no steps to check (upstream error: longer than the context)"
    assert "error" not in good and good["ki_mean"] > 0.5


@pytest.mark.parametrize(("lines", "extra", "message"), [
    (["{not json"], [], "line 1: invalid JSON"),
    ([json.dumps({"id": "x", "steps": "text"})], [], "\"steps\" must be a list"),
    ([json.dumps({"id": "x", "steps": ["a"]}), json.dumps({"id": "x", "steps": ["b"]})], [], "line 2: id 'x' already used on line 1"),
    ([], [], "holds no input lines"),
    ([json.dumps({"id": "x", "steps": ["a"]})], ["--corpus", "other"], "no corpus named 'other'"),
    ([json.dumps({"id": "x", "steps": ["a"]})], ["--k", "0"], "--k must be between 1 and 20"),
    ([json.dumps({"id": "x", "steps": ["a"]})], ["--model", "missing"], "no model named 'missing'"),
])
def test_ki_input_errors_exit_2_before_loading_a_model(tmp_path, capsys, session, opener, lines, extra, message):
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    options = {"--model": "j", "--db": session, "--corpus": "clinical", "--input": inp, "--output": tmp_path / "o.jsonl"}
    options.update(zip(extra[::2], extra[1::2], strict=True))
    code, _out, err = kiig(capsys, "ki", *[x for pair in options.items() for x in pair])
    assert code == 2 and message in err and "Traceback" not in err
    assert opener.opened == []


def test_ki_missing_session(tmp_path, capsys, opener):
    inp = write_jsonl(tmp_path / "in.jsonl", [{"id": "x", "steps": ["a"]}])
    code, _out, err = kiig(capsys, "ki", "--model", "j", "--db", tmp_path / "none.kiig", "--corpus", "c",
                           "--input", inp, "--output", tmp_path / "o.jsonl")
    assert code == 2 and "no session file" in err and opener.opened == []
