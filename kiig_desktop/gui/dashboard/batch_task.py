"""A batch evaluation (``batch.iter_batch``) driven from the window, off the GUI thread.

``iter_batch`` wants a writable store and engine clients it can open and close. The window has
one writer connection, shared by every view under ``SessionFile.lock``, and one engine worker per
model, shared by every view through ``Engines``. So the batch gets:

- :class:`LockedStore`: each store call runs under the session's lock on the writer of the session
  the batch started on (held open for the batch even if the window opens another meanwhile); ``db``
  (corpus retrieval for KI) is a read-only connection of the worker thread.
- :class:`SharedClient`: a model started through ``Engines.acquire`` (loaded once, niced, shown as
  loaded in the Models panel) that the batch never closes; the window keeps it for later work.

:func:`batch_work` is the Task's work: it re-yields the batch's events as snapshots (the core reuses
one progress object) and announces the run id as soon as the run exists (``RunStarted``).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, replace
from typing import Any

from ...config import EngineOptions
from ...engine.models import ModelInfo
from ...events import CancelToken
from ...runs.batch import BatchConfig, BatchProgress, BatchSummary, iter_batch
from ...runs.cluster import ClusterConfig, ClusterProgress, iter_cluster_batch
from ...store import SessionStore
from ..shared.engines import Engines
from ..shared.session_file import SessionHandle


@dataclass(frozen=True)
class RunStarted:
    """The batch run exists in the session (new or resumed): its id."""

    run_id: int


@dataclass
class BatchRequest:
    """Everything the form collected for one batch run."""

    dataset: str
    models: list[ModelInfo]
    scorer: ModelInfo
    judge: ModelInfo | None = None
    corpus: str | None = None
    config: BatchConfig | None = None
    name: str | None = None
    parallel: int | None = None  # items at once (None: runs.parallel.default_parallel)
    cluster: str | None = None  # HOST:PORT of a Ray head; None runs here


class LockedStore:
    """The held session's writer for one worker thread: every call takes the session lock."""

    def __init__(self, session: SessionHandle) -> None:
        self._session = session
        self._reader: SessionStore | None = None
        self.run_id: int | None = None

    def __getattr__(self, name: str) -> Any:
        if not callable(getattr(SessionStore, name, None)):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            out = self._session.write(lambda store: getattr(store, name)(*args, **kwargs))
            if name == "find_or_create_run":
                self.run_id = int(out[0])
            return out

        return call

    @property
    def db(self):
        """A read-only connection of this thread (corpus fingerprint and retrieval)."""
        if self._reader is None:
            self._reader = self._session.reader()
        return self._reader.db

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


class SharedClient:
    """An engine client for ``iter_batch`` that lives in ``Engines`` (started there, never closed here)."""

    def __init__(self, engines: Engines, info: ModelInfo) -> None:
        self._engines, self._info = engines, info
        self._client = None

    def start(self, on_progress=None, cancel: CancelToken | None = None) -> dict:
        self._client = self._engines.acquire(self._info, cancel)
        return self._client.info or {}

    def close(self) -> None:
        """The window keeps the model loaded for later work (Models panel → Unload stops it)."""

    def __getattr__(self, name: str) -> Any:
        client = self.__dict__.get("_client")
        if client is None:
            raise AttributeError(name)
        return getattr(client, name)


def snapshot(event: BatchProgress) -> BatchProgress:
    """A copy the GUI thread may keep while the run goes on (per-node entries included)."""
    copy = replace(event)
    if isinstance(event, ClusterProgress):
        copy.nodes = {label: dict(entry) for label, entry in event.nodes.items()}
    return copy


def node_lines(p: ClusterProgress) -> list[str]:
    """One line per cluster node: its state and the chains it finished in this session."""
    return [f"{label}: {entry['state']}, {entry['done']} chain{'s' if entry['done'] != 1 else ''}"
            for label, entry in sorted(p.nodes.items())]


def batch_options(engines: Engines, scorer: ModelInfo) -> EngineOptions:
    """The engine settings recorded with the run: the scorer's (its numbers depend on them)."""
    return engines.options(scorer.id)


def batch_work(session: SessionHandle, engines: Engines, request: BatchRequest):
    """The Task's work: run (or resume) the batch, yielding snapshots of its events."""

    def work(cancel: CancelToken) -> Generator[object, None, BatchSummary]:
        store = LockedStore(session)
        try:
            if request.cluster:
                gen = iter_cluster_batch(store, request.dataset, request.models, request.scorer,
                                         cluster=ClusterConfig(request.cluster, parallel=request.parallel or 1), judge=request.judge, corpus=request.corpus,
                                         config=request.config, options=batch_options(engines, request.scorer),
                                         cancel=cancel, name=request.name)
            else:
                gen = iter_batch(store, request.dataset, request.models, request.scorer, judge=request.judge,
                                 corpus=request.corpus, config=request.config, options=batch_options(engines, request.scorer),
                                 cancel=cancel, client_factory=lambda info, _opts: SharedClient(engines, info),
                                 name=request.name, parallel=request.parallel)
            announced = False
            try:
                while True:
                    try:
                        event = next(gen)
                    except StopIteration as stop:
                        return stop.value
                    if not announced and store.run_id is not None:
                        announced = True
                        yield RunStarted(store.run_id)
                    yield snapshot(event) if isinstance(event, BatchProgress) else event
            finally:
                gen.close()  # on cancel: the batch marks its run cancelled
        finally:
            store.close()

    return work


# ------------------------------------------------------------------------------------ wording


def fmt_duration(seconds: float | None) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 12 min`` (empty when unknown)."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


PHASES = {"loading": "loading the model", "generating": "generating", "scoring": "scoring InfoGain",
          "judging": "judging KI", "done": "saved"}


def progress_text(p: BatchProgress) -> str:
    """One status line: phase, model, item, ETA."""
    parts = [PHASES.get(p.phase, p.phase)] if p.phase else []
    if p.model:
        parts.append(p.model)
    if p.item_id and p.phase != "loading":
        parts.append(f"item {p.item_id}")
    eta = fmt_duration(p.eta_s)
    if eta and p.done < (p.total or 0):
        parts.append(f"about {eta} left")
    return " · ".join(parts)
