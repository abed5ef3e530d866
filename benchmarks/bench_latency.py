"""Latencies the tests used to assert and no longer do: cancel during generation, cancel during a
7,000-token prefill, reading a 150,000-token vocabulary's GGUF header, refusing a second writer.

Usage: python benchmarks/bench_latency.py [--repeats 5] [--out FILE]

The tests check that each of these happens (synchronised on events); this script says how fast, as
medians over ``--repeats``. Not a timed test: nothing here passes or fails on a number.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _util import machine, median, save  # noqa: E402

from kiig_desktop.config import EngineOptions  # noqa: E402
from kiig_desktop.engine.client import EngineClient  # noqa: E402
from kiig_desktop.errors import Cancelled  # noqa: E402
from kiig_desktop.events import CancelToken, run_to_end  # noqa: E402

MESSAGES = [{"role": "user", "content": "Explain in two sentences why the sky is blue."}]


def cancel_generation(client: EngineClient) -> float:
    """Seconds from cancel() on the fifth streamed token to the stream's end."""
    token, seen, at = CancelToken(), [], {}

    def on_event(_event) -> None:
        seen.append(1)
        if len(seen) == 5:
            at["t"] = time.perf_counter()
            token.cancel()

    run_to_end(client.generate(MESSAGES, max_tokens=4000, cancel=token), on_event)
    return time.perf_counter() - at["t"]


def cancel_prefill(client: EngineClient, tokens: list[int], after: float = 0.3) -> float | None:
    """Seconds from cancel() to Cancelled, ``after`` seconds into a prefill (None: it finished first)."""
    token, out = CancelToken(), {}

    def work() -> None:
        try:
            client.eval_sequence(tokens, cancel=token)
        except Cancelled:
            out["end"] = time.perf_counter()

    t = threading.Thread(target=work)
    t.start()
    time.sleep(after)
    started = time.perf_counter()
    token.cancel()
    t.join()
    return out["end"] - started if "end" in out else None


def header_read(path: Path) -> float:
    from kiig_desktop.engine.gguf_header import read_raw_header

    started = time.perf_counter()
    read_raw_header(path)
    return time.perf_counter() - started


def second_writer(folder: Path) -> float:
    """Seconds for a second writer on the same session to be refused (in this process, one open file)."""
    import subprocess

    from kiig_desktop.store import SessionStore

    path = folder / "s.kiig"
    with SessionStore.open(path):
        code = ("import sys, time; from kiig_desktop.errors import StoreError; from kiig_desktop.store import SessionStore\n"
                "t = time.perf_counter()\ntry:\n    SessionStore.open(sys.argv[1])\nexcept StoreError:\n"
                "    print(time.perf_counter() - t)")
        r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True,
                           cwd=Path(__file__).resolve().parents[1])
    return float(r.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out")
    args = ap.parse_args()
    results: dict = {"machine": machine()}
    with EngineClient("default", EngineOptions(n_ctx=8192, n_batch=512)) as client:
        client.start()
        tokens = client.tokenize("The patient reports chest pain radiating to the left arm. " * 700)[:7000]
        gen = [cancel_generation(client) for _ in range(args.repeats)]
        pre = [x for x in (cancel_prefill(client, tokens) for _ in range(args.repeats)) if x is not None]
    results["cancel_generation_s"] = median(gen)
    results["cancel_prefill_s"] = median(pre) if pre else None
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    with tempfile.TemporaryDirectory() as tmp:
        from tests.support.tiny_models import tiny_model

        path = tiny_model("qwen2", "Q4_0", Path(tmp))
        results["header_read_150k_vocab_s"] = median([header_read(path) for _ in range(args.repeats)])
        results["second_writer_refused_s"] = median([second_writer(Path(tmp)) for _ in range(args.repeats)])
    print("| what | median s |\n|---|---|")
    for key, value in results.items():
        if key != "machine":
            print(f"| {key} | {'-' if value is None else f'{value:.3f}'} |")
    save(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
