"""The first commands a newcomer types: `kiig --help`, every command's `--help`, and `kiig-desktop
--help` on a machine without a display (an SSH session), each as a real process, exit 0."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from kiig_desktop.cli import build_parser
from tests.support.paths import ROOT


def command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and sub-command of the parser (`corpus add` as ("corpus", "add")), walked recursively."""
    out = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += command_paths(sub, (*prefix, name))
    return out


COMMANDS = command_paths(build_parser())


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_the_walk_finds_every_command_and_sub_command():
    names = {" ".join(c) for c in COMMANDS}
    assert {"", "doctor", "judge-check", "corpus", "corpus add", "corpus search", "import", "sessions"} <= names


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "kiig")
def test_help_exits_0(command):
    r = _run(["-m", "kiig_desktop", *command, "--help"])
    assert r.returncode == 0, f"`{' '.join(('kiig', *command))} --help` exited {r.returncode}:\n{r.stderr[-3000:]}"
    assert r.stdout.startswith("usage: kiig") and "Traceback" not in r.stderr
    assert r.stderr == ""


def _no_display_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    return env


def test_desktop_help_without_a_display_prints_help_and_exits_0(tmp_path):
    env = {**_no_display_env(), "KIIG_DATA_DIR": str(tmp_path / "data")}
    r = _run(["-m", "kiig_desktop.gui.app", "--help"], env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith("usage: kiig-desktop") and "--self-test" in r.stdout and r.stderr == ""
    assert not (tmp_path / "data").exists()  # it started nothing


def test_desktop_without_a_display_says_no_display_not_a_missing_library(tmp_path):
    env = {**_no_display_env(), "KIIG_DATA_DIR": str(tmp_path / "data")}
    r = _run(["-m", "kiig_desktop.gui.app"], env)
    assert r.returncode == 2, r.stderr[-3000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no display" in lines[0], r.stderr[-3000:]
    assert "missing" not in lines[0] and "apt-get" not in lines[0] and "xcb-cursor" not in r.stderr
