"""docs/cli.md against the command line itself: every command, option and default of the argparse
parser is in the "Every option" table, every documented option exists, and the exit codes are there.

A failure names what is missing ("flag --x of command `kiig y` is not in docs/cli.md"), so a new
option is documented by adding one row to the table."""

from __future__ import annotations

import argparse
import re

from kiig_desktop.cli import build_parser
from tests.support.paths import ROOT

DOC = ROOT / "docs" / "cli.md"
ENGINE = "engine options"


def _walk(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ("kiig",)):
    """(command, action, its group's title) for every option and argument of every (sub-)command."""
    groups = {id(a): g.title for g in parser._action_groups for a in g._group_actions}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*prefix, name))
        elif not isinstance(action, argparse._HelpAction):
            yield " ".join(prefix), action, groups.get(id(action))


def _name(action: argparse.Action) -> str:
    """What the table's option cell starts with: the long flag, or a positional's metavar."""
    if action.option_strings:
        return max(action.option_strings, key=len)
    return action.metavar or action.dest.upper()


def _default(action: argparse.Action) -> str | None:
    """The default as the table writes it, or None when argparse has none worth stating."""
    d = action.default
    if d is None or d is False or d == [] or d == argparse.SUPPRESS or action.required:
        return None
    if isinstance(d, float) and d.is_integer():
        return str(int(d))
    return str(d)


def _table() -> dict[tuple[str, str], tuple[str, str]]:
    """(command, option) -> (option cell, default cell) of the "Every option" table."""
    text = DOC.read_text(encoding="utf-8")
    assert "## Every option" in text, "docs/cli.md has no \"Every option\" table"
    section = text.split("## Every option", 1)[1]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) != 4 or cells[0] in ("command", "---"):
            continue
        command = cells[0].strip("`")
        option = re.match(r"`([^ `]+?)(?:\.\.\.)?[ `]", cells[1])
        assert option, f"docs/cli.md: option cell {cells[1]!r} does not start with a `--flag` or `ARG`"
        rows[(command, option.group(1))] = (cells[1], cells[2])
    return rows


def test_every_option_of_every_command_is_in_the_table_with_its_default():
    rows = _table()
    problems = []
    for command, action, group in _walk(build_parser()):
        key = (ENGINE if group == ENGINE else command, _name(action))
        kind = "flag" if action.option_strings else "argument"
        where = f"{kind} {key[1]} of command `{command}`" + (" (engine options)" if group == ENGINE else "")
        if key not in rows:
            problems.append(f"{where} is not in docs/cli.md's \"Every option\" table")
            continue
        default_cell = rows[key][1]
        if action.required and default_cell != "required":
            problems.append(f"{where} is required, but docs/cli.md gives default {default_cell!r}")
        want = _default(action)
        stated = re.match(r"`([^`]*)`", default_cell)
        if want is not None and (stated is None or stated.group(1) != want):
            problems.append(f"{where} defaults to {want!r}, but docs/cli.md says {default_cell!r}")
        if action.choices:
            listed = set(re.findall(r"[\w-]+", rows[key][0].split(" ", 1)[1] if " " in rows[key][0] else ""))
            if not set(map(str, action.choices)) <= listed:
                problems.append(f"{where} takes {sorted(action.choices)}, docs/cli.md lists {rows[key][0]}")
    assert problems == [], "\n".join(problems)


def test_every_option_in_the_table_exists():
    known = {(ENGINE if g == ENGINE else c, _name(a)) for c, a, g in _walk(build_parser())}
    stale = [f"docs/cli.md documents {o} of `{c}`, which the command line does not have" for c, o in _table() if (c, o) not in known]
    assert stale == []


def test_every_command_has_a_section():
    text = DOC.read_text(encoding="utf-8")
    commands = {c for c, _, _ in _walk(build_parser())} - {"kiig"}
    missing = [c for c in sorted(commands) if not re.search(rf"^### .*`{re.escape(c)}[ `]", text, flags=re.M)
               and f"`{c} " not in text]
    assert missing == [], f"commands without a section or synopsis in docs/cli.md: {missing}"


def test_the_engine_options_section_names_the_commands_that_take_them():
    section = DOC.read_text(encoding="utf-8").split("## Engine options", 1)[1].split("\n## ", 1)[0]
    takers = sorted({c for c, _, g in _walk(build_parser()) if g == ENGINE})
    assert [c for c in takers if f"`{c}`" not in section] == []


def test_exit_codes_are_documented():
    text = DOC.read_text(encoding="utf-8")
    table = text.split("## Exit codes and errors", 1)[1].split("\n## ", 1)[0]
    codes = re.findall(r"^\| (\d+) \|", table, flags=re.M)
    assert codes == ["0", "1", "2", "130"]
    assert re.search(r"`kiig doctor` when the smoke decode fails", table)
    assert "Exit 0 when the smoke decode works, 1 when it fails" in text


def test_score_output_fields_are_documented():
    from kiig_desktop.runs.score import OUTPUT_KEYS, STEP_KEYS

    text = DOC.read_text(encoding="utf-8")
    section = text.split("### `kiig score", 1)[1].split("\n### ", 1)[0]
    missing = [k for k in (*OUTPUT_KEYS, *STEP_KEYS) if f'"{k}"' not in section]
    assert missing == [], f"`kiig score` output fields not in docs/cli.md: {missing}"
