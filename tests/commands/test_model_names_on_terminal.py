"""Model names on the terminal (``kiig models``, the ``kiig judge-check`` summary) come from file names
and GGUF metadata, which whoever made the file chose: their control characters are printed as visible
escapes (``\\x1b``), never sent to the terminal, where they could retitle it, clear it or forge lines."""

from __future__ import annotations

import os
from pathlib import Path

from kiig_desktop.files import file_sha256
from kiig_desktop.knowledge.ki import KI_METHOD_VERSION
from kiig_desktop.runs import judge_check as jc
from kiig_desktop.store import judge_validation as validation
from tests.support.cli import kiig
from tests.support.gguf_factory import write_tiny_gguf

HOSTILE = "evil\x1b]0;pwned\x07\x1b[2J\rforged"  # retitle, clear the screen, overwrite the line


def hostile_model(data: Path) -> Path:
    """A GGUF in the models folder whose file name, general.name and architecture hold escapes."""
    return write_tiny_gguf(data / "models" / f"{HOSTILE}.gguf", arch=f"llama{HOSTILE}", name=HOSTILE)


def env(data: Path) -> dict[str, str]:
    return {**os.environ, "KIIG_DATA_DIR": str(data), "KIIG_MODELS_DIR": str(data / "models")}


def assert_visible(out: str) -> None:
    assert not any(c in out for c in "\x1b\x07\r"), repr(out)
    assert "evil\\x1b]0;pwned\\x07\\x1b[2J\\x0dforged" in out, out


def test_kiig_models_shows_escapes_in_names(tmp_path):
    data = tmp_path / "data"
    hostile_model(data)
    done = kiig("models", env=env(data))
    assert done.returncode == 0, done.stderr
    assert_visible(done.stdout)
    assert "llamaevil\\x1b]0;pwned" in done.stdout  # the architecture (GGUF metadata) too


def test_judge_check_summary_shows_escapes_in_the_judge_name(tmp_path):
    """A stored check of the hostile file is printed (the tiny file is never loaded)."""
    data = tmp_path / "data"
    path = hostile_model(data)
    validation.save({"model": {"path": str(path), "sha256": file_sha256(path)}, "method": KI_METHOD_VERSION,
                     "claims_sha256": jc.claims_fingerprint(), "k": 3, "auroc": 0.8, "auroc_ci": [0.7, 0.9],
                     "accuracy": 0.75, "accuracy_ci": [0.6, 0.85], "n": 64,
                     "engine_options": {"chat_template": None, "n_gpu_layers": 0},
                     "by_kind": {HOSTILE: {"auroc": 0.8, "auroc_ci": [0.7, 0.9], "accuracy": 0.75,
                                           "accuracy_ci": [0.6, 0.85], "n": 8}}}, data_dir=data)
    done = kiig("judge-check", "--model", str(path), env=env(data))
    assert done.returncode == 0, done.stderr
    assert "(stored result)" in done.stdout
    assert_visible(done.stdout)
