"""The offline archive runs where hospitals' IT runs it: unpacked into a bare Debian 11 (bullseye,
glibc 2.31) and a bare Debian 13 (trixie) root made with debootstrap (minbase: no Python, no Qt,
no X libraries), and on this machine, it passes ``--self-test`` and ``kiig score`` scores a tiny
dataset on the embedded model, with an empty environment (``env -i``, a fresh HOME, a PATH that
finds nothing). The same archive gives the same numbers in all three.

The roots are made once by packaging/compat/debian_root.sh and cached by a hash of its inputs
(~/.cache/kiig-desktop/roots/). Needs root (chroot, unshare -m) and debootstrap; under ``make test``
a missing prerequisite or archive fails naming it (tests/support/require.py).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.bundle import unpack
from tests.support.require import require

ROOT = Path(__file__).resolve().parents[2]
WHERE = ("this machine", "bullseye", "trixie")
pytestmark = [pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the bundle is built on Linux"),
              pytest.mark.slow]


def _debian_root(suite: str) -> Path:
    require("root (chroot, unshare -m)", os.geteuid() == 0, "run the tests as root; make test in CI does")
    require("debootstrap", shutil.which("debootstrap") is not None, "apt-get install debootstrap")
    lock = Path.home() / ".cache" / "kiig-desktop" / f"roots-{suite}.lock"  # one debootstrap at a time
    lock.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["flock", str(lock), str(ROOT / "packaging" / "compat" / "debian_root.sh"), suite],
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-2000:]
    return Path(r.stdout.strip())


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory) -> Path:
    """The archive unpacked once (a folder holding kiig-desktop-VERSION-linux-x86_64/)."""
    return unpack(tmp_path_factory.mktemp("archive"))


def _chains(folder: Path, n: int = 2) -> Path:
    lines = (ROOT / "resources" / "chains" / "clinical_chains.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    path = folder / "chains.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _run_in(where: str, unpacked: Path, work: Path, args: list[str]) -> subprocess.CompletedProcess:
    """Run the archive's ``args`` (first the executable's name) with ``env -i HOME=<work>/home
    PATH=/nonexistent KIIG_CPU_VARIANT=x64``: on this machine, or chrooted into a Debian root into
    which the unpacked archive and ``work`` are bind-mounted (private mount namespace)."""
    (work / "home").mkdir(parents=True, exist_ok=True)
    (app,) = list(unpacked.iterdir())
    if where == "this machine":
        env = {"HOME": str(work / "home"), "PATH": "/nonexistent", "KIIG_CPU_VARIANT": "x64"}
        cmd = [str(app / args[0]), *(a.replace("/work", str(work)) for a in args[1:])]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    root = _debian_root(where)
    inner = ["env", "-i", "HOME=/work/home", "PATH=/nonexistent", "KIIG_CPU_VARIANT=x64", f"/app/{args[0]}", *args[1:]]
    script = "\n".join([
        "set -e", f"mount -t proc proc {root}/proc", f"mount --rbind /dev {root}/dev",
        f"mkdir -p {root}/app {root}/work",
        f"mount --bind {shlex.quote(str(app))} {root}/app", f"mount --bind {shlex.quote(str(work))} {root}/work",
        f"exec chroot {root} {shlex.join(inner)}"])
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, capture_output=True, text=True, timeout=600)


def _gains(path: Path) -> dict[str, list[float]]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        out[rec["id"]] = [s["info_gain"] for s in rec["steps"]]
    return out


@pytest.mark.parametrize("where", WHERE)
def test_self_test_in_an_empty_environment(where, unpacked, tmp_path):
    r = _run_in(where, unpacked, tmp_path, ["kiig-desktop", "--self-test"])
    assert r.returncode == 0, f"{where}: {r.stderr[-3000:]}"
    assert "self-test OK" in r.stdout


@pytest.fixture(scope="module")
def scores() -> dict[str, dict[str, list[float]]]:
    """Each place's numbers, to compare them once all ran."""
    return {}


@pytest.mark.parametrize("where", WHERE)
def test_kiig_score_scores_a_tiny_dataset_on_the_embedded_model(where, unpacked, tmp_path, scores):
    _chains(tmp_path)
    r = _run_in(where, unpacked, tmp_path, ["kiig", "score", "--model", "default", "--input", "/work/chains.jsonl",
                                            "--output", "/work/out.jsonl"])
    assert r.returncode == 0, f"{where}: {r.stderr[-3000:]}"
    gains = _gains(tmp_path / "out.jsonl")
    assert len(gains) == 2 and all(gains.values()), gains
    scores[where] = gains
    if len(scores) == len(WHERE):
        first = scores[WHERE[0]]
        assert all(s == first for s in scores.values()), scores  # same binary, same x64 kernels
