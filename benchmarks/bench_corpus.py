"""Benchmark the reference corpus: import of 10,000 passages and search latency over 1,000 queries.

Everything is generated deterministically from ``--seed``: a Zipf-distributed vocabulary of
pseudo-words mixed with clinical terms and English stop words, so term statistics look like real
text. The import goes through a real session file (``SessionStore``: WAL, synchronous=FULL), as
``kiig corpus add`` does. Queries are built from random passages (a handful of their words,
shuffled, with stop words, punctuation and the odd FTS operator or quote mixed in), so each has a
known source passage; its recall@5 is printed as a sanity check.

    python benchmarks/bench_corpus.py [--passages 10000] [--queries 1000] [--seed 7] [--huge-mb 0]

Target: median search latency under 20 ms. Not a timed test: it prints numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiig_desktop.knowledge import corpus  # noqa: E402
from kiig_desktop.knowledge.search import STOP_WORDS  # noqa: E402

CLINICAL = ("diabetes insulin metformin warfarin heparin aspirin troponin infarction sepsis lactate antibiotic "
            "pneumonia tuberculosis rifampicin isoniazid asthma salbutamol steroid thyroid levothyroxine anaemia "
            "ferritin vitamin potassium sodium creatinine kidney liver hepatitis malaria mosquito fever rash "
            "meningitis lumbar puncture stroke alteplase embolism dimer thrombosis pregnancy folate magnesium "
            "lithium tremor dopamine levodopa statin cholesterol digoxin arrhythmia fibrillation anticoagulation "
            "ulcer bleeding gluten biopsy gout urate colchicine allopurinol arthritis methotrexate overdose "
            "naloxone acetylcysteine glucose ketoacidosis hypertension blood pressure cough bradykinin").split()
SYLLABLES = "ba be bi bo bu ka ke ki ko ku la le li lo lu ma me mi mo mu na ne ni no nu ra re ri ro ru sa se si so su ta te ti to tu".split()
STOPS = sorted(STOP_WORDS - {"near", "true", "false"})


def vocabulary(rng: random.Random, size: int = 6000) -> list[str]:
    words = set(CLINICAL)
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    out = sorted(words)
    rng.shuffle(out)
    return out


def make_passages(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    vocab = vocabulary(rng)
    cum, total = [], 0.0
    for rank in range(len(vocab)):  # Zipf-like term frequencies
        total += 1.0 / (rank + 1) ** 1.07
        cum.append(total)
    passages = []
    for i in range(n):
        words = []
        for _ in range(rng.randint(40, 110)):
            words.append(rng.choice(STOPS) if rng.random() < 0.4 else rng.choices(vocab, cum_weights=cum)[0])
        sentences, pos = [], 0
        while pos < len(words):
            step = rng.randint(8, 18)
            sentences.append(" ".join(words[pos:pos + step]).capitalize() + ".")
            pos += step
        title = " ".join(rng.choices(vocab, cum_weights=cum, k=rng.randint(2, 4))).title()
        passages.append({"id": f"p{i:05d}", "title": title, "text": " ".join(sentences)})
    return passages


def make_queries(passages: list[dict], n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed + 1)
    decorations = ["?", "!", "...", ",", " AND", " OR", " NOT", " NEAR", '"', "(", ")", "*", ":", " -"]
    queries = []
    for _ in range(n):
        src = rng.choice(passages)
        words = [w.strip(".").lower() for w in src["text"].split() if w.strip(".").lower() not in STOP_WORDS]
        picked = rng.sample(words, min(len(words), rng.randint(3, 8)))
        parts = []
        for w in picked:
            if rng.random() < 0.4:
                parts.append(rng.choice(STOPS))
            parts.append(w + (rng.choice(decorations) if rng.random() < 0.2 else ""))
        queries.append((" ".join(["What"] + parts) + "?", src["id"]))
    return queries


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure(db, queries: list[tuple[str, str]], k: int, label: str) -> float:
    """Time every query; print median, p95, max, mean and recall@k of the source passage."""
    for q, _ in queries[:20]:  # warm the page cache
        corpus.search(db, "bench", q, k=k)
    latencies, found = [], 0
    for q, source in queries:
        t0 = time.perf_counter()
        hits = corpus.search(db, "bench", q, k=k)
        latencies.append((time.perf_counter() - t0) * 1000)
        found += any(h.source == source for h in hits)
    median = statistics.median(latencies)
    print(f"{label}: {len(queries):,} queries (k={k}): median {median:.2f} ms, p95 {pct(latencies, 0.95):.2f} ms, "
          f"max {max(latencies):.2f} ms, mean {statistics.fmean(latencies):.2f} ms; "
          f"source passage in top {k}: {found / len(queries):.1%}")
    return median


def open_db(path: Path):
    from kiig_desktop.store import SessionStore

    return SessionStore.open(path, create=True, write=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=1_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--huge-mb", type=int, default=0, help="also stream-import a single .txt file of this size")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="kiig-bench-corpus-"))
    print(f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs; folder {tmp}")
    t0 = time.perf_counter()
    passages = make_passages(args.passages, args.seed)
    src = tmp / "synthetic.jsonl"
    with open(src, "w", encoding="utf-8") as fh:
        for p in passages:
            fh.write(json.dumps(p) + "\n")
    print(f"generated {len(passages):,} passages ({src.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.2f} s")

    store = open_db(tmp / "bench.kiig")
    db = store.db
    t0 = time.perf_counter()
    with store.transaction("import into"):
        report = corpus.add_documents(db, "bench", [src])
    t_import = time.perf_counter() - t0
    n_chunks = report.files[0].n_chunks
    print(f"import: {t_import:.2f} s for {report.files[0].n_documents:,} passages / {n_chunks:,} chunks "
          f"({n_chunks / t_import:,.0f} chunks/s); session file {(tmp / 'bench.kiig').stat().st_size / 1e6:.1f} MB")
    t0 = time.perf_counter()
    again = corpus.add_documents(db, "bench", [src])
    print(f"re-import unchanged: {time.perf_counter() - t0:.3f} s ({again.files[0].status})")

    queries = make_queries(passages, args.queries, args.seed)
    median = measure(db, queries, args.k, "search")
    print(f"target median < 20 ms: {'met' if median < 20 else 'NOT met'}")
    from kiig_desktop.resources import resource_path

    corpus.add_documents(db, "demo", [resource_path("corpus", "clinical_facts.jsonl")])
    measure(db, queries, args.k, "with a second corpus in the session")

    if args.huge_mb:
        big = tmp / "huge.txt"
        line = "Streaming import reads this file in bounded pieces, whatever its size. " * 10 + "\n\n"
        with open(big, "w", encoding="utf-8") as fh:
            for _ in range(args.huge_mb * 1_000_000 // len(line)):
                fh.write(line)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        with store.transaction("import into"):
            rep = corpus.add_documents(db, "huge", [big])
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"huge file: {big.stat().st_size / 1e6:.0f} MB -> {rep.files[0].n_chunks:,} chunks in "
              f"{time.perf_counter() - t0:.1f} s; max RSS {rss0 / 1024:.0f} -> {rss1 / 1024:.0f} MB")
    store.close()
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
