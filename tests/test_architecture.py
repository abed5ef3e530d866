"""House rules that keep the layers apart: Qt only in gui/, llama_cpp only in engine/, no network."""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "kiig_desktop"
QT = ("PySide6", "pyqtgraph", "superqt", "shiboken6")
NETWORK = ("requests", "urllib.request", "http.client", "httpx", "aiohttp", "socketserver", "ftplib", "smtplib")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "_resources" not in p.parts)


def _top(name: str) -> str:
    return name.split(".")[0]


def test_qt_is_imported_only_in_gui():
    offenders = [str(p.relative_to(PKG)) for p in _modules() if "gui" not in p.relative_to(PKG).parts and any(_top(n) in QT for n in _imports(p))]
    assert offenders == []


def test_llama_cpp_is_imported_only_in_engine():
    offenders = [str(p.relative_to(PKG)) for p in _modules() if "engine" not in p.relative_to(PKG).parts and any(_top(n) == "llama_cpp" for n in _imports(p))]
    assert offenders == []


def test_gui_never_imports_llama_cpp():
    offenders = [str(p.relative_to(PKG)) for p in (PKG / "gui").rglob("*.py") if any(_top(n) == "llama_cpp" for n in _imports(p))]
    assert offenders == []


def test_no_network_client_code_in_the_product():
    offenders = [(str(p.relative_to(PKG)), n) for p in _modules() for n in _imports(p) if n in NETWORK or _top(n) in NETWORK]
    assert offenders == []


def test_sockets_are_only_local_pairs():
    """``socket`` serves the model worker's Unix socket pairs; nothing opens, binds or resolves an address."""
    users = sorted(str(p.relative_to(PKG)) for p in _modules() if "socket" in _imports(p))
    assert users == ["engine/client.py", "engine/worker.py"]
    for rel in users:
        calls = {node.func.attr for node in ast.walk(ast.parse((PKG / rel).read_text(encoding="utf-8")))
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                 and isinstance(node.func.value, ast.Name) and node.func.value.id == "socket"}
        assert calls <= {"socketpair", "socket"}, (rel, calls)
        text = (PKG / rel).read_text(encoding="utf-8")
        for word in ("AF_INET", "create_connection", "getaddrinfo", ".bind(", ".listen(", ".connect("):
            assert word not in text, (rel, word)


def test_the_worker_refuses_a_socket_that_is_not_a_local_pair():
    from kiig_desktop.engine.worker import main

    inet = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # never bound or connected
    try:
        with pytest.raises(SystemExit, match="not a local socket pair"):
            main([str(inet.fileno()), str(inet.fileno()), "model.gguf", "{}"])
    finally:
        inet.close()


def test_core_works_with_qt_missing():
    """Like a CI job without Qt installed: the whole core and the CLI import and run with Qt blocked."""
    code = textwrap.dedent(
        f"""
        import importlib, pkgutil, sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {QT!r}:
                    raise ImportError("Qt is blocked in this test: " + name)
        sys.meta_path.insert(0, Block())
        import kiig_desktop
        for m in pkgutil.walk_packages(kiig_desktop.__path__, "kiig_desktop."):
            if ".gui" in m.name or "._resources" in m.name or m.name.endswith(".__main__"):
                continue
            importlib.import_module(m.name)
        from kiig_desktop.cli import main
        assert main(["models", "--json"]) == 0
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert '"models"' in r.stdout
