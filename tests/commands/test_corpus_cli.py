"""``kiig corpus add|search|list|remove`` on real session files."""

from __future__ import annotations

import json
import shutil

import pytest

from kiig_desktop import cli
from kiig_desktop.resources import resource_path


@pytest.fixture(autouse=True)
def only_corpus_commands(monkeypatch):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["corpus", "ki"])


def kiig(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(resource_path("corpus", "clinical_facts.jsonl"), folder / "clinical_facts.jsonl")
    (folder / "notes.md").write_text("# Gout\n\nAllopurinol lowers uric acid.\n", encoding="utf-8")
    return folder


def test_add_search_list_remove(tmp_path, capsys, docs):
    db = tmp_path / "s.kiig"
    code, out, err = kiig(capsys, "corpus", "add", "--db", db, "--name", "clinical", docs)
    assert code == 0, err
    assert "added     clinical_facts.jsonl (55 documents, 55 chunks)" in out
    assert "added     notes.md (1 chunks)" in out
    assert out.strip().endswith("2 added, 0 replaced, 0 unchanged, 0 skipped; 56 chunks written")
    assert oct(db.stat().st_mode & 0o777) == "0o600"

    code, out, _ = kiig(capsys, "corpus", "add", "--db", db, "--name", "clinical", "--json", docs)
    report = json.loads(out)
    assert code == 0 and [f["status"] for f in report["files"]] == ["unchanged", "unchanged"]

    code, out, _ = kiig(capsys, "corpus", "search", "--db", db, "--name", "clinical", "--k", "2", "--json",
                        "--query", 'Which drug lowers "uric acid" AND NOT (gout*)?')
    results = json.loads(out)["results"]
    assert code == 0 and len(results) == 2
    assert results[0]["source"] == "notes.md" and results[0]["chunk"] == 0
    assert set(results[0]) >= {"source", "chunk", "text", "score"} and results[0]["score"] > results[1]["score"]

    code, out, _ = kiig(capsys, "corpus", "search", "--db", db, "--name", "clinical", "--query", "orange urine tuberculosis")
    assert code == 0 and out.startswith("1. [") and "clinical_facts.jsonl > cf-rifampicin > Rifampicin #0" in out

    code, out, _ = kiig(capsys, "corpus", "list", "--db", db, "--json")
    listing = json.loads(out)["corpora"]
    assert [(c["name"], c["files"], c["documents"], c["chunks"]) for c in listing] == [("clinical", 2, 56, 56)]

    code, out, _ = kiig(capsys, "corpus", "remove", "--db", db, "--name", "clinical", "--source", "notes.md")
    assert code == 0 and out.strip() == "removed 'notes.md' from corpus 'clinical'"
    code, out, _ = kiig(capsys, "corpus", "list", "--db", db)
    assert out.startswith("clinical: 1 files, 55 documents, 55 chunks")
    code, out, _ = kiig(capsys, "corpus", "remove", "--db", db, "--name", "clinical")
    assert code == 0
    code, out, err = kiig(capsys, "corpus", "list", "--db", db)
    assert code == 0 and out == "" and "no corpora" in err


def test_skipped_files_exit_1(tmp_path, capsys, docs):
    (docs / "scan.txt").write_bytes(b"\x00\x00binary")
    code, out, _ = kiig(capsys, "corpus", "add", "--db", tmp_path / "s.kiig", "--name", "c", docs)
    assert code == 1
    assert "skipped   scan.txt\n          - not a text file" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["corpus", "add", "--db", "{db}", "--name", "c", "{tmp}/missing.md"], "no such file or folder: "),
    (["corpus", "search", "--db", "{tmp}/none.kiig", "--name", "c", "--query", "x"], "no session file"),
    (["corpus", "search", "--db", "{db}", "--name", "other", "--query", "x"], "no corpus named 'other'"),
    (["corpus", "search", "--db", "{db}", "--name", "c", "--query", "x", "--k", "0"], "k must be a positive integer"),
    (["corpus", "remove", "--db", "{db}", "--name", "c", "--source", "nope"], "has no file or document named 'nope'"),
    (["corpus", "add", "--db", "{db}", "--name", "c", "--overlap-chars", "900", "{docs}"], "overlap_chars"),
    (["corpus", "search", "--db", "{tmp}/docs/notes.md", "--name", "c", "--query", "x"], "notes.md"),
])
def test_expected_errors_are_one_line_exit_2(tmp_path, capsys, docs, argv, message):
    db = tmp_path / "s.kiig"
    assert kiig(capsys, "corpus", "add", "--db", db, "--name", "c", docs)[0] == 0
    argv = [a.format(db=db, tmp=tmp_path, docs=docs) for a in argv]
    code, _out, err = kiig(capsys, *argv)
    assert code == 2
    assert err.startswith("kiig: error: ") and message in err and "Traceback" not in err
