"""A batch run on a Ray cluster (``kiig run ... --cluster ADDRESS``): same units, same rows, same resume.

The driver (this process) plans the run exactly like a local one (``runs.batch.plan_batch``), splits
what is pending into (item, model) units and hands them, one at a time (N with ``--parallel N``),
to Ray actors; each actor (``runs.cluster_node.NodeWorker``) owns one engine worker per model file
on its node, loaded once, with its CPUs, GPUs and memory declared to Ray. Results stream back and the driver alone commits
them, through the local run's own commit (``runs.batch.commit_chain``), as they arrive. A unit whose
actor or node dies is put back in the queue and runs on another actor: nothing is lost and nothing
is committed twice, so the stored rows equal a local run's.

Ray is imported here only, and only when a cluster run starts: everything else works without it.
The only sockets this product opens are Ray's and the reachability probe below, and only on this
path (see README, "On a Ray cluster").
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..config import EngineOptions
from ..engine.client import EngineClient, estimate_kv_bytes
from ..engine.models import ModelInfo
from ..errors import Cancelled, InputError, KiigError
from ..events import CancelToken, ItemDone, Message
from .batch import BatchConfig, BatchProgress, BatchSummary, commit_chain, plan_batch
from .batch_stages import _Context, _judge
from .chain import guarded
from .cluster_node import NodeWorker

RAY_MISSING = "the cluster path needs Ray, which is not installed: run `make install-cluster`"
RAY_NOT_FROZEN = ("the cluster path needs Ray, which the installed app does not include: run `kiig run --cluster` "
                  "from a Python install of KIIG Desktop with `make install-cluster`")
MAX_LOST_FACTOR = 3  # actors that may die in one run, per actor asked for, before the run gives up


@dataclass
class ClusterConfig:
    """Where and how to run: the Ray address, actors and what each declares to Ray."""

    address: str
    workers: int | None = None  # actors per subject model; None: the cluster's CPUs / cpus_per_worker
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    node_models: Sequence[str] = ()  # folders searched on every node, besides the node's own models
    bind: str | None = None  # the address this driver's Ray core worker listens on (None: Ray's choice)
    parallel: int = 1  # units an actor takes at once, their replies generated together (``--parallel``)
    probe_timeout_s: float = 5.0


@dataclass
class ClusterProgress(BatchProgress):
    """Batch progress plus where: ``node`` of the latest event, and ``nodes``: per node its state and chains done."""

    node: str = ""
    nodes: dict[str, dict] = field(default_factory=dict)  # label -> {"state": loading|running|lost|idle, "done": int}


def import_ray():
    """Ray, or the one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError(RAY_NOT_FROZEN if getattr(sys, "frozen", False) else RAY_MISSING) from None
    return ray


def parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--cluster wants HOST:PORT of the Ray head (the --port of `ray start --head`), got {address!r}")
    return host.strip("[]"), int(port)


def probe(address: str, timeout_s: float) -> None:
    """Fail at once with one line unless a Ray head answers at ``address`` (Ray itself retries for
    minutes, against a listener of another kind for ever)."""
    import socket  # the cluster path only; the local paths open no socket (tests/project/test_no_sockets.py)

    host, port = parse_address(address)
    resolved = resolve_head(host, port, address)
    try:
        conn = socket.create_connection((resolved, port), timeout=timeout_s)
    except OSError as exc:
        raise InputError(f"cannot reach a Ray cluster at {address}: {exc.strerror or exc}",
                         hint="start it with `ray start --head --node-ip-address=IP --port=PORT` and check the firewall") from None
    with conn:
        check_ray_head(conn, address, timeout_s)


def resolve_head(host: str, port: int, address: str) -> str:
    """The address ``host`` names, refused when it is this machine's loopback in any spelling
    (``127.1``, ``127.0.0.2``, ``2130706433``, ``::1``, ``::ffff:127.0.0.1``, ``localhost``...)."""
    import ipaddress
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise InputError(f"cannot reach a Ray cluster at {address}: {getattr(exc, 'strerror', None) or exc}") from None
    ips = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for ip in ips:
        mapped = getattr(ip, "ipv4_mapped", None) or ip
        if mapped.is_loopback or mapped.is_unspecified:
            raise InputError(f"--cluster {address}: that is this machine's loopback address ({mapped}); Ray replaces "
                             "a loopback address with this machine's network address, so a head listening on loopback "
                             "only cannot be joined; name the head's private-network address")
    return str(ips[0])


# a gRPC server (Ray's GCS) speaks HTTP/2: it answers the client preface with a SETTINGS frame
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_H2_SETTINGS = 4


def check_ray_head(conn, address: str, timeout_s: float) -> None:
    """InputError unless the listener on ``conn`` answers like a Ray head's GCS (HTTP/2, as gRPC is);
    an HTTP/1 server, a listener of any other kind or one that stays silent is not a Ray head."""
    if os.environ.get("RAY_USE_TLS", "0") not in ("0", ""):
        return  # a TLS head answers only a TLS handshake, which Ray itself makes
    what = "it answered, but not as a Ray head's GCS (gRPC over HTTP/2) does"
    try:
        conn.settimeout(timeout_s)
        conn.sendall(_H2_PREFACE)
        head = b""
        while len(head) < 9:
            chunk = conn.recv(9 - len(head))
            if not chunk:
                break
            head += chunk
    except TimeoutError:
        head, what = b"", f"it sent nothing within {timeout_s:g} s"
    except OSError as exc:
        head, what = b"", f"the connection failed: {exc.strerror or exc}"
    if len(head) == 9 and head[3] == _H2_SETTINGS:
        return
    if not head and what.startswith("it answered"):
        what = "it closed the connection without answering"
    elif head.startswith((b"HTTP/", b"<")):  # a status line, or an error page without one
        what = "an HTTP/1 server answered"
    raise InputError(f"--cluster {address} is not a Ray cluster head: {what}; give the --port of `ray start --head` "
                     "(the GCS port, 6379 by default)")


def connect(ray, cluster: ClusterConfig) -> bool:
    """Join the cluster as a driver; False when this process is connected already (then it stays so)."""
    if ray.is_initialized():
        return False
    probe(cluster.address, cluster.probe_timeout_s)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report from this process
    kwargs = {"_node_ip_address": cluster.bind} if cluster.bind else {}
    try:
        ray.init(address=cluster.address, namespace="kiig", logging_level="ERROR", log_to_driver=False,
                 include_dashboard=False, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise InputError(f"cannot join the Ray cluster at {cluster.address}: {str(exc).splitlines()[0]}",
                         hint="if the cluster uses token authentication, run with RAY_AUTH_MODE=token and its token "
                              "(~/.ray/auth_token or RAY_AUTH_TOKEN); this machine must also be a node of the cluster "
                              "(`ray start --address=...`)") from None
    return True


def actor_count(ray, cluster: ClusterConfig, pending: int) -> int:
    if cluster.workers is not None:
        n = cluster.workers
    else:
        n = int(ray.cluster_resources().get("CPU", 1) // max(cluster.cpus_per_worker, 1e-9))
    return max(1, min(n, pending))


def check_fits(ray, cluster: ClusterConfig, memory: int) -> None:
    """Raise a clear error when no live node could ever host one actor (Ray would wait for one forever)."""
    need = {"CPU": cluster.cpus_per_worker, "GPU": cluster.gpus_per_worker, "memory": memory}
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(all(res.get(k, 0) >= v for k, v in need.items() if v) for res in nodes):
        return
    have = "; ".join(f"{res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs, {res.get('memory', 0) / 2**30:.1f} GiB"
                     for res in nodes) or "no live node"
    raise InputError(f"no node of the cluster can host a worker that needs {cluster.cpus_per_worker:g} CPUs, "
                     f"{cluster.gpus_per_worker:g} GPUs and {memory / 2**30:.1f} GiB of memory (nodes: {have})",
                     hint="lower --cpus-per-worker / --gpus-per-worker, or add a node that has them")


def memory_bytes(models: Sequence[ModelInfo], options: EngineOptions) -> int:
    """What one actor declares to Ray: its model files, their KV caches and 512 MiB for the worker processes."""
    files = {m.sha256(): m for m in models}.values()
    return int(sum(m.size + (estimate_kv_bytes(m, options.n_ctx) or 0) for m in files) + (512 << 20))


class RayNodeWorker(NodeWorker):
    """The actor: a NodeWorker that knows its Ray node (named in progress and errors)."""

    def __init__(self, *args) -> None:
        import ray

        super().__init__(*args, node_id=ray.get_runtime_context().get_node_id())


def iter_cluster_batch(
    store,
    dataset: str | Path,
    models: Sequence[str | ModelInfo],
    scorer: str | ModelInfo,
    *,
    cluster: ClusterConfig,
    judge: str | ModelInfo | None = None,
    corpus: str | None = None,
    config: BatchConfig | None = None,
    options: EngineOptions | None = None,
    cancel: CancelToken | None = None,
    name: str | None = None,
) -> Generator[ClusterProgress | ItemDone | Message, None, BatchSummary]:
    """Run (or resume) a batch on the cluster; the events and the summary are those of ``iter_batch``,
    progress is a :class:`ClusterProgress`. Expected problems (no Ray, no cluster there, a model missing
    on a node) raise KiigError; cancel or closing the generator stops every actor and marks the run
    ``cancelled``."""
    ray = import_ray()
    config = config or BatchConfig()
    options = replace(options or EngineOptions())
    if options.n_threads is None:
        options.n_threads = max(1, int(cluster.cpus_per_worker))
    plan = plan_batch(store, dataset, models, scorer, judge=judge, corpus=corpus, config=config, options=options, name=name)
    subjects = [replace(s, known_sha256=s.sha256()) for s in plan.subjects]  # nodes cannot hash the driver's files
    scorer_info = replace(plan.scorer, known_sha256=plan.scorer.sha256())
    progress = ClusterProgress(plan.progress.done, plan.progress.total, reloaded=plan.progress.reloaded)
    plan.progress = progress
    if plan.resume_note:
        yield Message(plan.resume_note)
    joined, judge = False, None
    try:
        joined = connect(ray, cluster)
        judge = _DriverJudge(plan, corpus, options, cancel) if plan.judge is not None else None
        for m, subject in enumerate(subjects):
            pending = plan.pending(m)
            if pending:
                yield from _run_subject(ray, plan, m, subject, scorer_info, pending, cluster, options, cancel, judge)
    except (Cancelled, GeneratorExit, KeyboardInterrupt):
        store.set_run_status(plan.run_id, "cancelled")
        raise
    except BaseException:
        store.set_run_status(plan.run_id, "failed")
        raise
    finally:
        if judge is not None:
            judge.client.close()
        if joined:
            ray.shutdown()
    store.set_run_status(plan.run_id, "finished")
    return plan.summary


class _DriverJudge:
    """The Knowledge Index of chains arriving from the nodes, judged here: retrieval reads the session's
    corpus, which only the driver holds. The nodes go on generating and scoring meanwhile."""

    def __init__(self, plan, corpus: str, options: EngineOptions, cancel: CancelToken | None) -> None:
        self.plan, self.client = plan, EngineClient(plan.judge, options)
        self.ctx = _Context(plan.store, plan.run_id, plan.config, corpus, cancel, plan.progress)

    def judge(self, item, out: dict) -> Generator[ClusterProgress, None, None]:
        """Judge ``out["record"]`` as the local run would (same function, same failure policy), in place."""
        record = out["record"]
        if not out["keep"] or record.get("error"):
            return
        self.plan.progress.phase = "judging"
        yield self.plan.progress
        started = time.perf_counter()

        def stage():
            self.client.start(cancel=self.ctx.cancel)
            out["ki"] = _judge(self.ctx, self.client, self.plan.roles["judge"], item, record)
            yield from ()

        _, failure = yield from guarded(stage())
        if failure is not None:
            record["error"], out["keep"] = failure.message, failure.lasting
        record["timing"]["ki_s"] = round(time.perf_counter() - started, 4)
        record["timing"]["total_s"] = round(record["timing"]["total_s"] + record["timing"]["ki_s"], 4)


def _run_subject(ray, plan, m: int, subject: ModelInfo, scorer: ModelInfo, pending: list, cluster: ClusterConfig,
                 options: EngineOptions, cancel: CancelToken | None, judge: _DriverJudge | None):
    """All pending units of subject ``m``: actors pull ``cluster.parallel`` units at a time; a lost actor's units are queued again."""
    progress: ClusterProgress = plan.progress
    progress.model, progress.phase, progress.item_id = subject.name, "loading", ""
    memory = memory_bytes([subject, scorer], options)
    actor_class = ray.remote(RayNodeWorker).options(
        num_cpus=cluster.cpus_per_worker, num_gpus=cluster.gpus_per_worker, memory=memory,
        max_concurrency=2, max_restarts=0, scheduling_strategy="SPREAD")
    args = (subject, scorer, options, plan.config, list(cluster.node_models))
    queue = deque(pending)
    in_flight: dict = {}  # ObjectRef -> (actor, [(item index, item)], or None for a load)
    labels: dict = {}  # actor -> node label, once loaded
    n = actor_count(ray, cluster, len(pending))
    lost, max_lost = 0, MAX_LOST_FACTOR * n

    def spawn() -> None:
        check_fits(ray, cluster, memory)
        actor = actor_class.remote(*args)
        in_flight[actor.load.remote()] = (actor, None)

    def node_state(label: str, state: str) -> dict:
        entry = progress.nodes.setdefault(label, {"state": state, "done": 0})
        entry["state"] = state
        return entry

    def give_work(actor) -> None:
        if queue:
            active = len(labels) + sum(1 for _, u in in_flight.values() if u is None)  # loaded and loading actors
            share = -(-len(queue) // max(1, active))  # a short queue is shared out, not taken by the first actor
            units = [queue.popleft() for _ in range(min(cluster.parallel, share))]
            in_flight[actor.run.remote(plan.subject_ids[m], [it for _, it in units])] = (actor, units)
        else:
            node_state(labels[actor], "idle")
            _stop(ray, [actor])
            labels.pop(actor)

    for _ in range(n):
        spawn()
    yield progress
    try:
        while in_flight:
            if cancel is not None and cancel.cancelled:
                for actor in labels:
                    actor.cancel.remote()
                raise Cancelled()
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.25)
            for ref in ready:
                actor, units = in_flight.pop(ref)
                try:
                    out = ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    lost += 1
                    label = labels.pop(actor, None)
                    if label:
                        node_state(label, "lost")
                    if units is not None:
                        queue.extendleft(reversed(units))
                    if lost > max_lost:
                        raise InputError(f"{lost} Ray actors died in this run (last: {str(exc).splitlines()[0]}); giving up") from None
                    yield Message(f"node {label or '(starting)'} was lost"
                                  + (f"; items {', '.join(it.id for _, it in units)} run again elsewhere" if units else ""))
                    spawn()
                    continue
                if units is None:
                    if "error" in out:
                        raise KiigError(out["error"], out.get("hint"))
                    labels[actor] = out["node"]
                    node_state(out["node"], "running")
                    give_work(actor)
                    progress.node, progress.phase = out["node"], "generating"
                    yield progress  # the node shows as working before its first chain arrives
                    continue
                for (i, item), result in zip(units, out, strict=False):
                    if result.get("cancelled"):
                        raise Cancelled()
                    if judge is not None:
                        yield from judge.judge(item, result)
                    commit_chain(plan, m, i, result["record"], result["generation"], result["ki"], result["keep"])
                    progress.node, progress.item_id = result["node"], item.id
                    node_state(result["node"], "running")["done"] += 1
                    yield progress
                    yield ItemDone(m * len(plan.items) + i, result["record"])
                give_work(actor)
    finally:
        _stop(ray, list(labels) + [a for a, _ in in_flight.values()])


def _stop(ray, actors: list) -> None:
    """Close the actors' engine workers (briefly), then end the actors."""
    actors = list(dict.fromkeys(actors))
    closing = [a.close.remote() for a in actors]
    if closing:
        ray.wait(closing, num_returns=len(closing), timeout=5)
    for actor in actors:
        ray.kill(actor, no_restart=True)
