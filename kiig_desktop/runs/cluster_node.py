"""What runs on a cluster node: find the run's model files there by SHA-256, own their engine workers, run units.

:class:`NodeWorker` is a plain class; ``runs.cluster`` makes it a Ray actor (this module never imports
ray, so it is tested without a cluster too). One NodeWorker owns the engine workers of one subject
model and the scorer, each loaded once, and runs (item) units through the same code as a local batch
(``runs.batch_stages._run_item``): the numbers cannot differ by construction, only by where they ran.

Models are found by content, never by name: the node looks among its own models (``kiig models`` on
that node: the embedded model, its models folder or ``KIIG_MODELS_DIR``, LM Studio, Ollama) and the
folders the driver names (``--node-models``) for a file of the driver's size and SHA-256. A node
without it, or with a file of the same name but other content, is an error naming the node; nothing
is substituted.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, replace
from pathlib import Path

from ..config import EngineOptions, Settings
from ..engine.client import EngineClient
from ..engine.models import ModelInfo, discover_models
from ..errors import Cancelled, KiigError, ModelNotFound
from ..events import CancelToken
from .batch import BatchConfig, BatchProgress
from .batch_stages import _Context, _generate_ahead, _run_item


@dataclass(frozen=True)
class ModelRef:
    """The driver's model file: what a node must find (sha256, size) and what records name (path, name)."""

    sha256: str
    size: int
    name: str
    path: str

    @classmethod
    def of(cls, info: ModelInfo) -> ModelRef:
        return cls(info.sha256(), info.size, info.name, info.path)

    def record_ref(self) -> dict:
        return {"path": self.path, "sha256": self.sha256}


def node_label(node_id: str | None = None) -> str:
    """How messages and progress name this node: host name, and the Ray node id's start when known."""
    host = platform.node() or "node"
    return f"{host}/{node_id[:8]}" if node_id else host


def find_on_node(ref: ModelRef, folders: list[str], node: str) -> ModelInfo:
    """The node's file with ``ref``'s SHA-256, else ModelNotFound naming the node (see the module docstring)."""
    candidates = list(discover_models(Settings.load()))
    for folder in folders:
        candidates += discover_models(replace(Settings.load(), models_dir=Path(folder), discover_lmstudio=False,
                                              discover_ollama=False))
    same_name = []
    for info in candidates:
        if info.error is not None:
            continue
        if info.size == ref.size and info.sha256() == ref.sha256:
            return info
        if Path(info.path).name == Path(ref.path).name:
            same_name.append(info)
    where = ", ".join(dict.fromkeys([str(Settings.load().resolved_models_dir), *folders]))
    if same_name:
        other = same_name[0]
        raise ModelNotFound(f"node {node}: {other.path} is not the same file as the driver's {ref.name} "
                            f"(SHA-256 {other.sha256()[:12]}... there, {ref.sha256[:12]}... on the driver)",
                            hint="copy the driver's file to that node; a different file is never used in its place")
    raise ModelNotFound(f"node {node} has no model file with SHA-256 {ref.sha256[:12]}... ({ref.name}, {ref.size:,} bytes) "
                        f"among its models or in {where}",
                        hint="copy the model to that node's models folder (KIIG_MODELS_DIR) or name a folder with --node-models")


class _NodeClient(EngineClient):
    """An engine client for the node's copy of a model that records the driver's path for it (same SHA-256),
    so stored rows equal a local run's wherever the file lives on the node."""

    def __init__(self, local: ModelInfo, ref: ModelRef, options: EngineOptions) -> None:
        super().__init__(local, options)
        self._ref = ref

    def model_ref(self) -> dict:
        return self._ref.record_ref()


class NodeWorker:
    """The engine workers of one subject model and the scorer on one node (a Ray actor's body)."""

    def __init__(self, subject: ModelInfo, scorer: ModelInfo, options: EngineOptions, config: BatchConfig,
                 folders: list[str], node_id: str | None = None) -> None:
        self.subject, self.scorer, self.options, self.config = subject, scorer, options, config
        self.folders, self.node = folders, node_label(node_id)
        self.clients: dict[str, EngineClient] = {}
        self.cancel_token = CancelToken()

    def load(self) -> dict:
        """Find both models here and load them once; ``{"node", "pid"}``, or ``{"node", "error", "hint"}`` for an expected error."""
        try:
            made: dict[str, EngineClient] = {}
            for role, info in (("subject", self.subject), ("scorer", self.scorer)):
                ref = ModelRef.of(info)
                same = next((c for c in made.values() if c.model_ref()["sha256"] == ref.sha256), None)
                made[role] = same or _NodeClient(find_on_node(ref, self.folders, self.node), ref, self.options)
            self.clients = made
            for client in dict.fromkeys(made.values()):
                client.start(cancel=self.cancel_token)
        except KiigError as exc:
            self.close()
            return {"node": self.node, "error": exc.message, "hint": exc.hint}
        return {"node": self.node, "pid": os.getpid()}

    def run(self, subject_id: int, items: list) -> list[dict]:
        """Units: the chains of ``items`` as the local batch makes them (their replies generated at once when
        there are several, as ``--parallel`` does locally), and where they ran; ``[{"cancelled": True}]`` on cancel."""
        progress = BatchProgress(0, len(items))
        ctx = _Context(None, 0, self.config, None, self.cancel_token, progress)
        out = []
        try:
            made = _drain(_generate_ahead(ctx, self.clients["subject"], list(enumerate(items)))) if len(items) > 1 else {}
            for i, item in enumerate(items):
                record, generation, ki, keep = _drain(_run_item(ctx, self.clients, self.subject, subject_id, None, item,
                                                                made.pop(i, None)))
                record["timing"]["node"] = self.node
                out.append({"node": self.node, "record": record, "generation": generation, "ki": ki, "keep": keep})
        except Cancelled:
            return [{"node": self.node, "cancelled": True}]
        return out

    def cancel(self) -> None:
        """Stop the unit in progress (called from the driver while ``run`` executes)."""
        self.cancel_token.cancel()

    def close(self) -> None:
        for client in dict.fromkeys(self.clients.values()):
            client.close()
        self.clients = {}


def _drain(gen):
    """Run a generator of progress events to its end (nobody watches a node's events) and return its value."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
