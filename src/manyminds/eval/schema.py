"""The eval feature's tables (`eval/store.py` reads and writes them): `eval_runs`, `eval_items`
and `eval_cache`.

Independent of the other features' tables and of `runs`: eval items are not runs, each stores its
verdict JSON in its own row. Registered with `store.migrator.migration`; never edit a migration
that has shipped, add the next free number. Column conventions: `store/runs_schema.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..store.migrator import migration

if TYPE_CHECKING:
    import sqlite_utils


@migration("m003_eval")
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
