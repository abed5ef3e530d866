"""The home folder the screenshots show: a user "analyst" with documents, models, LM Studio and Ollama.

:func:`reexec_in_home` runs the screenshot script again in a private mount namespace (``unshare``)
where ``/home/analyst`` is a fresh folder (a temporary folder bind-mounted there; the real homes stay
where they are), so the app shows the paths a user sees instead of /tmp or a developer's venv. Where
``unshare`` is not allowed, the home is a temporary folder ending in ``home/analyst``.
:func:`make_home` fills it: ``~/Documents/datasets/clinical_mcq.jsonl`` (the sample set),
``~/models/`` (a copy of the embedded model), an LM Studio folder and an Ollama store holding tiny
random-weight test models (tests/support/tiny_models.py), and ``~/Downloads``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FAKE_HOME = Path("/home/analyst")
ENV_MARK = "KIIG_SCREENS_HOME"  # set in the re-run: the home to use
LMSTUDIO_REPO = Path("kiig-test") / "tiny-random-llama-GGUF"
OLLAMA_NAME = ("tiny-random-llama", "q4_0")
# in the namespace: keep the real /home at $1, put a tmpfs over /home, bind every real home back,
# then bind the prepared folder $2 at /home/analyst
_MOUNT = """set -e
keep="$1"; mine="$2"; shift 2
mount --rbind /home "$keep"
mount -t tmpfs -o mode=0755 kiig-screens /home
for d in "$keep"/* "$keep"/.[!.]*; do
  [ -d "$d" ] || continue
  mkdir -p "/home/${d##*/}"; mount --rbind "$d" "/home/${d##*/}"
done
mkdir -p /home/analyst; mount --bind "$mine" /home/analyst
exec "$@"
"""


def _unshare() -> list[str] | None:
    """The unshare command that gives this user a private mount namespace, or None."""
    exe = shutil.which("unshare")
    if exe is None or not sys.platform.startswith("linux") or not Path("/home").is_dir():
        return None
    cmd = [exe, "-m"] if os.geteuid() == 0 else [exe, "-r", "-m"]
    probe = subprocess.run([*cmd, "true"], capture_output=True, check=False)
    return cmd if probe.returncode == 0 else None


def reexec_in_home(root: Path, argv: list[str]) -> int | None:
    """Run this script again with ``argv`` where ``root/analyst`` is /home/analyst; None where that is not possible."""
    cmd = _unshare()
    if cmd is None:
        return None
    mine = root / "analyst"
    mine.mkdir(mode=0o700)
    keep = Path(tempfile.mkdtemp(prefix="kiig-screens-homes-"))
    try:
        env = {**os.environ, ENV_MARK: str(FAKE_HOME)}
        return subprocess.run([*cmd, "sh", "-c", _MOUNT, "sh", str(keep), str(mine), sys.executable, *argv],
                              env=env, check=False).returncode
    finally:
        keep.rmdir()  # an empty mount point outside the namespace: never remove recursively


def use_home(home: Path) -> None:
    """This process and its children see ``home`` as the user's home, with the default data folder."""
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "OLLAMA_MODELS", "KIIG_MODELS_DIR"):
        os.environ.pop(var, None)
    os.environ["HOME"] = str(home)
    os.environ["KIIG_DATA_DIR"] = str(home / ".local" / "share" / "kiig-desktop")  # the default, said outright


def _tiny_models(build: Path) -> tuple[Path, Path]:
    """Two quantizations of a tiny random-weight llama model (Llama 2 tokenizer), built in ``build``."""
    from tests.support.tiny_models import tiny_model

    return tiny_model("llama-spm", "Q8_0", build), tiny_model("llama-spm", "Q4_0", build)


def make_home(home: Path, builtin: Path, dataset: Path) -> dict[str, Path | str]:
    """Fill ``home`` (call before :func:`use_home`: the test models' tokenizers are found in the real home)."""
    for sub in ("Documents/datasets", "Downloads", "models", ".local/share"):
        (home / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home, 0o700)
    docs = home / "Documents"
    shutil.copyfile(dataset, docs / "datasets" / dataset.name)
    own = home / "models" / "SmolLM2-135M-Instruct-Q4_1.gguf"
    shutil.copyfile(builtin, own)
    build = Path(tempfile.mkdtemp(prefix="kiig-screens-models-"))
    try:
        q8, q4 = _tiny_models(build)
        lms = home / ".lmstudio" / "models" / LMSTUDIO_REPO
        lms.mkdir(parents=True)
        shutil.copyfile(q8, lms / "tiny-random-llama-Q8_0.gguf")
        store = home / ".ollama" / "models"
        digest = hashlib.sha256(q4.read_bytes()).hexdigest()
        (store / "blobs").mkdir(parents=True)
        shutil.copyfile(q4, store / "blobs" / f"sha256-{digest}")
        manifest = store / "manifests" / "registry.ollama.ai" / "library" / OLLAMA_NAME[0] / OLLAMA_NAME[1]
        manifest.parent.mkdir(parents=True)
        manifest.write_text(json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "layers": [{"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}",
                        "size": q4.stat().st_size}],
        }), encoding="utf-8")
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return {"dataset": docs / "datasets" / dataset.name, "session": docs / "ward-round.kiig", "downloads": home / "Downloads",
            "own_model": own, "ollama_id": f"ollama:{OLLAMA_NAME[0]}:{OLLAMA_NAME[1]}",
            "lmstudio_id": f"lmstudio:{(LMSTUDIO_REPO / 'tiny-random-llama-Q8_0').as_posix()}"}
