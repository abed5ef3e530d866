"""Dataset import: layouts, auto-detection, CSV variants and per-row validation errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiig_desktop.chains.answers import extract_answer, is_correct
from kiig_desktop.chains.datasets import DatasetItem, RowError, iter_jsonl, load_dataset, parse_score_line
from kiig_desktop.errors import InputError
from kiig_desktop.resources import resource_path


def _jsonl(tmp_path: Path, rows: list, name: str = "d.jsonl") -> Path:
    path = tmp_path / name
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _errors(ds) -> dict[int, str]:
    return {e.line: e.message for e in ds.errors}


MCQ = {
    "question": "First-line drug?",
    "options": {"A": "Insulin", "B": "Metformin"},
    "answer_idx": "B",
    "answer": "Metformin",
}


# ----------------------------------------------------------------------------------------- MCQ


def test_mcq_dict_and_list_options(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path,
        [
            {**MCQ, "id": "q1"},
            {"id": "q2", "question": "Pick y", "options": ["x", "y", "z"], "answer": "  Y "},
            {"id": "q3", "question": "Pick z", "options": {"A": "x", "B": "y", "C": "z"}, "answer_idx": "c"},
            {"id": "q4", "question": "Letter as answer", "options": ["x", "y"], "answer": "B"},
        ],
    )
    ds = load_dataset(path)
    assert ds.layout == "mcq" and ds.format == "jsonl" and ds.errors == [] and ds.ok
    q1, q2, q3, q4 = ds.items
    assert (q1.kind, q1.answer_idx, q1.answer, q1.line) == ("mcq", "B", "Metformin", 1)
    assert q2.options == {"A": "x", "B": "y", "C": "z"} and q2.answer_idx == "B" and q2.answer == "y"
    assert (q3.answer_idx, q3.answer) == ("C", "z")
    assert (q4.answer_idx, q4.answer) == ("B", "y")


def test_mcq_prompt_text_and_score_input() -> None:
    item = DatasetItem(
        id="x",
        question="Which?",
        answer="Metformin",
        kind="mcq",
        options={"A": "Insulin", "B": "Metformin"},
        answer_idx="B",
        line=3,
    )
    assert item.prompt_text() == "Which?\nA. Insulin\nB. Metformin"
    assert item.to_score_input() == {
        "id": "x",
        "question": "Which?",
        "answer": "Metformin",
        "options": {"A": "Insulin", "B": "Metformin"},
        "answer_idx": "B",
    }
    plain = DatasetItem(id="y", question="2+2?", answer="4", kind="numeric", steps=["2+2=4"], reasoning="r")
    assert plain.prompt_text() == "2+2?"
    assert plain.to_score_input() == {
        "id": "y",
        "question": "2+2?",
        "answer": "4",
        "steps": ["2+2=4"],
        "reasoning": "r",
    }


def test_mcq_validation_reports_every_bad_row(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path,
        [
            {**MCQ, "id": "ok"},  # 1
            {**MCQ, "id": "bad-idx", "answer_idx": "E", "answer": None},  # 2
            {**MCQ, "id": "disagree", "answer_idx": "A"},  # 3
            {"id": "no-letter", "question": "q", "options": {"A": "x", "B": "y"}, "answer": "w"},  # 4
            {"id": "no-answer", "question": "q", "options": {"A": "x", "B": "y"}},  # 5
            {"id": "no-q", "options": {"A": "x", "B": "y"}, "answer_idx": "A"},  # 6
            {"id": "num-q", "question": 12, "options": {"A": "x", "B": "y"}, "answer_idx": "A"},  # 7
            {"id": "num-opt", "question": "q", "options": {"A": 1, "B": "y"}, "answer_idx": "B"},  # 8
            {"id": "int-idx", "question": "q", "options": ["x", "y"], "answer_idx": 1},  # 9
            "{not json",  # 10
            "[1, 2]",  # 11
            "",  # 12: blank, skipped
            {**MCQ, "id": "ok"},  # 13: duplicate
            {"id": "no-opts", "question": "q", "answer": "x"},  # 14
            {"id": "one-opt", "question": "q", "options": ["x"], "answer": "x"},  # 15
            {"id": "bad-key", "question": "q", "options": {"1": "x", "2": "y"}, "answer": "x"},  # 16
            {"id": "ambiguous", "question": "q", "options": ["same", "Same"], "answer": "same"},  # 17
        ],
    )
    ds = load_dataset(path)
    assert ds.layout == "mcq"
    assert [i.id for i in ds.items] == ["ok"]
    err = _errors(ds)
    assert sorted(err) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17]
    assert "answer_idx 'E' is not among the options (A, B)" in err[2]
    assert "disagrees" in err[3]
    assert "without a resolvable correct letter" in err[4]
    assert "without a resolvable correct letter" in err[5]
    assert "missing question" in err[6]
    assert "question must be a string, got int" in err[7]
    assert "option A must be a string, got int" in err[8]
    assert "answer_idx must be a letter string, got int" in err[9]
    assert err[10].startswith("invalid JSON")
    assert err[11] == "not a JSON object (got array)"
    assert "duplicate id 'ok' (first seen on line 1)" in err[13]
    assert "missing options" in err[14]
    assert "at least two" in err[15]
    assert "not a single letter" in err[16]
    assert "matches several options" in err[17]
    assert not ds.ok
    assert str(ds.errors[0]).startswith("line 2: ")


def test_answer_idx_with_mismatching_answer_text_is_rejected(tmp_path: Path) -> None:
    ds = load_dataset(_jsonl(tmp_path, [{**MCQ, "answer": "Aspirin"}]), layout="mcq")
    assert ds.items == [] and "does not match option B" in ds.errors[0].message


# --------------------------------------------------------------------------------------- GSM8K


def test_gsm8k_extracts_number_and_keeps_solution(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path,
        [
            {"question": "Cost?", "answer": "3 pens cost 3*400 = <<3*400=1200>>1200 cents.\n#### 1,200"},
            {"question": "Loss?", "answer": "It fell by 7.\n####  -7"},
            {"question": "Half?", "answer": "#### 2.5"},
            {"question": "No marker", "answer": "The answer is 5"},
            {"question": "Words", "answer": "Some work\n#### five"},
            {"question": "Marker not last", "answer": "#### 3\nthen more text"},
        ],
    )
    ds = load_dataset(path)
    assert ds.layout == "gsm8k"
    first, second, third = ds.items
    assert (first.id, first.answer, first.kind) == ("1", "1200", "numeric")
    assert first.reference_reasoning == "3 pens cost 3*400 = 1200 cents."
    assert second.answer == "-7" and third.answer == "2.5" and third.reference_reasoning == ""
    err = _errors(ds)
    assert sorted(err) == [4, 5, 6]
    assert all("without a final '#### <number>'" in m for m in err.values())


def test_gsm8k_answers_work_with_answer_checking(tmp_path: Path) -> None:
    ds = load_dataset(_jsonl(tmp_path, [{"question": "q", "answer": "x\n#### 1,234"}]))
    item = ds.items[0]
    assert is_correct(extract_answer("So she has $1,234 in total.", item.kind), item)


# ------------------------------------------------------------------------------------- generic


def test_generic_score_input_with_steps_and_reasoning(tmp_path: Path) -> None:
    rows = [
        {"id": "g1", "question": "2+3?", "answer": "5", "steps": ["2+3", "=5"]},
        {"id": "g2", "question": "Capital of France?", "answer": "Paris", "reasoning": "France's capital is Paris."},
        {"id": "g3", "question": "Which?", "answer": "y", "options": {"A": "x", "B": "y"}, "steps": ["B is y"]},
        {"id": "g4", "question": "q", "answer": "a", "steps": "not a list"},
        {"id": "g5", "question": "q", "answer": "a", "steps": ["ok", 3]},
        {"id": "g6", "question": "q"},
        {"id": ["x"], "question": "q", "answer": "a"},
    ]
    ds = load_dataset(_jsonl(tmp_path, rows))
    assert ds.layout == "generic"
    g1, g2, g3 = ds.items
    assert (g1.kind, g1.steps) == ("numeric", ["2+3", "=5"])
    assert (g2.kind, g2.reasoning) == ("open", "France's capital is Paris.")
    assert (g3.kind, g3.answer_idx) == ("mcq", "B")
    assert g3.to_score_input()["steps"] == ["B is y"]
    err = _errors(ds)
    assert "steps must be a non-empty array" in err[4]
    assert "steps[1] must be a non-empty string, got int" in err[5]
    assert err[6] == "missing answer"
    assert "id must be a non-empty string or an integer" in err[7]


def test_forced_layout_overrides_detection(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, [{"question": "q", "answer": "plain"}, {"question": "q2", "answer": "w\n#### 4"}])
    assert load_dataset(path).layout == "generic"
    assert len(load_dataset(path).items) == 2  # generic still understands '#### n' answers
    forced = load_dataset(path, layout="gsm8k")
    assert forced.layout == "gsm8k" and [i.answer for i in forced.items] == ["4"] and forced.errors[0].line == 1
    mixed = load_dataset(_jsonl(tmp_path, [MCQ, {"question": "q", "answer": "a"}], "m.jsonl"), layout="generic")
    assert [i.kind for i in mixed.items] == ["mcq", "open"]
    with pytest.raises(InputError, match="unknown dataset layout"):
        load_dataset(path, layout="excel")


def test_parse_score_line() -> None:
    item = parse_score_line({"question": "q", "answer": "a"}, 7)
    assert item.id == "7" and item.line == 7 and item.kind == "open"
    assert parse_score_line({"id": 12, "question": "q", "answer": "a"}, 1).id == "12"
    with pytest.raises(InputError, match=r"^line 4: missing question$"):
        parse_score_line({"answer": "a"}, 4)
    with pytest.raises(InputError, match=r"^line 5: not a JSON object"):
        parse_score_line([1], 5)
    with pytest.raises(InputError, match=r"^line 6: .*not among the options"):
        parse_score_line({"question": "q", "answer": "x", "options": {"A": "x", "B": "y"}, "answer_idx": "C"}, 6)
    with pytest.raises(InputError, match=r"line 8: .*without a final '#### <number>'"):
        parse_score_line({"question": "q", "answer": "work\n#### lots"}, 8)


# ----------------------------------------------------------------------------------- files, I/O


def test_iter_jsonl_streams_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n   \n{"b": 2}\r\n42\nnot json\n{"c": "\xff"}\n')
    got = list(iter_jsonl(path))
    assert [n for n, _ in got] == [1, 4, 5, 6, 7]
    assert got[0][1] == {"a": 1} and got[1][1] == {"b": 2}
    assert isinstance(got[2][1], RowError) and "not a JSON object (got int)" in got[2][1].message
    assert isinstance(got[3][1], RowError) and got[3][1].message.startswith("invalid JSON")
    assert isinstance(got[4][1], RowError) and "not valid utf-8" in got[4][1].message
    with pytest.raises(InputError, match="not found"):
        iter_jsonl(tmp_path / "missing.jsonl")


def test_decode_errors_are_reported_per_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.jsonl"
    good = json.dumps({"question": "Caf\u00e9?", "answer": "yes"}).encode()
    bad = '{"question": "Na\u00efve?", "answer": "no"}'.encode("latin-1")
    path.write_bytes(good + b"\n" + bad + b"\n" + good.replace(b"yes", b"ok") + b"\n")
    ds = load_dataset(path)
    assert [i.line for i in ds.items] == [1, 3]
    assert ds.errors[0].line == 2 and "not valid utf-8" in ds.errors[0].message
    latin = load_dataset(path, encoding="latin-1")
    assert latin.errors == [] and latin.items[1].question == "Na\u00efve?"


def test_utf16_file(tmp_path: Path) -> None:
    path = tmp_path / "u16.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n", encoding="utf-16")
    with pytest.raises(InputError, match="UTF-16"):
        load_dataset(path)
    assert load_dataset(path, encoding="utf-16").items[0].answer == "a"


def test_file_level_problems(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_dataset(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="folder"):
        load_dataset(tmp_path)
    binary = tmp_path / "model.jsonl"
    binary.write_bytes(b"GGUF\x03\x00\x00\x00" + bytes(range(256)))
    with pytest.raises(InputError, match="binary"):
        load_dataset(binary)
    with pytest.raises(InputError, match="encoding"):
        load_dataset(_jsonl(tmp_path, [MCQ]), encoding="klingon")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n", encoding="utf-8")
    ds = load_dataset(empty)
    assert ds.items == [] and [(e.line, e.message) for e in ds.errors] == [(0, "empty file: no data rows")]
    array = tmp_path / "array.json"
    array.write_text(json.dumps([MCQ]), encoding="utf-8")
    assert "one JSON array" in load_dataset(array).errors[0].message


# ------------------------------------------------------------------------------------------ CSV


def test_csv_letter_columns_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "mcq.csv"
    path.write_text(
        "id,question,A,B,C,D,answer_idx\n"
        'q1,"A multi-line\nquestion, with a comma",Insulin,Metformin,Glipizide,,B\n'
        "q2,Short?,x,y,z,w,E\n"
        "\n"
        "q3,Too few,x,y\n"
        "q4,Fine,x,y,,,A\n",
        encoding="utf-8",
    )
    ds = load_dataset(path)
    assert ds.format == "csv" and ds.layout == "mcq"
    q1, q4 = ds.items
    assert q1.question == "A multi-line\nquestion, with a comma" and q1.line == 2
    assert q1.options == {"A": "Insulin", "B": "Metformin", "C": "Glipizide"} and q1.answer == "Metformin"
    assert (q4.line, q4.answer) == (7, "x")
    err = _errors(ds)
    assert sorted(err) == [4, 6]
    assert "answer_idx 'E' is not among the options (A, B, C, D)" in err[4]
    assert err[6] == "row has 4 fields but the header has 7"


def test_csv_option_prefixed_and_json_columns(tmp_path: Path) -> None:
    prefixed = tmp_path / "p.csv"
    prefixed.write_text("Question,Option_A,Option_B,Answer\nWhich?,Red,Blue,blue\n", encoding="utf-8")
    item = load_dataset(prefixed).items[0]
    assert (item.options, item.answer_idx, item.answer, item.id) == ({"A": "Red", "B": "Blue"}, "B", "Blue", "2")

    js = tmp_path / "j.csv"
    js.write_text(
        'question,options,answer\nWhich?,"[""Red"", ""Blue""]",Red\nBad?,"{""A"": ",x\nBoth?,"[""a"", ""b""]",a\n',
        encoding="utf-8",
    )
    ds = load_dataset(js)
    assert ds.items[0].answer_idx == "A"
    assert "options column is not valid JSON" in _errors(ds)[3]


def test_csv_gsm8k_and_header_problems(tmp_path: Path) -> None:
    gsm = tmp_path / "g.csv"
    gsm.write_text(
        'question,answer\nHow many?,"2 + 2 = 4\n#### 4"\nOops,no marker\nMore?,"x\n#### 9"\n', encoding="utf-8"
    )
    ds = load_dataset(gsm)
    assert ds.layout == "gsm8k" and [(i.answer, i.line) for i in ds.items] == [("4", 2), ("9", 5)]
    assert ds.errors[0].line == 4

    no_q = tmp_path / "noq.csv"
    no_q.write_text("prompt,answer\nhi,there\n", encoding="utf-8")
    ds = load_dataset(no_q)
    assert ds.items == [] and "no 'question' column" in ds.errors[0].message and ds.errors[0].line == 1

    header_only = tmp_path / "h.csv"
    header_only.write_text("question,answer\n", encoding="utf-8")
    assert load_dataset(header_only).errors[0].message == "no data rows after the CSV header"

    tsv = tmp_path / "t.tsv"
    tsv.write_text("question\tanswer\nCapital, of France?\tParis\n", encoding="utf-8")
    assert load_dataset(tsv).items[0].question == "Capital, of France?"


def test_csv_decode_error_only_drops_its_row(tmp_path: Path) -> None:
    path = tmp_path / "enc.csv"
    path.write_bytes(b"question,answer\nGood?,yes\nBad \xe9?,no\nAlso good?,ok\n")
    ds = load_dataset(path)
    assert [i.line for i in ds.items] == [2, 4]
    assert ds.errors[0].line == 3 and "not valid utf-8" in ds.errors[0].message


# ------------------------------------------------------------------------------ shipped datasets


@pytest.mark.parametrize(
    ("name", "layout", "kind"), [("clinical_mcq.jsonl", "mcq", "mcq"), ("arithmetic.jsonl", "gsm8k", "numeric")]
)
def test_shipped_datasets_are_clean(name: str, layout: str, kind: str) -> None:
    ds = load_dataset(resource_path("datasets", name))
    assert ds.errors == [] and ds.layout == layout
    assert 18 <= len(ds.items) <= 30
    assert {i.kind for i in ds.items} == {kind}
    assert len({i.id for i in ds.items}) == len(ds.items)
    for item in ds.items:
        if kind == "mcq":
            assert set(item.options) == set("ABCD") and item.options[item.answer_idx] == item.answer
        else:
            assert item.reference_reasoning and float(item.answer) == float(item.answer)
            # the worked solution's last computed value is the final answer
            last = extract_answer(item.reference_reasoning, "numeric")
            assert is_correct(last, item), (item.id, last, item.answer)
