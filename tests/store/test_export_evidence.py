"""Exports carry, per step, the evidence passages its KI was judged on with their file and page."""

from __future__ import annotations

import csv
import io
import json

from kiig_desktop.store import SessionStore
from kiig_desktop.store.export import iter_rows, write_rows
from tests.support.paged_corpus import batch_session_citing_pages


def test_export_rows_carry_each_step_evidence_with_file_and_page(tmp_path, capsys):
    from kiig_desktop import cli

    path = tmp_path / "pages.kiig"
    run, _chain, evidence = batch_session_citing_pages(path, tmp_path)
    with SessionStore.open(path, write=False) as store:
        rows = list(iter_rows(store, run, full=False))
        buf = io.StringIO()
        write_rows(iter(rows), "csv", buf)
    assert [r["step_index"] for r in rows] == [0, 1]
    first = rows[0]["evidence"]
    assert [(e.get("file"), e.get("page"), e.get("where")) for e in first] == [
        ("NG28.pdf", 14, "NG28.pdf, page 14"), ("NG28.pdf", 15, "NG28.pdf, page 15"),
        ("guide.md", None, f"guide.md > {first[2]['title']}"), (None, None, None)]  # the last: stored the old way
    assert first[2]["title"].startswith("Dosing") and first[2]["title"].endswith("Adults") and first == evidence
    assert rows[1]["evidence"] == []
    table = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert json.loads(table[0]["evidence"])[0]["where"] == "NG28.pdf, page 14" and table[1]["evidence"] == "[]"

    # kiig export (JSONL) writes the same
    assert cli.main(["export", "--db", str(path), "--run", str(run), "--format", "jsonl"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["evidence"][0]["page"] == 14 and lines[0]["evidence"][0]["file"] == "NG28.pdf"
