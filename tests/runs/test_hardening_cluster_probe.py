"""Issue 28 D: ``--cluster`` refuses this machine's loopback in every spelling, and a listener that
is not a Ray head fails at once with one line instead of Ray retrying for ever. Real listeners, all
on 127.0.0.1 only; the positive case (a real Ray GCS) is every cluster run of tests/runs/test_cluster.py."""

from __future__ import annotations

import http.server
import json
import socket
import threading

import pytest

from kiig_desktop.errors import InputError
from kiig_desktop.runs.cluster import check_ray_head
from tests.support.cli import kiig, one_clear_line
from tests.support.require import RAY_HOW, require_module

require_module("ray", RAY_HOW)


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("host", ["127.1", "127.0.0.2", "2130706433", "0x7f000001", "[::1]", "::ffff:127.0.0.1",
                                  "localhost", "LOCALHOST", "0.0.0.0"])
def test_every_spelling_of_loopback_is_refused(tmp_path, host):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"id": "a", "question": "What is 2 + 2?", "answer": "4"}) + "\n")
    r = kiig("run", "--dataset", data, "--models", "default", "--scorer", "default", "--db", tmp_path / "s.kiig",
             "--cluster", f"{host}:{_free_loopback_port()}", timeout=300)
    one_clear_line(r, "loopback", "cannot be joined")


class _Http1(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def test_an_http_server_is_not_a_ray_head():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Http1)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with _connect(server.server_address[1]) as conn, pytest.raises(InputError) as err:
            check_ray_head(conn, "head:8765", 30.0)
    finally:
        server.shutdown()
        server.server_close()
    assert "head:8765 is not a Ray cluster head: an HTTP/1 server answered" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_silent_or_closing_listener_is_not_a_ray_head():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(2)
        port = listener.getsockname()[1]
        with _connect(port) as conn, pytest.raises(InputError) as err:
            check_ray_head(conn, "head:1", 0.5)  # accepted by the kernel, never answered
        assert "is not a Ray cluster head: it sent nothing within 0.5 s" in str(err.value)
        with _connect(port) as conn:
            peer, _ = listener.accept()  # the first connection's
            peer.close()
            peer, _ = listener.accept()
            peer.close()
            with pytest.raises(InputError) as err:
                check_ray_head(conn, "head:1", 30.0)
        assert "is not a Ray cluster head: it closed the connection without answering" in str(err.value)
