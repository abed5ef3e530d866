"""Shared builders for the store tests (and the crash-test child process); holds no tests itself.

Records are deterministic functions of their index, so a test (or a parent process) can rebuild
exactly what was saved and compare.
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_J = "c" * 64


def model_info(sha: str = SHA_A, path: str = "/models/SmolLM2-135M-Instruct.Q4_1.gguf") -> dict:
    return {
        "path": path,
        "sha256": sha,
        "name": "SmolLM2-135M-Instruct",
        "architecture": "llama",
        "quantization": "Q4_1",
        "parameters": 134515008,
        "context_length": 8192,
        "metadata": {"general.architecture": "llama", "tokenizer.ggml.add_bos_token": False},
    }


def make_item(i: int, question: str | None = None) -> dict:
    return {
        "id": f"q{i}",
        "question": question or f"Question {i}: which drug is first-line for condition {i}?",
        "answer": f"Drug {i % 4}",
        "options": {"A": "Drug 0", "B": "Drug 1", "C": "Drug 2", "D": "Drug 3"},
        "answer_idx": "ABCD"[i % 4],
    }


def make_record(i: int, n_steps: int = 12, n_tokens: int = 600, curve: bool = True, model_sha: str = SHA_A) -> dict:
    """A realistic `kiig score` output line (answer + paper numbers, options, token curve)."""
    rng = random.Random(i)
    nll = [rng.uniform(0.5, 4.0)]
    for _ in range(n_steps):
        nll.append(max(0.01, nll[-1] + rng.gauss(-0.2, 0.3)))
    ppl = [math.exp(x) for x in nll]
    seq = [rng.uniform(2, 30) for _ in nll]

    def opts() -> dict:
        w = [rng.random() for _ in range(4)]
        total = sum(w)
        return {k: v / total for k, v in zip("ABCD", w, strict=True)}

    steps = []
    per = max(1, n_tokens // max(1, n_steps))
    for k in range(1, n_steps + 1):
        probs = opts()
        steps.append({
            "index": k - 1,
            "text": f"Step {k} of item {i}: consider mechanism {rng.randint(0, 99)} and its contraindications.",
            "start": (k - 1) * 80,
            "end": k * 80 - 1,
            "answer_nll": nll[k],
            "answer_ppl": ppl[k],
            "delta_nll": nll[k - 1] - nll[k],
            "info_gain": ppl[k - 1] - ppl[k],
            "seq_ppl": seq[k],
            "option_probs": probs,
            "entropy_bits": -sum(p * math.log2(p) for p in probs.values()),
            "p_correct": probs["ABCD"[i % 4]],
        })
    base_probs = opts()
    record = {
        "id": f"q{i}",
        "mode": "answer",
        "model": {"path": "/models/SmolLM2-135M-Instruct.Q4_1.gguf", "sha256": model_sha},
        "n_tokens": n_tokens,
        "baseline": {
            "answer_nll": nll[0],
            "answer_ppl": ppl[0],
            "seq_ppl": seq[0],
            "option_probs": base_probs,
            "entropy_bits": -sum(p * math.log2(p) for p in base_probs.values()),
            "p_correct": base_probs["ABCD"[i % 4]],
        },
        "steps": steps,
        "info_gain_mean": sum(s["info_gain"] for s in steps) / max(1, n_steps),
        "delta_nll_mean": sum(s["delta_nll"] for s in steps) / max(1, n_steps),
        "paper_info_gain": sum(seq[k - 1] - seq[k] for k in range(1, n_steps + 1)) / (n_steps + 1),
        "paper_mean": sum(seq) / len(seq),
    }
    if curve:
        record["token_curve"] = {
            "token_ids": [rng.randrange(49152) for _ in range(n_tokens)],
            "pieces": [f" tok{t}" for t in range(n_tokens)],
            "surprisal_bits": [rng.uniform(0, 15) for _ in range(n_tokens)],
            "entropy_bits": [rng.uniform(0, 12) for _ in range(n_tokens)],
            "step": [min(n_steps - 1, t // per) for t in range(n_tokens)],
        }
    return record


def make_generation(i: int, model_id: int, n_tokens: int = 40) -> dict:
    rng = random.Random(1000 + i)
    return {
        "text": " ".join(f"w{t}" for t in range(n_tokens)),
        "tokens": [{"text": f" w{t}", "logprob": -rng.uniform(0, 5), "entropy_bits": rng.uniform(0, 8)} for t in range(n_tokens)],
        "model_id": model_id,
        "extracted_answer": "ABCD"[i % 4],
        "correct": i % 3 != 0,
    }


def make_ki_steps(i: int, n_steps: int = 12) -> list[dict]:
    rng = random.Random(2000 + i)
    out = []
    for k in range(n_steps):
        applicable = k % 3 != 0
        out.append({
            "index": k,
            "applicable": applicable,
            "ki": rng.random() if applicable else None,
            "reason": None if applicable else "no factual claim",
            "evidence": [{"source": f"doc{j}.md", "chunk": rng.randint(0, 50), "score": rng.uniform(1, 20)} for j in range(3)] if applicable else [],
            "judge_p": rng.random() if applicable else None,
        })
    return out


def without_curve(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "token_curve"}


def f32(values: list[float]) -> list[float]:
    import numpy as np

    return np.asarray(values, dtype="<f4").astype(float).tolist()


def crash_child(db: str, start: int, stop: int) -> None:
    """Child process of the crash test: save chains start..stop-1, printing each committed key."""
    sys.path.insert(0, str(REPO))
    from kiig_desktop.store import SessionStore

    store = SessionStore.open(db)
    model = store.ensure_model(model_info())
    run_id, _ = store.find_or_create_run("score", {"input_sha256": "x" * 64, "mode": "answer"}, {"scorer": model}, {"kiig": "test"}, seed=0)
    done = store.completed_chain_keys(run_id)
    print(json.dumps({"resumed": len(done)}), flush=True)
    for i in range(start, stop):
        key = f"q{i}"
        if key in done:
            continue
        store.save_chain(run_id, key, make_record(i, n_steps=12, n_tokens=3000), item=make_item(i),
                         generation=make_generation(i, model, n_tokens=400), ki={"judge_model_id": model, "corpus": "demo",
                                                                                 "steps": make_ki_steps(i), "ki_mean": 0.5})
        print(json.dumps({"saved": key}), flush=True)
    store.set_run_status(run_id, "finished")
    store.close()
    print(json.dumps({"done": True}), flush=True)


if __name__ == "__main__":  # python tests/support/store_support.py crash DB START STOP
    if sys.argv[1] == "crash":
        crash_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
