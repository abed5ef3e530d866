"""Export (CSV, JSONL) and import: identical numbers after a round trip; the CLI commands."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from kiig_desktop import cli
from kiig_desktop.errors import InputError
from kiig_desktop.store import SessionStore
from kiig_desktop.store.export import COLUMNS, import_jsonl, iter_rows, write_rows
from tests.support.store_support import (
    SHA_B,
    SHA_J,
    make_generation,
    make_item,
    make_ki_steps,
    make_record,
    model_info,
    without_curve,
)


def _build(path: Path) -> int:
    """A session with a decoy run and a rich run (items, generations, curves, KI, an error); returns the rich run."""
    with SessionStore.open(path) as s:
        scorer = s.ensure_model(model_info())
        other = s.ensure_model(model_info(SHA_B, "/models/other.gguf"))
        judge = s.ensure_model(model_info(SHA_J, "/models/judge.gguf"))
        decoy, _ = s.find_or_create_run("score", {"mode": "paper"}, {"scorer": other}, {})
        s.save_chain(decoy, "q0", make_record(0, n_steps=2, n_tokens=10, model_sha=SHA_B))
        run, _ = s.find_or_create_run("score", {"mode": "answer", "split": "lines"}, {"scorer": scorer, "subject": other},
                                      {"kiig": "0.1.0", "llama_cpp": "0.3.36"}, seed=7, name="rich")
        tricky = make_item(1, question='He said "stop", then:\nline two, with commas; and ünïcödé')
        s.save_chain(run, "q1", make_record(1), item=tricky, generation=make_generation(1, other))
        cid = s.save_chain(run, "q2", make_record(2, n_steps=4, n_tokens=40), item=make_item(2),
                           ki={"judge_model_id": judge, "corpus": "demo", "steps": make_ki_steps(2, 4), "ki_mean": 0.4})
        s.save_ki(cid, judge, "other-corpus", make_ki_steps(3, 4), 0.75)
        s.save_chain(run, "q3", {"id": "q3", "error": "context overflow: 9000 > 4096 tokens"}, item=make_item(3))
        s.set_run_status(run, "finished")
    return run


def _rows(path: Path, run: int, full: bool = True) -> list[dict]:
    with SessionStore.open(path, write=False) as s:
        return list(iter_rows(s, run, full=full))


def _jsonl(path: Path, run: int) -> Path:
    out = path.with_suffix(".jsonl")
    with SessionStore.open(path, write=False) as s, open(out, "w", encoding="utf-8") as fh:
        write_rows(iter_rows(s, run, full=True), "jsonl", fh)
    return out


def _comparable(rows: list[dict]) -> list[dict]:
    out = []
    for row in rows:
        row = json.loads(json.dumps(row))
        row.pop("run_id")
        if "run_data" in row:
            row["run_data"].pop("origin")
        out.append(row)
    return out


def test_rows_are_one_per_step_with_context(tmp_path):
    path = tmp_path / "a.kiig"
    run = _build(path)
    rows = _rows(path, run, full=False)
    assert [(r["chain_key"], r["step_index"]) for r in rows] == [("q1", i) for i in range(12)] + [("q2", i) for i in range(4)] + [("q3", None)]
    first = rows[0]
    record = make_record(1)
    assert first["run_kind"] == "score" and first["run_name"] == "rich" and first["run_seed"] == 7
    assert first["model_sha256"] == "a" * 64 and first["question"].startswith('He said "stop"')
    assert first["info_gain"] == record["steps"][0]["info_gain"] and first["baseline_answer_nll"] == record["baseline"]["answer_nll"]
    assert first["step_start"] == 0 and first["step_end"] == 79 and first["correct"] is True
    assert rows[-1]["chain_status"] == "error" and rows[-1]["chain_error"].startswith("context overflow")
    assert rows[12]["ki_mean"] == 0.75  # the latest KI evaluation


def test_csv_keeps_every_number_exact(tmp_path):
    path = tmp_path / "a.kiig"
    run = _build(path)
    buf = io.StringIO()
    with SessionStore.open(path, write=False) as s:
        n = write_rows(iter_rows(s, run, full=False), "csv", buf)
    table = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert n == len(table) == 17
    assert tuple(table[0]) == COLUMNS
    expected = _rows(path, run, full=False)
    for got, want in zip(table, expected, strict=True):
        for col in ("info_gain", "delta_nll", "answer_ppl", "p_correct", "info_gain_mean", "paper_mean"):
            assert (got[col] == "") if want[col] is None else float(got[col]) == want[col]
        assert got["question"] == (want["question"] or "")
        assert json.loads(got["option_probs"] or "null") == want["option_probs"]
    assert table[0]["correct"] == "true"


def test_jsonl_export_import_export_is_identical(tmp_path):
    a = tmp_path / "a.kiig"
    run = _build(a)
    exported = _jsonl(a, run)
    b = tmp_path / "b.kiig"
    with SessionStore.open(b) as s:
        [summary] = import_jsonl(s, exported)
    assert summary["chains"] == 3 and not summary["skipped"]
    new_run = summary["run_id"]
    assert new_run != run
    assert _comparable(_rows(b, new_run)) == _comparable(_rows(a, run))
    with SessionStore.open(a, write=False) as sa, SessionStore.open(b, write=False) as sb:
        ra, rb = sa.get_run(run), sb.get_run(new_run)
        for k in ("uid", "run_key", "kind", "status", "settings", "versions", "seed", "started", "finished"):
            assert ra[k] == rb[k], k
        assert {r: m["sha256"] for r, m in ra["models"].items()} == {r: m["sha256"] for r, m in rb["models"].items()}
        assert rb["origin"]["imported_from"] == exported.name
        for key in ("q1", "q2", "q3"):
            ca, cb = sa.chain_id(run, key), sb.chain_id(new_run, key)
            assert json.dumps(sa.load_chain(ca)) == json.dumps(sb.load_chain(cb))  # curves included
            assert sa.load_item(ca) == sb.load_item(cb)
            ga, gb = sa.load_generation(ca), sb.load_generation(cb)
            assert (ga is None) == (gb is None)
            if ga:
                assert {k: v for k, v in ga.items() if k != "model_id"} == {k: v for k, v in gb.items() if k != "model_id"}
            strip = [{k: v for k, v in e.items() if k not in ("judge_model_id", "created")} for e in sa.load_ki(ca)]
            assert strip == [{k: v for k, v in e.items() if k not in ("judge_model_id", "created")} for e in sb.load_ki(cb)]
        assert sb.chains_for_run(new_run)[1]["ki_mean"] == 0.75
        assert sb.check() == []
    with SessionStore.open(b) as s:  # the imported run is the same work: resuming it finds it
        scorer = s.ensure_model(model_info())
        other = s.ensure_model(model_info(SHA_B, "/models/other.gguf"))
        again = s.find_or_create_run("score", {"mode": "answer", "split": "lines"}, {"scorer": scorer, "subject": other}, {}, seed=7)
        assert again == (new_run, False)
        assert import_jsonl(s, exported)[0]["skipped"]  # importing twice adds nothing
        assert len(s.list_runs()) == 1


def test_import_of_plain_output_lines(tmp_path):
    lines = [without_curve(make_record(i, n_steps=3, n_tokens=9)) for i in range(4)]
    lines.append({"id": "q9", "error": "no answer"})
    src = tmp_path / "scores.jsonl"
    src.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    with SessionStore.open(tmp_path / "s.kiig") as s:
        [summary] = import_jsonl(s, src)
        run = s.get_run(summary["run_id"])
        assert run["kind"] == "import" and run["status"] == "finished" and run["models"]["scorer"]["sha256"] == "a" * 64
        records = s.load_run_records(run["id"])
        assert [json.dumps(r) for r in records.values()] == [json.dumps(x) for x in lines]
        assert import_jsonl(s, src)[0]["skipped"]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json\n", "line 1|:1: not valid JSON"),
        ("[1, 2]\n", "expected a JSON object"),
        ("", "no rows"),
        ('{"kiig_export": 99}\n', "format 1"),
        ('{"kiig_export": 1, "run_uid": "x", "chain_key": "k", "chain_data": {"record": {}}}\n', "before that run's first row"),
        ('{"kiig_export": 1, "run_uid": "x", "run_data": {"uid": "x"}}\n', "malformed export row"),
        ('{"question": "no id"}\n', "neither a KIIG export row"),
    ],
)
def test_bad_import_files_change_nothing(tmp_path, content, match):
    target = tmp_path / "t.kiig"
    run = _build(target)
    before = _rows(target, run)
    src = tmp_path / "bad.jsonl"
    src.write_text(content, encoding="utf-8")
    with SessionStore.open(target) as s:
        with pytest.raises(InputError, match=match):
            import_jsonl(s, src)
        assert len(s.list_runs()) == 2
    assert _rows(target, run) == before


def test_a_broken_row_late_in_the_file_rolls_back_the_whole_import(tmp_path):
    a = tmp_path / "a.kiig"
    run = _build(a)
    rows = [json.loads(x) for x in _jsonl(a, run).read_text(encoding="utf-8").splitlines()]
    rows[-1]["chain_data"]["record"] = "garbage"
    src = tmp_path / "broken.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with SessionStore.open(tmp_path / "b.kiig") as s:
        with pytest.raises(InputError, match="chain_data has no record"):
            import_jsonl(s, src)
        assert s.list_runs() == [] and s.conn.execute("SELECT count(*) FROM models").fetchone()[0] == 0


def test_the_session_stays_readable_by_ordinary_sqlite_tools(tmp_path):
    path = tmp_path / "a.kiig"
    run = _build(path)
    conn = sqlite3.connect(path)  # plain sqlite3, no KIIG code
    n, mean = conn.execute("SELECT count(*), avg(info_gain) FROM step_metrics WHERE run_id = ?", (run,)).fetchone()
    assert n == 16 and mean is not None
    assert conn.execute("SELECT json_extract(record, '$.steps[0].info_gain') FROM chains WHERE key = 'q1' AND run_id = ?", (run,)).fetchone()[0] == make_record(1)["steps"][0]["info_gain"]
    conn.close()
    if shutil.which("sqlite3"):
        out = subprocess.run(["sqlite3", str(path), "SELECT count(*) FROM steps; PRAGMA integrity_check;"], capture_output=True, text=True, check=True)
        assert out.stdout.split() == ["18", "ok"]


# --------------------------------------------------------------------------- the commands


@pytest.fixture
def kiig(monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["export"])

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_export_import_sessions(tmp_path, kiig):
    a = tmp_path / "a.kiig"
    run = _build(a)
    out = tmp_path / "rows.jsonl"
    code, _, err = kiig("export", "--db", a, "--run", run, "--output", out)
    assert code == 0 and "17 rows" in err
    assert out.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "rows.jsonl.part").exists()
    code, text, _ = kiig("export", "--db", a, "--run", run, "--format", "csv")
    assert code == 0 and text.startswith("run_id,run_uid,run_kind") and len(list(csv.reader(io.StringIO(text)))) == 18
    b = tmp_path / "b.kiig"
    code, text, _ = kiig("import", "--db", b, out)
    assert code == 0 and "3 chains" in text
    code, text, _ = kiig("sessions", "--db", b, "--json", "--run", 1, "--check")
    assert code == 0
    data = json.loads(text)
    assert data["schema_version"] >= 1 and data["problems"] == []
    assert [c["key"] for c in data["chains"]] == ["q1", "q2", "q3"]
    code, text, _ = kiig("sessions", "--db", a)
    assert code == 0 and "run 2: score finished, 3 chains, 1 failed" in text
    code, text, _ = kiig("sessions", "--db", a, "--upgrade", "--check")
    assert code == 0 and "integrity: ok" in text


def test_cli_errors_are_one_line_exit_2(tmp_path, kiig):
    a = tmp_path / "a.kiig"
    _build(a)
    code, _, err = kiig("export", "--db", a, "--format", "csv")
    assert code == 2 and "has 2 runs; choose one with --run (1, 2)" in err
    code, _, err = kiig("export", "--db", a, "--run", 9, "--format", "csv")
    assert code == 2 and "no run 9" in err
    code, _, err = kiig("export", "--db", a, "--run", 1)
    assert code == 2 and "--format" in err
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n" * 50)
    code, _, err = kiig("export", "--db", notes, "--format", "csv")
    assert code == 2 and err.strip() == f"kiig: error: {notes} is not a KIIG session file (it is not an SQLite database)"
    code, _, err = kiig("sessions", "--db", tmp_path / "missing.kiig")
    assert code == 2 and "not found" in err
    with SessionStore.open(a):
        code, _, err = kiig("import", "--db", a, notes)
        assert code == 2 and "in use by another process" in err
        code, text, _ = kiig("sessions", "--db", a)  # viewing while it is open for writing
        assert code == 0 and "2 run(s)" in text
    fresh = tmp_path / "new.kiig"
    code, _, err = kiig("import", "--db", fresh, notes)
    assert code == 2 and not fresh.exists()  # a failed command leaves no new empty session
    size = a.stat().st_size
    code, _, err = kiig("export", "--db", a, "--run", 1, "--format", "csv", "--output", a)
    assert code == 2 and "input or session file" in err
    assert a.stat().st_size == size
    code, text, _ = kiig("sessions", "--db", a)
    assert code == 0 and "2 run(s)" in text
    assert not list(tmp_path.glob("*.part"))
