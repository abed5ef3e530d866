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
# a model of ~120M weights besides its embedding: big enough that speed measurements mean something
MEDIUM = {"n_embd": 768, "n_head": 12, "n_head_kv": 4, "n_ff": 2048, "n_layer": 12}


def vocab_dir() -> Path:
    return Path(os.environ.get("KIIG_VOCAB_DIR") or Path.home() / ".cache" / "kiig-desktop" / "vocab" / LLAMA_VERSION)


def vocab_path(family: str) -> Path | None:
    """The vocab-only GGUF of a tokenizer family, or None when ``make vocab`` has not fetched it."""
    p = vocab_dir() / f"{FAMILIES[family]}.gguf"
    return p if p.is_file() else None


def write_base_model(family: str, path: Path, seed: int | None = None, *, n_embd: int = N_EMBD, n_head: int = N_HEAD,
                     n_head_kv: int = N_HEAD_KV, n_ff: int = N_FF, n_layer: int = N_LAYER,
                     chat_template: str | None | bool = True) -> Path:
    """An F16 llama model with random weights and ``family``'s tokenizer (all tokenizer.* keys copied).

    ``chat_template``: True keeps the vocab file's ``tokenizer.chat_template`` (if any), None leaves it
    out, a string replaces it.
    """
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
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(1)
    if isinstance(chat_template, str):
        w.add_chat_template(chat_template)
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer.") or (key == "tokenizer.chat_template" and chat_template is not True):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(key, field.contents(), vtype, sub_type=sub)

    def mat(rows: int, cols: int, scale: float) -> np.ndarray:
        return (rng.standard_normal((rows, cols), dtype=np.float32) * scale).astype(np.float16)

    head_dim = n_embd // n_head
    w.add_tensor("token_embd.weight", mat(n_vocab, n_embd, 1.6 / n_embd**0.5))  # tied: also the output matrix
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    s = n_embd**-0.5
    for i in range(n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(f"blk.{i}.attn_q.weight", mat(n_embd, n_embd, s))
        w.add_tensor(f"blk.{i}.attn_k.weight", mat(n_head_kv * head_dim, n_embd, s))
        w.add_tensor(f"blk.{i}.attn_v.weight", mat(n_head_kv * head_dim, n_embd, s))
        w.add_tensor(f"blk.{i}.attn_output.weight", mat(n_embd, n_embd, s))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", mat(n_ff, n_embd, s))
        w.add_tensor(f"blk.{i}.ffn_up.weight", mat(n_ff, n_embd, s))
        w.add_tensor(f"blk.{i}.ffn_down.weight", mat(n_embd, n_ff, n_ff**-0.5))
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


def tiny_model(family: str, weight_type: str, folder: Path, size: str = "tiny") -> Path:
    """``folder/<size>-<family>-<type>.gguf``, built once (the F16 base first, then quantized).

    ``size``: "tiny" (2 layers of 256, for tests) or "medium" (:data:`MEDIUM`, for speed benchmarks).
    """
    base = folder / f"{size}-{family}-F16.gguf"
    if not base.is_file():
        write_base_model(family, base, **(MEDIUM if size == "medium" else {}))
    if weight_type == "F16":
        return base
    dst = folder / f"{size}-{family}-{weight_type}.gguf"
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
    sys.exit("usage: tests/support/tiny_models.py quantize SRC DST FTYPE")
