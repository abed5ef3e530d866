"""Synthetic batch-run records (as runs/batch.py stores them) for the report and provenance tests."""

from __future__ import annotations

import random

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quoted" \'single\' </details></table>'
SHA_A, SHA_B = "a" * 64, "b" * 64


def batch_record(item_id: str, sha: str, name: str, rng: random.Random, *, correct: bool, error: str | None = None,
                 ki: float | None = 0.5) -> dict:
    """One subject's record for one item (random numbers from ``rng``; hostile text in a step and the answer)."""
    n = rng.randint(1, 5)
    steps = [{"index": i, "text": f"step {i} {HOSTILE if i == 0 else ''}", "answer_nll": rng.uniform(0, 3),
              "delta_nll": rng.uniform(-1, 1), "info_gain": rng.uniform(-2, 2), "applicable": True, "ki": ki}
             for i in range(n)]
    rec = {"id": item_id, "mode": "answer", "model": {"path": "/m/scorer.gguf", "sha256": "c" * 64}}
    if error is None:
        rec.update(n_tokens=50, steps=steps, info_gain_mean=sum(s["info_gain"] for s in steps) / n,
                   delta_nll_mean=sum(s["delta_nll"] for s in steps) / n, ki_mean=ki)
        if n < 3:  # as infogain.paper_aggregates leaves them: excluded, not 0
            rec.update(paper_info_gain=None, paper_mean=None, paper_excluded=f"{n} steps")
        else:
            rec.update(paper_info_gain=rng.uniform(-1, 1), paper_mean=rng.uniform(2, 9))
    rec.update(subject={"path": f"/m/{name}.gguf", "sha256": sha, "name": name}, extracted_answer=HOSTILE[:20],
               correct=correct, n_generated_tokens=rng.randint(20, 90),
               timing={"generation_s": 1.0, "scoring_s": 0.5, "ki_s": 2.0, "total_s": 3.5})
    if error is not None:
        rec["error"] = error
    return rec
