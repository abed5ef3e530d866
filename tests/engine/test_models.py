"""Model registry: GGUF headers, SHA-256 cache, discovery (folder, LM Studio, Ollama), bad files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest

from kiig_desktop.config import Settings
from kiig_desktop.engine import models as M
from kiig_desktop.errors import EngineError, ModelFileError, ModelNotFound
from tests.support.cli import kiig
from tests.support.gguf_factory import write_tiny_gguf


def test_builtin_header(builtin_path):
    h = M.read_header(builtin_path)
    assert h.architecture == "llama"
    assert h.quantization == "Q4_1"
    assert 130e6 < h.parameters < 140e6
    assert h.context_length == 8192
    assert h.add_bos is False
    assert "<|im_start|>" in h.chat_template


def test_builtin_is_listed_as_default(fake_home):
    models = M.discover_models(Settings())
    assert models[0].id == "default" and models[0].source == "builtin"
    assert M.resolve_model("default").path == models[0].path


def test_sha256_is_cached_by_path_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setenv("KIIG_DATA_DIR", str(tmp_path / "data"))
    f = tmp_path / "model.gguf"
    f.write_bytes(b"GGUF" + b"x" * 1000)
    real = hashlib.sha256(f.read_bytes()).hexdigest()
    assert M.sha256_of(f) == real
    cache_file = tmp_path / "data" / "cache" / "sha256.json"
    cache = json.loads(cache_file.read_text())
    (entry,) = cache.values()
    entry["sha256"] = "f" * 64  # a planted value proves the next call reads the cache, not the file
    cache_file.write_text(json.dumps(cache))
    assert M.sha256_of(f) == "f" * 64
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert M.sha256_of(f) == real  # a touched file is hashed again
    assert oct(cache_file.stat().st_mode & 0o777) == "0o600"


def test_folder_lmstudio_and_ollama_discovery(fake_home, tmp_path):
    write_tiny_gguf(tmp_path / "models" / "sub" / "mine.gguf", name="mine")
    write_tiny_gguf(fake_home / ".lmstudio" / "models" / "pub" / "repo" / "lms-model-Q4.gguf")
    write_tiny_gguf(fake_home / ".lmstudio" / "models" / "pub" / "repo" / "mmproj-model-f16.gguf")
    write_tiny_gguf(fake_home / ".cache" / "lm-studio" / "models" / "old" / "legacy.gguf")
    blob = write_tiny_gguf(tmp_path / "blob.gguf")
    digest = hashlib.sha256(blob.read_bytes()).hexdigest()
    ollama = fake_home / ".ollama" / "models"
    (ollama / "blobs").mkdir(parents=True)
    shutil.move(blob, ollama / "blobs" / f"sha256-{digest}")
    manifest = ollama / "manifests" / "registry.ollama.ai" / "library" / "tinyllm" / "q4"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"layers": [
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "0" * 64},
        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}"},
    ]}))
    before = {p: p.stat().st_mtime_ns for p in fake_home.rglob("*") if p.is_file()}

    models = {m.id: m for m in M.discover_models(Settings())}
    assert models["folder:sub/mine"].source == "folder"
    assert models["lmstudio:pub/repo/lms-model-Q4"].source == "lmstudio"
    assert models["lmstudio:old/legacy"].source == "lmstudio"
    assert not any("mmproj" in k for k in models)  # vision projectors are not language models
    ollama_model = models["ollama:tinyllm:q4"]
    assert ollama_model.source == "ollama" and ollama_model.name == "tinyllm:q4"
    assert ollama_model.path == str(ollama / "blobs" / f"sha256-{digest}")  # used in place, not copied
    assert ollama_model.sha256() == digest
    assert ollama_model.header.architecture == "llama"
    assert M.resolve_model("tinyllm:q4").id == "ollama:tinyllm:q4"
    assert M.resolve_model("mine").id == "folder:sub/mine"
    after = {p: p.stat().st_mtime_ns for p in fake_home.rglob("*") if p.is_file()}
    assert before == after  # discovery is read-only


def test_unknown_model_name(fake_home):
    with pytest.raises(ModelNotFound, match="no model named 'nope'"):
        M.resolve_model("nope")


@pytest.fixture
def bad_files(tmp_path, builtin_path):
    text = tmp_path / "notes.gguf"
    text.write_text("this is not a model\n")
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    data = builtin_path.read_bytes()
    cut_header = tmp_path / "cut-header.gguf"
    cut_header.write_bytes(data[:100_000])
    cut_data = tmp_path / "cut-data.gguf"
    cut_data.write_bytes(data[:5_000_000])
    folder = tmp_path / "folder.gguf"
    folder.mkdir()
    return {
        "text": (text, "is not a GGUF model file"),
        "empty": (empty, "empty or too short"),
        "cut_header": (cut_header, "truncated or damaged"),
        "cut_data": (cut_data, "truncated"),
        "folder": (folder, "is a folder"),
        "missing": (tmp_path / "missing.gguf", "model file not found"),
    }


def test_bad_files_give_one_clear_message(bad_files):
    for path, words in bad_files.values():
        with pytest.raises(ModelFileError) as err:
            M.resolve_model(str(path))
        assert words in str(err.value)
        assert str(path) in str(err.value)


def test_unsupported_architecture_is_reported_by_the_engine(tmp_path):
    from kiig_desktop.engine.client import EngineClient

    path = write_tiny_gguf(tmp_path / "alien.gguf", arch="kiig-alien-arch")
    client = EngineClient(str(path))
    with pytest.raises(EngineError) as err:
        client.start()
    assert "could not load" in str(err.value)
    assert "kiig-alien-arch" in str(err.value)  # llama.cpp's own reason, captured from its log
    client.close()


def test_context_larger_than_memory_is_refused_before_loading(builtin_path):
    from kiig_desktop.config import EngineOptions
    from kiig_desktop.engine.client import EngineClient

    with pytest.raises(EngineError, match="GiB of KV cache"):
        EngineClient("default", EngineOptions(n_ctx=50_000_000))


def test_cli_bad_model_files_exit_2_without_traceback(bad_files, tmp_path):
    alien = write_tiny_gguf(tmp_path / "alien2.gguf", arch="kiig-alien-arch")
    cases = [p for p, _ in bad_files.values()] + [alien]
    for path in cases:
        r = kiig("generate", "--model", str(path), "--prompt", "hi", "--max-tokens", "2")
        assert r.returncode == 2, (path, r.stderr)
        assert "Traceback" not in r.stderr
        assert r.stderr.startswith("kiig: error: ")
        assert r.stdout == ""


def test_cli_models_json_contract(fake_home):
    r = kiig("models", "--json")
    assert r.returncode == 0, r.stderr
    (model,) = json.loads(r.stdout)["models"]
    assert set(model) >= {"id", "name", "path", "sha256", "architecture", "quantization", "parameters", "context_length", "source"}
    assert model["id"] == "default" and model["source"] == "builtin" and len(model["sha256"]) == 64


@pytest.mark.slow
def test_cli_generate_json_contract():
    r = kiig("generate", "--model", "default", "--prompt", "Say hello.", "--max-tokens", "6", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["tokens"]) == 6
    assert "".join(t["text"] for t in out["tokens"]) == out["text"]
    assert all(set(t) == {"text", "logprob", "entropy_bits", "top"} for t in out["tokens"])
    assert set(out["model"]) == {"path", "sha256"}


@pytest.mark.slow
def test_cli_doctor_reports_a_working_build():
    r = kiig("doctor", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["smoke"]["ok"] is True
    assert "AVX" in report["system_info"]
    assert isinstance(report["gpu_offload"], bool)
    assert any(m["id"] == "default" for m in report["models"])
    assert report["exactness"]["exact"] is True  # this build: incremental scoring equals a from-scratch pass
