"""Getting models onto an offline machine: the system-wide Ollama store and shared models folder are
discovered, `kiig models checksums FOLDER` writes a SHA256SUMS that `sha256sum -c` accepts, and
packaging/offline/install.sh checks and copies models from subfolders too (to the shared folder as
root). install.sh runs for real, from a folder laid out like the bundle, with stand-in executables
(tests/support/offline.py)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kiig_desktop.config import SYSTEM_OLLAMA_MODELS, Settings
from kiig_desktop.engine import models as M
from tests.support.gguf_factory import write_tiny_gguf
from tests.support.offline import bundle_folder
from tests.support.paths import ROOT

OFFLINE = ROOT / "packaging" / "offline"


def _ollama_store(root: Path, name: str, tag: str) -> Path:
    """An Ollama model store under ``root`` holding one model ``name:tag``; returns its blob."""
    blob = write_tiny_gguf(root / "tmp.gguf", name=name)
    digest = hashlib.sha256(blob.read_bytes()).hexdigest()
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    target = root / "blobs" / f"sha256-{digest}"
    shutil.move(blob, target)
    manifest = root / "manifests" / "registry.ollama.ai" / "library" / name / tag
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"layers": [{"mediaType": M.OLLAMA_MODEL_MEDIA, "digest": f"sha256:{digest}"}]}))
    return target


def test_the_system_wide_ollama_store_is_discovered(fake_home, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_DIRS", str(tmp_path / "no-shared"))
    system = tmp_path / "root"
    service_blob = _ollama_store(system / SYSTEM_OLLAMA_MODELS, "qwen2.5", "7b")
    users_blob = _ollama_store(fake_home / ".ollama" / "models", "llama3.2", "1b")
    models = {m.id: m for m in M.discover_models(Settings(), system_root=system)}
    assert models["ollama:qwen2.5:7b"].path == str(service_blob) and models["ollama:qwen2.5:7b"].source == "ollama"
    assert models["ollama:llama3.2:1b"].path == str(users_blob)
    # OLLAMA_MODELS replaces both stores, as it does for Ollama itself
    monkeypatch.setenv("OLLAMA_MODELS", str(fake_home / ".ollama" / "models"))
    assert "ollama:qwen2.5:7b" not in {m.id for m in M.discover_models(Settings(), system_root=system)}


def test_the_users_ollama_model_wins_a_name_clash(fake_home, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_DIRS", str(tmp_path / "no-shared"))
    system = tmp_path / "root"
    _ollama_store(system / SYSTEM_OLLAMA_MODELS, "same", "latest")
    users = _ollama_store(fake_home / ".ollama" / "models", "same", "latest")
    found = [m for m in M.discover_models(Settings(), system_root=system) if m.id == "ollama:same:latest"]
    assert [m.path for m in found] == [str(users)]


def _kiig(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kiig_desktop", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def _usb(tmp_path: Path) -> Path:
    """A stick with models at the top and in subfolders, as LM Studio lays them out."""
    usb = tmp_path / "usb stick"
    write_tiny_gguf(usb / "top.gguf", name="top")
    write_tiny_gguf(usb / "lmstudio-community" / "Tiny-GGUF" / "tiny-Q4_K_M.gguf", name="nested")
    (usb / "notes.txt").write_text("not a model\n")
    return usb


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIIG_", "XDG_", "OLLAMA_"))}
    return {**env, "HOME": str(home), "KIIG_DATA_DIR": str(tmp_path / "data"), "XDG_DATA_DIRS": str(tmp_path / "shared"), **extra}


def test_checksums_writes_a_file_sha256sum_accepts(tmp_path):
    usb = _usb(tmp_path)
    r = _kiig(["models", "checksums", str(usb)], _env(tmp_path))
    assert r.returncode == 0, r.stderr
    lines = (usb / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    assert [ln.split("  ", 1)[1] for ln in lines] == ["lmstudio-community/Tiny-GGUF/tiny-Q4_K_M.gguf", "top.gguf"]
    check = subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=usb, capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count(": OK") == 2, check.stdout + check.stderr
    with (usb / "lmstudio-community" / "Tiny-GGUF" / "tiny-Q4_K_M.gguf").open("ab") as fh:
        fh.write(b"damage")
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=usb, capture_output=True).returncode == 1


def test_the_documented_one_liner_writes_the_same_file(tmp_path):
    """docs/cli.md's shell line for a machine without kiig gives the bytes `kiig models checksums` gives."""
    usb = _usb(tmp_path)
    assert _kiig(["models", "checksums", str(usb)], _env(tmp_path)).returncode == 0
    ours = (usb / "SHA256SUMS").read_bytes()
    (usb / "SHA256SUMS").unlink()
    line = re.search(r"`(cd FOLDER && find .*? > SHA256SUMS)`", (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")).group(1)
    subprocess.run(["sh", "-c", line.replace("FOLDER", shlex.quote(str(usb)), 1)], check=True)
    assert (usb / "SHA256SUMS").read_bytes() == ours


def test_checksums_of_a_folder_without_models_is_one_line_exit_2(tmp_path):
    (tmp_path / "empty").mkdir()
    r = _kiig(["models", "checksums", str(tmp_path / "empty")], _env(tmp_path))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no .gguf files" in r.stderr


def test_install_copies_models_from_subfolders_and_uninstall_removes_them(tmp_path):
    usb, app, prefix = _usb(tmp_path), bundle_folder(tmp_path), tmp_path / "prefix"
    env = _env(tmp_path, KIIG_MODELS_DIR=str(tmp_path / "my models"))
    assert _kiig(["models", "checksums", str(usb)], env).returncode == 0
    r = subprocess.run(["sh", app / "install.sh", "--prefix", prefix, "--models-from", usb, "--no-self-test"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    nested = tmp_path / "my models" / "lmstudio-community" / "Tiny-GGUF" / "tiny-Q4_K_M.gguf"
    assert nested.read_bytes() == (usb / "lmstudio-community" / "Tiny-GGUF" / "tiny-Q4_K_M.gguf").read_bytes()
    assert (tmp_path / "my models" / "top.gguf").is_file() and not (tmp_path / "my models" / "notes.txt").exists()
    listed = _kiig(["models", "--json"], env)
    ids = {m["id"] for m in json.loads(listed.stdout)["models"]}
    assert {"folder:lmstudio-community/Tiny-GGUF/tiny-Q4_K_M", "folder:top"} <= ids
    r = subprocess.run(["sh", prefix / "lib" / "kiig-desktop" / "uninstall.sh"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert not nested.exists() and not (tmp_path / "my models" / "top.gguf").exists()


@pytest.mark.parametrize("damage", ["no line", "mismatch"])
def test_install_refuses_a_bad_model_in_a_subfolder_and_writes_nothing(tmp_path, damage):
    usb, app, prefix = _usb(tmp_path), bundle_folder(tmp_path), tmp_path / "prefix"
    env = _env(tmp_path, KIIG_MODELS_DIR=str(tmp_path / "my models"))
    assert _kiig(["models", "checksums", str(usb)], env).returncode == 0
    sums = usb / "SHA256SUMS"
    if damage == "no line":
        sums.write_text("".join(ln for ln in sums.read_text().splitlines(True) if "Tiny-GGUF" not in ln))
    else:
        with (usb / "lmstudio-community" / "Tiny-GGUF" / "tiny-Q4_K_M.gguf").open("ab") as fh:
            fh.write(b"x")
    r = subprocess.run(["sh", app / "install.sh", "--prefix", prefix, "--models-from", usb, "--no-self-test"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "lmstudio-community/Tiny-GGUF/tiny-Q4_K_M.gguf" in r.stderr, r.stderr
    assert ("no line in SHA256SUMS" if damage == "no line" else "SHA-256 mismatch") in r.stderr
    assert not prefix.exists() and not (tmp_path / "my models").exists()


def _private_system_dirs() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs none /opt"], capture_output=True).returncode == 0


def test_install_as_root_puts_models_in_the_shared_folder_every_user_reads(tmp_path):
    """sudo ./install.sh --models-from: /usr/local/share/kiig-desktop/models (readable by all), which
    the app lists as `system` models; run in a private mount namespace with empty /opt and /usr/local."""
    if not _private_system_dirs():
        pytest.fail("this test needs root and mount namespaces (unshare -m) for a private /opt and /usr/local")
    usb, app = _usb(tmp_path), bundle_folder(tmp_path)
    env = _env(tmp_path)
    env.pop("XDG_DATA_DIRS")
    assert _kiig(["models", "checksums", str(usb)], env).returncode == 0
    for p in [usb, *usb.rglob("*")]:
        p.chmod(0o700 if p.is_dir() else 0o600)  # as written owner-only on the connected side
    shared = "/usr/local/share/kiig-desktop/models"
    script = f"""set -e
mount -t tmpfs none /opt && mount -t tmpfs none /usr/local
umask 077
sh '{app}/install.sh' --no-self-test --models-from '{usb}'
stat -c '%a %n' {shared} {shared}/lmstudio-community {shared}/lmstudio-community/Tiny-GGUF {shared}/top.gguf {shared}/lmstudio-community/Tiny-GGUF/tiny-Q4_K_M.gguf
'{sys.executable}' -m kiig_desktop models --json
"""
    r = subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    modes = dict(line.split(" ", 1)[::-1] for line in r.stdout.splitlines() if line.startswith(("755 ", "644 ", "700 ", "600 ")))
    assert modes == {shared: "755", f"{shared}/lmstudio-community": "755", f"{shared}/lmstudio-community/Tiny-GGUF": "755",
                     f"{shared}/top.gguf": "644", f"{shared}/lmstudio-community/Tiny-GGUF/tiny-Q4_K_M.gguf": "644"}, r.stdout
    listed = json.loads(r.stdout[r.stdout.index('{\n'):])
    system = {m["id"]: m for m in listed["models"] if m["source"] == "system"}
    assert set(system) == {"system:lmstudio-community/Tiny-GGUF/tiny-Q4_K_M", "system:top"}
    assert not any(stat.S_IMODE(p.stat().st_mode) & 0o077 for p in usb.rglob("*"))  # the stick is left as it was
