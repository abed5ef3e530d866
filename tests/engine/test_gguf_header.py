"""The fast GGUF header reader against the gguf package's full reader, on real files."""

from __future__ import annotations

import os

import gguf
import pytest

from kiig_desktop.engine import gguf_header, models
from kiig_desktop.engine.gguf_header import FILE_TYPE_NAMES, GGML_BLOCKS, GGML_TYPE_NAMES, HeaderError, read_raw_header
from kiig_desktop.errors import ModelFileError
from tests.support.tiny_models import tiny_model

pytestmark = pytest.mark.slow  # builds and quantizes tiny models with a 150,000-token vocabulary


def _full(path):
    r = gguf.GGUFReader(str(path), "r")
    fields = {}
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            continue
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            fields[f"{key}#len"] = len(f.data)
        else:
            fields[key] = f.contents()
    return r, fields


def test_type_tables_match_the_gguf_package():
    for t, (block, size) in gguf.GGML_QUANT_SIZES.items():
        assert GGML_BLOCKS[int(t)] == (block, size), t
        assert GGML_TYPE_NAMES[int(t)] == t.name
    for ft in gguf.LlamaFileType:
        assert FILE_TYPE_NAMES[int(ft)] == ft.name.removeprefix("MOSTLY_").removeprefix("ALL_")


@pytest.mark.parametrize("which", ["builtin", "qwen2"])
def test_fields_and_tensors_equal_the_full_reader(which, builtin_path, tiny_models_dir):
    path = builtin_path if which == "builtin" else tiny_model("qwen2", "Q4_K_M", tiny_models_dir)
    raw = read_raw_header(path)
    ref, fields = _full(path)
    assert raw.fields == fields
    assert [(t.name, t.n_elements, t.ggml_type, t.offset, t.n_bytes) for t in raw.tensors] == [
        (t.name, int(t.n_elements), int(t.tensor_type), int(t.data_offset), int(t.n_bytes)) for t in ref.tensors
    ]
    h = models._parse_header(path)
    assert h.parameters == sum(int(t.n_elements) for t in ref.tensors)
    assert h.quantization == ("Q4_1" if which == "builtin" else "Q4_K_M")


def test_a_large_vocabulary_is_skipped_not_parsed(tiny_models_dir, monkeypatch):
    path = tiny_model("qwen2", "Q4_0", tiny_models_dir)  # 151,936 tokens and merges
    decoded = []
    original = gguf_header._Cursor.string
    monkeypatch.setattr(gguf_header._Cursor, "string", lambda self: decoded.append(1) or original(self))
    raw = read_raw_header(path)
    assert raw.fields["tokenizer.ggml.tokens#len"] > 150_000
    assert "tokenizer.ggml.tokens" not in raw.fields
    # keys, string values and tensor names only (at most two strings per key): no token string was decoded
    assert len(decoded) <= 2 * len(raw.fields) + len(raw.tensors)


def test_truncated_inside_the_vocabulary_is_a_clear_error(tmp_path, tiny_models_dir):
    src = tiny_model("llama-spm", "Q4_0", tiny_models_dir)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(src.read_bytes()[:200_000])  # inside tokenizer.ggml.tokens
    with pytest.raises(HeaderError):
        read_raw_header(cut)
    with pytest.raises(ModelFileError, match="truncated or damaged"):
        models.read_header(cut)


def test_header_cache_follows_size_and_mtime(tmp_path, builtin_path, monkeypatch):
    models.set_sha_cache_dir(tmp_path)
    try:
        copy = tmp_path / "m.gguf"
        copy.write_bytes(builtin_path.read_bytes())
        calls = []
        real = models._parse_header
        monkeypatch.setattr(models, "_parse_header", lambda p: calls.append(p) or real(p))
        first = models.read_header(copy)
        assert models.read_header(copy) == first and len(calls) == 1  # cached
        st = copy.stat()
        os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        assert models.read_header(copy) == first and len(calls) == 2  # changed mtime: read again
        assert (tmp_path / "gguf_headers.json").stat().st_mode & 0o077 == 0
    finally:
        models.set_sha_cache_dir(None)
