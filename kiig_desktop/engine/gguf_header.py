"""A small GGUF header reader that skips what it does not need (the vocabulary above all).

The ``gguf`` package's reader builds numpy views of every field, the 150k-string vocabulary of a
Qwen2 or Llama-3 model included: seconds per file. Model listing needs a dozen scalar keys and the
tensor table (parameter count, truncation check), so this reader keeps scalar values and strings,
and steps over arrays by their element sizes (string arrays by their length prefixes only).
Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md (version 2 and 3).
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
# value type -> struct format of a scalar
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
# ggml type -> (elements per block, bytes per block), from ggml.c's type traits
GGML_BLOCKS = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 40),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110),
    22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8),
    29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66), 39: (32, 17), 40: (64, 36), 41: (128, 18),
}
GGML_TYPE_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K",
    12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S",
    20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64",
    29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4", 40: "NVFP4", 41: "Q1_0",
}
# general.file_type -> name, as llama.cpp's llama_ftype (gguf's LlamaFileType without MOSTLY_/ALL_)
FILE_TYPE_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
    12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
    19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL",
    26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0",
    37: "TQ2_0", 38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0", 1024: "GUESSED",
}


class HeaderError(ValueError):
    """The bytes are not a GGUF header this reader understands (truncated, damaged, other version)."""


@dataclass
class TensorInfo:
    name: str
    n_elements: int
    ggml_type: int
    offset: int  # absolute file offset of the tensor's data

    @property
    def n_bytes(self) -> int | None:
        block = GGML_BLOCKS.get(self.ggml_type)
        if block is None:
            return None
        return self.n_elements // block[0] * block[1]


@dataclass
class RawHeader:
    version: int
    fields: dict  # key -> scalar or string value; arrays are left out (their length under "key#len")
    tensors: list[TensorInfo]
    data_offset: int


class _Cursor:
    def __init__(self, buf, size: int) -> None:
        self.buf, self.size, self.pos = buf, size, 0

    def take(self, fmt: str):
        n = struct.calcsize(fmt)
        if self.pos + n > self.size:
            raise HeaderError("the header runs past the end of the file")
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return value

    def string(self) -> str:
        n = self.take("<Q")
        if self.pos + n > self.size:
            raise HeaderError("a string runs past the end of the file")
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def skip_array(self, elem_type: int, count: int) -> None:
        if elem_type in _SCALARS:
            self.pos += count * struct.calcsize(_SCALARS[elem_type])
        elif elem_type == _STRING:
            unpack, buf, size, pos = struct.unpack_from, self.buf, self.size, self.pos
            for _ in range(count):
                if pos + 8 > size:
                    raise HeaderError("a string array runs past the end of the file")
                pos += 8 + unpack("<Q", buf, pos)[0]
            self.pos = pos
        elif elem_type == _ARRAY:
            for _ in range(count):
                self.skip_array(self.take("<I"), self.take("<Q"))
        else:
            raise HeaderError(f"unknown GGUF value type {elem_type}")
        if self.pos > self.size:
            raise HeaderError("an array runs past the end of the file")


def read_raw_header(path: str | os.PathLike) -> RawHeader:
    """Parse the key/value section and the tensor table of a GGUF file, skipping arrays."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < 24:
            raise HeaderError("the file is too short for a GGUF header")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return _parse(mm, size)


def _parse(buf, size: int) -> RawHeader:
    cur = _Cursor(buf, size)
    if bytes(buf[:4]) != MAGIC:
        raise HeaderError("not a GGUF file")
    cur.pos = 4
    version = cur.take("<I")
    if version not in (2, 3):
        raise HeaderError(f"GGUF version {version} is not supported")
    n_tensors, n_kv = cur.take("<Q"), cur.take("<Q")
    # every key/value takes at least 12 bytes and every tensor entry at least 24: absurd counts stop here
    if n_kv * 12 > size or n_tensors * 24 > size:
        raise HeaderError("the header claims more entries than the file can hold")
    fields: dict = {}
    for _ in range(n_kv):
        key = cur.string()
        vtype = cur.take("<I")
        if vtype in _SCALARS:
            fields[key] = cur.take(_SCALARS[vtype])
        elif vtype == _STRING:
            fields[key] = cur.string()
        elif vtype == _ARRAY:
            elem, count = cur.take("<I"), cur.take("<Q")
            fields[f"{key}#len"] = count
            cur.skip_array(elem, count)
        else:
            raise HeaderError(f"unknown GGUF value type {vtype} for {key}")
    infos = []
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.take("<I")
        if n_dims > 8:
            raise HeaderError(f"tensor {name} claims {n_dims} dimensions")
        n = 1
        for _d in range(n_dims):
            n *= cur.take("<Q")
        infos.append((name, n, cur.take("<I"), cur.take("<Q")))
    alignment = fields.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0:
        alignment = DEFAULT_ALIGNMENT
    data_offset = -(-cur.pos // alignment) * alignment
    tensors = [TensorInfo(name, n, t, data_offset + off) for name, n, t, off in infos]
    return RawHeader(version, fields, tensors, data_offset)
