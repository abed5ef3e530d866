"""The cluster path's overhead per item: `kiig run --cluster` against the local run, same worker processes.

Both paths run the same batch (generate + score, no KI; embedded model; the first ``--limit`` items of
each sample dataset) in a fresh session with one subject/scorer engine worker of ``--threads``
threads: locally through ``iter_batch`` (``--parallel 1``: one item at a time, like one actor), and on a
one-node Ray cluster on this machine (``ray.cluster_utils``; its start-up is not counted, a real
cluster is up before a run) through ``iter_cluster_batch`` with one actor. Wall time counts from the
call to the last commit, model load (and for the cluster: joining, the actor's start) included;
"steady" is the time per item between the first and the last commit, which leaves the fixed start
costs out. Rounds alternate local and cluster, as this 2-core machine is shared. The stored
generations of both paths are compared.

    python benchmarks/bench_cluster.py [--limit 4] [--max-tokens 96] [--rounds 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from _util import machine, save

from kiig_desktop.config import EngineOptions
from kiig_desktop.resources import resource_path
from kiig_desktop.runs.batch import BatchConfig, BatchProgress, iter_batch
from kiig_desktop.runs.cluster import ClusterConfig, iter_cluster_batch
from kiig_desktop.store import SessionStore

SETS = ("clinical_mcq.jsonl", "arithmetic.jsonl")


def dataset(limit: int, out: Path) -> Path:
    lines = []
    for name in SETS:
        lines += resource_path("datasets", name).read_text().splitlines()[:limit]
    path = out / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def texts(db: Path) -> dict:
    with SessionStore.open(db, write=False) as store:
        run = store.list_runs()[0]
        return {c["key"]: store.load_generation(c["id"])["text"] for c in store.chains_for_run(run["id"])}


def one(path: str, data: Path, db: Path, args, address: str | None) -> dict:
    db.unlink(missing_ok=True)
    config = BatchConfig(max_tokens=args.max_tokens, layout="generic")
    options = EngineOptions(n_threads=args.threads)
    commits: list[float] = []
    started = time.perf_counter()
    with SessionStore.open(db, write=True) as store:
        if address:
            gen = iter_cluster_batch(store, data, ["default"], "default", config=config, options=options,
                                     cluster=ClusterConfig(address, workers=1, cpus_per_worker=args.threads))
        else:
            gen = iter_batch(store, data, ["default"], "default", config=config, options=options, parallel=1)
        last_done = 0
        for event in gen:
            if isinstance(event, BatchProgress) and event.done > last_done:  # a chain was committed
                last_done = event.done
                commits.append(time.perf_counter() - started)
    n = len(commits)
    return {"path": path, "items": n, "wall_s": round(commits[-1], 2), "per_item_s": round(commits[-1] / n, 3),
            "steady_per_item_s": round((commits[-1] - commits[0]) / (n - 1), 3) if n > 1 else None,
            "first_commit_s": round(commits[0], 2), "load_1min": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=4, help="items per sample dataset")
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from ray.cluster_utils import Cluster

    out = Path(tempfile.mkdtemp(prefix="kiig-bench-cluster-"))
    data = dataset(args.limit, out)
    t = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": args.threads, "object_store_memory": 100 << 20,
                                                            "include_dashboard": False})
    cluster.wait_for_nodes()
    startup = time.perf_counter() - t
    runs = []
    try:
        for r in range(args.rounds):
            for path in (("local", "cluster") if r % 2 == 0 else ("cluster", "local")):
                res = one(path, data, out / f"{path}.kiig", args, cluster.address if path == "cluster" else None)
                res["round"] = r
                print(res, flush=True)
                runs.append(res)
            assert texts(out / "local.kiig") == texts(out / "cluster.kiig"), "the two paths generated different texts"
    finally:
        cluster.shutdown()

    def med(path: str, key: str) -> float:
        return statistics.median(x[key] for x in runs if x["path"] == path)

    summary = {k: {p: round(med(p, k), 3) for p in ("local", "cluster")} for k in ("per_item_s", "steady_per_item_s", "first_commit_s")}
    for v in summary.values():
        v["overhead_pct"] = round(100 * (v["cluster"] / v["local"] - 1), 1)
    result = {"benchmark": "cluster_overhead", "machine": machine(), "items": runs[0]["items"], "max_tokens": args.max_tokens,
              "threads": args.threads, "cluster_startup_s": round(startup, 1), "runs": runs, "median": summary,
              "same_generations": True}
    print(summary)
    save(args.json, result)


if __name__ == "__main__":
    main()
