"""The batch feature's tables (`batch/store.py` reads and writes them). Each line that ran has
its run in `runs` (written by the normal recorder); these tables say which lines of which file
are done, so a batch can be resumed. Registered with `store.migrator.migration`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..store.migrator import migration

if TYPE_CHECKING:
    import sqlite_utils


@migration("m009_batches")
def m009_batches(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE batches (
            id          TEXT PRIMARY KEY,                 -- ULID
            created_at  TEXT NOT NULL,
            updated_at  TEXT NOT NULL,
            finished_at TEXT,
            status      TEXT NOT NULL DEFAULT 'running'
                        CHECK (status IN ('running', 'complete', 'incomplete', 'failed')),
            source      TEXT NOT NULL,                    -- the file's path as given
            options     TEXT NOT NULL,                    -- JSON: verify, council, models, strategy
            lines_total INTEGER NOT NULL,
            error       TEXT,                             -- JSON
            pid         INTEGER,
            hostname    TEXT
        );
        CREATE INDEX batches_created_at ON batches (created_at);

        CREATE TABLE batch_lines (
            batch_id    TEXT NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
            key         TEXT NOT NULL,                    -- the line's id, or line-N
            line_no     INTEGER NOT NULL,
            status      TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
            run_id      TEXT,                             -- the run in `runs`, when one started
            result      TEXT,                             -- JSON: what the JSONL line holds
            error       TEXT,                             -- JSON
            finished_at TEXT NOT NULL,
            PRIMARY KEY (batch_id, key)
        );
        """
    )
