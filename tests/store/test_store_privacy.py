"""Privacy: owner-only files, nothing written beside the session, no question text in /tmp."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from kiig_desktop.store import SessionStore
from tests.support.store_support import REPO, make_item, make_record, model_info


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_session_files_are_owner_only_even_with_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        path = tmp_path / "s.kiig"
        with SessionStore.open(path) as s:
            model = s.ensure_model(model_info())
            run, _ = s.find_or_create_run("score", {}, {"scorer": model}, {})
            s.save_chain(run, "q1", make_record(1), item=make_item(1))
            with s.reader() as r:
                assert r.chains_for_run(run)
                for suffix in ("", "-wal", "-shm"):
                    assert _mode(Path(f"{path}{suffix}")) == 0o600, suffix
        assert _mode(path) == 0o600
        assert sorted(p.name for p in tmp_path.iterdir()) == ["s.kiig"]  # -wal/-shm removed on close
    finally:
        os.umask(old)


def test_the_data_folder_and_its_subfolders_are_created_owner_only(tmp_path, monkeypatch):
    from kiig_desktop.config import Settings, ensure_private_dir

    monkeypatch.setenv("KIIG_DATA_DIR", str(tmp_path / "new" / "kiig-data"))
    old = os.umask(0o022)
    try:
        logs = ensure_private_dir(Settings.load().data_dir / "logs")
    finally:
        os.umask(old)
    for folder in (tmp_path / "new", tmp_path / "new" / "kiig-data", logs):
        assert _mode(folder) == 0o700, folder
    existing = tmp_path / "existing"
    existing.mkdir()
    os.chmod(existing, 0o755)
    ensure_private_dir(existing / "sub")
    assert _mode(existing) == 0o755  # a folder the user already had is left as it was
    assert _mode(existing / "sub") == 0o700


def test_every_connection_keeps_temporary_data_in_memory(tmp_path):
    with SessionStore.open(tmp_path / "s.kiig") as s, s.reader() as r:
        assert s.conn.execute("PRAGMA temp_store").fetchone()[0] == 2
        assert r.conn.execute("PRAGMA temp_store").fetchone()[0] == 2


@pytest.mark.slow
def test_a_whole_workflow_leaves_no_question_text_outside_the_session(tmp_path):
    """Create, save, sort, vacuum, export, import, in a child whose temp folders we watch."""
    marker = f"MARKER-{uuid.uuid4().hex}"
    work = tmp_path / "work"
    work.mkdir()
    tmp_watch = tmp_path / "tmp-watch"
    tmp_watch.mkdir()
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from kiig_desktop.store import SessionStore
        from kiig_desktop.store.export import export_run, import_jsonl
        from tests.support.store_support import make_item, make_record, model_info
        work = Path({str(work)!r})
        with SessionStore.open(work / "a.kiig") as s:
            m = s.ensure_model(model_info())
            run, _ = s.find_or_create_run("score", {{}}, {{"scorer": m}}, {{}})
            for i in range(300):
                s.save_chain(run, f"q{{i}}", make_record(i, n_steps=3, n_tokens=30), item=make_item(i, "{marker} " + "x" * 3000 + str(i)))
            s.conn.execute("PRAGMA cache_size = 10")  # make big sorts spill, were temp_store not MEMORY
            rows = s.conn.execute("SELECT question FROM items ORDER BY substr(question, 3000) DESC, length(question)").fetchall()
            assert len(rows) == 300
            s.conn.execute("CREATE TEMP TABLE t AS SELECT question FROM items")
            s.conn.execute("VACUUM")
            export_run(s, run, "jsonl", work / "a.jsonl", sys.stdout)
            export_run(s, run, "csv", work / "a.csv", sys.stdout)
        with SessionStore.open(work / "b.kiig") as s:
            import_jsonl(s, work / "a.jsonl")
        print("ok")
        """
    )
    env = {**os.environ, "TMPDIR": str(tmp_watch), "SQLITE_TMPDIR": str(tmp_watch), "TMP": str(tmp_watch), "TEMP": str(tmp_watch)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
    assert sorted(p.name for p in work.iterdir()) == ["a.csv", "a.jsonl", "a.kiig", "b.kiig"]
    assert {_mode(p) for p in work.iterdir()} == {0o600}
    assert list(tmp_watch.iterdir()) == []
    # and no file anywhere under /tmp (outside this test's folder) holds the question text
    needle = marker.encode()
    for root, dirs, files in os.walk("/tmp"):
        if Path(root) == tmp_path or tmp_path in Path(root).parents:
            dirs[:] = []
            continue
        for name in files:
            p = Path(root) / name
            try:
                if p.is_file() and p.stat().st_size < 64 << 20:
                    assert needle not in p.read_bytes(), f"question text found in {p}"
            except OSError:
                continue


def test_exports_do_not_leave_partial_files(tmp_path, monkeypatch):
    from kiig_desktop.store import export as export_mod

    path = tmp_path / "s.kiig"
    with SessionStore.open(path) as s:
        run, _ = s.find_or_create_run("score", {}, {}, {})
        s.save_chain(run, "q1", make_record(1, n_tokens=10), item=make_item(1))

    def broken(rows, fmt, out):
        out.write("partial line with question text\n")
        raise RuntimeError("simulated failure while writing")

    monkeypatch.setattr(export_mod, "write_rows", broken)
    with SessionStore.open(path, write=False) as s:
        with pytest.raises(RuntimeError, match="simulated"):
            export_mod.export_run(s, run, "jsonl", tmp_path / "out.jsonl", sys.stdout)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.kiig"]
