"""Issue 14, through the real ``kiig`` command as a subprocess: hostile JSON, hostile options and
model files, planted ``.part`` links, spreadsheet formulas. Every case must give one clear line on
stderr naming the file (and line), exit code 2 and no traceback, before any model is loaded: the
hostile-input cases name a GGUF file that cannot be loaded, so an error about the input (not the
model) shows that the input was checked first."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from pathlib import Path

import pytest

from kiig_desktop.store import SessionStore
from tests.support.cli import kiig, one_clear_line
from tests.support.gguf_factory import write_tiny_gguf
from tests.support.store_support import make_item, make_record, model_info


@pytest.fixture(scope="module")
def unloadable(tmp_path_factory) -> Path:
    """A GGUF whose header passes every check but which llama.cpp cannot load (it has no layers)."""
    return write_tiny_gguf(tmp_path_factory.mktemp("models") / "unloadable.gguf")


def test_the_unloadable_model_really_fails_to_load(tmp_path, unloadable):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(GOOD) + "\n", encoding="utf-8")
    r = kiig("score", "--model", unloadable, "--input", src, "--output", tmp_path / "o.jsonl")
    assert r.returncode == 2 and "could not load" in r.stderr and str(src) not in r.stderr, r.stderr


GOOD = {"id": "a", "question": "What is 2 + 2?", "answer": "4", "steps": ["2 + 2 = 4."]}
HOSTILE = {
    "deep": '{"a": ' * 100_000 + "1" + "}" * 100_000,
    "huge-int": '{"id": "a", "question": "Q?", "answer": "4", "steps": ["s"], "n": ' + "9" * 5000 + "}",
    "lone-surrogate": '{"id": "a", "question": "Q\\ud800?", "answer": "4", "steps": ["s"]}',
    "nan": '{"id": "a", "question": "Q?", "answer": "4", "steps": ["s"], "x": NaN}',
}


def _hostile_file(tmp_path: Path, case: str) -> Path:
    src = tmp_path / f"{case}.jsonl"
    src.write_text(HOSTILE[case] + "\n", encoding="utf-8")
    return src


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("command", ["score", "run", "import", "ki"])
def test_hostile_json_is_one_line_naming_file_and_line(tmp_path, command, case, unloadable):
    src = _hostile_file(tmp_path, case)
    db, out, m = tmp_path / "s.kiig", tmp_path / "out.jsonl", unloadable
    argv = {
        "score": ["score", "--model", m, "--input", src, "--output", out, "--db", db],
        "run": ["run", "--dataset", src, "--models", m, "--scorer", m, "--db", db],
        "import": ["import", "--db", db, src],
        "ki": ["ki", "--model", m, "--db", db, "--corpus", "c", "--input", src, "--output", out],
    }[command]
    r = kiig(*argv)
    one_clear_line(r, str(src), "line 1")
    assert not out.exists() and not db.exists()  # nothing written, no empty session left behind


CORPUS_HOSTILE = {
    "deep": '{"id": "b", "text": "t", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "huge-int": '{"id": "b", "text": "t", "x": ' + "9" * 5000 + "}",
    "lone-surrogate": '{"id": "b", "text": "Lone \\ud800 surrogate."}',
}


@pytest.mark.parametrize("case", sorted(CORPUS_HOSTILE))
def test_hostile_json_lines_in_a_corpus_refuse_the_file_with_their_line(tmp_path, case):
    src = tmp_path / "docs.jsonl"
    src.write_text(json.dumps({"id": "ok", "text": "Metformin is first-line for type 2 diabetes."}) + "\n"
                   + CORPUS_HOSTILE[case] + "\n", encoding="utf-8")
    r = kiig("corpus", "add", "--db", tmp_path / "s.kiig", "--name", "c", src)
    assert r.returncode == 2 and "Traceback" not in r.stderr + r.stdout
    assert "docs.jsonl: line 2:" in r.stderr and "nothing was run or stored" in r.stderr
    r = kiig("corpus", "list", "--db", tmp_path / "s.kiig", "--json")
    assert '"c"' not in r.stdout  # nothing was imported


@pytest.mark.parametrize(("row", "words"), [
    ({"id": "a", "steps": "x"}, "steps must be a list"),
    ({"id": "a", "steps": [{"index": 0, "text": "s", "answer_nll": "NaN"}]}, "answer_nll must be a number"),
    ({"id": "a", "options": ["A", "B"], "steps": []}, "options must be an object"),
    ({"kiig_export": 1, "run_uid": "u", "step_index": "0"}, "step_index must be a whole number"),
])
def test_import_checks_types_before_writing(tmp_path, row, words):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(row) + "\n", encoding="utf-8")
    db = tmp_path / "s.kiig"
    one_clear_line(kiig("import", "--db", db, src), str(src), "line 1", words)
    assert not db.exists()


def test_import_of_nan_step_values_is_refused(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "steps": [{"index": 0, "text": "s", "answer_nll": NaN}]}\n', encoding="utf-8")
    one_clear_line(kiig("import", "--db", tmp_path / "s.kiig", src), str(src), "line 1", "NaN")


@pytest.mark.parametrize(("argv", "words"), [
    (["score", "--model", "default", "--input", "IN", "--output", "OUT", "--db", "DB", "--seed", "9" * 23], "--seed"),
    (["run", "--dataset", "IN", "--models", "default", "--scorer", "default", "--db", "DB", "--seed", "-1"], "--seed"),
    (["run", "--dataset", "IN", "--models", "default", "--scorer", "default", "--db", "DB", "--temperature", "nan"],
     "--temperature"),
    (["generate", "--model", "default", "--prompt", "hi", "--temperature", "inf"], "--temperature"),
])
def test_absurd_options_are_refused_by_the_parser(tmp_path, argv, words):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(GOOD) + "\n", encoding="utf-8")
    names = {"IN": str(src), "OUT": str(tmp_path / "o.jsonl"), "DB": str(tmp_path / "s.kiig")}
    r = kiig(*[names.get(a, a) for a in argv])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert words in r.stderr.splitlines()[-1] and ("must be" in r.stderr)
    assert not (tmp_path / "s.kiig").exists()


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"context": 2**31}, "impossible context length"),
    ({"context": 0}, "impossible context length"),
    ({"heads": 0}, "impossible number of attention heads"),
])
def test_absurd_gguf_headers_are_refused_with_one_line(tmp_path, kwargs, words):
    model = write_tiny_gguf(tmp_path / "bad.gguf", **kwargs)
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(GOOD) + "\n", encoding="utf-8")
    r = kiig("score", "--model", model, "--input", src, "--output", tmp_path / "o.jsonl")
    one_clear_line(r, str(model), words)


def test_a_fifo_named_like_a_model_is_refused_at_once(tmp_path):
    fifo = tmp_path / "x.gguf"
    os.mkfifo(fifo)
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(GOOD) + "\n", encoding="utf-8")
    r = kiig("score", "--model", fifo, "--input", src, "--output", tmp_path / "o.jsonl", timeout=60)  # hung before
    one_clear_line(r, str(fifo), "named pipe")


# ------------------------------------------------------------------------------ outputs and CSV

FORMULA = "=cmd|' /C calc'!A0"


@pytest.fixture
def session(tmp_path) -> Path:
    """A session with one run whose texts start like spreadsheet formulas and whose numbers are negative."""
    path = tmp_path / "s.kiig"
    record = make_record(1, n_steps=3, n_tokens=20)
    record["steps"][0]["text"] = FORMULA
    record["steps"][1]["text"] = "@SUM(A1:A2)"
    record["steps"][2]["text"] = "-2+3"
    record["steps"][0]["delta_nll"] = -0.25
    with SessionStore.open(path) as s:
        run, _ = s.find_or_create_run("score", {"mode": "answer"}, {"scorer": s.ensure_model(model_info())}, {})
        s.save_chain(run, "+q1", record, item=make_item(1, question="\tTAB=1+1"))
        s.set_run_status(run, "finished")
    return path


def test_csv_export_neutralises_formula_cells_and_keeps_numbers_numeric(tmp_path, session):
    out = tmp_path / "steps.csv"
    r = kiig("export", "--db", session, "--format", "csv", "--output", out)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [row["step_text"] for row in rows] == ["'" + FORMULA, "'@SUM(A1:A2)", "'-2+3"]
    assert {row["chain_key"] for row in rows} == {"'+q1"} and rows[0]["question"] == "'\tTAB=1+1"
    assert rows[0]["delta_nll"] == "-0.25" and float(rows[0]["delta_nll"]) == -0.25  # a number, not text
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "@", "\t", "\r")), value
            assert not value.startswith("-") or float(value) < 0, value


def test_report_csv_uses_the_same_rule():
    from kiig_desktop.files import spreadsheet_writer

    buf = io.StringIO()
    spreadsheet_writer(buf).writerow([FORMULA, "+1", "-1.5", -1.5, 3, "plain", "-x", "\r=1"])
    assert next(csv.reader(io.StringIO(buf.getvalue(), newline=""))) == ["'" + FORMULA, "+1", "-1.5", "-1.5", "3", "plain", "'-x", "'\r=1"]
    import kiig_desktop.reports.html as report

    assert report.spreadsheet_writer is spreadsheet_writer  # render_csv writes through it


def test_a_planted_part_link_is_refused_and_its_target_untouched(tmp_path, session):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n", encoding="utf-8")
    victim.chmod(0o644)
    out = tmp_path / "steps.csv"
    (tmp_path / "steps.csv.part").symlink_to(victim)
    r = kiig("export", "--db", session, "--format", "csv", "--output", out)
    one_clear_line(r, str(out), "symbolic link")
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert not out.exists()


def test_a_leftover_part_file_of_ours_is_replaced_by_the_next_run(tmp_path, session):
    out = tmp_path / "steps.jsonl"
    part = tmp_path / "steps.jsonl.part"
    part.write_text("half a file from a killed run", encoding="utf-8")
    part.chmod(0o644)
    r = kiig("export", "--db", session, "--format", "jsonl", "--output", out)
    assert r.returncode == 0, r.stderr
    assert not part.exists() and stat.S_IMODE(out.stat().st_mode) == 0o600
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows and all(isinstance(r, dict) for r in rows)


def test_exports_are_strict_json_even_with_a_nan_in_the_session(tmp_path, session):
    record = make_record(2, n_steps=2, n_tokens=10)
    record["info_gain_mean"] = float("nan")  # a value that came in before imports were checked
    record["steps"][0]["delta_nll"] = float("inf")
    with SessionStore.open(session) as s:
        [run] = s.list_runs()
        s.save_chain(run["id"], "q2", record, item=make_item(2))
    out = tmp_path / "steps.jsonl"
    assert kiig("export", "--db", session, "--format", "jsonl", "--output", out).returncode == 0
    text = out.read_text(encoding="utf-8")
    for line in text.splitlines():
        json.loads(line, parse_constant=lambda name: pytest.fail(f"bare {name} in an export"))
