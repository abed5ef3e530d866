"""The Dashboard's batch form on a real one-worker Ray cluster: the run goes there and shows its node."""

from __future__ import annotations

import pytest

from kiig_desktop.runs.cluster import ClusterProgress
from kiig_desktop.store import SessionStore
from tests.support.process import ray_actors_alive, wait_until
from tests.support.require import RAY_HOW, require_module

from .conftest import wait_idle
from .test_dashboard import show_dashboard


@pytest.fixture
def ray():
    return require_module("ray", RAY_HOW)


@pytest.fixture
def cluster(ray):
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": 80 << 20, "include_dashboard": False})
    c.add_node(num_cpus=1, object_store_memory=80 << 20)
    c.wait_for_nodes()
    yield c
    c.shutdown()


@pytest.mark.slow
def test_a_batch_runs_on_a_cluster_from_the_window_with_progress_per_node(qtbot, window, cluster, ray):
    view = show_dashboard(qtbot, window)
    form = view.form
    qtbot.waitUntil(lambda: form.dataset_ready(), timeout=10000)
    messages: list[str] = []
    form.message.connect(lambda text, _level: messages.append(text))
    form.limit.setValue(1)
    form.max_tokens.setValue(24)

    form.cluster.setText(f"{ray.util.get_node_ip_address()}:1")  # nothing listens there
    assert form.run() is not None
    wait_idle(qtbot, window, timeout=60000)
    assert any("cannot reach a Ray cluster" in m for m in messages), messages
    assert form.nodes.isHidden()

    form.cluster.setText(cluster.address)
    assert form.request().cluster == cluster.address
    assert form.run() is not None and not form.cluster.isEnabled()
    wait_idle(qtbot, window, timeout=240000)
    assert "finished: 1 chains now" in form.status.text(), (form.status.text(), messages)
    node_events = [e for e in form.events if isinstance(e, ClusterProgress) and e.nodes]
    assert node_events and not form.nodes.isHidden()
    rows = [form.nodes.item(i).text() for i in range(form.nodes.count())]
    assert len(rows) == 1 and rows[0].endswith("1 chain"), rows
    assert form.cluster.isEnabled()

    # cancel mid-run: the run is marked cancelled and the actor ends
    form.limit.setValue(3)
    form.seed.setValue(3)  # another run
    assert form.run() is not None  # form.events starts afresh
    qtbot.waitUntil(lambda: any(isinstance(e, ClusterProgress) and any(v["state"] == "running" for v in e.nodes.values())
                                for e in form.events), timeout=120000)
    form.cancel()  # one worker takes the three items one at a time: the cancel lands before the last
    wait_idle(qtbot, window, timeout=600000)
    assert "marked cancelled" in form.status.text(), form.status.text()
    with SessionStore.open(window.session.path, create=False, write=False) as st:
        run = st.get_run(form.run_id)
        assert run["status"] == "cancelled" and run["n_chains"] < 3, run
    wait_until(lambda: ray_actors_alive() == 0, "every Ray actor exited", poll=0.2)
