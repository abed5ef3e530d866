"""Bad session files and hostile conditions: one clear StoreError each, existing data untouched."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest

from kiig_desktop.errors import StoreError
from kiig_desktop.store import SessionStore
from tests.support.require import require
from tests.support.store_support import make_item, make_record, model_info


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _session_with_chains(path: Path, n: int = 3) -> int:
    with SessionStore.open(path) as s:
        model = s.ensure_model(model_info())
        run, _ = s.find_or_create_run("score", {"mode": "answer"}, {"scorer": model}, {}, seed=0)
        for i in range(n):
            s.save_chain(run, f"q{i}", make_record(i, n_tokens=50), item=make_item(i))
    return run


def _assert_refused(path: Path, match: str, *, write_modes=(True, False)) -> None:
    before = _sha(path)
    names = _names(path.parent)
    for write in write_modes:
        with pytest.raises(StoreError, match=match) as err:
            SessionStore.open(path, write=write)
        assert "Traceback" not in str(err.value) and "\n" not in err.value.message
    assert _sha(path) == before
    assert _names(path.parent) == names  # no -wal/-shm/-journal left behind


@pytest.mark.parametrize(
    "content",
    [b"id,question,answer\n1,What is 2+2?,4\n" * 20, b"GGUF\x03\x00\x00\x00" + bytes(300), b"short", b"SQLite format 3\x00"],
    ids=["csv", "gguf", "short", "truncated-header"],
)
def test_a_file_that_is_not_sqlite(tmp_path, content):
    path = tmp_path / "notes.kiig"
    path.write_bytes(content)
    _assert_refused(path, "is not a KIIG session file \\(it is not an SQLite database\\)")


def test_an_sqlite_database_of_another_application(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
    conn.execute("INSERT INTO contacts VALUES ('Ada', '123')")
    conn.commit()
    conn.close()
    _assert_refused(path, "SQLite database of another application.*contacts")


def test_an_sqlite_file_with_another_application_id(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1234")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    _assert_refused(path, "another application")


def test_a_damaged_session(tmp_path):
    path = tmp_path / "s.kiig"
    _session_with_chains(path)
    data = bytearray(path.read_bytes())
    data[100:4096] = os.urandom(3996)  # the schema page
    path.write_bytes(bytes(data))
    _assert_refused(path, "damaged|not a KIIG session")


def test_missing_files_folders_and_directories(tmp_path):
    with pytest.raises(StoreError, match="not found"):
        SessionStore.open(tmp_path / "nope.kiig", create=False)
    with pytest.raises(StoreError, match="not found"):
        SessionStore.open(tmp_path / "nope.kiig", write=False)
    with pytest.raises(StoreError, match="does not exist"):
        SessionStore.open(tmp_path / "no" / "such" / "s.kiig")
    (tmp_path / "dir.kiig").mkdir()
    for write in (True, False):
        with pytest.raises(StoreError, match="not a file"):
            SessionStore.open(tmp_path / "dir.kiig", write=write)
    assert _names(tmp_path) == ["dir.kiig"]


def test_a_read_only_file_is_refused_for_writing_and_readable(tmp_path):
    path = tmp_path / "s.kiig"
    run = _session_with_chains(path)
    path.chmod(0o400)
    try:
        _assert_refused(path, "read-only", write_modes=(True,))
        with SessionStore.open(path, write=False) as s:
            assert [c["key"] for c in s.chains_for_run(run)] == ["q0", "q1", "q2"]
        assert _names(tmp_path) == ["s.kiig"]
    finally:
        path.chmod(0o600)


def test_a_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "s.kiig"
    run = _session_with_chains(path)
    before = _sha(path)
    folder.chmod(0o500)
    try:
        with pytest.raises(StoreError, match="folder .* is read-only"):
            SessionStore.open(path)
        with pytest.raises(StoreError, match="read-only"):
            SessionStore.open(folder / "new.kiig")
        with SessionStore.open(path, write=False) as s:
            assert len(s.chains_for_run(run)) == 3
        assert _sha(path) == before and _names(folder) == ["s.kiig"]
    finally:
        folder.chmod(0o700)


# --------------------------------------------------------------------------- real file systems (root)


@pytest.fixture
def tmpfs(tmp_path):
    """A tiny tmpfs mount (needs root); yields (mount point, remount function)."""
    require("root and mount(8), to mount a tiny tmpfs", os.geteuid() == 0 and shutil.which("mount") is not None,
            "run the tests as root, as CI's `make test` does")
    point = tmp_path / "mnt"
    point.mkdir()

    def mount(size: str) -> None:
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(point)], capture_output=True)
        require(f"a mountable tmpfs ({res.stderr.decode().strip()})", res.returncode == 0,
                "a container needs CAP_SYS_ADMIN")

    def remount(opts: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{opts}", str(point)], check=True)

    yield point, mount, remount
    subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_a_read_only_file_system(tmpfs):
    point, mount, remount = tmpfs
    mount("4m")
    path = point / "s.kiig"
    run = _session_with_chains(path)
    remount("ro")
    before = _sha(path)
    with pytest.raises(StoreError, match="read-only"):
        SessionStore.open(path)
    with SessionStore.open(path, write=False) as s:  # even root cannot create -shm here
        assert len(s.chains_for_run(run)) == 3
    assert _sha(path) == before and _names(point) == ["s.kiig"]


def _fill_until_full(store: SessionStore, run: int, start: int = 100) -> int:
    """Save chains until the disk is full; returns how many were saved."""
    for n in range(10_000):
        try:
            store.save_chain(run, f"q{start + n}", make_record(start + n, n_tokens=600), item=make_item(start + n, "x" * 2000))
        except StoreError as exc:
            assert "disk is full" in str(exc)
            return n
    raise AssertionError("the disk never filled")


def _assert_intact(path: Path, run: int, expected_keys: set[str]) -> None:
    with SessionStore.open(path, write=False) as s:
        assert s.check() == []
        assert {c["key"] for c in s.chains_for_run(run)} == expected_keys
        for c in s.chains_for_run(run):
            i = int(c["key"][1:])
            assert s.load_chain(c["id"], curve=False) == {k: v for k, v in make_record(i, n_tokens=600 if i >= 100 else 50).items() if k != "token_curve"}


def test_a_full_disk_simulated_with_max_page_count(tmp_path):
    path = tmp_path / "s.kiig"
    run = _session_with_chains(path)
    with SessionStore.open(path) as s:
        pages = s.conn.execute("PRAGMA page_count").fetchone()[0]
        s.conn.execute(f"PRAGMA max_page_count = {pages + 60}")
        saved = _fill_until_full(s, run)
        assert saved >= 1
        # nothing of the failed chain is visible, and the store stays usable
        assert len(s.chains_for_run(run)) == 3 + saved
        s.conn.execute("PRAGMA max_page_count = 1073741823")
        s.save_chain(run, "q99", make_record(99, n_tokens=50))
    keys = {f"q{i}" for i in range(3)} | {f"q{100 + n}" for n in range(saved)} | {"q99"}
    _assert_intact(path, run, keys)


def test_a_really_full_disk(tmpfs):
    point, mount, _ = tmpfs
    mount("1m")
    path = point / "s.kiig"
    run = _session_with_chains(path)
    with SessionStore.open(path) as s:
        saved = _fill_until_full(s, run)
    keys = {f"q{i}" for i in range(3)} | {f"q{100 + n}" for n in range(saved)}
    _assert_intact(path, run, keys)
    # creating a session on a full disk fails cleanly and leaves no file
    fd = os.open(point / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    names = _names(point)  # s.kiig-wal may remain: the close could not checkpoint on a full disk
    with pytest.raises(StoreError, match="disk is full"):
        SessionStore.open(point / f"{uuid.uuid4().hex}.kiig")
    assert _names(point) == names
