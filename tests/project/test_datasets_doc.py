"""docs/datasets.md tells the truth: every example file is read by the real loader without an error,
every conversion script turns its published-format example into the file shown after it, and every
error message the page explains is one the code can print."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kiig_desktop.chains.datasets import load_dataset
from tests.support.paths import ROOT

DOC = ROOT / "docs" / "datasets.md"
MESSAGE_SOURCES = [ROOT / "kiig_desktop" / "chains" / name for name in ("datasets.py", "dataset_files.py")]
MESSAGE_SOURCES.append(ROOT / "kiig_desktop" / "strict_json.py")

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", flags=re.S | re.M)
HEREDOC = re.compile(r"^python3 - (\S+) (\S+) <<'EOF'\n(.*?)^EOF$", flags=re.S | re.M)


def blocks() -> list[tuple[str, str]]:
    """(info string, text) of every fenced block of the page, in order."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(DOC.read_text(encoding="utf-8"))]


DATA_BLOCKS = [(i, kind, text) for i, (kind, text) in enumerate(blocks()) if kind in ("jsonl", "csv", "tsv")]


def test_the_page_has_an_example_of_each_dataset_and_format():
    text = DOC.read_text(encoding="utf-8")
    for name in ("MedQA", "MedMCQA", "PubMedQA", "GSM8K"):
        assert f"### {name}" in text
    assert {kind for _, kind, _ in DATA_BLOCKS} == {"jsonl", "csv", "tsv"}
    for suffix in (".jsonl", ".json", ".ndjson", ".csv", ".tsv"):
        assert f"`{suffix}`" in text


@pytest.mark.parametrize(("index", "kind", "text"), DATA_BLOCKS, ids=[f"block{i}-{k}" for i, k, _ in DATA_BLOCKS])
def test_every_example_file_loads_without_an_error(tmp_path, index, kind, text):
    path = tmp_path / f"example.{kind}"
    path.write_text(text, encoding="utf-8")
    ds = load_dataset(path)
    assert ds.errors == [], f"example {index} of docs/datasets.md: {[str(e) for e in ds.errors]}"
    assert len(ds.items) == len([ln for ln in text.splitlines() if ln.strip()]) - (kind != "jsonl")


def _items(path: Path) -> list[dict]:
    ds = load_dataset(path)
    assert ds.errors == [], [str(e) for e in ds.errors]
    return [item.to_score_input() for item in ds.items]


def test_the_conversion_scripts_give_the_files_shown(tmp_path):
    """Each `python3 - IN OUT <<'EOF'` block, run on the published-format block before it, writes
    exactly the items of the *as KIIG reads it* block after it."""
    found = blocks()
    ran = 0
    for i, (kind, text) in enumerate(found):
        m = HEREDOC.search(text) if kind == "sh" else None
        if m is None:
            continue
        source_name, out_name, script = m.groups()
        original = next(t for k, t in reversed(found[:i]) if k == "json")
        expected = next(t for k, t in found[i + 1:] if k == "jsonl")
        work = tmp_path / f"conversion{i}"
        work.mkdir()
        (work / source_name).write_text(original, encoding="utf-8")
        r = subprocess.run([sys.executable, "-", source_name, out_name], input=script, cwd=work,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        (work / "expected.jsonl").write_text(expected, encoding="utf-8")
        assert _items(work / out_name) == _items(work / "expected.jsonl")
        ran += 1
    assert ran == 2  # MedMCQA and PubMedQA


def _code_messages() -> list[re.Pattern]:
    """Every string and f-string of the loader's modules as a pattern, `{...}` parts matching anything."""
    patterns = []
    for path in MESSAGE_SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.JoinedStr):
                parts = [re.escape(v.value) if isinstance(v, ast.Constant) else ".*" for v in node.values]
                patterns.append(re.compile("".join(parts), flags=re.S))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                patterns.append(re.compile(re.escape(node.value)))
    return patterns


def documented_messages() -> list[str]:
    section = DOC.read_text(encoding="utf-8").split("## Error messages", 1)[1]
    return re.findall(r"^\| `(.+?)` \|", section, flags=re.M)


def test_every_error_message_on_the_page_is_one_the_code_prints():
    messages = documented_messages()
    assert len(messages) >= 40
    patterns = _code_messages()
    unknown = [m for m in messages if not any(p.fullmatch(m) for p in patterns)]
    assert unknown == [], f"docs/datasets.md explains messages the code never prints: {unknown}"


def test_every_row_message_of_the_loader_is_explained():
    """The other way round: each problem a row or file can have (what datasets.py appends to its
    problems or errors) matches one documented line."""
    messages = documented_messages()
    tree = ast.parse((ROOT / "kiig_desktop" / "chains" / "datasets.py").read_text(encoding="utf-8"))
    missing = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "append" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Call) and getattr(arg.func, "id", "") == "RowError" and len(arg.args) == 2:
                arg = arg.args[1]
            exprs = [arg.body, arg.orelse] if isinstance(arg, ast.IfExp) else [arg]
            for expr in exprs:
                if isinstance(expr, ast.JoinedStr):
                    parts = [re.escape(v.value) if isinstance(v, ast.Constant) else ".*" for v in expr.values]
                    pattern = re.compile("".join(parts), flags=re.S)
                elif isinstance(expr, ast.Constant) and isinstance(expr.value, str):
                    pattern = re.compile(re.escape(expr.value))
                else:
                    continue
                if not any(pattern.fullmatch(m) for m in messages):
                    missing.append(pattern.pattern)
    assert missing == [], f"messages of chains/datasets.py that docs/datasets.md does not explain: {missing}"
