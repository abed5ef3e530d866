"""Keep the README honest: every `kiig ...` line it shows parses with the real command line."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from kiig_desktop.cli import COMMAND_MODULES, build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    lines = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("kiig "):
                lines.append(line)
    return lines


def test_readme_shows_commands():
    assert len(_readme_commands()) >= 10


@pytest.mark.parametrize("line", _readme_commands())
def test_readme_command_parses(line):
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert callable(args.func)


def test_every_command_is_in_the_readme_and_has_help():
    text = README.read_text(encoding="utf-8")
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert f"kiig {name}" in text, f"`kiig {name}` is not documented in the README"
        assert p.format_help().strip()
    assert len(sub.choices) >= len(COMMAND_MODULES)
