"""The runs feature's tables: `runs`, `member_answers`, `stages` and the full-text index `runs_fts`.

Migrations registered with `store.migrator.migration`; append new ones (the next free number),
never edit one that has shipped. Written as plain SQL so the schema does not drift with the
version of sqlite-utils that happens to be installed.

Schema notes (all features follow them):
- Timestamps are TEXT, UTC ISO 8601 with milliseconds and a trailing Z (sortable as text).
- JSON columns are TEXT holding JSON; NULL means "not known / not applicable".
- Token usage is kept as three integer columns (not JSON) so totals can be summed in SQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .migrator import migration

if TYPE_CHECKING:
    import sqlite_utils

RUN_STATUSES = ("running", "complete", "incomplete", "failed")


@migration("m001_initial")
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


@migration("m002_run_search")
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


@migration("m006_member_signals")
def m006_member_signals(db: sqlite_utils.Database) -> None:
    """Each member answer's signals (`MemberSignals`: token probabilities, verbalised
    confidence, agreement, semantic entropy) as one JSON column. JSON rather than a column per
    signal: the calibrator reads them as a vector, and signals will be added without a
    migration each. NULL for answers stored before signals existed — "not recorded", which
    readers must not confuse with a recorded answer whose signals are all absent."""
    db.executescript("ALTER TABLE member_answers ADD COLUMN signals TEXT;  -- JSON: MemberSignals")


@migration("m007_run_budget")
def m007_run_budget(db: sqlite_utils.Database) -> None:
    """Whether a budget (--max-cost/--max-tokens/--max-seconds, budget.py) stopped the run:
    JSON {budget, limit, budget_set, spent: {tokens, cost_usd, seconds}, cut}, NULL when none
    did (or the run had none). A column beside cost_usd, so listings need not parse verdicts."""
    db.executescript("ALTER TABLE runs ADD COLUMN budget_limited TEXT;  -- JSON, see Verdict.budget_limited")
