"""Readers while a run writes (threads and processes), and the one-writer rule across processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from kiig_desktop.errors import StoreError
from kiig_desktop.store import SessionStore
from tests.support.process import HANG_GUARD_S
from tests.support.store_support import REPO, make_record, model_info


def _python(code: str, *args: str, **kw) -> subprocess.Popen:
    prog = f"import sys; sys.path.insert(0, {str(REPO)!r})\n" + textwrap.dedent(code)
    return subprocess.Popen([sys.executable, "-c", prog, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.PIPE, text=True, **kw)


def _new_run(store: SessionStore) -> int:
    model = store.ensure_model(model_info())
    return store.find_or_create_run("score", {"mode": "answer"}, {"scorer": model}, {}, seed=0)[0]


def test_a_reader_thread_sees_only_whole_chains_while_a_run_writes(tmp_path):
    n = 40
    store = SessionStore.open(tmp_path / "s.kiig")
    run = _new_run(store)
    reader = store.reader()
    seen: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def read_loop() -> None:
        try:
            while True:
                finished = done.is_set()
                rows = reader.chains_for_run(run)
                seen.append(len(rows))
                for row in rows[-2:]:
                    chain = reader.load_chain(row["id"])
                    assert len(chain["steps"]) == row["n_steps"] == 12
                    assert len(chain["token_curve"]["surprisal_bits"]) == 600
                if finished:
                    return
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)

    thread = threading.Thread(target=read_loop)
    thread.start()
    try:
        for i in range(n):
            store.save_chain(run, f"q{i}", make_record(i))
    finally:
        done.set()
        thread.join(30)
        reader.close()
        store.close()
    assert not errors, errors
    assert seen == sorted(seen) and seen[-1] == n
    assert len(seen) > 3


def test_a_reader_process_follows_a_writer_process(tmp_path):
    path = tmp_path / "s.kiig"
    n = 30
    store = SessionStore.open(path)
    run = _new_run(store)
    child = _python(
        """
        import json, time
        from kiig_desktop.store import SessionStore
        path, run, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        with SessionStore.open(path, write=False) as s:
            print("ready", flush=True)
            counts = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                rows = s.chains_for_run(run)
                for row in rows:
                    assert row["n_steps"] == 12 and row["status"] == "finished"
                counts.append(len(rows))
                if len(rows) == n:
                    break
        print(json.dumps(counts), flush=True)
        """,
        str(path), str(run), str(n),
    )
    assert child.stdout.readline().strip() == "ready"
    for i in range(n):
        store.save_chain(run, f"q{i}", make_record(i))
        time.sleep(0.002)
    out, err = child.communicate(timeout=60)
    store.close()
    assert child.returncode == 0, err
    counts = json.loads(out.strip().splitlines()[-1])
    assert counts == sorted(counts) and counts[-1] == n


def test_a_second_writer_process_gets_a_clear_in_use_message(tmp_path):
    path = tmp_path / "s.kiig"
    store = SessionStore.open(path)
    _new_run(store)
    child = _python(
        """
        from kiig_desktop.errors import StoreError
        from kiig_desktop.store import SessionStore, connection
        connection.BUSY_TIMEOUT_MS = 10**9  # a refusal that waited for a lock would hang, not just be slow
        try:
            SessionStore.open(sys.argv[1])
        except StoreError as exc:
            print(exc, flush=True)
            sys.exit(2)
        with SessionStore.open(sys.argv[1], write=False) as s:  # viewing works meanwhile
            print(len(s.list_runs()))
        """,
        str(path),
    )
    out, err = child.communicate(timeout=HANG_GUARD_S)  # only a hang guard: no lock wait may happen at all
    assert child.returncode == 2, err
    assert f"session {path} is in use by another process" in out
    store.close()
    # once the writer is gone, the next process may write
    child = _python("from kiig_desktop.store import SessionStore\nSessionStore.open(sys.argv[1]).close()\nprint('ok')", str(path))
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0 and out.strip() == "ok", err


def test_one_writer_per_process_too(tmp_path):
    path = tmp_path / "s.kiig"
    with SessionStore.open(path) as store:
        with pytest.raises(StoreError, match="in use"):
            SessionStore.open(path)
        with store.reader() as r:
            assert r.list_runs() == []
        store.ensure_model(model_info())  # the failed attempt did not disturb the real writer
    SessionStore.open(path).close()


def test_a_failed_writer_attempt_keeps_this_process_sqlite_locks(tmp_path):
    """Closing any descriptor of a file drops all of the process's POSIX locks on it (SQLite's
    included); the writer-lock descriptor must stay open while this process reads the file."""
    path = tmp_path / "s.kiig"
    SessionStore.open(path).close()
    child = _python(
        """
        from kiig_desktop.store import SessionStore
        from tests.support.store_support import make_record, model_info
        s = SessionStore.open(sys.argv[1])
        m = s.ensure_model(model_info())
        run, _ = s.find_or_create_run("score", {}, {"scorer": m}, {})
        print("ready", flush=True)
        sys.stdin.readline()
        s.save_chain(run, "q1", make_record(1))
        s.close()  # would checkpoint and delete the WAL if it were the last connection
        print("closed", flush=True)
        """,
        str(path),
    )
    assert child.stdout.readline().strip() == "ready"
    reader = SessionStore.open(path, write=False)
    try:
        with pytest.raises(StoreError, match="in use"):
            SessionStore.open(path)  # opens, fails to lock, must not close its descriptor yet
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "closed"
        assert child.wait(30) == 0
        assert Path(f"{path}-wal").exists(), "the other process believed it was the last connection"
        assert [c["key"] for c in reader.chains_for_run(1)] == ["q1"]
    finally:
        reader.close()
    assert not Path(f"{path}-wal").exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_keep_the_writer_lock(tmp_path):
    path = tmp_path / "s.kiig"
    store = SessionStore.open(path)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        time.sleep(5)
        os._exit(0)
    try:
        store.close()
        SessionStore.open(path).close()  # the child still runs, but holds no lock
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
