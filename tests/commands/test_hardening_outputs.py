"""Issue 28 (A, F, K), with real ``kiig`` processes: one output policy for every command. An output is
never a session file or one of its SQLite companions (``-wal``, ``-shm``, ``-journal``, existing or
not), never anything but a regular file, and a second writer of the same output is refused while the
first one lives."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kiig_desktop.resources import resource_path
from kiig_desktop.runs.batch import batch_key
from kiig_desktop.store import SessionStore
from tests.support.store_support import make_item, make_record, model_info

CHAINS = resource_path("chains", "clinical_chains.jsonl")


def kiig_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "kiig_desktop", *map(str, args)]


def kiig(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(kiig_cmd(*args), capture_output=True, text=True, timeout=timeout)


def refused(r: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 2, one stderr line holding ``words``, no traceback."""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and len(lines) == 1, r.stderr[-2000:]
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def wait_for(predicate, what: str, timeout: float = 300.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def chains_in(db: Path) -> int:
    """Committed chains, read as another process reads a session being written."""
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return con.execute("SELECT count(*) FROM chains").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def many_chains(path: Path, n: int) -> Path:
    protos = [json.loads(line) for line in CHAINS.read_text(encoding="utf-8").splitlines() if line.strip()]
    path.write_text("".join(json.dumps(dict(protos[i % len(protos)], id=f"c{i}")) + "\n" for i in range(n)), encoding="utf-8")
    return path


def score_session(path: Path, n: int = 3) -> Path:
    """A finished score run of ``n`` chains (no model needed)."""
    with SessionStore.open(path) as store:
        scorer = store.ensure_model(model_info())
        run_id, _ = store.find_or_create_run("score", {"input": "x.jsonl"}, {"scorer": scorer}, {"kiig": "test"}, seed=0)
        for i in range(n):
            store.save_chain(run_id, f"q{i}", make_record(i, n_steps=3, n_tokens=60, curve=False), item=make_item(i))
        store.set_run_status(run_id, "finished")
    return path


def batch_session(path: Path) -> Path:
    """A finished batch run of one model over two items, enough for ``kiig report``."""
    sha = "a" * 64
    with SessionStore.open(path) as store:
        subject = store.ensure_model({"path": "/m/a.gguf", "sha256": sha, "name": "model-A"})
        scorer = store.ensure_model({"path": "/m/s.gguf", "sha256": "c" * 64, "name": "scorer"})
        settings = {"method": "kiig-batch-1", "subjects": [sha], "dataset_sha256": "d" * 64, "n_items": 2}
        run_id, _ = store.find_or_create_run("batch", settings, {"scorer": scorer}, {"kiig": "test"}, seed=0)
        for i in range(2):
            steps = [{"index": 0, "text": "step", "answer_nll": 1.0, "delta_nll": 0.5, "info_gain": 0.5}]
            rec = {"id": f"it-{i}", "mode": "answer", "model": {"path": "/m/s.gguf", "sha256": "c" * 64}, "n_tokens": 20,
                   "steps": steps, "info_gain_mean": 0.5, "delta_nll_mean": 0.5, "correct": bool(i),
                   "subject": {"path": "/m/a.gguf", "sha256": sha, "name": "model-A"}, "extracted_answer": "B",
                   "n_generated_tokens": 10, "timing": {"generation_s": 1.0, "scoring_s": 0.5, "ki_s": 0.0, "total_s": 1.5}}
            gen = {"text": "The answer is (B).", "tokens": [], "model_id": subject, "extracted_answer": "B", "correct": bool(i)}
            store.save_chain(run_id, batch_key(sha, f"it-{i}"), rec, item=make_item(i) | {"id": f"it-{i}"}, generation=gen)
        store.set_run_status(run_id, "finished")
    return path


# ------------------------------------------------------------------------------ A: session companions


@pytest.mark.slow
def test_export_into_the_wal_of_a_session_being_written_is_refused_and_kill_9_keeps_the_session(tmp_path):
    """The issue's reproduction: ``kiig export --output r.kiig-wal`` while ``kiig score --db r.kiig``
    writes, then kill -9 of the run and its model worker: the session must still read."""
    db, src = tmp_path / "r.kiig", many_chains(tmp_path / "in.jsonl", 40)
    writer = subprocess.Popen(kiig_cmd("score", "--model", "default", "--input", src, "--output", tmp_path / "o.jsonl",
                                       "--db", db), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: chains_in(db) >= 2 or writer.poll() is not None, "two committed chains")
        assert writer.poll() is None, "the run ended before the export could race it"
        wal = Path(f"{db}-wal")
        assert wal.exists()
        refused(kiig("export", "--db", db, "--run", "1", "--format", "jsonl", "--output", wal), str(wal), "session")
        assert wal.read_bytes()[:4] in (bytes.fromhex("377f0682"), bytes.fromhex("377f0683"))  # still SQLite's log
    finally:
        os.killpg(writer.pid, signal.SIGKILL)  # the CLI and its model worker, mid-run
        writer.wait()
    done = chains_in(db)
    assert done >= 2
    r = kiig("sessions", "--db", db, "--run", "1", "--check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 run(s)" in r.stdout and "integrity: ok" in r.stdout, r.stdout
    with SessionStore.open(db, write=False) as store:
        assert len(store.chains_for_run(1)) == done


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal", ""])
def test_export_never_writes_a_session_or_its_companions(tmp_path, suffix):
    """Not the session of the command (``--db``) nor any other one, whether the companion exists or not."""
    db, other = score_session(tmp_path / "w.kiig"), score_session(tmp_path / "other.kiig", n=1)
    before = other.read_bytes()
    for target in (Path(f"{db}{suffix}"), Path(f"{other}{suffix}")):
        refused(kiig("export", "--db", db, "--format", "jsonl", "--output", target), str(target))
        assert not suffix or not target.exists()
    assert other.read_bytes() == before
    with SessionStore.open(db, write=False) as store:
        assert store.check() == [] and len(store.chains_for_run(1)) == 3


def test_score_output_into_its_own_session_wal_is_refused_before_anything_runs(tmp_path):
    db, out = tmp_path / "w.kiig", tmp_path / "w.kiig-wal"
    refused(kiig("score", "--model", "default", "--input", CHAINS, "--output", out, "--db", db), str(out))
    assert not out.exists() and not db.exists()
    score_session(db)
    refused(kiig("score", "--model", "default", "--input", CHAINS, "--output", tmp_path / "." / "w.kiig-journal",
                 "--db", db), "w.kiig-journal")
    with SessionStore.open(db, write=False) as store:
        assert len(store.chains_for_run(1)) == 3


def test_ki_output_into_its_session_shm_is_refused_before_the_judge_loads(tmp_path):
    db = score_session(tmp_path / "k.kiig")
    out = Path(f"{db}-shm")
    refused(kiig("ki", "--model", "default", "--db", db, "--corpus", "c", "--input", CHAINS, "--output", out), str(out))
    assert not out.exists()


def test_report_into_the_session_wal_is_refused_and_the_session_opens(tmp_path):
    db = batch_session(tmp_path / "b.kiig")
    out = Path(f"{db}-wal")
    refused(kiig("report", "--db", db, "--format", "json", "--output", out), str(out))
    assert not out.exists()
    r = kiig("report", "--db", db, "--format", "json", "--output", tmp_path / "b.json")  # the policy refuses only what it must
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "b.json").read_text())
    with SessionStore.open(db) as store:
        assert len(store.chains_for_run(1)) == 2


# ------------------------------------------------------------------------------ F: two writers of one output


@pytest.mark.slow
def test_a_second_writer_of_the_same_output_is_refused_while_the_first_lives(tmp_path):
    src, out = many_chains(tmp_path / "in.jsonl", 3), tmp_path / "out.jsonl"
    part = tmp_path / "out.jsonl.part"
    first = subprocess.Popen(kiig_cmd("score", "--model", "default", "--input", src, "--output", out),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: part.exists() or first.poll() is not None, "the first writer's .part file")
        os.kill(first.pid, signal.SIGSTOP)  # a slow first writer: the second comes while it is mid-file
        try:
            second = kiig("export", "--db", score_session(tmp_path / "s.kiig"), "--format", "jsonl", "--output", out)
            refused(second, str(out), f"another kiig process (pid {first.pid})")
            assert part.exists() and not out.exists()
        finally:
            os.kill(first.pid, signal.SIGCONT)
        _, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["c0", "c1", "c2"]
    assert not part.exists() and stat.S_IMODE(out.stat().st_mode) == 0o600


def test_a_part_file_of_a_killed_writer_is_stale_and_replaced(tmp_path):
    src, out = many_chains(tmp_path / "in.jsonl", 40), tmp_path / "out.jsonl"
    part = tmp_path / "out.jsonl.part"
    writer = subprocess.Popen(kiig_cmd("score", "--model", "default", "--input", src, "--output", out),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for(lambda: part.exists() or writer.poll() is not None, "the writer's .part file")
    os.killpg(writer.pid, signal.SIGKILL)
    writer.wait()
    assert part.exists() and not out.exists()
    r = kiig("export", "--db", score_session(tmp_path / "s.kiig"), "--format", "jsonl", "--output", out)
    assert r.returncode == 0, r.stderr
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3 * 3 and not part.exists()


# ------------------------------------------------------------------------------ K: regular files only


def _targets(tmp_path: Path) -> dict[str, Path]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    link = tmp_path / "null-link"
    link.symlink_to("/dev/null")  # what /dev/stdout is: a link to something that is no regular file
    return {"fifo": fifo, "link": link}


@pytest.mark.parametrize("kind", ["fifo", "link"])
@pytest.mark.parametrize("command", ["export", "report"])
def test_a_target_that_is_not_a_regular_file_is_refused_never_replaced(tmp_path, kind, command):
    target = _targets(tmp_path)[kind]
    if command == "export":
        r = kiig("export", "--db", score_session(tmp_path / "s.kiig"), "--format", "jsonl", "--output", target)
    else:
        r = kiig("report", "--db", batch_session(tmp_path / "b.kiig"), "--format", "json", "--output", target)
    refused(r, str(target), "not a regular file")
    mode = os.lstat(target).st_mode
    assert stat.S_ISFIFO(mode) if kind == "fifo" else (stat.S_ISLNK(mode) and os.readlink(target) == "/dev/null")
    assert not Path(f"{target}.part").exists()


def test_dev_stdout_is_refused_and_stays_a_link_as_root(tmp_path):
    """The issue's case: as root, ``--output /dev/stdout`` replaced /dev/stdout with a regular file. Run in
    a private mount namespace over a fresh /dev, so a failure can only damage that copy."""
    unshare = shutil.which("unshare")
    assert unshare and os.geteuid() == 0, "needs root and unshare (util-linux) for a private mount namespace"
    db = score_session(tmp_path / "s.kiig")
    script = (
        "set -e; mount -t tmpfs -o mode=0755 kiig-dev /dev; mknod -m 0666 /dev/null c 1 3; "
        "ln -s /proc/self/fd/1 /dev/stdout; ln -s /proc/self/fd/2 /dev/stderr; "
        'rc=0; "$0" -m kiig_desktop export --db "$1" --format jsonl --output /dev/stdout > "$2" 2> "$3" || rc=$?; '
        'echo "rc=$rc"; if [ -L /dev/stdout ]; then echo "still a link"; else echo "replaced"; fi'
    )
    shown, err = tmp_path / "shown.txt", tmp_path / "err.txt"
    r = subprocess.run([unshare, "-m", "--propagation", "private", "sh", "-c", script, sys.executable, db, shown, err],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["rc=2", "still", "a", "link"], (r.stdout, err.read_text())
    lines = [ln for ln in err.read_text().splitlines() if ln.strip()]
    assert len(lines) == 1 and "/dev/stdout" in lines[0] and "not a regular file" in lines[0], lines
