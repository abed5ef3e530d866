"""Ray's token authentication with `kiig run --cluster` (the README's advice, checked): a driver with the
cluster's token runs the batch; one without it, or with another token, is refused with one clear line.

The cluster runs in a child process, so this process's Ray state (token loader, connections) stays
that of the other cluster tests.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import textwrap

import pytest

from kiig_desktop.resources import resource_path
from kiig_desktop.store import SessionStore
from tests.support.require import RAY_HOW, require_module

CLUSTER = textwrap.dedent(
    """
    import sys
    from ray.cluster_utils import Cluster
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 80 << 20, "include_dashboard": False})
    c.wait_for_nodes()
    print(c.address, flush=True)
    sys.stdin.read()  # until the test closes stdin
    c.shutdown()
    """
)

pytestmark = pytest.mark.slow  # starts a token-authenticated Ray cluster


@pytest.fixture(scope="module")
def token_cluster():
    require_module("ray", RAY_HOW)
    token = secrets.token_hex(16)
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    proc = subprocess.Popen([sys.executable, "-c", CLUSTER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    address = proc.stdout.readline().strip()
    assert address, "the token-authenticated test cluster did not start"
    yield address, token
    proc.stdin.close()
    proc.wait(timeout=60)


def _run(address: str, db, env: dict) -> subprocess.CompletedProcess:
    data = resource_path("datasets", "arithmetic.jsonl")
    return subprocess.run([sys.executable, "-m", "kiig_desktop", "run", "--dataset", str(data), "--limit", "1", "--models",
                           "default", "--scorer", "default", "--max-tokens", "16", "--db", str(db), "--cluster", address],
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_only_a_driver_with_the_token_may_run_on_a_token_cluster(token_cluster, tmp_path):
    address, token = token_cluster
    plain = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    for label, env in (("none", plain), ("wrong", dict(plain, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16)))):
        r = _run(address, tmp_path / f"{label}.kiig", env)
        assert r.returncode == 2, (label, r.stderr)
        lines = [line for line in r.stderr.splitlines() if line.startswith("kiig:")]
        assert len(lines) == 1 and f"cannot join the Ray cluster at {address}" in lines[0], (label, r.stderr)
        assert "RAY_AUTH_MODE=token" in r.stderr  # the hint
        with SessionStore.open(tmp_path / f"{label}.kiig", write=False) as store:
            assert [run["n_chains"] for run in store.list_runs()] == [0]
    r = _run(address, tmp_path / "ok.kiig", dict(plain, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token))
    assert r.returncode == 0, r.stderr
    with SessionStore.open(tmp_path / "ok.kiig", write=False) as store:
        assert [run["n_chains"] for run in store.list_runs()] == [1]
