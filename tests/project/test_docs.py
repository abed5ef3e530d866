"""Keep the README honest: every `kiig ...` line it shows parses with the real command line."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from kiig_desktop.cli import COMMAND_MODULES, build_parser
from tests.support.paths import ROOT

README = ROOT / "README.md"


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    lines = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split("  #")[0].strip().removeprefix("./")  # ./kiig: the offline bundle's folder
            if line.startswith("kiig "):
                lines.append(line)
    return lines


def test_readme_shows_commands():
    assert len(_readme_commands()) >= 10


@pytest.mark.parametrize("line", _readme_commands())
def test_readme_command_parses(line):
    argv = shlex.split(line)[1:]
    if "--help" in argv:
        with pytest.raises(SystemExit) as stop:
            build_parser().parse_args(argv)
        assert stop.value.code == 0
        return
    args = build_parser().parse_args(argv)
    assert callable(args.func)


def test_every_command_is_in_the_readme_and_has_help():
    text = README.read_text(encoding="utf-8")
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert f"kiig {name}" in text, f"`kiig {name}` is not documented in the README"
        assert p.format_help().strip()
    assert len(sub.choices) >= len(COMMAND_MODULES)


# ------------------------------------------------------------------ documents cited by the code

ROOT = README.parent
CITED = re.compile(r"""(?<![\w/.])(docs/[\w./-]+\.md)(?:\s*\(\s*"([^"]+)"\s*\)|#([\w-]+))?""")
CITING = ("kiig_desktop", "tests", "benchmarks", "packaging")


def _citing_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "Makefile", ROOT / "pyproject.toml", *sorted((ROOT / "docs").glob("*.md"))]
    for folder in CITING:
        files += sorted(p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".md", ".sh", ".toml")
                        and "_resources" not in p.parts and p.name != "test_docs.py")  # its examples are not citations
    return files


def _citations() -> list[tuple[str, str, str | None]]:
    out = []
    for path in _citing_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for m in CITED.finditer(text):
            out.append((str(path.relative_to(ROOT)), m.group(1), m.group(2) or m.group(3)))
    return out


def _headings(doc: Path) -> set[str]:
    titles = [line.lstrip("#").strip() for line in doc.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    return set(titles) | {re.sub(r"[^\w -]", "", t).strip().lower().replace(" ", "-") for t in titles}


def test_the_code_cites_the_user_documents():
    cited = {doc for _, doc, _ in _citations()}
    assert {"docs/metrics.md", "docs/cli.md", "docs/architecture.md"} <= cited


def test_every_cited_document_exists_with_the_cited_section():
    missing = []
    for where, doc, section in _citations():
        path = ROOT / doc
        if not path.is_file():
            missing.append(f"{where} cites {doc}, which does not exist")
        elif section and section not in _headings(path):
            missing.append(f"{where} cites section {section!r} of {doc}, which has no such heading")
    assert missing == []


def test_nothing_cites_a_document_outside_the_repository():
    """DESIGN.md is the team's notes, not shipped: users read docs/ instead."""
    outside = [str(p.relative_to(ROOT)) for p in _citing_files() if "DESIGN.md" in p.read_text(encoding="utf-8", errors="replace")]
    assert outside == []


def test_the_citation_check_can_fail(tmp_path):
    text = 'see docs/metrics.md ("No Such Section") and docs/nowhere.md'
    found = [(m.group(1), m.group(2) or m.group(3)) for m in CITED.finditer(text)]
    assert found == [("docs/metrics.md", "No Such Section"), ("docs/nowhere.md", None)]
    assert "No Such Section" not in _headings(ROOT / "docs" / "metrics.md")
    assert not (ROOT / "docs" / "nowhere.md").exists()


def test_every_table_of_the_docs_has_its_header_row():
    """A markdown table renders only with a |---| row under its first row (the README's second
    gallery table lacked it and showed as text)."""
    broken = []
    for doc in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        text = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.S)
        for table in re.finditer(r"(?:^\|.*\|\n)+", text, flags=re.M):
            rows = table.group(0).splitlines()
            if len(rows) < 2 or not re.fullmatch(r"\|(?:\s*:?-+:?\s*\|)+", rows[1]):
                broken.append(f"{doc.name}: {rows[0][:80]}")
    assert broken == [], broken
