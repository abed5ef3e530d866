"""The one place that talks to llama.cpp: load a model, tokenize, decode batches, read logits.

Runs inside the worker process only. Everything above it speaks in token ids and small float
arrays; nothing here keeps logits for a whole context (no ``logits_all``).
"""

from __future__ import annotations

import codecs
import collections
import ctypes
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import llama_cpp
import numpy as np
from llama_cpp._internals import LlamaBatch, LlamaContext, LlamaModel, LlamaSampler

from ..config import check_threads
from ..errors import Cancelled, ContextOverflow, EngineError
from . import build_info, invariance, variants
from .logits import reduce_rows

LOG_LINES = 200


@dataclass
class Reduced:
    """What a decode with ``outputs="all"`` keeps of its logits: a few floats per position."""

    lse: np.ndarray
    entropy: np.ndarray  # nats
    target_logprob: np.ndarray
    extra: dict[int, list[float]] = field(default_factory=dict)


class LogCapture:
    """Keeps the last llama.cpp log lines, so a failed load can say *why* it failed."""

    def __init__(self, echo: bool = False) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=LOG_LINES)
        self.echo = echo
        self._partial = ""

        @llama_cpp.llama_log_callback
        def _callback(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
            chunk = text.decode("utf-8", errors="replace") if text else ""
            self._partial += chunk
            while "\n" in self._partial:
                line, self._partial = self._partial.split("\n", 1)
                if line.strip():
                    self.lines.append(line)
            if self.echo:
                os.write(2, chunk.encode("utf-8", errors="replace"))

        self._callback = _callback  # keep a reference: llama.cpp holds a raw pointer to it
        llama_cpp.llama_log_set(self._callback, ctypes.c_void_p(0))

    def errors(self, limit: int = 5) -> list[str]:
        interesting = [ln.strip() for ln in self.lines if any(w in ln.lower() for w in ("error", "failed", "unknown", "invalid", "cannot", "unsupported"))]
        return interesting[-limit:]


def batch_spans(n: int, size: int) -> list[tuple[int, int]]:
    """(start, length) of the batches that decode ``n`` tokens, ``size`` at most each."""
    return [(b0, min(size, n - b0)) for b0 in range(0, n, size)]


def check_fits(n: int, n_ctx: int, what: str) -> None:
    """ContextOverflow unless ``n`` tokens fit one sequence of a context of ``n_ctx``."""
    if n > n_ctx:
        raise ContextOverflow(f"{what} needs {n} tokens but the context holds {n_ctx}",
                              hint="load the model with a larger context (n_ctx) or shorten the input", needed=n, n_ctx=n_ctx)


def default_threads() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def system_info() -> dict:
    """What this llama.cpp build is and can do."""
    info = llama_cpp.llama_print_system_info()
    return {
        "llama_cpp_python": llama_cpp.__version__,
        "system_info": info.decode("utf-8", errors="replace").strip() if info else "",
        "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
        "mmap": bool(llama_cpp.llama_supports_mmap()),
    }


class Backend:
    """A loaded model with one context. Not thread-safe: the worker serialises every call."""

    def __init__(
        self,
        path: str,
        *,
        n_ctx: int = 4096,
        n_gpu_layers: int = 0,
        n_threads: int | None = None,
        n_batch: int = 512,
        seed: int = 0,
        flash_attn: bool = False,
        chat_template: str | None = None,
        repack: bool = False,
        fast_not_exact: bool = False,
        cancel_flag: Callable[[], bool] | None = None,
        on_load_progress: Callable[[float], None] | None = None,
        log: LogCapture | None = None,
    ) -> None:
        check_threads(n_threads, "n_threads")  # before llama.cpp sees a count that crashes it
        self.path = path
        self.log = log or LogCapture()
        self.seed = seed
        self._cancelled = cancel_flag or (lambda: False)
        variants.ensure_loaded()  # an all-variants build has no CPU backend until one is loaded
        variants.set_tiled_default()  # tiled K-quant matmul only where it is batch-invariant
        llama_cpp.llama_backend_init()

        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = int(n_gpu_layers)
        # CPU weight repacking (K-quants, Q4_0) runs other kernels for long and short batches, so
        # logits then depend on batch boundaries (1e-3 nats measured on Gemma 3 Q4_K_M); off by default
        mparams.use_extra_bufts = bool(repack)

        def _progress(p: float, _user: ctypes.c_void_p) -> bool:
            if on_load_progress is not None:
                on_load_progress(float(p))
            return not self._cancelled()

        self._progress_cb = llama_cpp.llama_progress_callback(_progress)
        mparams.progress_callback = self._progress_cb
        try:
            self.model = LlamaModel(path_model=path, params=mparams, verbose=True)
        except ValueError:
            if self._cancelled():
                raise Cancelled("model loading cancelled") from None
            reasons = "; ".join(self.log.errors()) or "llama.cpp gave no reason"
            raise EngineError(f"llama.cpp could not load {path}: {reasons}") from None

        threads = int(n_threads) if n_threads else default_threads()
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = int(n_ctx)
        cparams.n_batch = int(n_batch)
        cparams.n_ubatch = int(n_batch)
        cparams.n_seq_max = 1
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.no_perf = True
        # Flash attention off by default: on CPU its tiled kernel makes logits depend on how tokens
        # are split into batches (measured up to 0.5 nats on SmolLM2), which would break "incremental
        # scoring equals a from-scratch evaluation". With it off, both agree exactly.
        cparams.flash_attn_type = 1 if flash_attn else 0
        self._cparams = cparams

        def _abort(_data: ctypes.c_void_p) -> bool:
            return bool(self._cancelled())

        self._abort_cb = llama_cpp.ggml_abort_callback(_abort)
        cparams.abort_callback = self._abort_cb
        self._seq_ctx: tuple[int, LlamaContext] | None = None  # (n_seq, context) for parallel sequences
        try:
            self.ctx = LlamaContext(model=self.model, params=cparams, verbose=True)
        except ValueError:
            self.model.close()
            reasons = "; ".join(self.log.errors()) or "probably not enough memory for the KV cache"
            raise EngineError(
                f"could not create a context of {n_ctx} tokens: {reasons}",
                hint="choose a smaller context size (n_ctx)",
            ) from None
        self.n_ctx = llama_cpp.llama_n_ctx(self.ctx.ctx)
        self.n_batch = int(n_batch)
        self.n_threads = threads
        self.n_gpu_layers = int(n_gpu_layers)
        self.flash_attn = bool(flash_attn)
        self.repack = bool(repack)
        self.chat_template_override = chat_template
        self.vocab = self.model.vocab
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.batch = LlamaBatch(n_tokens=self.n_batch, embd=0, n_seq_max=1, verbose=True)
        self.n_past = 0  # tokens currently in the KV cache (sequence 0, positions 0..n_past-1)
        self.history: list[int] = []  # the token at each cached position
        self._metadata = self.model.metadata()
        self.architecture = self._metadata.get("general.architecture")
        self._info: dict | None = None
        # measured before anything reads info(): the verdict is part of every number's provenance
        self.invariance = invariance.self_test(self)
        self.fast_not_exact = bool(fast_not_exact)
        self.scoring = invariance.scoring_path(self.invariance["verdict"], self.fast_not_exact)

    # ------------------------------------------------------------------ facts

    def info(self) -> dict:
        if self._info is None:
            self._info = self._read_info()
        return self._info

    def _read_info(self) -> dict:
        m = self.model.model
        desc = ctypes.create_string_buffer(256)
        llama_cpp.llama_model_desc(m, desc, 256)
        return {
            "path": self.path,
            "desc": desc.value.decode("utf-8", errors="replace"),
            "n_vocab": self.n_vocab,
            "n_ctx": self.n_ctx,
            "n_ctx_train": llama_cpp.llama_model_n_ctx_train(m),
            "n_layer": llama_cpp.llama_model_n_layer(m),
            "n_params": llama_cpp.llama_model_n_params(m),
            "size": llama_cpp.llama_model_size(m),
            "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(self.vocab)),
            "bos": llama_cpp.llama_vocab_bos(self.vocab),
            "eos": llama_cpp.llama_vocab_eos(self.vocab),
            "chat_template": self._metadata.get("tokenizer.chat_template"),
            "n_threads": self.n_threads,
            "n_batch": self.n_batch,
            "n_gpu_layers": self.n_gpu_layers,
            "flash_attn": self.flash_attn,
            "architecture": self.architecture,
            **system_info(),
            "invariance": dict(self.invariance),
            "scoring": self.scoring,
            "build": build_info.collect(self),
        }

    def apply_builtin_template(self, name: str, messages: list[dict], add_generation_prompt: bool = True) -> str | None:
        """Render with one of llama.cpp's built-in templates (by name); None when it does not know it."""
        msgs = (llama_cpp.llama_chat_message * len(messages))()
        keep = []
        for i, m in enumerate(messages):
            role, content = m["role"].encode(), m["content"].encode("utf-8")
            keep.extend([role, content])
            msgs[i].role, msgs[i].content = role, content
        size = 4096 + sum(len(m["content"].encode("utf-8")) for m in messages) * 2
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_chat_apply_template(name.encode(), msgs, len(messages), add_generation_prompt, buf, size)
        if n < 0:
            return None
        if n > size:
            buf = ctypes.create_string_buffer(n + 1)
            n = llama_cpp.llama_chat_apply_template(name.encode(), msgs, len(messages), add_generation_prompt, buf, n + 1)
        return buf.raw[:n].decode("utf-8", errors="replace")

    def token_text(self, token: int) -> str:
        """The token's raw vocabulary text (for special tokens like ``<|im_end|>``)."""
        return self.model.token_get_text(token)

    # ------------------------------------------------------------------ tokens

    def tokenize(self, text: str, add_bos: bool = False, special: bool = False) -> list[int]:
        if not text:
            return [llama_cpp.llama_vocab_bos(self.vocab)] if add_bos else []
        return self.model.tokenize(text.encode("utf-8"), add_bos, special)

    def piece(self, token: int, special: bool = False) -> bytes:
        buf = ctypes.create_string_buffer(256)
        n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, 256, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, -n, 0, special)
        return buf.raw[:n]

    def detokenize(self, tokens: Sequence[int], special: bool = False) -> str:
        return b"".join(self.piece(t, special) for t in tokens).decode("utf-8", errors="replace")

    def pieces_text(self, tokens: Sequence[int]) -> list[str]:
        """Readable text of each token; bytes of a character split across tokens go to its last token."""
        dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return [dec.decode(self.piece(t)) for t in tokens]

    def is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    # ------------------------------------------------------------------ KV cache and decoding

    def clear(self) -> None:
        self.ctx.kv_cache_clear()
        self.n_past = 0
        self.history.clear()

    def truncate(self, n: int) -> None:
        """Drop every cached position from ``n`` on (e.g. answer tokens evaluated on top of a prefix)."""
        if n < self.n_past:
            ok = llama_cpp.llama_memory_seq_rm(self.ctx.memory, 0, n, -1)
            if not ok:
                raise EngineError("llama.cpp could not remove tokens from the KV cache")
            self.n_past = n
            del self.history[n:]

    def check_fits(self, n_more: int, what: str = "this request") -> None:
        check_fits(self.n_past + n_more, self.n_ctx, what)

    def decode(self, tokens: Sequence[int], outputs: str = "last", targets: Sequence[int] | None = None, extra: dict[int, Sequence[int]] | None = None) -> Reduced | None:
        """Append ``tokens`` to the cache.

        ``outputs``: "none", "last" (logits of the final position stay readable via ``last_logits``)
        or "all": every position is reduced batch by batch to its log-normaliser, entropy (nats)
        and the log-prob of ``targets[i]`` (the token that follows position i, -1 when unknown);
        ``extra`` asks for the log-probs of more tokens at some positions (row -> token ids).
        """
        n = len(tokens)
        if n == 0:
            return None
        self.check_fits(n)
        lse_parts, ent_parts, tlp_parts = [], [], []
        extra_out: dict[int, list[float]] = {}
        for b0, m in batch_spans(n, self.n_batch):
            if self._cancelled():
                raise Cancelled()
            chunk = tokens[b0 : b0 + m]
            b = self.batch.batch
            b.n_tokens = m
            for i, tok in enumerate(chunk):
                b.token[i] = tok
                b.pos[i] = self.n_past + i
                b.n_seq_id[i] = 1
                b.seq_id[i][0] = 0
                b.logits[i] = outputs == "all"
            if outputs == "last" and b0 + m == n:
                b.logits[m - 1] = True
            rc = llama_cpp.llama_decode(self.ctx.ctx, b)
            if rc != 0:
                # a failed or aborted decode may leave part of the batch in the cache
                llama_cpp.llama_memory_seq_rm(self.ctx.memory, 0, self.n_past, -1)
                if rc == 2 or self._cancelled():
                    raise Cancelled()
                reasons = "; ".join(self.log.errors()) or f"return code {rc}"
                raise EngineError(f"llama_decode failed: {reasons}")
            if outputs == "all":
                view = np.ctypeslib.as_array(llama_cpp.llama_get_logits(self.ctx.ctx), shape=(m, self.n_vocab))
                t = np.asarray(targets[b0 : b0 + m] if targets is not None else [-1] * m)
                lse, ent, tlp = reduce_rows(view, t)
                for row, ids in (extra or {}).items():
                    if b0 <= row < b0 + m:
                        extra_out[row] = [float(view[row - b0, tid]) - float(lse[row - b0]) for tid in ids]
                lse_parts.append(lse)
                ent_parts.append(ent)
                tlp_parts.append(tlp)
            self.n_past += m
            self.history.extend(chunk)
        if outputs == "all":
            return Reduced(np.concatenate(lse_parts), np.concatenate(ent_parts), np.concatenate(tlp_parts), extra_out)
        return None

    def last_logits(self) -> np.ndarray:
        """Logits of the last position decoded with an output (a view, valid until the next decode)."""
        ptr = llama_cpp.llama_get_logits_ith(self.ctx.ctx, -1)
        if not ptr:
            raise EngineError("no logits available for the last position")
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    # ------------------------------------------------------------------ parallel sequences

    def seq_context(self, n_seq: int) -> LlamaContext:
        """A second context holding ``n_seq`` (or more) sequences of ``n_ctx`` tokens each, made on first use.

        Each sequence gets a KV-cache stream of its own (``kv_unified`` off), so its cells sit at
        the same places as in a one-sequence context, and with the engine's batch-invariant kernels
        a token's logits do not depend on which other sequences share its batch.
        """
        if self._seq_ctx is not None and self._seq_ctx[0] >= n_seq:  # a smaller group reuses a larger context
            self._seq_ctx[1].kv_cache_clear()
            return self._seq_ctx[1]
        self.close_seq_context()
        c = self._cparams
        params = llama_cpp.llama_context_default_params()
        for name, _ in c._fields_:
            setattr(params, name, getattr(c, name))
        params.n_ctx = self.n_ctx * n_seq
        params.n_seq_max = n_seq
        params.kv_unified = False
        try:
            ctx = LlamaContext(model=self.model, params=params, verbose=True)
        except ValueError:
            reasons = "; ".join(self.log.errors()) or "probably not enough memory for the KV cache"
            raise EngineError(f"could not create a context for {n_seq} parallel sequences of {self.n_ctx} tokens: {reasons}",
                              hint="run fewer items in parallel (--parallel) or with a smaller context") from None
        self._seq_ctx = (n_seq, ctx)
        return ctx

    def forget(self, ctx: LlamaContext, seq: int, start: int = 0) -> None:
        """Drop positions ``start`` onwards of sequence ``seq`` from ``ctx``'s KV cache."""
        if not llama_cpp.llama_memory_seq_rm(ctx.memory, seq, start, -1):
            raise EngineError("llama.cpp could not remove tokens from the KV cache")

    def close_seq_context(self) -> None:
        if self._seq_ctx is not None:
            self._seq_ctx[1].close()
            self._seq_ctx = None

    def decode_seqs(self, ctx: LlamaContext, rows: Sequence[tuple[int, Sequence[int], int]], outputs: str = "last",
                    targets: Sequence[int] | None = None, extra: dict[int, Sequence[int]] | None = None) -> Reduced | None:
        """Decode ``(seq_id, tokens, first position)`` rows in one batch (``n_batch`` tokens at most).

        ``outputs="last"``: the last token of each row keeps its logits (batch index: the rows'
        token counts summed up to and including it, minus one). ``outputs="all"``: every token's
        logits are reduced as :meth:`decode` reduces them, ``targets`` and ``extra`` indexed by
        position in the batch (the rows' tokens in order).
        """
        b = self.batch.batch
        n = 0
        for seq, tokens, pos0 in rows:
            for i, tok in enumerate(tokens):
                b.token[n] = tok
                b.pos[n] = pos0 + i
                b.n_seq_id[n] = 1
                b.seq_id[n][0] = seq
                b.logits[n] = outputs == "all" or i == len(tokens) - 1
                n += 1
        b.n_tokens = n
        if self._cancelled():
            raise Cancelled()
        rc = llama_cpp.llama_decode(ctx.ctx, b)
        if rc != 0:
            for seq, _tokens, pos0 in rows:
                llama_cpp.llama_memory_seq_rm(ctx.memory, seq, pos0, -1)
            if rc == 2 or self._cancelled():
                raise Cancelled()
            reasons = "; ".join(self.log.errors()) or f"return code {rc}"
            raise EngineError(f"llama_decode failed: {reasons}")
        if outputs != "all":
            return None
        # llama.cpp hands the outputs back in the order of the batch, whatever ubatches it split it into
        view = np.ctypeslib.as_array(llama_cpp.llama_get_logits(ctx.ctx), shape=(n, self.n_vocab))
        lse, ent, tlp = reduce_rows(view, np.asarray(targets if targets is not None else [-1] * n))
        more = {row: [float(view[row, t]) - float(lse[row]) for t in ids] for row, ids in (extra or {}).items()}
        return Reduced(lse, ent, tlp, more)

    def logits_at(self, ctx: LlamaContext, index: int) -> np.ndarray:
        """Logits of batch position ``index`` of the last decode on ``ctx`` (a view)."""
        ptr = llama_cpp.llama_get_logits_ith(ctx.ctx, index)
        if not ptr:
            raise EngineError(f"no logits available for batch position {index}")
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    # ------------------------------------------------------------------ sampling

    def make_sampler(self, temperature: float, seed: int, top_k: int = 40, top_p: float = 0.95, grammar: str | None = None) -> LlamaSampler:
        sampler = LlamaSampler()
        if grammar:
            from llama_cpp.llama_grammar import LlamaGrammar

            sampler.add_grammar(self.model, LlamaGrammar.from_string(grammar, verbose=False))
        if temperature <= 0:
            sampler.add_greedy()
        else:
            if top_k > 0:
                sampler.add_top_k(top_k)
            if 0 < top_p < 1:
                sampler.add_top_p(top_p, 1)
            sampler.add_temp(temperature)
            sampler.add_dist(seed & 0xFFFFFFFF)
        return sampler

    def sample(self, sampler: LlamaSampler, ctx: LlamaContext | None = None, index: int = -1) -> int:
        return int(llama_cpp.llama_sampler_sample(sampler.sampler, (ctx or self.ctx).ctx, index))

    def close(self) -> None:
        self.close_seq_context()
        for part in ("batch", "ctx", "model"):
            obj = getattr(self, part, None)
            if obj is not None:
                obj.close()
                setattr(self, part, None)
