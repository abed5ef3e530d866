"""House rules that keep the layers apart: Qt only in gui/, llama_cpp only in engine/, no network."""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.paths import ROOT

PKG = ROOT / "kiig_desktop"
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


# ---------------------------------------------------------------- layers (docs/architecture.md)
#
# An import-linter style contract. Layers, top to bottom; a module may import from its own layer
# or any layer below, never from one above. Names joined by "|" are independent (neither imports
# the other); the middle layer's packages may use each other as long as no circle forms.
LAYERS = (
    ("commands | gui", {"commands", "gui", "cli", "__main__"}),
    ("runs", {"runs"}),
    ("reports : knowledge : metrics : chains", {"reports", "knowledge", "metrics", "chains"}),
    ("store | engine", {"store", "engine"}),
    ("ground floor", {"", "errors", "events", "config", "files", "strict_json", "units", "resources"}),
)
INDEPENDENT = ({"commands", "cli", "__main__"}, {"gui"}), ({"store"}, {"engine"})


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_pkg else parts), is_pkg


def _graph() -> dict[str, set[str]]:
    """Every internal import of every module, lazy ones (inside functions) included."""
    mods = {_module_name(p)[0]: p for p in _modules()}
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = name.split(".")
                if node.level:
                    base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                candidates = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            # importing an ancestor package of oneself (``from .. import __version__``) is not an edge
            deps.update(c for c in candidates if c in mods and c != name and not name.startswith(c + "."))
        graph[name] = deps
    return graph


def _part(module: str) -> str:
    rest = module.split(".")[1:]
    return rest[0] if rest else ""


def _layer(module: str) -> int:
    return next(i for i, (_, parts) in enumerate(LAYERS) if _part(module) in parts)


def test_every_module_has_a_layer():
    unknown = sorted(m for m in _graph() if not any(_part(m) in parts for _, parts in LAYERS))
    assert unknown == [], "put new top-level packages into LAYERS (and docs/architecture.md)"


def test_no_import_points_up():
    upward = sorted(f"{a} -> {b} ({LAYERS[_layer(a)][0]} imports {LAYERS[_layer(b)][0]})"
                    for a, deps in _graph().items() for b in deps if _layer(b) < _layer(a))
    assert upward == []


def test_independent_packages_do_not_import_each_other():
    crossing = sorted(f"{a} -> {b}" for a, deps in _graph().items() for b in deps for one, other in INDEPENDENT
                      if (_part(a) in one and _part(b) in other) or (_part(a) in other and _part(b) in one))
    assert crossing == []


def test_no_import_circles():
    """No module reaches itself through imports, lazy ones included (Tarjan's strongly connected components)."""
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert circles == []


def test_the_layer_check_sees_lazy_and_relative_imports():
    graph = _graph()
    assert "kiig_desktop.knowledge.judge" in graph["kiig_desktop.commands.ki"]  # imported inside a function
    assert "kiig_desktop.chains.prompts" in graph["kiig_desktop.metrics.infogain"]  # a relative import


def test_qt_is_imported_only_in_gui():
    offenders = [str(p.relative_to(PKG)) for p in _modules() if "gui" not in p.relative_to(PKG).parts and any(_top(n) in QT for n in _imports(p))]
    assert offenders == []


def test_llama_cpp_is_imported_only_in_engine():
    offenders = [str(p.relative_to(PKG)) for p in _modules() if "engine" not in p.relative_to(PKG).parts and any(_top(n) == "llama_cpp" for n in _imports(p))]
    assert offenders == []


def test_ray_is_imported_only_by_the_cluster_driver():
    """Ray is an optional extra: one module imports it, lazily, so everything else runs without it."""
    offenders = [str(p.relative_to(PKG)) for p in _modules() if any(_top(n) == "ray" for n in _imports(p))]
    assert offenders == ["runs/cluster.py"]
    top_level = [n for n in ast.parse((PKG / "runs/cluster.py").read_text(encoding="utf-8")).body
                 if isinstance(n, ast.Import | ast.ImportFrom) and any(a.name.split(".")[0] == "ray" for a in n.names)]
    assert top_level == []


def test_gui_never_imports_llama_cpp():
    offenders = [str(p.relative_to(PKG)) for p in (PKG / "gui").rglob("*.py") if any(_top(n) == "llama_cpp" for n in _imports(p))]
    assert offenders == []


def test_no_network_client_code_in_the_product():
    offenders = [(str(p.relative_to(PKG)), n) for p in _modules() for n in _imports(p) if n in NETWORK or _top(n) in NETWORK]
    assert offenders == []


def test_sockets_are_only_local_pairs():
    """``socket`` serves the model worker's Unix socket pairs; nothing opens, binds or resolves an address --
    except the opt-in cluster path (``kiig run --cluster``), whose reachability probe resolves the head's address
    (to refuse every spelling of loopback) and connects to it."""
    users = sorted(str(p.relative_to(PKG)) for p in _modules() if "socket" in _imports(p))
    assert users == ["engine/client.py", "engine/worker.py", "runs/cluster.py"]
    cluster_calls = {node.func.attr for node in ast.walk(ast.parse((PKG / "runs/cluster.py").read_text(encoding="utf-8")))
                     if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                     and isinstance(node.func.value, ast.Name) and node.func.value.id == "socket"}
    assert cluster_calls == {"create_connection", "getaddrinfo"}
    for rel in users[:2]:
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
