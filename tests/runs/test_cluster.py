"""`kiig run --cluster` on a real two-node Ray cluster on this machine (ray.cluster_utils.Cluster).

The nodes listen on this machine's own network address, not 127.0.0.1: ray.init() replaces a loopback
address with the machine's address, so a loopback-only head cannot be joined (the CLI says so).

The stored rows of a cluster run equal a local run's (generations identical, numbers within 1e-4),
also when a node is removed mid-run; a model missing on a node is one clear error naming the node.
"""

from __future__ import annotations

import math
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kiig_desktop import cli
from kiig_desktop.store import SessionStore
from tests.support.cli import kiig, kiig_popen
from tests.support.corpus import demo_corpus_session
from tests.support.process import count_rows, freeze, kill_group, ray_actors_alive, wait_until
from tests.support.require import RAY_HOW, require_module
from tests.support.sample_data import write_samples

pytestmark = pytest.mark.slow  # starts a Ray cluster and runs batches on it

MAX_TOKENS = "40"
NODE = {"num_cpus": 1, "object_store_memory": 80 << 20}  # on this machine's address: Ray cannot join loopback


@pytest.fixture(scope="module")
def ray():
    """Ray itself: a missing or broken install fails under `make test` (tests/support/require.py)."""
    return require_module("ray", RAY_HOW)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """Per node a models folder (KIIG_MODELS_DIR there); node "a" holds a file named like the driver's other model."""
    from tests.support.gguf_factory import write_tiny_gguf

    root = tmp_path_factory.mktemp("nodes")
    out = {name: root / name for name in ("a", "b", "driver")}
    write_tiny_gguf(out["driver"] / "elsewhere.gguf", name="only on the driver")
    write_tiny_gguf(out["a"] / "elsewhere.gguf", name="same name, other content", context=512)
    out["b"].mkdir()
    return out


@pytest.fixture(scope="module")
def cluster(ray, folders):
    """A head that runs no work (0 CPUs) and two worker nodes of 1 CPU each, all on 127.0.0.1."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={**NODE, "num_cpus": 0, "include_dashboard": False})
    c.kiig_nodes = {name: c.add_node(**NODE, env_vars={"KIIG_MODELS_DIR": str(folders[name])}) for name in ("a", "b")}
    c.wait_for_nodes()
    yield c
    c.shutdown()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_samples(tmp_path_factory.mktemp("data") / "mixed.jsonl", slice(2), slice(2))


def _args(dataset: Path, db: Path, *extra: str) -> list[str]:
    return ["run", "--dataset", str(dataset), "--layout", "generic", "--models", "default", "--scorer", "default",
            "--db", str(db), "--max-tokens", MAX_TOKENS, "--threads", "1", *extra]


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("ref") / "local.kiig"
    r = kiig(*_args(dataset, db))
    assert r.returncode == 0, r.stderr
    return db


def _rows(db: Path) -> dict:
    """Every stored result of the batch run, without wall-clock timings and timestamps."""
    out = {}
    with SessionStore.open(db, write=False) as store:
        (run,) = [r for r in store.list_runs() if r["kind"] == "batch"]
        out["_run"] = (run["status"], run["settings"], run["seed"])
        for chain in store.chains_for_run(run["id"]):
            record = store.load_chain(chain["id"])
            record.pop("timing")
            ki = [{k: v for k, v in ev.items() if k not in ("created", "chain_sha256")}  # the hash covers the timings
                  for ev in store.load_ki(chain["id"])]
            out[chain["key"]] = {"record": record, "generation": store.load_generation(chain["id"]),
                                 "item": store.load_item(chain["id"]), "status": chain["status"], "ki": ki}
    return out


def _same(a, b, where: str = "") -> list[str]:
    """Where ``a`` and ``b`` differ: strings, ints and structure exactly, floats within 1e-4."""
    if isinstance(a, float) or isinstance(b, float):
        ok = isinstance(a, int | float) and isinstance(b, int | float) and (math.isclose(a, b, abs_tol=1e-4) or a == b)
        return [] if ok else [f"{where}: {a!r} != {b!r}"]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys {sorted(a.keys() ^ b.keys())}"]
        return [d for k in a for d in _same(a[k], b[k], f"{where}.{k}")]
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return [f"{where}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _same(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def test_cluster_run_killed_then_resumed_stores_what_a_local_run_stores(cluster, dataset, reference, tmp_path):
    db = tmp_path / "cluster.kiig"
    # --parallel 2: each actor takes two items and generates their replies at once, as a local --parallel does
    args = _args(dataset, db, "--cluster", cluster.address, "--cluster-workers", "2", "--parallel", "2")
    proc = kiig_popen(*args, stdout=subprocess.DEVNULL)
    wait_until(lambda: count_rows(db) >= 1, "a first chain was saved", proc)
    freeze(proc)  # nothing is saved between counting and killing
    done = count_rows(db)
    kill_group(proc)  # the driver, mid-run; Ray ends its actors
    assert 1 <= done < 4
    r = kiig(*args)
    assert r.returncode == 0, r.stderr
    assert f"{done} of 4 chains already done" in r.stderr
    ref, got = _rows(reference), _rows(db)
    assert _same(got, ref) == []
    for key, row in ref.items():
        if key != "_run":
            assert got[key]["generation"]["text"] == row["generation"]["text"]
    with SessionStore.open(db, write=False) as store:
        assert store.check() == []
        (run,) = store.list_runs()
        nodes = {store.load_chain(c["id"])["timing"]["node"] for c in store.chains_for_run(run["id"])}
    assert len(nodes) == 2, nodes  # both worker nodes did work
    r = kiig(*args)
    assert r.returncode == 0 and "4 of 4 chains already done" in r.stderr, r.stderr


def test_a_node_removed_mid_run_loses_nothing(cluster, dataset, reference, tmp_path):
    db = tmp_path / "lost.kiig"
    proc = kiig_popen(*_args(dataset, db, "--cluster", cluster.address, "--cluster-workers", "2"))
    wait_until(lambda: count_rows(db) >= 1, "a first chain was saved", proc)
    assert proc.poll() is None, proc.communicate()[1]
    # both actors are busy now (2 actors, 4 items, 1 done): the removed node takes a unit with it
    cluster.remove_node(cluster.kiig_nodes.pop("a"), allow_graceful=False)
    _, stderr = proc.communicate(timeout=400)
    assert proc.returncode == 0, stderr
    assert "was lost" in stderr and "run again elsewhere" in stderr, stderr
    assert _same(_rows(db), _rows(reference)) == []


def test_a_model_missing_on_a_node_is_one_clear_error_naming_it(cluster, folders, dataset, tmp_path):
    node_ids = {name: node.node_id[:8] for name, node in cluster.kiig_nodes.items()}
    r = kiig("run", "--dataset", str(dataset), "--layout", "generic", "--models", str(folders["driver"] / "elsewhere.gguf"),
             "--scorer", "default", "--db", str(tmp_path / "missing.kiig"), "--max-tokens", MAX_TOKENS,
             "--cluster", cluster.address, "--cluster-workers", "1")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    (first,) = [line for line in r.stderr.splitlines() if "node " in line]  # after the progress line: one line, plus the hint
    print(first)
    if "is not the same file" in first:  # node "a" has a file of that name with other content
        assert node_ids.get("a", "--") in first and str(folders["a"]) in first
    else:
        assert "has no model file with SHA-256" in first and any(i in first for i in node_ids.values()), first
    with SessionStore.open(tmp_path / "missing.kiig", write=False) as store:
        assert [r["status"] for r in store.list_runs()] == ["failed"]


def test_knowledge_index_on_a_cluster_is_judged_by_the_driver_as_a_local_run_judges_it(cluster, tmp_path):
    """Nodes generate and score; the driver judges each arriving chain against the session's corpus."""
    data = write_samples(tmp_path / "two.jsonl", slice(2, 4))
    corpus = demo_corpus_session(tmp_path / "corpus.kiig")
    ki = ["--judge", "default", "--corpus", "clinical"]
    local, remote = tmp_path / "local.kiig", tmp_path / "remote.kiig"
    shutil.copy(corpus, local)
    shutil.copy(corpus, remote)
    r = kiig(*_args(data, local, *ki))
    assert r.returncode == 0, r.stderr
    r = kiig(*_args(data, remote, *ki, "--cluster", cluster.address, "--cluster-workers", "2"))
    assert r.returncode == 0, r.stderr
    ref, got = _rows(local), _rows(remote)
    assert _same(got, ref) == []
    chains = [row for key, row in got.items() if key != "_run"]
    assert len(chains) == 2 and all(row["ki"] and row["record"]["ki"]["corpus"] == "clinical" for row in chains)
    # the driver judged: at least one step has a KI, and every chain's mean is that of its judged steps
    assert sum(row["record"]["ki"]["n_judged"] for row in chains) > 0
    for row in chains:
        judged = [s["ki"] for s in row["ki"][0]["steps"] if s["applicable"] and s["ki"] is not None]
        assert row["record"]["ki"]["n_judged"] == len(judged)
        assert row["record"]["ki_mean"] == (pytest.approx(sum(judged) / len(judged)) if judged else None)


def test_ctrl_c_stops_a_cluster_run_and_its_actors(cluster, dataset, tmp_path):
    db = tmp_path / "interrupted.kiig"
    proc = kiig_popen(*_args(dataset, db, "--cluster", cluster.address))
    wait_until(lambda: count_rows(db) >= 1, "a first chain was saved", proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    with SessionStore.open(db, write=False) as store:
        assert [r["status"] for r in store.list_runs()] == ["cancelled"]
    wait_until(lambda: ray_actors_alive() == 0, "every Ray actor exited", poll=0.2)


def test_a_worker_no_node_can_host_is_a_clear_error_not_a_wait(cluster, dataset, tmp_path):
    r = kiig(*_args(dataset, tmp_path / "gpu.kiig", "--cluster", cluster.address, "--gpus-per-worker", "1"), timeout=120)
    assert r.returncode == 2, r.stderr
    assert "no node of the cluster can host a worker that needs 1 CPUs, 1 GPUs" in r.stderr, r.stderr


def test_without_ray_the_cluster_path_says_how_to_install_it(dataset, tmp_path):
    """Runs whether or not Ray is installed: the child process hides it (``import ray`` -> ImportError)."""
    code = ("import sys; sys.modules['ray'] = None; sys.argv[0] = 'kiig'; "
            "from kiig_desktop import cli; sys.exit(cli.main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, *_args(dataset, tmp_path / "s.kiig", "--cluster", "10.0.0.1:6379")],
                       capture_output=True, text=True, timeout=400)
    assert r.returncode == 2, r.stderr
    assert "make install-cluster" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_an_unreachable_or_loopback_address_is_one_clear_error(ray, dataset, tmp_path, capsys):
    free_port = f"{ray.util.get_node_ip_address()}:1"
    assert cli.main(_args(dataset, tmp_path / "s.kiig", "--cluster", free_port)) == 2
    assert f"cannot reach a Ray cluster at {free_port}" in capsys.readouterr().err
    assert cli.main(_args(dataset, tmp_path / "s.kiig", "--cluster", "127.0.0.1:6379")) == 2
    assert "loopback" in capsys.readouterr().err


@pytest.fixture(autouse=True)
def _keep_two_nodes(request):
    """After the removal test, put a node "a" back so later tests see two worker nodes."""
    yield
    if "cluster" in request.fixturenames:
        c = request.getfixturevalue("cluster")
        if "a" not in c.kiig_nodes:
            folders = request.getfixturevalue("folders")
            c.kiig_nodes["a"] = c.add_node(**NODE, env_vars={"KIIG_MODELS_DIR": str(folders["a"])})
            c.wait_for_nodes()

