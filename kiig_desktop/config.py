"""Settings and well-known paths.

Everything the product writes lives under one data folder (``KIIG_DATA_DIR``, else
``$XDG_DATA_HOME/kiig-desktop``, else ``~/.local/share/kiig-desktop``), created owner-only.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from contextlib import suppress
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .errors import InputError, StoreError

SETTINGS_FILE = "settings.json"
# Ollama's Linux service (the official install script) keeps its models here, under the system root
SYSTEM_OLLAMA_MODELS = Path("usr/share/ollama/.ollama/models")
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


# OpenMP threads that spin while they wait collapse throughput (measured 25x) as soon as another
# process wants the same cores: a second model, the GUI, a test runner. Fully passive waiting costs
# 5x in single-token generation on free cores, so the threads spin briefly (1,000 polls) and then
# sleep: ~60 tok/s idle and no collapse under load on the 2-core reference machine.
#
# GGML_CPU_TILED_MM (llama.cpp's tiled K-quant matmul) is not set here: the worker keeps it on only
# when the loaded CPU backend carries our batch-invariance patch (engine/variants.py:
# set_tiled_default; README "Batch invariance").
WORKER_ENV_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "1000"}


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def default_data_dir() -> Path:
    if os.environ.get("KIIG_DATA_DIR"):
        return Path(os.environ["KIIG_DATA_DIR"]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else _home() / ".local" / "share"
    return base / "kiig-desktop"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed; every folder we create is readable by its owner only."""
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)
        os.chmod(folder, 0o700)
    return path


def make_private(path: Path) -> None:
    """Tighten an existing file to 0600 or folder to 0700 when it is ours and looser (made by an
    older version or under a loose umask); links and other people's files are left alone."""
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode) or (hasattr(os, "geteuid") and st.st_uid != os.geteuid()):
            return
        want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
        if stat.S_IMODE(st.st_mode) & ~want:
            os.chmod(path, stat.S_IMODE(st.st_mode) & want)
    except OSError:
        pass


def tighten_data_dir(data_dir: Path) -> None:
    """The data folder, its own subfolders and the files in them (settings, gui.ini, logs, caches,
    autosaved sessions) owner-only again; model files in it keep their mode. A cache file that
    others could write is dropped, not tightened: its content may be theirs."""
    make_private(data_dir)
    for folder in (data_dir, *(data_dir / sub for sub in ("sessions", "logs", "cache", "models"))):
        if not folder.is_dir() or folder.is_symlink():
            continue
        make_private(folder)
        if folder.name == "models" and folder != data_dir:
            continue
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if not entry.is_file(follow_symlinks=False):
                continue
            if folder.name == "cache" and folder != data_dir and not _private(entry.stat(follow_symlinks=False)):
                with suppress(OSError):
                    os.unlink(entry.path)
            else:
                make_private(Path(entry.path))


def secure_data_dir(data_dir: Path | None = None, *, create: bool = False) -> Path:
    """What every entry point (``kiig``, the desktop app) does first: the data folder owner-only
    (0700, its files 0600), created when ``create``; a folder left 0777 is tightened before use."""
    path = data_dir or default_data_dir()
    if create:
        with suppress(OSError):
            ensure_private_dir(path)
    if path.is_dir():
        tighten_data_dir(path)
    return path


def _private(st: os.stat_result) -> bool:
    """Only this user can have written it: ours, no group or other bits, a plain file or a folder."""
    ours = not hasattr(os, "geteuid") or st.st_uid == os.geteuid()
    return ours and (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)) and not stat.S_IMODE(st.st_mode) & 0o077


def read_private_text(path: Path) -> str | None:
    """The text of ``path`` when only this user can have written it (a 0600 file of ours, not a
    link, in a 0700 folder of ours); None when it is missing or anyone else could have."""
    try:
        if not _private(os.lstat(path.parent)):
            return None
        fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        try:
            st = os.fstat(fh.fileno())
            return fh.read().decode("utf-8", errors="replace") if stat.S_ISREG(st.st_mode) and _private(st) else None
        except OSError:
            return None


def write_error(exc: OSError, path: Path) -> StoreError:
    """One readable line for a failed write of ``path`` (a full disk says so)."""
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return StoreError(f"no space left on device writing {path}")
    return StoreError(f"cannot write {path}: {exc.strerror or exc}")


def write_private_file(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, owner-only and atomically (data folder files: settings, caches).

    The temporary file gets a fresh random name next to ``path`` (``mkstemp``: ``O_EXCL |
    O_NOFOLLOW``), so a link planted under any name is never followed, and it is removed again when
    anything fails: a full disk leaves no ``*.tmp`` behind and raises :func:`write_error`'s line.
    """
    try:
        ensure_private_dir(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise write_error(exc, path) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException as exc:
        with suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise write_error(exc, path) from None
        raise


def require_free_space(folder: Path, need: int, path: Path) -> None:
    """StoreError before long work when ``folder`` cannot take ``need`` more bytes for ``path``."""
    try:
        vfs = os.statvfs(folder)
    except (OSError, AttributeError):
        return
    free = vfs.f_bavail * vfs.f_frsize
    if free < need:
        raise StoreError(f"no space left on device writing {path} ({free:,} bytes free, {need:,} needed)")


THREADS_PER_CORE = 4
THREADS_CAP = 256


def max_threads() -> int:
    """The most CPU threads an engine may use: 4 per core of this machine, at most 256.

    More threads than cores only wait for each other (512 ran 80x slower than 8 on 2 cores), and
    llama.cpp crashes outright with very large counts (100,000: SIGSEGV while creating them).
    """
    return max(1, min(THREADS_CAP, THREADS_PER_CORE * (os.cpu_count() or 1)))


def check_threads(value: int | None, flag: str = "--threads") -> None:
    """InputError with the bound and its reason unless ``value`` is None (automatic) or 1..max_threads()."""
    if value is None:
        return
    top = max_threads()
    if not 1 <= value <= top:
        raise InputError(
            f"{flag} must be between 1 and {top}, got {value} ({THREADS_PER_CORE} x the {os.cpu_count() or 1} "
            f"CPU cores of this machine, at most {THREADS_CAP}: more threads than cores only slow the model "
            "down, and llama.cpp crashes with very large counts)"
        )


@dataclass
class EngineOptions:
    """How a model is loaded. Recorded with every number it produces."""

    n_ctx: int = 4096
    n_gpu_layers: int = 0
    n_threads: int | None = None  # None: the cores this process may use, up to 8
    n_batch: int = 512
    seed: int = 0
    flash_attn: bool = False  # on: faster prefill, but logits then depend on batch boundaries
    repack: bool = False  # CPU weight repacking: can be faster for Q4_0/K-quants, but batch-dependent logits
    # where the load-time self-test finds batches not invariant, prefixes are scored from scratch
    # (exact, O(n^2) tokens) unless this is on: then incrementally, and every number says "not exact"
    fast_not_exact: bool = False
    chat_template: str | None = None  # a llama.cpp template name or a Jinja template; None: the GGUF's own

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EngineOptions:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Settings:
    """User settings, persisted as JSON in the data folder."""

    data_dir: Path = field(default_factory=default_data_dir)
    models_dir: Path | None = None  # None: <data_dir>/models, or KIIG_MODELS_DIR
    discover_lmstudio: bool = True
    discover_ollama: bool = True
    engine: EngineOptions = field(default_factory=EngineOptions)
    cpu_variant: str | None = None  # llama.cpp CPU variant to pin (x64, haswell, ...); None: the best for this CPU

    @property
    def resolved_models_dir(self) -> Path:
        if self.models_dir is not None:
            return Path(self.models_dir).expanduser()
        if os.environ.get("KIIG_MODELS_DIR"):
            return Path(os.environ["KIIG_MODELS_DIR"]).expanduser()
        return self.data_dir / "models"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    def lmstudio_dirs(self) -> list[Path]:
        home = _home()
        return [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]

    def ollama_dirs(self, system_root: Path = Path("/")) -> list[Path]:
        """Ollama's model stores: ``$OLLAMA_MODELS`` alone when set (as Ollama reads it), else the
        user's ``~/.ollama/models`` and the Linux service's ``/usr/share/ollama/.ollama/models``."""
        env = os.environ.get("OLLAMA_MODELS")
        if env:
            return [Path(env).expanduser()]
        return [_home() / ".ollama" / "models", system_root / SYSTEM_OLLAMA_MODELS]

    def system_models_dirs(self) -> list[Path]:
        """Shared models folders of a system-wide install (``sudo ./install.sh --models-from``):
        ``kiig-desktop/models`` in each ``$XDG_DATA_DIRS`` folder (default /usr/local/share, /usr/share)."""
        dirs = os.environ.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share"
        return [Path(d) / "kiig-desktop" / "models" for d in dirs.split(":") if d]

    @classmethod
    def load(cls, data_dir: Path | None = None) -> Settings:
        """Read settings from ``<data_dir>/settings.json``; a missing or broken file gives defaults."""
        settings = cls(data_dir=data_dir or default_data_dir())
        path = settings.data_dir / SETTINGS_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return settings
        if not isinstance(raw, dict):
            return settings
        if isinstance(raw.get("models_dir"), str):
            settings.models_dir = Path(raw["models_dir"])
        if isinstance(raw.get("cpu_variant"), str):
            settings.cpu_variant = raw["cpu_variant"]
        for flag in ("discover_lmstudio", "discover_ollama"):
            if isinstance(raw.get(flag), bool):
                setattr(settings, flag, raw[flag])
        if isinstance(raw.get("engine"), dict):
            try:
                settings.engine = EngineOptions.from_dict(raw["engine"])
            except TypeError:
                pass
        return settings

    def save(self) -> None:
        ensure_private_dir(self.data_dir)
        data = {
            "models_dir": str(self.models_dir) if self.models_dir else None,
            "discover_lmstudio": self.discover_lmstudio,
            "discover_ollama": self.discover_ollama,
            "engine": self.engine.to_dict(),
            "cpu_variant": self.cpu_variant,
        }
        write_private_file(self.data_dir / SETTINGS_FILE, json.dumps(data, indent=2))
