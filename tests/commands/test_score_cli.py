"""`kiig score` end to end on the real embedded model: contract, per-line errors, resume, kill -9."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess

import pytest

from kiig_desktop.resources import resource_path
from tests.support.cli import kiig, kiig_popen
from tests.support.process import count_rows, freeze, kill_group, thaw, wait_until

pytestmark = pytest.mark.slow  # scores the demo chains end to end several times, with kills

CHAINS = resource_path("chains", "clinical_chains.jsonl")
OUTPUT_KEYS = {"id", "question", "mode", "model", "n_tokens", "baseline", "steps", "info_gain_mean", "delta_nll_mean", "paper_info_gain", "paper_mean"}
STEP_KEYS = {"index", "text", "answer_nll", "answer_ppl", "delta_nll", "info_gain", "seq_ppl"}


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run over the demo chains, without a session file."""
    out = tmp_path_factory.mktemp("ref") / "out.jsonl"
    r = kiig("score", "--model", "default", "--input", str(CHAINS), "--output", str(out))
    assert r.returncode == 0, r.stderr
    return out


def test_output_contract(reference):
    lines = read_jsonl(reference)
    inputs = read_jsonl(CHAINS)
    assert [x["id"] for x in lines] == [x["id"] for x in inputs]
    for line, src in zip(lines, inputs, strict=True):
        # the item travels with its numbers, so `kiig ki` on this output sees the question and options
        assert line["question"] == src["question"]
        if "options" in src:
            assert line["options"] == src["options"] and line["answer_idx"] == src["answer_idx"]
        short = len(src["steps"]) < 3  # ReasoningEval scores no chain of 2 steps or fewer: excluded, not 0
        extra = {"options", "answer_idx"} if "options" in src else set()
        assert set(line) == OUTPUT_KEYS | extra | ({"paper_excluded"} if short else set())
        assert (line["paper_mean"] is None) == short
        assert line["mode"] == "answer"
        assert set(line["model"]) == {"path", "sha256"}
        assert set(line["baseline"]) == {"answer_nll", "answer_ppl", "seq_ppl", "option_probs", "entropy_bits", "p_correct"}
        assert [s["text"] for s in line["steps"]] == src["steps"]
        for s in line["steps"]:
            assert set(s) == STEP_KEYS | {"option_probs", "entropy_bits", "p_correct"}


def test_bad_lines_refuse_the_whole_file_before_any_model_work(tmp_path):
    """docs/cli.md: every bad line is listed, exit 2, nothing scored or stored."""
    good = {"id": "ok", "question": "What is 2 + 2?", "answer": "4", "steps": ["2 + 2 = 4."]}
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({"id": "no-answer", "question": "Q?", "steps": ["s"]}),
        json.dumps({"id": "int-question", "question": 5, "answer": "4", "steps": ["s"]}),
        json.dumps({"id": "no-letter", "question": "Q?", "answer": "zebra", "options": {"A": "cat", "B": "dog"}, "steps": ["s"]}),
        json.dumps({"id": "empty-steps", "question": "Q?", "answer": "4", "steps": []}),
        json.dumps({"id": "blank-step", "question": "Q?", "answer": "4", "steps": ["fine", "   "]}),
        json.dumps({"id": "ok", "question": "Q?", "answer": "4", "steps": ["again"]}),
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out, db = tmp_path / "out.jsonl", tmp_path / "s.kiig"
    r = kiig("score", "--model", "no-such-model", "--input", str(src), "--output", str(out), "--db", str(db))
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "no-such-model" not in r.stderr  # refused before the model is looked up
    assert f"{src}: 7 bad lines" in r.stderr
    for n, words in [(2, "invalid JSON"), (3, "answer"), (4, "question"), (5, "zebra"), (6, "steps"), (7, "empty"), (8, "already used on line 1")]:
        assert f"line {n}: " in r.stderr and words in r.stderr.split(f"line {n}: ", 1)[1].splitlines()[0], (n, r.stderr)
    assert not out.exists() and not db.exists()


def test_chain_longer_than_the_context_is_an_item_error(tmp_path):
    short = {"id": "short", "question": "What is 1 + 1?", "answer": "2", "steps": ["1 + 1 = 2."]}
    long = {"id": "long", "question": "Summarise.", "answer": "done", "steps": ["This sentence repeats a lot. " * 60] * 3}
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(long) + "\n" + json.dumps(short) + "\n")
    out = tmp_path / "out.jsonl"
    r = kiig("score", "--model", "default", "--input", str(src), "--output", str(out), "--n-ctx", "512")
    assert r.returncode == 1
    first, second = read_jsonl(out)
    assert "context holds 512" in first["error"]
    assert "error" not in second and second["steps"]


def test_missing_input_is_a_clean_exit_2(tmp_path):
    r = kiig("score", "--model", "default", "--input", str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "o.jsonl"))
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.startswith("kiig: error:")
    assert not (tmp_path / "o.jsonl").exists()


def test_resume_skips_finished_chains_and_writes_identical_output(tmp_path, reference):
    db = tmp_path / "s.kiig"
    out1, out2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    r1 = kiig("score", "--model", "default", "--input", str(CHAINS), "--output", str(out1), "--db", str(db))
    assert r1.returncode == 0, r1.stderr
    assert out1.read_bytes() == reference.read_bytes()
    r2 = kiig("score", "--model", "default", "--input", str(CHAINS), "--output", str(out2), "--db", str(db))
    assert r2.returncode == 0
    n = len(read_jsonl(CHAINS))
    assert f"{n} of {n} chains already scored" in r2.stderr
    assert out2.read_bytes() == reference.read_bytes()
    assert oct(db.stat().st_mode & 0o777) == "0o600"
    # other settings are a new run, never mixed with the first
    r3 = kiig("score", "--model", "default", "--input", str(CHAINS), "--output", str(tmp_path / "c.jsonl"), "--db", str(db), "--n-batch", "256")
    assert r3.returncode == 0 and "already scored" not in r3.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs WHERE kind = 'score'").fetchone()[0] == 2


def _finished_chains(db) -> int:
    return count_rows(db, "SELECT COUNT(*) FROM chains WHERE status = 'finished'")


def test_kill_9_part_way_then_resume_gives_identical_results(tmp_path, reference):
    db = tmp_path / "killed.kiig"
    out = tmp_path / "out.jsonl"
    args = ["score", "--model", "default", "--input", str(CHAINS), "--output", str(out), "--db", str(db)]
    total = len(read_jsonl(CHAINS))
    for kill_after in (1, 3, 5):
        proc = kiig_popen(*args, stdout=subprocess.DEVNULL)
        wait_until(lambda n=kill_after: _finished_chains(db) >= n, f"{kill_after} chains were saved", proc)
        freeze(proc)  # nothing is saved between the count above and the kill
        kill_group(proc)  # the CLI and its model worker, mid-chain
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            done = conn.execute("SELECT COUNT(*) FROM chains WHERE status = 'finished'").fetchone()[0]
            assert kill_after <= done < total
            # a finished chain is whole: its steps are all there
            for chain_id, n_steps in conn.execute("SELECT id, n_steps FROM chains"):
                assert conn.execute("SELECT COUNT(*) FROM steps WHERE chain_id = ?", (chain_id,)).fetchone()[0] == n_steps
        assert not out.exists()
    r = kiig(*args)
    assert r.returncode == 0, r.stderr
    assert "already scored" in r.stderr
    assert out.read_bytes() == reference.read_bytes()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize("extra, message", [
    (["--n-ctx", "8"], "--n-ctx must be at least 256, got 8"),
    (["--n-batch", "0"], "--n-batch must be at least 1"),
    (["--max-tokens", "-1"], "--max-tokens must be at least 1"),
])
def test_engine_values_llama_cpp_would_abort_on_are_refused_first(extra, message):
    r = kiig("generate", "--model", "default", "--prompt", "hi", *extra)
    assert r.returncode == 2 and r.stderr.startswith(f"kiig: error: {message}") and r.stderr.count("\n") == 1, r.stderr


def test_the_output_never_replaces_the_input(tmp_path):
    src = tmp_path / "chains.jsonl"
    src.write_text(resource_path("chains", "clinical_chains.jsonl").read_text().splitlines()[0] + "\n")
    before = src.read_text()
    r = kiig("score", "--model", "default", "--input", str(src), "--output", str(src))
    assert r.returncode == 2 and "input or session file" in r.stderr
    assert src.read_text() == before


def test_ctrl_c_keeps_finished_chains_says_so_and_the_rerun_resumes(tmp_path, reference):
    db, out = tmp_path / "s.kiig", tmp_path / "out.jsonl"
    args = ["score", "--model", "default", "--input", str(CHAINS), "--output", str(out), "--db", str(db)]
    # a shell's background job (CI runners, nohup) inherits SIGINT ignored; a terminal's Ctrl-C does not
    proc = kiig_popen(*args, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_until(lambda: count_rows(db) >= 1, "a first chain was saved", proc)
    freeze(proc)  # the Ctrl-C lands part way, however fast the rest would go
    assert count_rows(db) < len(read_jsonl(CHAINS))
    proc.send_signal(signal.SIGINT)
    thaw(proc)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 130
    assert "interrupted" in err and f"finished chains are saved in {db}" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob("*.part"))
    r = kiig(*args)
    assert r.returncode == 0 and "already scored" in r.stderr
    assert read_jsonl(out) == read_jsonl(reference)


def test_given_steps_with_knowledge_are_scored_by_paper_mode_and_kept(tmp_path, reference):
    """Steps given as ``{"text", "knowledge"}`` objects: the knowledge travels to the output (so
    `kiig ki` checks it) and is what the whole-sequence (paper) numbers score; the answer-mode
    numbers, computed on the step text, do not move."""
    src = read_jsonl(CHAINS)[0]
    facts = [f"Fact {i}: {t.split('.')[0]}." for i, t in enumerate(src["steps"])]
    line = dict(src, steps=[{"text": t, "knowledge": k} for t, k in zip(src["steps"], facts, strict=True)])
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps(line) + "\n")
    out = tmp_path / "out.jsonl"
    r = kiig("score", "--model", "default", "--input", str(inp), "--output", str(out))
    assert r.returncode == 0, r.stderr
    got, ref = read_jsonl(out)[0], read_jsonl(reference)[0]
    assert [s["knowledge"] for s in got["steps"]] == facts
    assert [s["text"] for s in got["steps"]] == src["steps"]
    for a, b in zip(got["steps"], ref["steps"], strict=True):
        assert a["answer_nll"] == pytest.approx(b["answer_nll"], abs=1e-4)
    assert [s["seq_ppl"] for s in got["steps"]] != pytest.approx([s["seq_ppl"] for s in ref["steps"]], abs=1e-3)


def test_a_step_object_without_text_is_a_line_error(tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"id": "x", "question": "q", "answer": "a", "steps": [{"knowledge": "k"}]}) + "\n")
    r = kiig("score", "--model", "default", "--input", str(inp), "--output", str(tmp_path / "o.jsonl"))
    assert r.returncode == 2 and "steps[0].text must be a non-empty string" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
