"""The session file format: an ordinary SQLite database (extension ``.kiig``).

Identification: ``PRAGMA application_id`` = 0x4B494947 ("KIIG"); ``PRAGMA user_version`` = the
schema version, with one row per applied version in the ``schema_version`` table. A file is
created by applying every migration from version 0, so a new file and a migrated old file go
through the same code. Journal: WAL; foreign keys on. All timestamps are ISO-8601 UTC text
(``2025-05-01T12:00:00.123Z``); "JSON" columns hold JSON text; "f32"/"i32" columns hold
little-endian float32/int32 arrays.

Tables (schema version 3)

schema_version   version INTEGER PK, applied TEXT, app_version TEXT, description TEXT
meta             key TEXT PK, value TEXT: ``corpus_schema_version`` (the corpus tables' layout
                 version, ``corpus_schema.CORPUS_SCHEMA_VERSION``), ``created`` (first write)
models           id, path TEXT, sha256 TEXT, name, architecture, quantization TEXT,
                 parameters, context_length, size INTEGER, metadata JSON (GGUF header fields),
                 added TEXT; UNIQUE(sha256, path)
runs             id, uid TEXT UNIQUE (stable across export/import), run_key TEXT (sha256 of the
                 canonical JSON of kind, settings, seed and the sha256 of each role's model),
                 kind TEXT (score|ki|batch|analyze|import), name TEXT,
                 status TEXT (running|finished|cancelled|failed|interrupted), settings JSON,
                 versions JSON (package / llama.cpp versions), seed INTEGER,
                 subject_model_id, scorer_model_id, judge_model_id -> models.id,
                 started TEXT, finished TEXT, origin JSON (where an imported run came from)
items            id, key TEXT (the input item id), sha256 TEXT UNIQUE (of the item's canonical
                 JSON), kind TEXT, question TEXT, answer TEXT, options JSON, answer_idx TEXT,
                 extra JSON (other input fields)
generations      id, model_id -> models.id, text TEXT, n_tokens INTEGER, token_text JSON (list of
                 token strings), logprob f32, entropy_bits f32, extracted_answer TEXT,
                 correct INTEGER (0/1), extra JSON, created TEXT
chains           id, run_id -> runs.id (cascade), key TEXT, item_id -> items.id,
                 generation_id -> generations.id, status TEXT (finished|error), error TEXT,
                 mode TEXT, n_steps, n_tokens INTEGER, info_gain_mean, delta_nll_mean,
                 paper_info_gain, paper_mean, ki_mean REAL, correct INTEGER,
                 baseline_answer_nll, baseline_answer_ppl REAL,
                 record JSON (the output line exactly as saved; a token curve is replaced by
                 null and lives in token_curves), saved TEXT; UNIQUE(run_id, key);
                 since schema 4: record_sha256 TEXT (``chain_rows.record_digest``: SHA-256 of the
                 canonical JSON of the record as ``load_chain`` returns it). Saving a key again
                 updates the row in place and never deletes it (``chain_rows.write_chain``)
steps            id, chain_id -> chains.id (cascade), pos INTEGER (0-based order),
                 idx INTEGER (the record's "index"), text TEXT, start_char, end_char INTEGER,
                 answer_nll, answer_ppl, delta_nll, info_gain, seq_ppl, entropy_bits,
                 p_correct REAL, option_probs JSON, applicable INTEGER, ki REAL,
                 planning, knowledge (untyped labels); UNIQUE(chain_id, pos)
token_curves     chain_id PK -> chains.id (cascade), n_tokens INTEGER, token_ids i32,
                 pieces JSON, surprisal_bits f32, entropy_bits f32, step i32 (0-based step of
                 each token), extra JSON
ki_evaluations   id, chain_id -> chains.id (cascade), judge_model_id -> models.id, corpus TEXT,
                 ki_mean REAL, created TEXT; UNIQUE(chain_id, judge_model_id, corpus);
                 since schema 2: mode TEXT (probability|passages-true-false|reasoningeval-pipeline;
                 NULL = probability; 'reasoningeval' = passages-true-false, its old name, read back renamed),
                 k INTEGER (passages per step), method INTEGER (judge prompt version; NULL = 1),
                 build JSON (the judge's llama.cpp build, ``engine.build_info``; NULL = not recorded);
                 since schema 4: chain_sha256 TEXT (the chain's record_sha256 when the evaluation
                 was made: different from the chain's now = made on an earlier version)
ki_steps         id, evaluation_id -> ki_evaluations.id (cascade), idx INTEGER,
                 applicable INTEGER, ki REAL, judge_p REAL, reason TEXT, extra JSON;
                 UNIQUE(evaluation_id, idx)
ki_evidence      id, ki_step_id -> ki_steps.id (cascade), rank INTEGER, source TEXT,
                 chunk INTEGER, score REAL, extra JSON; UNIQUE(ki_step_id, rank)
corpora, corpus_*  the reference corpora: see ``store/corpus_schema.py`` (owned by the corpus
                 module, applied here in the same transaction as the session migrations)
step_metrics     VIEW: one row per step with its run, chain and item, for SQL tools
step_reviews     since schema 3: id, run_id -> runs.id (cascade), chain_key TEXT, step_index INTEGER
                 (0-based position in the record's steps), reviewer TEXT,
                 knowledge TEXT (correct|incorrect|cannot_tell|NULL), role TEXT
                 (helps|irrelevant|misleading|NULL), note TEXT, record_sha256 TEXT (``reviews.record_hash``
                 of the chain record it was made on), created TEXT, origin TEXT (where an imported
                 review came from; NULL = made here). Append-only (a trigger refuses UPDATE): every
                 change is a new row, the current review of (run, chain, step, reviewer) is the latest.
                 Keyed by run id + chain key + step index, not by chains.id, so re-saving a chain
                 (which replaces its row) keeps its reviews; they then show as made on an earlier version.
chain_reviews    since schema 3: id, run_id -> runs.id (cascade), chain_key TEXT, reviewer TEXT,
                 verdict TEXT (sound|flawed|cannot_tell|NULL), note TEXT, record_sha256, created, origin
                 TEXT; append-only like step_reviews

The step and chain metric columns are copies of the numbers in ``chains.record``, written in the
same transaction, for queries and plots; ``record`` is what ``load_chain`` returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .chain_rows import fill_digests

APPLICATION_ID = 0x4B494947  # "KIIG"
SCHEMA_VERSION = 4

RUN_KINDS = ("score", "ki", "batch", "analyze", "import")
RUN_STATUSES = ("running", "finished", "cancelled", "failed", "interrupted")
MODEL_ROLES = ("subject", "scorer", "judge")
KNOWLEDGE_VERDICTS = ("correct", "incorrect", "cannot_tell")
ROLE_VERDICTS = ("helps", "irrelevant", "misleading")
CHAIN_VERDICTS = ("sound", "flawed", "cannot_tell")

_V1: list[str] = [
    """CREATE TABLE schema_version (
        version INTEGER PRIMARY KEY,
        applied TEXT NOT NULL,
        app_version TEXT NOT NULL,
        description TEXT NOT NULL
    )""",
    """CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    """CREATE TABLE models (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        name TEXT,
        architecture TEXT,
        quantization TEXT,
        parameters INTEGER,
        context_length INTEGER,
        size INTEGER,
        metadata TEXT NOT NULL DEFAULT '{}',
        added TEXT NOT NULL,
        UNIQUE (sha256, path)
    )""",
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        uid TEXT NOT NULL UNIQUE,
        run_key TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('score', 'ki', 'batch', 'analyze', 'import')),
        name TEXT,
        status TEXT NOT NULL
            CHECK (status IN ('running', 'finished', 'cancelled', 'failed', 'interrupted')),
        settings TEXT NOT NULL,
        versions TEXT NOT NULL,
        seed INTEGER,
        subject_model_id INTEGER REFERENCES models(id),
        scorer_model_id INTEGER REFERENCES models(id),
        judge_model_id INTEGER REFERENCES models(id),
        started TEXT NOT NULL,
        finished TEXT,
        origin TEXT
    )""",
    "CREATE INDEX runs_by_key ON runs(run_key)",
    """CREATE TABLE items (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        sha256 TEXT NOT NULL UNIQUE,
        kind TEXT,
        question TEXT NOT NULL,
        answer TEXT,
        options TEXT,
        answer_idx TEXT,
        extra TEXT
    )""",
    "CREATE INDEX items_by_key ON items(key)",
    """CREATE TABLE generations (
        id INTEGER PRIMARY KEY,
        model_id INTEGER REFERENCES models(id),
        text TEXT NOT NULL,
        n_tokens INTEGER NOT NULL,
        token_text TEXT,
        logprob BLOB,
        entropy_bits BLOB,
        extracted_answer TEXT,
        correct INTEGER,
        extra TEXT,
        created TEXT NOT NULL
    )""",
    """CREATE TABLE chains (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        item_id INTEGER REFERENCES items(id),
        generation_id INTEGER REFERENCES generations(id) ON DELETE SET NULL,
        status TEXT NOT NULL CHECK (status IN ('finished', 'error')),
        error TEXT,
        mode TEXT,
        n_steps INTEGER NOT NULL,
        n_tokens INTEGER,
        info_gain_mean REAL,
        delta_nll_mean REAL,
        paper_info_gain REAL,
        paper_mean REAL,
        ki_mean REAL,
        correct INTEGER,
        baseline_answer_nll REAL,
        baseline_answer_ppl REAL,
        record TEXT NOT NULL,
        saved TEXT NOT NULL,
        UNIQUE (run_id, key)
    )""",
    "CREATE INDEX chains_by_item ON chains(item_id)",
    "CREATE INDEX chains_by_generation ON chains(generation_id)",
    """CREATE TABLE steps (
        id INTEGER PRIMARY KEY,
        chain_id INTEGER NOT NULL REFERENCES chains(id) ON DELETE CASCADE,
        pos INTEGER NOT NULL,
        idx INTEGER,
        text TEXT NOT NULL,
        start_char INTEGER,
        end_char INTEGER,
        answer_nll REAL,
        answer_ppl REAL,
        delta_nll REAL,
        info_gain REAL,
        seq_ppl REAL,
        entropy_bits REAL,
        p_correct REAL,
        option_probs TEXT,
        applicable INTEGER,
        ki REAL,
        planning,
        knowledge,
        UNIQUE (chain_id, pos)
    )""",
    """CREATE TABLE token_curves (
        chain_id INTEGER PRIMARY KEY REFERENCES chains(id) ON DELETE CASCADE,
        n_tokens INTEGER NOT NULL,
        token_ids BLOB,
        pieces TEXT,
        surprisal_bits BLOB,
        entropy_bits BLOB,
        step BLOB,
        extra TEXT
    )""",
    """CREATE TABLE ki_evaluations (
        id INTEGER PRIMARY KEY,
        chain_id INTEGER NOT NULL REFERENCES chains(id) ON DELETE CASCADE,
        judge_model_id INTEGER NOT NULL REFERENCES models(id),
        corpus TEXT NOT NULL,
        ki_mean REAL,
        created TEXT NOT NULL,
        UNIQUE (chain_id, judge_model_id, corpus)
    )""",
    """CREATE TABLE ki_steps (
        id INTEGER PRIMARY KEY,
        evaluation_id INTEGER NOT NULL REFERENCES ki_evaluations(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        applicable INTEGER NOT NULL,
        ki REAL,
        judge_p REAL,
        reason TEXT,
        extra TEXT,
        UNIQUE (evaluation_id, idx)
    )""",
    """CREATE TABLE ki_evidence (
        id INTEGER PRIMARY KEY,
        ki_step_id INTEGER NOT NULL REFERENCES ki_steps(id) ON DELETE CASCADE,
        rank INTEGER NOT NULL,
        source TEXT NOT NULL,
        chunk INTEGER,
        score REAL,
        extra TEXT,
        UNIQUE (ki_step_id, rank)
    )""",
    """CREATE VIEW step_metrics AS
        SELECT r.id AS run_id, r.kind AS run_kind, c.id AS chain_id, c.key AS chain_key,
               c.status AS chain_status, i.question, i.answer, s.pos, s.idx AS step_index, s.text,
               s.start_char, s.end_char, s.answer_nll, s.answer_ppl, s.delta_nll, s.info_gain,
               s.seq_ppl, s.entropy_bits, s.p_correct, s.applicable, s.ki,
               c.info_gain_mean, c.delta_nll_mean, c.ki_mean
        FROM steps s JOIN chains c ON c.id = s.chain_id JOIN runs r ON r.id = c.run_id
             LEFT JOIN items i ON i.id = c.item_id""",
]


_V3: list[str] = [
    """CREATE TABLE step_reviews (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        chain_key TEXT NOT NULL,
        step_index INTEGER NOT NULL CHECK (step_index >= 0),
        reviewer TEXT NOT NULL CHECK (length(reviewer) > 0),
        knowledge TEXT CHECK (knowledge IN ('correct', 'incorrect', 'cannot_tell')),
        role TEXT CHECK (role IN ('helps', 'irrelevant', 'misleading')),
        note TEXT,
        record_sha256 TEXT NOT NULL,
        created TEXT NOT NULL,
        origin TEXT
    )""",
    "CREATE INDEX step_reviews_by_step ON step_reviews(run_id, chain_key, step_index, reviewer)",
    """CREATE TABLE chain_reviews (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        chain_key TEXT NOT NULL,
        reviewer TEXT NOT NULL CHECK (length(reviewer) > 0),
        verdict TEXT CHECK (verdict IN ('sound', 'flawed', 'cannot_tell')),
        note TEXT,
        record_sha256 TEXT NOT NULL,
        created TEXT NOT NULL,
        origin TEXT
    )""",
    "CREATE INDEX chain_reviews_by_chain ON chain_reviews(run_id, chain_key, reviewer)",
    """CREATE TRIGGER step_reviews_append_only BEFORE UPDATE ON step_reviews
        BEGIN SELECT RAISE(ABORT, 'reviews are append-only: add a row for a change'); END""",
    """CREATE TRIGGER chain_reviews_append_only BEFORE UPDATE ON chain_reviews
        BEGIN SELECT RAISE(ABORT, 'reviews are append-only: add a row for a change'); END""",
]


@dataclass(frozen=True)
class Migration:
    """One step forward: from ``version - 1`` to ``version``.

    ``statements`` run in order inside the migration transaction; ``func`` (optional) runs after
    them with the sqlite3 connection, for data changes SQL alone cannot express.
    """

    version: int
    description: str
    statements: tuple[str, ...] = ()
    func: Callable | None = None


# Every version this project ever wrote, oldest first. Never edit a released entry: add one.
MIGRATIONS: list[Migration] = [
    Migration(1, "initial session schema", tuple(_V1)),
    Migration(2, "KI evaluations record their mode, passages per step, judge prompt version and llama.cpp build", (
        "ALTER TABLE ki_evaluations ADD COLUMN mode TEXT",
        "ALTER TABLE ki_evaluations ADD COLUMN k INTEGER",
        "ALTER TABLE ki_evaluations ADD COLUMN method INTEGER",
        "ALTER TABLE ki_evaluations ADD COLUMN build TEXT",
    )),
    Migration(3, "clinician reviews of steps and chains, append-only, keyed by run, chain key and step", tuple(_V3)),
    Migration(4, "chains record the hash of their record and KI evaluations the hash of the record they were made on "
                 "(a re-saved chain keeps its KI)", (
        "ALTER TABLE chains ADD COLUMN record_sha256 TEXT",
        "ALTER TABLE ki_evaluations ADD COLUMN chain_sha256 TEXT",
    ), fill_digests),
]
