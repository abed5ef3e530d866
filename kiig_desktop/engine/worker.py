"""The model worker: a separate process that owns one loaded model and serves whole operations.

A crash, an abort() inside llama.cpp or the out-of-memory killer ends this process, never the GUI
or the CLI: the client sees the pipe close, reports what happened and starts a fresh worker on
the next request. Messages are dicts over a multiprocessing pipe:

  client -> worker: {"id": n, "op": name, "args": {...}}  or  {"op": "close"}
  worker -> client: {"type": "load_progress", "value": p} while loading, then "ready" | "error";
                    per request any number of {"type": "event", "id", "event"}, then one
                    {"type": "result", "id", "result"} | {"type": "error", "id", "error"}.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection

from ..errors import Cancelled, EngineError
from .wire import error_payload


def _simple_ops(backend) -> dict[str, Callable]:
    from . import ops

    return {
        "info": lambda: backend.info(),
        "tokenize": lambda text, add_bos=False, special=False: backend.tokenize(text, add_bos, special),
        "tokenize_many": lambda texts, special=False: [backend.tokenize(t, False, special) for t in texts],
        "detokenize": lambda tokens, special=False: backend.detokenize(tokens, special),
        "pieces": lambda tokens: backend.pieces_text(tokens),
        "piece_lengths": lambda tokens: [len(backend.piece(t)) for t in tokens],
        "chat_prompt": lambda messages, add_generation_prompt=True: ops.chat_prompt(backend, messages, add_generation_prompt),
        "prompt_tokens": lambda messages: ops.prompt_tokens(backend, messages),
    }


def _stream_ops() -> dict[str, Callable]:
    from . import ops, ops_many

    return {
        "generate": ops.generate,
        "generate_many": ops.generate_many,
        "scan": ops.scan,
        "scan_many": ops_many.scan_many,
        "judge_many": ops_many.judge_many,
        "eval_sequence": ops.eval_sequence,
        "prefill": ops.prefill,
        "next_token_logprobs": ops.next_token_logprobs,
        "smoke": ops.smoke,
    }


def _debug_crash(kind: str) -> None:
    """Test hook (only with KIIG_TEST_HOOKS=1): die the way a broken native library would."""
    if kind == "segv":
        import ctypes

        ctypes.string_at(0)
    elif kind == "abort":
        os.abort()
    elif kind == "exit":
        os._exit(3)


class CancelListener:
    """Reads request ids from the cancel channel on a thread of its own.

    The flag it sets is read by the decode loop and by llama.cpp's abort callback, so a cancel
    lands even in the middle of a long batch. Ids keep a late cancel from hitting the next request.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.cancelled_id = -1
        self.current_id = 0
        threading.Thread(target=self._run, daemon=True, name="cancel-listener").start()

    def _run(self) -> None:
        buf = b""
        while True:
            try:
                data = self.sock.recv(64)
            except OSError:
                return
            if not data:
                return
            buf += data
            while len(buf) >= 4:
                self.cancelled_id = int.from_bytes(buf[:4], "little")
                buf = buf[4:]

    def is_set(self) -> bool:
        return self.cancelled_id == self.current_id


def worker_main(conn: Connection, cancel: CancelListener, path: str, options: dict, echo_log: bool = False) -> None:
    """Serve requests for one model until the client closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which cancels us
    from .backend import Backend, LogCapture

    log = LogCapture(echo=echo_log)
    try:
        backend = Backend(
            path,
            cancel_flag=cancel.is_set,
            on_load_progress=lambda p: conn.send({"type": "load_progress", "value": p}),
            log=log,
            **options,
        )
        from .ops import chat_template_source

        info = dict(backend.info())
        info["chat_template_used"] = list(chat_template_source(backend))
        conn.send({"type": "ready", "info": info})
    except BaseException as exc:  # noqa: BLE001 - every load failure is reported, then we exit
        conn.send({"type": "error", "error": error_payload(exc)})
        return
    simple, streaming = _simple_ops(backend), _stream_ops()
    hooks = os.environ.get("KIIG_TEST_HOOKS") == "1"
    while True:
        try:
            req = conn.recv()
        except (EOFError, OSError):
            break
        op, rid, args = req.get("op"), req.get("id"), req.get("args") or {}
        if op == "close":
            break
        cancel.current_id = rid
        try:
            if op in simple:
                conn.send({"type": "result", "id": rid, "result": simple[op](**args)})
            elif op in streaming:
                gen = streaming[op](backend, **args)
                while True:
                    try:
                        event = next(gen)
                    except StopIteration as stop:
                        conn.send({"type": "result", "id": rid, "result": stop.value})
                        break
                    conn.send({"type": "event", "id": rid, "event": event})
            elif op == "debug_crash" and hooks:
                _debug_crash(args.get("kind", "segv"))
            else:
                raise EngineError(f"unknown engine operation {op!r}")
        except Cancelled as exc:
            backend.clear()
            conn.send({"type": "error", "id": rid, "error": error_payload(exc)})
        except BaseException as exc:  # noqa: BLE001 - the worker reports and keeps serving
            conn.send({"type": "error", "id": rid, "error": error_payload(exc)})
    backend.close()


def _require_local_socket(fd: int) -> None:
    """The worker talks only over the Unix socket pairs its client made; anything else is refused."""
    probe = socket.socket(fileno=os.dup(fd))
    try:
        family = probe.family
    finally:
        probe.close()
    if family != socket.AF_UNIX:
        raise SystemExit(f"kiig worker: descriptor {fd} is not a local socket pair ({family!r}); refusing to start")


def main(argv: list[str] | None = None) -> None:
    """``python -m kiig_desktop.engine.worker CONN_FD CANCEL_FD PATH OPTIONS_JSON [--echo]``."""
    import json

    args = list(sys.argv[1:] if argv is None else argv)
    for fd in args[:2]:
        _require_local_socket(int(fd))
    conn = Connection(int(args[0]))
    cancel = CancelListener(socket.socket(fileno=int(args[1])))
    worker_main(conn, cancel, args[2], json.loads(args[3]), echo_log="--echo" in args[4:])


if __name__ == "__main__":
    main()
