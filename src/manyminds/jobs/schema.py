"""The background jobs' tables (the "deep" tier; `jobs/queue.py` reads and writes them): `jobs`
and `workers`.

m005 neither reads nor references the other features' tables (nor `runs`: a job exists before its
run row does). Registered with `store.migrator.migration`; never edit a migration that has
shipped, add the next free number. Column conventions: `store/runs_schema.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..store.migrator import migration

if TYPE_CHECKING:
    import sqlite_utils

JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled")


@migration("m005_jobs")
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
