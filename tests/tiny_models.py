"""Tiny random-weight llama-architecture models around real tokenizers, for tests and benchmarks.

llama.cpp's vocab-only GGUFs (``make vocab`` extracts them from the llama-cpp-python sdist into
``~/.cache/kiig-desktop/vocab/<version>/``) carry the tokenizers of the families people run. A
model of 2 layers and 256 dimensions written around one of them with the ``gguf`` package, then
quantized with llama.cpp's own quantizer, loads in well under a second and tokenizes exactly like
the real family: enough to test tokenization and exactness for every tokenizer and weight type.
Row sizes are multiples of 256, as K-quants need. Quantization runs in a child process, so the
caller never imports llama_cpp.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np

LLAMA_VERSION = "0.3.36"
FAMILIES = {  # family -> vocab file stem, and the model families using that tokenizer
    "qwen2": "ggml-vocab-qwen2",  # Qwen2 / Qwen2.5
    "llama-bpe": "ggml-vocab-llama-bpe",  # Llama 3
    "llama-spm": "ggml-vocab-llama-spm",  # Llama 2, Mistral (SentencePiece)
    "phi-3": "ggml-vocab-phi-3",  # Phi-3 (SentencePiece)
    "gpt-2": "ggml-vocab-gpt-2",  # GPT-2 style BPE
}
# llama.cpp's llama_ftype values
WEIGHT_TYPES = {"F16": 1, "Q8_0": 7, "Q4_0": 2, "Q4_1": 3, "Q5_K_M": 17, "Q4_K_M": 15, "Q6_K": 18}
N_EMBD, N_HEAD, N_HEAD_KV, N_FF, N_LAYER, N_CTX = 256, 4, 2, 512, 2, 4096


def vocab_dir() -> Path:
    return Path(os.environ.get("KIIG_VOCAB_DIR") or Path.home() / ".cache" / "kiig-desktop" / "vocab" / LLAMA_VERSION)


def vocab_path(family: str) -> Path | None:
    """The vocab-only GGUF of a tokenizer family, or None when ``make vocab`` has not fetched it."""
    p = vocab_dir() / f"{FAMILIES[family]}.gguf"
    return p if p.is_file() else None


def write_base_model(family: str, path: Path, seed: int | None = None) -> Path:
    """An F16 llama model with random weights and ``family``'s tokenizer (all tokenizer.* keys copied)."""
    import gguf

    src = vocab_path(family)
    if src is None:
        raise FileNotFoundError(f"no vocab file for {family} in {vocab_dir()} (run `make vocab`)")
    reader = gguf.GGUFReader(str(src), "r")
    n_vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
    rng = np.random.default_rng(zlib.crc32(family.encode()) if seed is None else seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    w = gguf.GGUFWriter(str(tmp), "llama")
    w.add_name(f"tiny {family}")
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(1)
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(key, field.contents(), vtype, sub_type=sub)

    def mat(rows: int, cols: int, scale: float) -> np.ndarray:
        return (rng.standard_normal((rows, cols), dtype=np.float32) * scale).astype(np.float16)

    head_dim = N_EMBD // N_HEAD
    w.add_tensor("token_embd.weight", mat(n_vocab, N_EMBD, 0.1))  # tied: also the output matrix
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    s = N_EMBD**-0.5
    for i in range(N_LAYER):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"blk.{i}.attn_q.weight", mat(N_EMBD, N_EMBD, s))
        w.add_tensor(f"blk.{i}.attn_k.weight", mat(N_HEAD_KV * head_dim, N_EMBD, s))
        w.add_tensor(f"blk.{i}.attn_v.weight", mat(N_HEAD_KV * head_dim, N_EMBD, s))
        w.add_tensor(f"blk.{i}.attn_output.weight", mat(N_EMBD, N_EMBD, s))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", mat(N_FF, N_EMBD, s))
        w.add_tensor(f"blk.{i}.ffn_up.weight", mat(N_FF, N_EMBD, s))
        w.add_tensor(f"blk.{i}.ffn_down.weight", mat(N_EMBD, N_FF, N_FF**-0.5))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.replace(path)
    return path


def quantize(src: Path, dst: Path, weight_type: str) -> Path:
    """llama.cpp's quantizer (llama_model_quantize), in a child process."""
    tmp = dst.with_suffix(".partial")
    proc = subprocess.run(
        [sys.executable, __file__, "quantize", str(src), str(tmp), str(WEIGHT_TYPES[weight_type])],
        capture_output=True, text=True, timeout=600,
    )
    if proc.returncode != 0 or not tmp.is_file():
        raise RuntimeError(f"quantizing {src.name} to {weight_type} failed: {proc.stderr[-2000:]}")
    tmp.replace(dst)
    return dst


def tiny_model(family: str, weight_type: str, folder: Path) -> Path:
    """``folder/tiny-<family>-<type>.gguf``, built once (the F16 base first, then quantized)."""
    base = folder / f"tiny-{family}-F16.gguf"
    if not base.is_file():
        write_base_model(family, base)
    if weight_type == "F16":
        return base
    dst = folder / f"tiny-{family}-{weight_type}.gguf"
    if not dst.is_file():
        quantize(base, dst, weight_type)
    return dst


def _quantize_main(src: str, dst: str, ftype: str) -> int:
    import ctypes

    import llama_cpp

    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(ftype)
    params.nthread = min(4, os.cpu_count() or 1)
    return int(llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params)))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "quantize":
        sys.exit(_quantize_main(*sys.argv[2:]))
    sys.exit("usage: tiny_models.py quantize SRC DST FTYPE")
