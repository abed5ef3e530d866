"""The in-process handle to a model worker: requests, streamed events, cancel, crash recovery.

Every call is serialised (one request in flight per worker). ``cancel()`` may be called from any
thread: the worker stops at its next check (between tokens, batches, or inside a decode through
llama.cpp's abort callback); if it has not answered within ``hard_cancel_s`` it is killed, and the
next request starts a fresh worker.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable, Generator
from pathlib import Path

from .. import errors as E
from ..config import WORKER_ENV_DEFAULTS, EngineOptions, Settings, ensure_private_dir, make_private
from ..events import CancelToken, Message, Progress, Token, run_to_end
from .models import ModelInfo, resolve_model

_SIGNAL_TEXT = {
    signal.SIGKILL: "was killed (SIGKILL): by another program or by the system's out-of-memory killer",
    signal.SIGSEGV: "crashed with a segmentation fault (SIGSEGV) inside llama.cpp",
    signal.SIGABRT: "aborted (SIGABRT) inside llama.cpp",
    signal.SIGILL: "hit an illegal instruction (SIGILL): this llama.cpp build uses CPU instructions this processor lacks",
    signal.SIGBUS: "hit a bus error (SIGBUS): the model file changed or shrank while it was in use",
    signal.SIGTERM: "was terminated (SIGTERM)",
}

AMX_FIX = (
    'rebuild llama-cpp-python without the native AMX kernels: CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON '
    "-DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON "
    '-DGGML_AVX512_VBMI=ON -DGGML_AVX512_BF16=ON" pip install --no-cache-dir --force-reinstall --no-deps '
    "llama-cpp-python==0.3.36   (or run `make install` again)"
)


def cpu_has_amx() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return "amx_tile" in line.split()
    except OSError:
        pass
    return False


def worker_command() -> list[str]:
    """How to start a worker: ``python -m`` from a venv; a frozen app has no ``-m``, so its executables
    take ``--engine-worker`` (packaging/entry_*.py)."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "--engine-worker"]
    return [sys.executable, "-m", "kiig_desktop.engine.worker"]


def describe_exit(exitcode: int | None) -> tuple[str, str | None]:
    """A sentence for how the worker ended, and a hint when there is a known fix."""
    if exitcode is None:
        return "stopped answering", None
    if exitcode < 0:
        sig = -exitcode
        try:
            text = _SIGNAL_TEXT.get(signal.Signals(sig), f"was ended by signal {signal.Signals(sig).name}")
        except ValueError:
            text = f"was ended by signal {sig}"
        hint = AMX_FIX if sig in (signal.SIGSEGV, signal.SIGILL) and cpu_has_amx() else None
        if sig == signal.SIGKILL:
            hint = "if memory is short, use a smaller model, a smaller context or fewer GPU layers"
        return text, hint
    return f"exited unexpectedly with code {exitcode}", None


def estimate_kv_bytes(info: ModelInfo, n_ctx: int) -> int | None:
    """KV-cache size (f16 keys and values) the header implies for ``n_ctx`` tokens."""
    h = info.header
    if h is None:
        return None
    meta, arch = h.metadata, h.architecture
    layers = meta.get(f"{arch}.block_count")
    embd = meta.get(f"{arch}.embedding_length")
    heads = meta.get(f"{arch}.attention.head_count")
    kv_heads = meta.get(f"{arch}.attention.head_count_kv", heads)
    head_dim = meta.get(f"{arch}.attention.key_length") or (embd // heads if embd and heads else None)
    if not all(isinstance(v, int) and v > 0 for v in (layers, kv_heads, head_dim)):
        return None
    return 2 * layers * n_ctx * kv_heads * head_dim * 2


def available_memory() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class EngineClient:
    """A model loaded in its own worker process."""

    def __init__(
        self,
        model: str | os.PathLike | ModelInfo,
        options: EngineOptions | None = None,
        *,
        echo_log: bool = False,
        hard_cancel_s: float = 0.4,
        start_timeout_s: float = 600.0,
    ) -> None:
        self.model = model if isinstance(model, ModelInfo) else resolve_model(str(model))
        self.options = options or EngineOptions()
        self.echo_log = echo_log or os.environ.get("KIIG_DEBUG") == "1"
        self.hard_cancel_s = hard_cancel_s
        self.start_timeout_s = start_timeout_s
        self.info: dict | None = None
        self._proc: subprocess.Popen | None = None
        self._conn = None
        self._cancel_sock: socket.socket | None = None
        self._lock = threading.RLock()
        self._next_id = 0
        self._inflight: int | None = None
        self._open_stream: weakref.ref | None = None
        self._hard_cancelled = False
        self._sha256: str | None = None
        self._check_memory()

    # ------------------------------------------------------------------ lifecycle

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def path(self) -> str:
        return self.model.path

    def model_ref(self) -> dict:
        """What every stored number records about the model that produced it."""
        if self._sha256 is None:
            self._sha256 = self.model.sha256()
        return {"path": self.model.path, "sha256": self._sha256}

    def backend_ref(self) -> dict:
        info = self.info or {}
        return {
            "llama_cpp_python": info.get("llama_cpp_python"),
            "system_info": info.get("system_info"),
            "n_gpu_layers": self.options.n_gpu_layers,
            "n_batch": self.options.n_batch,
            "n_ctx": self.options.n_ctx,
            "flash_attn": self.options.flash_attn,
            "repack": self.options.repack,
            "n_threads": info.get("n_threads"),
            "build": info.get("build"),
        }

    def build(self) -> dict | None:
        """The llama.cpp build, kernels and backend of this worker (``engine.build_info``); None before start."""
        return (self.info or {}).get("build")

    @property
    def pid(self) -> int | None:
        """Process id of the running worker (None when none runs)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _check_memory(self) -> None:
        need = estimate_kv_bytes(self.model, self.options.n_ctx)
        free = available_memory()
        if need is not None and free is not None and need > 0.9 * free:
            raise E.EngineError(
                f"a context of {self.options.n_ctx:,} tokens for {self.model.name} needs about "
                f"{need / 2**30:.1f} GiB of KV cache, but only {free / 2**30:.1f} GiB of memory is free",
                hint="choose a smaller context size (n_ctx)",
            )

    def start(self, on_progress: Callable[[float], None] | None = None, cancel: CancelToken | None = None) -> dict:
        """Start the worker and load the model (no-op when it is already running)."""
        with self._lock:
            if self.alive and self.info is not None:
                return self.info
            self._shutdown(kill=True)
            self._spawn()
            self._inflight = 0  # the load itself can be cancelled (request id 0)
            if cancel is not None:
                cancel.on_cancel(self.cancel)
            while True:
                msg = self._recv(self.start_timeout_s)
                kind = msg.get("type")
                if kind == "load_progress":
                    if on_progress:
                        on_progress(msg["value"])
                elif kind == "ready":
                    self.info = msg["info"]
                    self.info["warnings"] = self._load_warnings(self.info)
                    self._inflight = None
                    return self.info
                elif kind == "error":
                    self._inflight = None
                    self._shutdown(kill=False)
                    raise _to_error(msg["error"], self.model.name)

    def _load_warnings(self, info: dict) -> list[str]:
        """Things the user asked for that this build or model cannot give."""
        out = []
        if self.options.n_gpu_layers and not info.get("gpu_offload"):
            out.append(
                "GPU offload is not available in this build of llama.cpp: every layer runs on the CPU "
                "(rebuild with e.g. `make install LLAMA_CMAKE_ARGS=\"-DGGML_CUDA=on\"`, see the README)"
            )
        used = info.get("chat_template_used") or ["jinja"]
        if used[0] == "plain":
            out.append(f"{self.model.name} has no chat template: prompts use a plain 'User:/Assistant:' format (set a template in the load options)")
        elif used[0] == "builtin" and not info.get("chat_template"):
            out.append(f"{self.model.name} has no chat template in its file: using llama.cpp's built-in {used[1]!r} template")
        train = info.get("n_ctx_train")
        if train and self.options.n_ctx > train:
            out.append(f"context {self.options.n_ctx:,} is larger than the {train:,} tokens {self.model.name} was trained on")
        return out

    def _spawn(self) -> None:
        """Start ``python -m kiig_desktop.engine.worker`` with a request pipe and a cancel channel."""
        req_parent, req_child = socket.socketpair()
        cancel_parent, cancel_child = socket.socketpair()
        opts = {k: v for k, v in self.options.to_dict().items() if k in ("n_ctx", "n_gpu_layers", "n_threads", "n_batch", "seed", "flash_attn", "chat_template", "repack", "fast_not_exact")}
        cmd = [*worker_command(), str(req_child.fileno()), str(cancel_child.fileno()), self.model.path, json.dumps(opts)]
        if self.echo_log:
            cmd.append("--echo")
        env = dict(os.environ)
        for key, value in WORKER_ENV_DEFAULTS.items():
            env.setdefault(key, value)
        pkg_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        log = _worker_log()
        try:
            self._proc = subprocess.Popen(
                cmd, pass_fds=(req_child.fileno(), cancel_child.fileno()), stdin=subprocess.DEVNULL,
                stdout=log or subprocess.DEVNULL, stderr=log or subprocess.DEVNULL, env=env, close_fds=True,
            )
        finally:
            if log is not None:
                log.close()
            req_child.close()  # only the worker holds these ends now: its death closes the pipe
            cancel_child.close()
        from multiprocessing.connection import Connection

        self._conn = Connection(req_parent.detach())
        self._cancel_sock = cancel_parent

    def close(self) -> None:
        """Stop the worker and free the model. Safe to call twice."""
        with self._lock:
            self._shutdown(kill=False)

    def _shutdown(self, kill: bool) -> None:
        proc, conn, csock = self._proc, self._conn, self._cancel_sock
        self._proc, self._conn, self._cancel_sock, self.info = None, None, None, None
        if proc is None:
            return
        if not kill and conn is not None and proc.poll() is None:  # conn is None if start() was interrupted
            try:
                conn.send({"op": "close"})
                proc.wait(3.0)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if proc.poll() is None:
            proc.kill()
            proc.wait(3.0)
        for c in (conn, csock):
            if c is not None:
                c.close()

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self._shutdown(kill=True)
        except Exception:  # noqa: BLE001 - nothing useful to do during interpreter teardown
            pass

    # ------------------------------------------------------------------ requests

    def cancel(self) -> None:
        """Ask the running request to stop; kill the worker if it does not within hard_cancel_s."""
        rid, csock, proc = self._inflight, self._cancel_sock, self._proc
        if rid is None or csock is None:
            return
        try:
            csock.sendall(int(rid).to_bytes(4, "little"))
        except OSError:
            return

        def _hard() -> None:
            if self._inflight == rid and self._proc is proc and proc.poll() is None:
                self._hard_cancelled = True
                proc.kill()

        timer = threading.Timer(self.hard_cancel_s, _hard)
        timer.daemon = True
        timer.start()

    def _recv(self, timeout: float | None = None) -> dict:
        conn, proc = self._conn, self._proc
        try:
            if timeout is not None and not conn.poll(timeout):
                raise E.EngineError(f"the model worker for {self.model.name} did not answer within {timeout:.0f} s")
            return conn.recv()
        except (EOFError, OSError, ConnectionError):
            try:
                code = proc.wait(5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait(5.0)
            self._shutdown(kill=True)
            if self._hard_cancelled:
                self._hard_cancelled = False
                raise E.Cancelled() from None
            text, hint = describe_exit(code)
            raise E.WorkerCrashed(
                f"the model worker for {self.model.name} {text}; the next request starts a fresh worker",
                hint=hint,
            ) from None

    def stream(self, op: str, cancel: CancelToken | None = None, **args) -> Generator[dict, None, object]:
        """Run one operation, yielding its events; the generator's return value is the result."""
        holder: dict = {}
        gen = self._stream(op, cancel, args, holder)
        holder["ref"] = weakref.ref(gen)
        return gen

    def _stream(self, op: str, cancel: CancelToken | None, args: dict, holder: dict) -> Generator[dict, None, object]:
        with self._lock:
            if self._inflight is not None and self._open_stream is not None:
                previous = self._open_stream()
                if previous is not None:
                    previous.close()  # this thread left a stream unfinished: cancel and drain it first
            self._open_stream = holder.get("ref")
            self.start()
            self._next_id += 1
            rid = self._next_id
            self._hard_cancelled = False
            self._inflight = rid
            if cancel is not None:
                if cancel.cancelled:
                    self._inflight = None
                    raise E.Cancelled()
                cancel.on_cancel(self.cancel)
            finished = False
            try:
                self._conn.send({"id": rid, "op": op, "args": args})
                while True:
                    msg = self._recv()
                    kind = msg.get("type")
                    if kind == "event":
                        yield _typed_event(msg["event"])
                    elif kind == "result":
                        finished = True
                        return msg["result"]
                    elif kind == "error":
                        finished = True
                        raise _to_error(msg["error"], self.model.name)
            finally:
                if not finished and self.alive:
                    # the caller stopped listening: stop the worker's work and drain to a clean state
                    self.cancel()
                    try:
                        while self._recv().get("type") == "event":
                            pass
                    except E.KiigError:
                        pass
                self._inflight = None
                self._open_stream = None

    def call(self, op: str, cancel: CancelToken | None = None, on_event: Callable[[dict], None] | None = None, **args):
        """Run one operation to its end and return the result, passing events to ``on_event``."""
        return run_to_end(self.stream(op, cancel=cancel, **args), on_event)

    # ------------------------------------------------------------------ conveniences

    def tokenize(self, text: str, add_bos: bool = False, special: bool = False) -> list[int]:
        return self.call("tokenize", text=text, add_bos=add_bos, special=special)

    def tokenize_many(self, texts: list[str], special: bool = False) -> list[list[int]]:
        """Each text tokenized on its own (no BOS), in one round trip."""
        return self.call("tokenize_many", texts=list(texts), special=special)

    def detokenize(self, tokens: list[int], special: bool = False) -> str:
        return self.call("detokenize", tokens=list(tokens), special=special)

    def pieces(self, tokens: list[int]) -> list[str]:
        return self.call("pieces", tokens=list(tokens))

    def piece_lengths(self, tokens: list[int]) -> list[int]:
        """UTF-8 byte length of each token's text (special tokens: 0), to map tokens to characters."""
        return self.call("piece_lengths", tokens=list(tokens))

    def chat_prompt(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        return self.call("chat_prompt", messages=messages, add_generation_prompt=add_generation_prompt)

    def generate(self, messages: list[dict], cancel: CancelToken | None = None, **kw) -> Generator[dict, None, dict]:
        """Stream a chat-templated reply as Token events; return the whole reply (text, tokens, stop, ...)."""
        return self.stream("generate", cancel=cancel, messages=messages, **kw)

    def generate_many(self, items: list[dict], cancel: CancelToken | None = None, **kw) -> Generator[Progress, None, list]:
        """Replies to several chats (``{"messages", "seed"?}``) generated at once, one KV-cache sequence each.

        Streams Progress (replies finished, tokens generated); returns per item what ``generate``
        returns, or the KiigError that item failed with (the others are unaffected).
        """
        result = yield from self.stream("generate_many", cancel=cancel, items=items, **kw)
        return [_to_error(r["error"], self.model.name) if "error" in r else r for r in result["results"]]

    def scan_many(self, chains: list[dict], cancel: CancelToken | None = None) -> Generator[Progress, None, list]:
        """Several chains' prefixes (``{"prefixes", "curve_prefix"?}``, as the ``scan`` op takes them)
        scored at once, one KV-cache sequence each, in shared batches.

        Streams Progress (prefixes done over all chains); returns per chain what ``scan`` returns,
        or the KiigError that chain failed with (the others are unaffected).
        """
        result = yield from self.stream("scan_many", cancel=cancel, chains=chains)
        return [_to_error(r["error"], self.model.name) if "error" in r else r for r in result["results"]]

    def judge_many(self, prompts: list[list[dict]], candidates: list[str],
                   cancel: CancelToken | None = None) -> Generator[Progress, None, list]:
        """:meth:`next_token_logprobs` for several judge prompts (lists of messages) read at once, one
        KV-cache sequence each; returns per prompt its log-probs or the KiigError it failed with."""
        items = [{"messages": m} for m in prompts]
        result = yield from self.stream("judge_many", cancel=cancel, items=items, candidates=candidates)
        return [_to_error(r["error"], self.model.name) if "error" in r else r["logprobs"] for r in result["results"]]

    def next_token_logprobs(self, messages: list[dict], candidates: list[str], cancel: CancelToken | None = None) -> dict[str, float]:
        return self.call("next_token_logprobs", cancel=cancel, messages=messages, candidates=candidates)["logprobs"]

    def reply(self, messages: list[dict], max_tokens: int = 8, cancel: CancelToken | None = None) -> str:
        """A short greedy chat reply (a judge's True/False answer)."""
        return self.call("generate", cancel=cancel, messages=messages, max_tokens=max_tokens, temperature=0.0, top_k=0)["text"]

    def first_token_ids(self, candidates: list[str]) -> dict[str, int]:
        """The first token id of each candidate as this model tokenizes it (for judge answers)."""
        return {c: ids[0] for c, ids in zip(candidates, self.tokenize_many(candidates), strict=True) if ids}

    def eval_sequence(self, tokens: list[int], cancel: CancelToken | None = None) -> dict:
        return self.call("eval_sequence", cancel=cancel, tokens=list(tokens))


def _typed_event(event: dict) -> Token | Progress | Message:
    """A worker's event (a wire dict) as the typed event the rest of the program reads."""
    kind = event.get("type")
    if kind == "token":
        return Token(event["id"], event["text"], event["logprob"], event["entropy_bits"], list(event.get("top") or []))
    if kind == "progress":
        return Progress(event["done"], event.get("total"), tokens=event.get("tokens", 0))
    return Message(f"engine event {kind!r}", "debug")


def _to_error(payload: dict, model_name: str) -> E.KiigError:
    cls = getattr(E, payload.get("class", "EngineError"), E.EngineError)
    if not (isinstance(cls, type) and issubclass(cls, E.KiigError)):
        cls = E.EngineError
    if cls is E.Cancelled:
        return E.Cancelled(payload.get("message") or "cancelled")
    err = cls(payload.get("message", "unknown engine error"), payload.get("hint"))
    if isinstance(err, E.ContextOverflow):
        err.needed, err.n_ctx = payload.get("needed"), payload.get("n_ctx")
    if payload.get("traceback") and os.environ.get("KIIG_DEBUG") == "1":
        err.message += "\n" + payload["traceback"]
    return err


def _worker_log():
    """The workers' stderr goes to <data dir>/logs/engine.log (owner-only), kept under 1 MB."""
    try:
        logs = ensure_private_dir(Settings.load().data_dir / "logs")
        make_private(logs)  # a folder made by an older version may be readable by others
        path = logs / "engine.log"
        if path.exists() and path.stat().st_size > 1 << 20:
            path.replace(logs / "engine.log.1")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0), 0o600)
        os.fchmod(fd, 0o600)  # a log from an older version may be readable by others
        return os.fdopen(fd, "ab")
    except OSError:
        return None
