"""Incremental vs from-scratch answer NLL across threads, batch sizes, GPU offload and flash attention.

llama.cpp's kernels can depend on the shape of a batch; this prints, per engine setting, the largest
difference between incremental scoring and a from-scratch pass over the first demo chains.
Usage: python benchmarks/exactness_matrix.py [MODEL] [--gpu]
"""

from __future__ import annotations

import json
import sys

import _util  # noqa: F401 - puts the project on sys.path

from kiig_desktop.config import EngineOptions
from kiig_desktop.engine.client import EngineClient
from kiig_desktop.metrics.infogain import incremental_error
from kiig_desktop.resources import resource_path

CPU = [(None, 512, 0, False), (1, 512, 0, False), (None, 32, 0, False), (None, 512, 0, True)]
GPU = [(None, 512, 99, False), (None, 32, 99, False), (None, 512, 99, True)]


def main() -> None:
    model = next((a for a in sys.argv[1:] if not a.startswith("--")), "default")
    chains = [json.loads(x) for x in resource_path("chains", "clinical_chains.jsonl").read_text().splitlines()][:2]
    for threads, n_batch, layers, fa in CPU + (GPU if "--gpu" in sys.argv else []):
        with EngineClient(model, EngineOptions(n_threads=threads, n_batch=n_batch, n_gpu_layers=layers, flash_attn=fa)) as c:
            c.start()
            worst = max(max(incremental_error(c, ch["question"], ch["answer"], ch["steps"], ch.get("options")).values()) for ch in chains)
            print(f"threads={c.info['n_threads']} n_batch={n_batch} gpu_layers={layers} flash_attn={fa}: "
                  f"max |incremental - (one-pass, token-by-token)| = {worst:.3e} nats", flush=True)


if __name__ == "__main__":
    main()
