"""Sanity checks on a model file before and after its GGUF header is read.

Kept apart from the header reader on purpose: :func:`require_regular_file` runs before anything
opens the path (a FIFO named ``x.gguf`` would block the open until Ctrl-C, a device would be read
forever), and :func:`check_header_values` takes the metadata dict the reader produced, whatever the
reader looks like, and refuses values llama.cpp would misread (a context length of 2^31 shown as
-2,147,483,648 tokens), silently accept (a context length of 0) or fail on with raw log lines (no
attention heads).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import ModelFileError

MAX_CONTEXT_LENGTH = 1 << 24  # 16.7M tokens: beyond any real model; 2^31 wraps negative in llama.cpp
MAX_COUNT = 1 << 20  # layers, heads, embedding width: real models stay far below
ATTENTION_FREE = ("mamba", "rwkv", "arwkv")  # state-space / RWKV models write 0 attention heads


def require_regular_file(path: str | os.PathLike) -> Path:
    """``path`` if it names a regular file (through links); one clear ModelFileError otherwise."""
    p = Path(path).expanduser()
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise ModelFileError(f"model file not found: {p}") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read {p}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ModelFileError(f"{p} is a folder, not a GGUF model file")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise ModelFileError(f"{p} is {kind}, not a GGUF model file")
    return p


def _count(metadata: dict, key: str) -> int | None:
    value = metadata.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def check_header_values(path: str | os.PathLike, architecture: str, metadata: dict) -> None:
    """Refuse absurd header values with one line; absent values are left to llama.cpp's defaults.

    ``metadata``: the header's key/value pairs as read (``"{architecture}.context_length"``, ...).
    """
    ctx = _count(metadata, f"{architecture}.context_length")
    if ctx is not None and not 0 < ctx <= MAX_CONTEXT_LENGTH:
        raise ModelFileError(f"{path} has an impossible context length in its GGUF header ({ctx:,} tokens)",
                             hint="the file is damaged or was written by a broken converter")
    fields = [("block_count", "layers"), ("embedding_length", "embedding width")]
    if not architecture.startswith(ATTENTION_FREE):
        fields.append(("attention.head_count", "attention heads"))
    for field, what in fields:
        value = _count(metadata, f"{architecture}.{field}")
        if value is not None and not 0 < value <= MAX_COUNT:
            raise ModelFileError(f"{path} has an impossible number of {what} in its GGUF header ({value:,})",
                                 hint="the file is damaged or was written by a broken converter")
    kv = _count(metadata, f"{architecture}.attention.head_count_kv")
    heads = _count(metadata, f"{architecture}.attention.head_count")
    if kv is not None and heads and not 0 < kv <= heads:
        raise ModelFileError(f"{path} has {kv:,} key/value heads for {heads:,} attention heads in its GGUF header",
                             hint="the file is damaged or was written by a broken converter")


__all__ = ["MAX_CONTEXT_LENGTH", "check_header_values", "require_regular_file"]
