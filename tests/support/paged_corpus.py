"""A PDF's pages as corpus passages, written into a session the way the PDF importer stores them
(corpus format 3: one document per file, ``page``/``page_end`` on each passage, the file's path)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

GUIDE_PAGES = [f"Page {n} of the type 2 diabetes guideline: general advice on diet and exercise." for n in range(1, 21)]
GUIDE_PAGES[13] = ("Metformin is the first-line drug for type 2 diabetes; start 500 mg once daily with food and "
                   "increase gradually to reduce gastrointestinal side effects.")
GUIDE_PAGES[12] = "Before starting metformin, check renal function (eGFR) and review it at least once a year."
GUIDE_PAGES[14] = "Stop metformin when eGFR falls below 30 ml/min/1.73 m2."


def write_pdf_file(path: Path) -> Path:
    """A stand-in for the guideline's PDF file at ``path`` (only opened by the system's viewer)."""
    path.write_bytes(b"%PDF-1.4\n% KIIG test stand-in\n%%EOF\n")
    return path


def add_pdf_pages(store, corpus: str, path: Path, pages: list[str] = GUIDE_PAGES) -> list[int]:
    """The file at ``path`` as corpus ``corpus``'s passages, one per page (1-based pages); chunk ids."""
    data = path.read_bytes()
    conn = store.db.conn
    with store.db.atomic():
        row = conn.execute("SELECT id FROM corpora WHERE name = ?", [corpus]).fetchone()
        cid = row[0] if row else conn.execute("INSERT INTO corpora (name, created) VALUES (?, '2026-12-05T00:00:00+00:00')",
                                              [corpus]).lastrowid
        file_id = conn.execute(
            "INSERT INTO corpus_files (corpus_id, name, path, kind, sha256, size, settings, imported, n_documents, n_chunks) "
            "VALUES (?, ?, ?, 'pdf', ?, ?, ?, '2026-12-05T00:00:00+00:00', 1, ?)",
            [cid, path.name, str(path.resolve()), hashlib.sha256(data).hexdigest(), len(data),
             json.dumps({"max_chunk_chars": 800, "overlap_chars": 120, "chunker": 1}), len(pages)]).lastrowid
        doc_id = conn.execute("INSERT INTO corpus_documents (corpus_id, file_id, source, title, n_chunks) VALUES (?, ?, ?, ?, ?)",
                              [cid, file_id, path.name, path.stem, len(pages)]).lastrowid
        ids, pos = [], 0
        for n, text in enumerate(pages):
            ids.append(conn.execute(
                "INSERT INTO corpus_chunks (corpus_id, document_id, chunk, title, text, char_start, char_end, page, page_end) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [cid, doc_id, n, path.stem, text, pos, pos + len(text), n + 1, n + 1]
            ).lastrowid)
            pos += len(text) + 2
    return ids


GUIDE_MD = "# Dosing\n\n## Adults\n\nMetformin 500 mg twice daily with meals for adults with type 2 diabetes.\n"
CLAIM = "Metformin is the first-line drug for type 2 diabetes."


def batch_session_citing_pages(path: Path, folder: Path) -> tuple[int, int, list[dict]]:
    """A session with corpus 'guidelines' (the PDF's pages and a Markdown guide, imported for real)
    and a one-item batch run whose step 0 was judged on what retrieval returns for its claim, plus one
    evidence entry stored the old way (no file, page, title or where). Returns (run, chain, evidence)."""
    from kiig_desktop.knowledge.corpus import add_documents
    from kiig_desktop.knowledge.search import search
    from kiig_desktop.store import SessionStore

    pdf = write_pdf_file(folder / "NG28.pdf")
    guide = folder / "guide.md"
    guide.write_text(GUIDE_MD, encoding="utf-8")
    with SessionStore.open(path) as store:
        add_pdf_pages(store, "guidelines", pdf)
        add_documents(store.db, "guidelines", [guide])
        evidence = [p.evidence() for p in search(store.db, "guidelines", "metformin first-line type 2 diabetes", 3)]
        evidence.append({k: evidence[0][k] for k in ("source", "chunk", "score", "chunk_id")})
        scorer = store.ensure_model({"path": "/m/scorer.gguf", "sha256": "c" * 64, "name": "scorer"})
        subject = store.ensure_model({"path": "/m/subject.gguf", "sha256": "a" * 64, "name": "subject"})
        judge = store.ensure_model({"path": "/m/judge.gguf", "sha256": "d" * 64, "name": "judge"})
        settings = {"method": "kiig-batch-1", "subjects": ["a" * 64], "dataset_sha256": "e" * 64, "n_items": 1,
                    "ki": {"corpus": "guidelines", "k": 3}}
        run, _ = store.find_or_create_run("batch", settings, {"scorer": scorer, "judge": judge}, {"kiig": "test"}, seed=0)
        steps = [{"index": 0, "text": CLAIM, "answer_nll": 0.9, "delta_nll": 0.2, "info_gain": 0.3, "applicable": True,
                  "ki": 0.9},
                 {"index": 1, "text": "So the answer is B.", "answer_nll": 0.5, "delta_nll": 0.4, "info_gain": 0.2,
                  "applicable": False, "ki": None}]
        record = {"id": "q1", "mode": "answer", "model": {"path": "/m/scorer.gguf", "sha256": "c" * 64}, "n_tokens": 40,
                  "steps": steps, "info_gain_mean": 0.25, "delta_nll_mean": 0.3, "ki_mean": 0.9,
                  "ki": {"corpus": "guidelines", "n_applicable": 1, "n_judged": 1, "mode": "probability", "k": 3},
                  "subject": {"path": "/m/subject.gguf", "sha256": "a" * 64, "name": "subject"},
                  "extracted_answer": "B", "correct": True}
        ki_steps = [{"index": 0, "text": CLAIM, "applicable": True, "ki": 0.9, "reason": "states a factual claim",
                     "evidence": evidence},
                    {"index": 1, "text": "So the answer is B.", "applicable": False, "ki": None, "reason": "final answer",
                     "evidence": []}]
        item = {"id": "q1", "question": "Which drug is first-line for type 2 diabetes?", "answer": "Metformin",
                "kind": "mcq", "options": {"A": "Insulin", "B": "Metformin"}, "answer_idx": "B"}
        chain = store.save_chain(run, "a" * 12 + ":q1", record, item=item,
                                 generation={"text": CLAIM + "\nSo the answer is B.", "tokens": [], "model_id": subject,
                                             "extracted_answer": "B", "correct": True},
                                 ki={"judge_model_id": judge, "corpus": "guidelines", "steps": ki_steps, "ki_mean": 0.9})
        store.set_run_status(run, "finished")
    return run, chain, evidence
