"""Numbered schema migrations. Append new ones; never edit one that has shipped.

Each is a function of the database, run once inside a transaction by `db.migrate`, and recorded
by name in `_migrations`. Written as plain SQL so the schema does not drift with the version of
sqlite-utils that happens to be installed.

Schema notes:
- Timestamps are TEXT, UTC ISO 8601 with milliseconds and a trailing Z (sortable as text).
- JSON columns are TEXT holding JSON; NULL means "not known / not applicable".
- Token usage is kept as three integer columns (not JSON) so totals can be summed in SQL.
"""

from __future__ import annotations

import sqlite_utils

RUN_STATUSES = ("running", "complete", "incomplete", "failed")


def m001_initial(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE runs (
            -- An explicit integer key: the full-text index refers to rows by it, and an
            -- implicit rowid may be renumbered by VACUUM.
            seq           INTEGER PRIMARY KEY,
            id            TEXT NOT NULL UNIQUE,           -- ULID, what users see
            created_at    TEXT NOT NULL,
            updated_at    TEXT NOT NULL,                  -- last write: the staleness check reads it
            finished_at   TEXT,
            status        TEXT NOT NULL DEFAULT 'running'
                          CHECK (status IN ('running', 'complete', 'incomplete', 'failed')),
            question      TEXT NOT NULL,
            council       TEXT NOT NULL,
            strategy      TEXT,
            seats         TEXT,                           -- JSON: the members asked, as given to start()
            settings      TEXT,                           -- JSON: settings snapshot
            error         TEXT,                           -- JSON: {"type", "message", ...}
            answer        TEXT,
            short_answer  TEXT,
            confidence    REAL,
            verdict       TEXT,                           -- JSON: the full Verdict when complete
            input_tokens  INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            total_tokens  INTEGER NOT NULL DEFAULT 0,
            cost_usd      REAL,                           -- NULL when a price is unknown
            seconds       REAL,                           -- wall time of the whole run
            pid           INTEGER,
            hostname      TEXT,
            version       TEXT                            -- manyminds version that wrote the run
        );
        CREATE INDEX runs_created_at ON runs (created_at);
        CREATE INDEX runs_status ON runs (status, created_at);

        CREATE TABLE member_answers (
            run_id              TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            stage               TEXT NOT NULL,            -- the answering stage, or e.g. a review round
            member              TEXT NOT NULL,
            model               TEXT NOT NULL,
            status              TEXT NOT NULL,            -- ok / failed / timeout
            text                TEXT NOT NULL DEFAULT '',
            short_answer        TEXT,
            short_answer_method TEXT,
            finish_reason       TEXT,
            error               TEXT,                     -- JSON
            input_tokens        INTEGER NOT NULL DEFAULT 0,
            output_tokens       INTEGER NOT NULL DEFAULT 0,
            total_tokens        INTEGER NOT NULL DEFAULT 0,
            latency_s           REAL,
            cost_usd            REAL,
            attempts            INTEGER NOT NULL DEFAULT 1,
            finished_at         TEXT NOT NULL,
            PRIMARY KEY (run_id, stage, member)
        );

        CREATE TABLE stages (
            id          INTEGER PRIMARY KEY,
            run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            stage       TEXT NOT NULL,
            started_at  TEXT,
            finished_at TEXT,                             -- NULL: started, never finished
            seconds     REAL,
            data        TEXT                              -- JSON: the stage's summary output
        );
        CREATE INDEX stages_run ON stages (run_id, stage);
        """
    )


def m002_run_search(db: sqlite_utils.Database) -> None:
    """Full-text index over questions and answers, kept current by triggers.

    Skipped when this SQLite lacks FTS5; `list_runs(search=...)` then falls back to LIKE.
    """
    options = {row[0] for row in db.execute("PRAGMA compile_options").fetchall()}
    if "ENABLE_FTS5" not in options:
        return
    db.executescript(
        """
        CREATE VIRTUAL TABLE runs_fts USING fts5 (
            question, answer, content='runs', content_rowid='seq'
        );
        CREATE TRIGGER runs_fts_ai AFTER INSERT ON runs BEGIN
            INSERT INTO runs_fts (rowid, question, answer) VALUES (new.seq, new.question, new.answer);
        END;
        CREATE TRIGGER runs_fts_ad AFTER DELETE ON runs BEGIN
            INSERT INTO runs_fts (runs_fts, rowid, question, answer)
                VALUES ('delete', old.seq, old.question, old.answer);
        END;
        -- Only when the indexed text changes: runs are updated after every member answer.
        CREATE TRIGGER runs_fts_au AFTER UPDATE OF question, answer ON runs BEGIN
            INSERT INTO runs_fts (runs_fts, rowid, question, answer)
                VALUES ('delete', old.seq, old.question, old.answer);
            INSERT INTO runs_fts (rowid, question, answer) VALUES (new.seq, new.question, new.answer);
        END;
        INSERT INTO runs_fts (runs_fts) VALUES ('rebuild');
        """
    )


MIGRATIONS = [m001_initial, m002_run_search]


def m004_documents(db: sqlite_utils.Database) -> None:
    """Local document collections for evidence (`manyminds.evidence`): collections, documents,
    chunks with their provenance and float32 embeddings, and a full-text index over the chunks.

    Independent of the other migrations. The full-text table is skipped when this SQLite lacks
    FTS5; retrieval then uses the vectors alone.
    """
    # sqlite-utils runs a script statement by statement inside `migrate`'s transaction, so the
    # tables, index and triggers are created together with the `_migrations` row, or not at all.
    script = """
        CREATE TABLE doc_collections (
            id              INTEGER PRIMARY KEY,
            name            TEXT NOT NULL UNIQUE,
            created_at      TEXT NOT NULL,
            updated_at      TEXT NOT NULL,
            -- Bumped by every change to the collection; in-memory vector matrices compare it, so
            -- a change made by another process invalidates them too.
            version         INTEGER NOT NULL DEFAULT 0,
            embedding_model TEXT NOT NULL
        );

        CREATE TABLE doc_documents (
            id            INTEGER PRIMARY KEY,
            collection_id INTEGER NOT NULL REFERENCES doc_collections (id) ON DELETE CASCADE,
            path          TEXT NOT NULL,                  -- absolute path (or URL) as added
            title         TEXT,
            kind          TEXT NOT NULL,                  -- text / markdown / html / pdf
            sha256        TEXT NOT NULL,                  -- of the file's bytes: same hash, no re-index
            size_bytes    INTEGER NOT NULL,
            chars         INTEGER NOT NULL,               -- length of the parsed text
            pages         INTEGER,
            chunk_count   INTEGER NOT NULL,
            added_at      TEXT NOT NULL,
            updated_at    TEXT NOT NULL,
            UNIQUE (collection_id, path)
        );

        CREATE TABLE doc_chunks (
            id            INTEGER PRIMARY KEY,            -- the FTS rowid and Passage.chunk_id
            document_id   INTEGER NOT NULL REFERENCES doc_documents (id) ON DELETE CASCADE,
            collection_id INTEGER NOT NULL REFERENCES doc_collections (id) ON DELETE CASCADE,
            seq           INTEGER NOT NULL,               -- order within the document
            text          TEXT NOT NULL,                  -- exactly parsed_text[start_char:end_char]
            context       TEXT NOT NULL DEFAULT '',       -- title and heading path, searched too
            location      TEXT NOT NULL,                  -- "page 3", "§ A > B (lines 4–9)", …
            page          INTEGER,
            start_char    INTEGER NOT NULL,
            end_char      INTEGER NOT NULL,
            embedding     BLOB NOT NULL                   -- 384 little-endian float32, unit length
        );
        CREATE INDEX doc_chunks_collection ON doc_chunks (collection_id, id);
        CREATE INDEX doc_chunks_document ON doc_chunks (document_id, seq);
        """
    options = {row[0] for row in db.execute("PRAGMA compile_options").fetchall()}
    if "ENABLE_FTS5" in options:
        script += """
        CREATE VIRTUAL TABLE doc_chunks_fts USING fts5 (
            text, context, content='doc_chunks', content_rowid='id',
            tokenize='porter unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER doc_chunks_fts_ai AFTER INSERT ON doc_chunks BEGIN
            INSERT INTO doc_chunks_fts (rowid, text, context) VALUES (new.id, new.text, new.context);
        END;
        CREATE TRIGGER doc_chunks_fts_ad AFTER DELETE ON doc_chunks BEGIN
            INSERT INTO doc_chunks_fts (doc_chunks_fts, rowid, text, context)
                VALUES ('delete', old.id, old.text, old.context);
        END;
        CREATE TRIGGER doc_chunks_fts_au AFTER UPDATE OF text, context ON doc_chunks BEGIN
            INSERT INTO doc_chunks_fts (doc_chunks_fts, rowid, text, context)
                VALUES ('delete', old.id, old.text, old.context);
            INSERT INTO doc_chunks_fts (rowid, text, context) VALUES (new.id, new.text, new.context);
        END;
        """
    db.executescript(script)


MIGRATIONS.append(m004_documents)


# --- m003: evaluation runs (eval/store.py) ------------------------------------------------
# Appended like m005: independent of the other appended migrations' tables and of `runs`
# (eval items are not runs: each stores its verdict JSON in its own row).


def m003_eval(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE eval_runs (
            id          TEXT PRIMARY KEY,                 -- ULID
            created_at  TEXT NOT NULL,
            updated_at  TEXT NOT NULL,                    -- last write: the staleness check reads it
            finished_at TEXT,
            status      TEXT NOT NULL DEFAULT 'running'
                        CHECK (status IN ('running', 'complete', 'incomplete', 'failed')),
            council     TEXT NOT NULL,                    -- the council's name ('ad-hoc' for -m)
            config      TEXT NOT NULL,                    -- JSON: datasets, strategies, limit, seed, …
            snapshot    TEXT,                             -- JSON: the council as described when started
            plan        TEXT,                             -- JSON: item ids per dataset, strategy labels
            meta        TEXT,                             -- JSON: choices made during the run (k, weights)
            error       TEXT,                             -- JSON
            pid         INTEGER,
            hostname    TEXT,
            version     TEXT
        );
        CREATE INDEX eval_runs_created_at ON eval_runs (created_at);

        CREATE TABLE eval_items (
            run_id        TEXT NOT NULL REFERENCES eval_runs (id) ON DELETE CASCADE,
            dataset       TEXT NOT NULL,
            item_id       TEXT NOT NULL,
            strategy      TEXT NOT NULL,                  -- a label: council, single:NAME, council+trust…
            category      TEXT,
            correct       INTEGER NOT NULL,               -- 0/1; errors and unparseable output are 0
            confidence    REAL,                           -- NULL where the strategy has none (single)
            answer        TEXT,
            short_answer  TEXT,
            raw_text      TEXT,
            grade_method  TEXT,
            grade_error   TEXT,
            input_tokens  INTEGER NOT NULL DEFAULT 0,     -- as if no call was cached
            output_tokens INTEGER NOT NULL DEFAULT 0,
            total_tokens  INTEGER NOT NULL DEFAULT 0,
            cost_usd      REAL,
            seconds       REAL,                           -- wall time, cached calls being instant
            error         TEXT,                           -- JSON: why the strategy produced no verdict
            extra         TEXT,                           -- JSON
            verdict       TEXT,                           -- JSON: the full Verdict
            finished_at   TEXT NOT NULL,
            PRIMARY KEY (run_id, dataset, item_id, strategy)
        );

        -- Completions shared by strategies within one eval run (identical calls at temperature
        -- 0 or with a seed), kept so a resumed run does not pay for them again.
        CREATE TABLE eval_cache (
            run_id     TEXT NOT NULL REFERENCES eval_runs (id) ON DELETE CASCADE,
            key        TEXT NOT NULL,
            completion TEXT NOT NULL,                     -- JSON: Completion.to_dict()
            PRIMARY KEY (run_id, key)
        );
        """
    )


# In name order wherever the others' appends have got to (tests check the list is sorted).
MIGRATIONS.insert(next((i for i, m in enumerate(MIGRATIONS) if m.__name__ > "m003_eval"), len(MIGRATIONS)), m003_eval)


# --- m005: background jobs (the "deep" tier; server/jobs.py) ------------------------------
# Added to MIGRATIONS below rather than by editing the list above, so that migrations added
# concurrently by other modules do not collide on one line; inserted in number order, which
# test_store checks. m005 neither reads nor references the other migrations' tables (nor
# `runs`: a job exists before its run row does).

JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled")


def m005_jobs(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE jobs (
            run_id           TEXT PRIMARY KEY,          -- the run's ULID: the id the user holds
            status           TEXT NOT NULL DEFAULT 'queued'
                             CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
            tier             TEXT NOT NULL DEFAULT 'deep',
            request          TEXT NOT NULL,             -- JSON: question, council, models, strategy… never keys
            progress         TEXT,                      -- JSON: {stage, fraction, message, …}
            attempts         INTEGER NOT NULL DEFAULT 0,
            max_attempts     INTEGER NOT NULL DEFAULT 3,
            history          TEXT,                      -- JSON list: attempts that ended without an outcome
            error            TEXT,                      -- JSON: {"type", "message", …}
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            created_at       TEXT NOT NULL,
            updated_at       TEXT NOT NULL,
            started_at       TEXT,
            finished_at      TEXT,
            worker_id        TEXT,
            worker_pid       INTEGER,
            worker_host      TEXT,
            heartbeat_at     TEXT                       -- a running job's worker writes it every few seconds
        );
        CREATE INDEX jobs_queue ON jobs (status, created_at);

        -- Workers announce themselves so `manyminds ask --deep` can say whether one is running.
        CREATE TABLE workers (
            id           TEXT PRIMARY KEY,
            pid          INTEGER,
            hostname     TEXT,
            started_at   TEXT NOT NULL,
            heartbeat_at TEXT NOT NULL,
            stopped_at   TEXT
        );
        """
    )


MIGRATIONS.insert(next((i for i, m in enumerate(MIGRATIONS) if m.__name__ > "m005_jobs"), len(MIGRATIONS)), m005_jobs)
