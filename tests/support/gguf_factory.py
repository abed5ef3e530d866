"""Write tiny GGUF files with the gguf package, for discovery and bad-file tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_tiny_gguf(path: Path, arch: str = "llama", name: str = "tiny test model", context: int = 256, heads: int = 2) -> Path:
    """A structurally valid GGUF header with one small tensor (not a loadable model)."""
    import gguf

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(name)
    writer.add_context_length(context)
    writer.add_block_count(1)
    writer.add_embedding_length(8)
    writer.add_head_count(heads)
    writer.add_file_type(0)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
