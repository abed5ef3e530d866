"""Issue 14 with real processes and real files: two ``kiig score`` on one new session, a damaged
session, Ctrl-C on an empty new session, corpus folders with links and unreadable subfolders,
owner-only data folders, and a desktop app stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kiig_desktop.resources import resource_path
from kiig_desktop.store import SessionStore
from tests.support.cli import kiig_cmd
from tests.support.process import wait_until
from tests.support.require import require, require_module
from tests.support.store_support import make_item, make_record, model_info

pytestmark = pytest.mark.slow  # races real score processes over a 40,000-line input

CHAINS = resource_path("chains", "clinical_chains.jsonl")


def _catches(pid: int, sig: int) -> bool:
    """True once process ``pid`` has a handler of its own for ``sig`` (the SigCgt mask of /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    (mask,) = [line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")]
    return bool(int(mask, 16) >> (sig - 1) & 1)


def _reading(pid: int, path: Path) -> bool:
    """True while process ``pid`` has ``path`` open (it is past its start and reading its input)."""
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(path) for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to see what a process reads")
def test_two_score_processes_on_a_new_session_lose_nothing(tmp_path):
    """The loser of the writer lock must not delete the session the winner is writing (item 1).

    The issue's recipe, made deterministic with SIGSTOP: a large input (the loser, started before
    the session exists), then a small one on the same new ``--db`` that wins the lock meanwhile.
    """
    db = tmp_path / "new.kiig"
    chains = CHAINS.read_text(encoding="utf-8").splitlines()[:2]
    small = tmp_path / "small.jsonl"
    small.write_text("\n".join(chains) + "\n", encoding="utf-8")
    large = tmp_path / "large.jsonl"
    proto = json.loads(chains[0])
    large.write_text("".join(json.dumps(dict(proto, id=f"c{i}")) + "\n" for i in range(40_000)), encoding="utf-8")
    loser = subprocess.Popen(kiig_cmd("score", "--model", "default", "--input", large, "--output", tmp_path / "l.jsonl",
                                      "--db", db), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    winner = None
    try:
        wait_until(lambda: _reading(loser.pid, large), "the loser to read its input")
        os.kill(loser.pid, signal.SIGSTOP)  # a slow disk: it started before the session existed
        assert not db.exists()
        winner = subprocess.Popen(kiig_cmd("score", "--model", "default", "--input", small, "--output",
                                           tmp_path / "w.jsonl", "--db", db),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: db.exists() and db.stat().st_size > 0, "the winner to create the session")
        os.kill(winner.pid, signal.SIGSTOP)  # holding the lock on a session with nothing in it yet
        try:
            os.kill(loser.pid, signal.SIGCONT)
            _, lerr = loser.communicate(timeout=300)
        finally:
            os.kill(winner.pid, signal.SIGCONT)
        assert loser.returncode == 2 and "in use" in lerr and "Traceback" not in lerr, lerr
        assert db.exists(), "the losing process deleted the session the winner is writing"
        _, werr = winner.communicate(timeout=300)
        assert winner.returncode == 0, werr
    finally:
        for p in (loser, winner):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    with SessionStore.open(db, write=False) as s:
        [run] = s.list_runs()
        assert run["n_chains"] == 2 and run["status"] == "finished"


def test_open_writer_decides_creation_under_the_lock(tmp_path):
    """A process that loses the lock never removes the file, even one it created itself."""
    from kiig_desktop.errors import StoreError
    from kiig_desktop.store.connection import created_here, discard_if_blank

    path = tmp_path / "s.kiig"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys; from kiig_desktop.store import SessionStore; s = SessionStore.open(sys.argv[1]); "
        "print('open', flush=True); sys.stdin.readline(); s.close()"), str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreError, match="in use"):
            SessionStore.open(path)
        assert not created_here(path) and not discard_if_blank(path) and path.exists()
    finally:
        holder.communicate("\n", timeout=30)
    assert discard_if_blank(path) and not path.exists()  # no holder now: a blank session goes


def _damaged_session(path: Path) -> int:
    with SessionStore.open(path) as s:
        run, _ = s.find_or_create_run("score", {"mode": "answer"}, {"scorer": s.ensure_model(model_info())}, {})
        for i in range(40):
            s.save_chain(run, f"q{i}", make_record(i), item=make_item(i))
        s.set_run_status(run, "finished")
    size = path.stat().st_size
    with open(path, "r+b") as fh:  # a garbage page inside the data, as a bad sector or a torn copy leaves
        fh.seek(size - 3 * 4096)
        fh.write(b"\xa5" * 4096)
    return run


def test_score_refuses_to_write_into_a_damaged_session(tmp_path):
    db = tmp_path / "d.kiig"
    run = _damaged_session(db)
    before = db.read_bytes()
    r = subprocess.run(kiig_cmd("score", "--model", "default", "--input", CHAINS, "--output", tmp_path / "o.jsonl",
                                "--db", db), capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "damaged" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert db.read_bytes() == before
    con = sqlite3.connect(db)
    try:
        assert con.execute("SELECT status FROM runs WHERE id = ?", (run,)).fetchone()[0] == "finished"
    finally:
        con.close()


def test_ctrl_c_on_a_new_session_does_not_claim_saved_chains(tmp_path):
    db = tmp_path / "new.kiig"
    p = subprocess.Popen(kiig_cmd("score", "--model", "default", "--input", CHAINS, "--output", tmp_path / "o.jsonl",
                                  "--db", db), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: db.exists() and db.stat().st_size > 0, "the session")
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "Traceback" not in err, err
    assert "nothing was saved" in err and "finished chains are saved" not in err, err


# ------------------------------------------------------------------------------ corpus folders


def test_corpus_links_outside_the_folder_are_reported_not_followed(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("The root password is hunter2.\n", encoding="utf-8")
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "facts.txt").write_text("Metformin is first-line for type 2 diabetes.\n", encoding="utf-8")
    (docs / "inside.md").symlink_to(docs / "facts.txt")  # inside: followed (a duplicate of facts.txt)
    (docs / "passwd.txt").symlink_to(outside)
    (docs / "elsewhere").symlink_to(tmp_path, target_is_directory=True)
    db = tmp_path / "s.kiig"
    r = subprocess.run(kiig_cmd("corpus", "add", "--db", db, "--name", "c", docs, "--json"),
                       capture_output=True, text=True, timeout=120)
    assert "Traceback" not in r.stderr
    files = {f["name"]: f for f in json.loads(r.stdout)["files"]}
    assert files["passwd.txt"]["status"] == "skipped" and "outside" in files["passwd.txt"]["messages"][0]
    assert files["elsewhere"]["status"] == "skipped" and "not followed" in files["elsewhere"]["messages"][0]
    assert files["facts.txt"]["status"] == "added"
    s = subprocess.run(kiig_cmd("corpus", "search", "--db", db, "--name", "c", "--query", "root password hunter2", "--json"),
                       capture_output=True, text=True, timeout=60)
    assert "hunter2" not in s.stdout


def _without_root_powers() -> list[str]:
    """A command prefix that takes root's power to read any folder away (tests may run as root)."""
    if os.geteuid() != 0:
        return []
    require("util-linux setpriv (to drop root's power to read any folder)", Path("/usr/bin/setpriv").exists(),
            "apt-get install util-linux")
    drop = "-dac_override,-dac_read_search"
    return ["/usr/bin/setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}"]


def test_an_unreadable_subfolder_is_reported(tmp_path):
    base = tmp_path / "pub"
    base.mkdir()
    docs = base / "docs"
    (docs / "locked").mkdir(parents=True)
    (docs / "ok.txt").write_text("Aspirin inhibits platelet aggregation.\n", encoding="utf-8")
    (docs / "locked" / "hidden.txt").write_text("Unreadable.\n", encoding="utf-8")
    (docs / "locked").chmod(0)
    try:
        r = subprocess.run(_without_root_powers() + kiig_cmd("corpus", "add", "--db", base / "s.kiig", "--name", "c", docs,
                                                             "--json"), capture_output=True, text=True, timeout=120)
    finally:
        (docs / "locked").chmod(0o755)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    files = {f["name"]: f for f in json.loads(r.stdout)["files"]}
    assert files["locked"]["status"] == "skipped" and "cannot read folder" in files["locked"]["messages"][0]
    assert files["ok.txt"]["status"] == "added"


# ------------------------------------------------------------------------------ data folder, GUI


def test_an_existing_loose_data_folder_is_tightened(tmp_path):
    from kiig_desktop.config import tighten_data_dir

    data = tmp_path / "data"
    (data / "logs").mkdir(parents=True)
    (data / "models").mkdir()
    for f in (data / "settings.json", data / "gui.ini", data / "logs" / "engine.log", data / "models" / "m.gguf"):
        f.write_text("x", encoding="utf-8")
        f.chmod(0o644)
    for d in (data, data / "logs", data / "models"):
        d.chmod(0o755)
    tighten_data_dir(data)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(data) == mode(data / "logs") == mode(data / "models") == 0o700
    assert mode(data / "settings.json") == mode(data / "gui.ini") == mode(data / "logs" / "engine.log") == 0o600
    assert mode(data / "models" / "m.gguf") == 0o644  # model files keep theirs


def test_a_desktop_app_stopped_with_sigterm_removes_its_empty_autosave(tmp_path):
    require_module("PySide6", "pip install -e '.[test]'; `make test` installs it")
    data = tmp_path / "data"
    env = dict(os.environ, KIIG_DATA_DIR=str(data), QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path))
    p = subprocess.Popen([sys.executable, "-c", "import sys; from kiig_desktop.gui.app import main; sys.exit(main(['kiig-desktop']))"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sessions = data / "sessions"
        wait_until(lambda: sessions.is_dir() and any(sessions.glob("*.kiig")), "the autosave session")
        # the app says it is ready for SIGTERM by installing its handler (the event loop starts right after)
        wait_until(lambda: _catches(p.pid, signal.SIGTERM), "the app's SIGTERM handler")
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err[-2000:]
    assert list(sessions.iterdir()) == []  # no empty autosave, no -wal/-shm
    assert stat.S_IMODE((data / "gui.ini").stat().st_mode) == 0o600
