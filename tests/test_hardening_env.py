"""Issue 28 (B, I, J, L, M), through the real ``kiig`` command as a subprocess: hostile terminal
text in item ids, whole-file claims checks with the line-length limit, bounded --threads, a data
folder left 0777 by another user with planted links and a forged cache, a full data disk."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

from kiig_desktop.chains.dataset_files import MAX_LINE_BYTES
from kiig_desktop.config import max_threads

from .gguf_factory import write_tiny_gguf
from .test_hardening_cli import kiig, one_clear_line

HOSTILE_ID = "x\u001b]0;x\u0007\u001b[2J\r\nkiig: all good"


def _no_raw_controls(text: str) -> None:
    for c in ("\x1b", "\x07", "\r"):
        assert c not in text, repr(text[-2000:])
    assert not any(ln.startswith("kiig: all good") for ln in text.splitlines()), text[-2000:]


# ------------------------------------------------------------------------------------------ M


def _threads_cases(tmp_path: Path) -> dict[str, list]:
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"id": "a", "question": "What is 2 + 2?", "answer": "4", "steps": ["2 + 2 = 4."]}) + "\n")
    return {
        "generate": ["generate", "--model", "default", "--prompt", "hi", "--max-tokens", "1"],
        "score": ["score", "--model", "default", "--input", data, "--output", tmp_path / "out.jsonl"],
        "run": ["run", "--dataset", data, "--models", "default", "--scorer", "default", "--db", tmp_path / "s.kiig",
                "--max-tokens", "1"],
        "doctor": ["doctor", "--model", "default"],
    }


def test_threads_out_of_range_is_one_line_before_any_model_work(tmp_path):
    top = max_threads()
    assert top == min(256, 4 * (os.cpu_count() or 1))
    for command, argv in _threads_cases(tmp_path).items():
        for value in (0, 100_000, top + 1):
            r = kiig(*argv, "--threads", str(value), timeout=300)
            line = one_clear_line(r, f"--threads must be between 1 and {top}, got {value}", "cores")
            assert "crash" in line, line
            assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "s.kiig").exists(), command


def test_threads_setting_in_settings_json_is_bounded_too(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    (data_dir / "settings.json").write_text(json.dumps({"engine": {"n_threads": 100_000}}))
    r = kiig("generate", "--model", "default", "--prompt", "hi", "--max-tokens", "1", timeout=300,
             env={**os.environ, "KIIG_DATA_DIR": str(data_dir)})
    one_clear_line(r, "threads setting (settings.json) must be between 1 and", "got 100000")


# ------------------------------------------------------------------------------------------ J


def test_escape_codes_in_item_ids_are_shown_not_obeyed(tmp_path):
    src = tmp_path / "in.jsonl"
    long_question = "word " * 400  # longer than the 256-token context: the item fails and its id is printed
    src.write_text(json.dumps({"id": HOSTILE_ID, "question": long_question, "answer": "4", "steps": ["s."]}) + "\n")
    r = kiig("score", "--model", "default", "--input", src, "--output", tmp_path / "out.jsonl", "--n-ctx", "256", timeout=300)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "x\\x1b]0;x\\x07\\x1b[2J\\x0d\\x0akiig: all good" in r.stderr, r.stderr[-2000:]
    assert "needs" in r.stderr and "context holds 256" in r.stderr, r.stderr[-2000:]
    _no_raw_controls(r.stderr)
    out = json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8"))
    assert out["id"] == HOSTILE_ID  # the data itself is kept as it was


def test_escape_codes_in_an_error_message_are_shown_not_obeyed(tmp_path):
    r = kiig("generate", "--model", str(tmp_path / "\u001b]0;x\u0007\u001b[2J\r\nkiig: all good.gguf"), "--prompt", "hi")
    one_clear_line(r, "\\x1b]0;x\\x07\\x1b[2J\\x0d\\x0akiig: all good.gguf")
    _no_raw_controls(r.stderr)


# ------------------------------------------------------------------------------------------ L


def _claim(i: int, label: bool) -> str:
    return json.dumps({"id": f"c{i}", "claim": f"Claim number {i}.", "label": label})


def test_claims_file_lists_every_bad_line(tmp_path):
    claims = tmp_path / "claims.jsonl"
    lines = [_claim(1, True), "{not json", _claim(3, False), json.dumps({"id": "c4", "claim": "no label"}), "[1, 2]",
             _claim(6, True)]
    claims.write_text("\n".join(lines) + "\n")
    r = kiig("judge-check", "--model", "default", "--claims", claims, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert f"{claims}: 3 bad lines" in r.stderr, r.stderr
    for n in (2, 4, 5):
        assert f"line {n}:" in r.stderr, (n, r.stderr)
    assert "needs a \"claim\"" in r.stderr and "not a JSON object" in r.stderr, r.stderr


def test_claims_file_line_length_limit(tmp_path):
    claims = tmp_path / "claims.jsonl"
    huge = json.dumps({"id": "big", "claim": "x" * (MAX_LINE_BYTES + 10), "label": False})
    claims.write_text("\n".join([_claim(1, True), huge, _claim(3, False)]) + "\n")
    r = kiig("judge-check", "--model", "default", "--claims", claims, timeout=300)
    one_clear_line(r, f"{claims}: line 2: line longer than {MAX_LINE_BYTES >> 20} MiB")


def test_dataset_line_length_limit_is_shared_by_score(tmp_path):
    src = tmp_path / "in.jsonl"
    huge = json.dumps({"id": "big", "question": "q" * (MAX_LINE_BYTES + 10), "answer": "4", "steps": ["s"]})
    good = json.dumps({"id": "a", "question": "What is 2 + 2?", "answer": "4", "steps": ["2 + 2 = 4."]})
    src.write_text(good + "\n" + huge + "\n")
    r = kiig("score", "--model", "default", "--input", src, "--output", tmp_path / "out.jsonl", timeout=300)
    one_clear_line(r, f"{src}: line 2: line longer than")
