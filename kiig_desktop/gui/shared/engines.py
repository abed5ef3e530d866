"""The models the app knows and the engine workers it has loaded (one EngineClient per model).

Discovery, header reads, model start-up and shutdown all run on worker threads. ``acquire`` is
called from those threads (generation, scoring, comparison load a model on first use); it holds
a per-model lock so one model is never started twice. Signals are emitted from whichever thread
did the work and reach the GUI through queued connections.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Signal, Slot

from ...config import EngineOptions, Settings, max_threads
from ...engine.client import EngineClient
from ...engine.models import BUILTIN_ID, ModelInfo, discover_models, resolve_model
from ...errors import Cancelled
from ...events import CancelToken
from .workers import Task, TaskManager

OPTION_KEYS = ("n_ctx", "n_gpu_layers", "n_threads")
WORKER_NICE = 10  # model workers yield the CPU to the window: the GUI thread stays responsive


def worker_pid(client: EngineClient) -> int | None:
    """The running worker's process id, if any."""
    return client.pid if client.alive else None


def lower_priority(pid: int) -> None:
    """Renice every thread of a worker (Linux niceness is per thread; new threads inherit it)."""
    tasks = Path(f"/proc/{pid}/task")
    tids = [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [pid]
    for tid in tids:
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < WORKER_NICE:
                os.setpriority(os.PRIO_PROCESS, tid, WORKER_NICE)
        except (OSError, AttributeError):
            pass


class Engines(QObject):
    """Model catalogue plus loaded engine clients."""

    models_changed = Signal()
    loading = Signal(str, float)  # model id, fraction loaded
    loaded = Signal(str)
    unloaded = Signal(str)
    error = Signal(str)
    notice = Signal(str)  # a model loaded, but not quite as asked (e.g. GPU layers on a CPU-only build)

    def __init__(self, tasks: TaskManager, settings: Settings, qsettings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.tasks = tasks
        self.settings = settings
        self.qsettings = qsettings
        self.models: list[ModelInfo] = []
        self.build_info: dict | None = None  # llama.cpp facts from the first worker that started
        self.default_options = EngineOptions(**settings.engine.to_dict())
        self._clients: dict[str, EngineClient] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._reniced: set[int] = set()
        self._alive: frozenset[str] = frozenset()
        self.loaded.connect(self._emit_models_changed)
        self.unloaded.connect(self._emit_models_changed)

    @Slot()
    def _emit_models_changed(self, *_args) -> None:
        self._alive = frozenset(i for i in self.loaded_ids() if self.is_loaded(i))
        self.models_changed.emit()

    def sync(self) -> None:
        """Tell the views when a worker died (crash, kill) since they last looked."""
        alive = frozenset(i for i in self.loaded_ids() if self.is_loaded(i))
        if alive != self._alive:
            self._emit_models_changed()

    # ------------------------------------------------------------------ catalogue

    def extra_paths(self) -> list[str]:
        value = self.qsettings.value("models/extra_paths", [])
        return [str(v) for v in (value if isinstance(value, list) else [value] if value else [])]

    def refresh(self) -> Task:
        """Rediscover models (reads every GGUF header: off the GUI thread)."""
        extra = self.extra_paths()

        def work(_cancel: CancelToken) -> list[ModelInfo]:
            return discover_models(self.settings, extra_paths=[p for p in extra if Path(p).exists()])

        task = self.tasks.run("Discovering models", work)
        task.succeeded.connect(self._set_models)
        return task

    @Slot(object)
    def _set_models(self, models: list[ModelInfo]) -> None:
        self.models = list(models)
        self.models_changed.emit()

    def add_model_file(self, path: str) -> Task:
        """Validate a dropped or chosen .gguf (header read off-thread) and add it to the catalogue."""

        def work(_cancel: CancelToken) -> ModelInfo:
            return resolve_model(str(Path(path).expanduser()), self.settings)

        task = self.tasks.run(f"Reading {Path(path).name}", work)
        task.succeeded.connect(self._add_model)
        task.failed.connect(self.error)
        return task

    @Slot(object)
    def _add_model(self, info: ModelInfo) -> None:
        paths = self.extra_paths()
        if info.path not in paths:
            self.qsettings.setValue("models/extra_paths", [*paths, info.path])
        if not any(Path(m.path).resolve() == Path(info.path).resolve() for m in self.models):
            self.models.append(info)
        self.models_changed.emit()

    def find(self, model_id: str | None) -> ModelInfo | None:
        return next((m for m in self.models if m.id == model_id), None)

    def default_model(self) -> ModelInfo | None:
        return self.find(BUILTIN_ID) or next((m for m in self.models if not m.error), None)

    # ------------------------------------------------------------------ load options

    def options(self, model_id: str) -> EngineOptions:
        opts = EngineOptions(**self.default_options.to_dict())
        for key in OPTION_KEYS:
            value = self.qsettings.value(f"models/options/{model_id}/{key}")
            if value not in (None, ""):
                try:
                    number = int(value)
                except (TypeError, ValueError):
                    continue
                if key == "n_threads":  # a hand-edited gui.ini: 0 is automatic, too many is the bound
                    number = None if number <= 0 else min(number, max_threads())
                setattr(opts, key, number)
        return opts

    def set_options(self, model_id: str, n_ctx: int, n_gpu_layers: int, n_threads: int | None) -> None:
        for key, value in (("n_ctx", n_ctx), ("n_gpu_layers", n_gpu_layers), ("n_threads", n_threads or 0)):
            self.qsettings.setValue(f"models/options/{model_id}/{key}", int(value))

    # ------------------------------------------------------------------ clients

    def is_loaded(self, model_id: str) -> bool:
        with self._guard:
            client = self._clients.get(model_id)
        return client is not None and client.alive

    def loaded_ids(self) -> list[str]:
        with self._guard:
            return list(self._clients)

    def client(self, model_id: str) -> EngineClient | None:
        with self._guard:
            return self._clients.get(model_id)

    def acquire(self, info: ModelInfo, cancel: CancelToken | None = None) -> EngineClient:
        """The loaded client for ``info``, starting its worker first if needed (worker threads only)."""
        with self._guard:
            lock = self._locks.setdefault(info.id, threading.Lock())
        with lock:
            with self._guard:
                client = self._clients.get(info.id)
            if client is not None:
                if not client.alive:
                    client.start(cancel=cancel)  # its worker died (crash, kill): start a fresh one
                self._deprioritise(client)
                return client
            if cancel is not None and cancel.cancelled:
                raise Cancelled()
            client = EngineClient(info, self.options(info.id))
            last = [-1.0]

            def progress(value: float) -> None:
                if last[0] < 0:
                    self._deprioritise(client)  # the load itself is CPU-heavy: yield to the window already
                if value - last[0] >= 0.02 or value >= 1.0:  # a few dozen updates, not hundreds
                    last[0] = value
                    self.loading.emit(info.id, float(value))

            try:
                client.start(on_progress=progress, cancel=cancel)
            except BaseException:
                client.close()
                raise
            self._deprioritise(client)
            with self._guard:
                self._clients[info.id] = client
            if self.build_info is None:
                self.build_info = dict(client.info or {})
            for warning in (client.info or {}).get("warnings") or []:
                self.notice.emit(f"{info.name}: {warning}")
            self.loaded.emit(info.id)
            return client

    def _deprioritise(self, client: EngineClient) -> None:
        pid = worker_pid(client)
        if pid is not None and pid not in self._reniced:
            lower_priority(pid)
            self._reniced.add(pid)

    def load(self, info: ModelInfo) -> Task:
        task = self.tasks.run(f"Loading {info.name}", lambda cancel: self.acquire(info, cancel))
        task.failed.connect(self.error)
        return task

    def unload(self, model_id: str) -> Task | None:
        """Stop the model's worker (its running request is cancelled first)."""
        with self._guard:
            client = self._clients.pop(model_id, None)
        if client is None:
            return None

        def work(_cancel: CancelToken) -> str:
            client.cancel()
            client.close()
            return model_id

        task = self.tasks.run(f"Unloading {client.name}", work)
        task.succeeded.connect(self._on_unloaded)
        return task

    @Slot(object)
    def _on_unloaded(self, model_id: str) -> None:
        self.unloaded.emit(model_id)

    def close_all(self) -> None:
        """Stop every worker now (window close): cancel what runs, then close each client."""
        with self._guard:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            client.cancel()
        for client in clients:
            client.close()

