"""kill -9 of a process that is saving chains: the file stays sound and no partial chain appears.

The child (``tests/support/store_support.py crash``) saves chains in a loop, printing each key once its
transaction has committed. It is SIGKILLed at many points (during start-up and file creation,
between chains, inside a chain's transaction, inside a migration); after each kill the file must
pass ``PRAGMA integrity_check``, every stored chain must be complete and equal to what was meant
to be saved, every acknowledged chain must be there, and a new process resumes where it stopped.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kiig_desktop.store import SCHEMA_VERSION, SessionStore
from tests.support.paths import DATA
from tests.support.store_support import REPO, make_item, make_record, without_curve

SUPPORT = REPO / "tests" / "support" / "store_support.py"
N = 40


def _spawn(path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SUPPORT), "crash", str(path), "0", str(N)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _verify(path: Path, acknowledged: set[str]) -> set[str]:
    """Open as the next run would; check soundness and completeness; return the stored keys."""
    if not path.exists():
        assert not acknowledged
        return set()
    with SessionStore.open(path) as s:
        assert s.conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert s.check() == []
        runs = s.list_runs()
        if not runs:
            assert not acknowledged
            return set()
        [run] = runs
        rows = s.chains_for_run(run["id"])
        stored = {r["key"] for r in rows}
        assert acknowledged <= stored, f"committed chains lost: {sorted(acknowledged - stored)}"
        for r in rows:
            i = int(r["key"][1:])
            expected = make_record(i, n_steps=12, n_tokens=3000)
            chain = s.load_chain(r["id"])
            assert r["status"] == "finished" and r["n_steps"] == 12
            assert json.dumps(without_curve(chain)) == json.dumps(without_curve(expected))
            assert len(chain["token_curve"]["token_ids"]) == 3000
            assert s.load_item(r["id"]) == make_item(i)
            assert len(s.load_generation(r["id"])["tokens"]) == 400
            [ki] = s.load_ki(r["id"])
            assert len(ki["steps"]) == 12
        return stored


@pytest.mark.slow
def test_sigkill_at_many_points_never_leaves_a_partial_chain(tmp_path):
    path = tmp_path / "crash.kiig"
    rng = random.Random(20250501)
    # (lines to read before the kill, extra delay): start-up/creation, then between and inside chains
    plan = [(0, 0.0), (0, 0.05), (0, 0.1), (1, 0.0), (2, 0.001), (3, 0.002), (5, 0.0)]
    plan += [(rng.randint(2, 6), rng.uniform(0, 0.005)) for _ in range(12)]
    stored: set[str] = set()
    for lines, delay in plan:
        proc = _spawn(path)
        acknowledged: set[str] = set()
        if lines == 0:
            time.sleep(delay)
        else:
            for _ in range(lines):
                line = proc.stdout.readline()
                if not line:
                    break
                msg = json.loads(line)
                if "saved" in msg:
                    acknowledged.add(msg["saved"])
            time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        for line in out.splitlines():
            msg = json.loads(line)
            if "saved" in msg:
                acknowledged.add(msg["saved"])
        now = _verify(path, stored | acknowledged)
        assert now >= stored
        stored = now
    # an uninterrupted run resumes: it skips what is stored and completes the rest
    proc = _spawn(path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    assert lines[0] == {"resumed": len(stored)}
    assert {m["saved"] for m in lines if "saved" in m} == {f"q{i}" for i in range(N)} - stored
    assert _verify(path, set()) == {f"q{i}" for i in range(N)}
    with SessionStore.open(path, write=False) as s:
        [run] = s.list_runs()
        assert run["status"] == "finished" and run["n_chains"] == N


def _hang(code: str, path: Path) -> None:
    """Run ``code`` in a child until it prints 'hang', then SIGKILL it."""
    prog = f"import sys; sys.path.insert(0, {str(REPO)!r})\n" + textwrap.dedent(code)
    proc = subprocess.Popen([sys.executable, "-c", prog, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    assert line == "hang", err


def test_kill_inside_a_chain_transaction(tmp_path):
    path = tmp_path / "s.kiig"
    _hang(
        """
        import time
        from kiig_desktop.store import SessionStore
        from tests.support.store_support import make_record, model_info
        s = SessionStore.open(sys.argv[1])
        run, _ = s.find_or_create_run("score", {}, {"scorer": s.ensure_model(model_info())}, {})
        s.save_chain(run, "q1", make_record(1))
        with s.transaction():
            s.save_chain(run, "q2", make_record(2))  # written, not committed
            print("hang", flush=True)
            time.sleep(60)
        """,
        path,
    )
    with SessionStore.open(path) as s:
        assert s.check() == []
        assert [c["key"] for c in s.chains_for_run(1)] == ["q1"]
        assert s.conn.execute("SELECT count(*) FROM steps").fetchone()[0] == 12
        assert s.get_run(1)["status"] == "interrupted"


def test_kill_during_creation_and_during_a_migration(tmp_path):
    path = tmp_path / "new.kiig"
    _hang(
        """
        import time
        from kiig_desktop.store import connection, schema
        def hang(conn):
            print("hang", flush=True)
            time.sleep(60)
        connection.MIGRATIONS = [schema.Migration(1, "slow", schema.MIGRATIONS[0].statements, hang)]
        from kiig_desktop.store import SessionStore
        SessionStore.open(sys.argv[1])
        """,
        path,
    )
    with SessionStore.open(path) as s:  # left blank by the kill: initialised now
        assert s.schema_version == SCHEMA_VERSION and s.check() == []

    old = tmp_path / "old.kiig"
    shutil.copyfile(DATA / "session_v1.kiig", old)
    _hang(
        f"""
        import time
        from kiig_desktop.store import connection, schema, session
        def hang(conn):
            print("hang", flush=True)
            time.sleep(60)
        step = schema.Migration({SCHEMA_VERSION + 1}, "slow", ("ALTER TABLE chains ADD COLUMN note TEXT",), hang)
        connection.MIGRATIONS = [*schema.MIGRATIONS, step]
        connection.SCHEMA_VERSION = {SCHEMA_VERSION + 1}
        from kiig_desktop.store import SessionStore
        SessionStore.open(sys.argv[1])
        """,
        old,
    )
    with SessionStore.open(old) as s:  # the interrupted upgrade rolled back; the data is all there
        assert s.schema_version == SCHEMA_VERSION and s.check() == []
        assert "note" not in [r[1] for r in s.conn.execute("PRAGMA table_info(chains)")]
        assert len(s.chains_for_run(1)) == 4
