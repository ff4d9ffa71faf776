"""The run store: every run, as it happens, in one SQLite file (`config.db_path()`).

    db = open_db()                               # WAL, busy timeout, foreign keys, migrations
    recorder = RunRecorder(db)
    run_id = recorder.start(question, council, members=[...], settings_snapshot={...})
    ...                                          # pipeline events -> recorder.sink
    recorder.finish(run_id, verdict)
    list_runs(db, status="complete", search="hamlet"); get_run(db, "01JC3"); export_run(db, run_id)

Tables: `runs` (one row per question asked), `member_answers` (one row per member per answering
stage), `stages` (timings and summaries), `_migrations`, and the full-text index `runs_fts`;
their columns are in runs_schema.py. Other features keep their tables in the same file and
declare them in schema modules of their own (eval/schema.py, evidence/schema.py,
jobs/schema.py) with the `migration` decorator; `migrator.SCHEMA_MODULES` lists them.

Modules, each importing only those before it: db (write transactions, column encodings),
migrator (the registry and the runner), abandoned (runs whose process died), connect
(`open_db`), runs_schema, recorder, queries. Run ids are ULIDs from `manyminds.ids`.

The names below are imported on first use, so that a feature's schema module can import the
decorator from `store.migrator` without loading the recorder, the queries and sqlite-utils.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:
    from .abandoned import STALE_AFTER_HOURS, mark_abandoned_runs, pid_alive
    from .connect import open_db
    from .db import write_transaction
    from .migrator import applied_migrations, migrate, migration, registered_migrations
    from .queries import export_all, export_run, get_run, list_runs, resolve_run_id
    from .recorder import ANSWER_STAGE, RunRecorder
    from .runs_schema import RUN_STATUSES

_EXPORTS = {
    "STALE_AFTER_HOURS": "abandoned",
    "mark_abandoned_runs": "abandoned",
    "pid_alive": "abandoned",
    "open_db": "connect",
    "write_transaction": "db",
    "applied_migrations": "migrator",
    "migrate": "migrator",
    "migration": "migrator",
    "registered_migrations": "migrator",
    "export_all": "queries",
    "export_run": "queries",
    "get_run": "queries",
    "list_runs": "queries",
    "resolve_run_id": "queries",
    "ANSWER_STAGE": "recorder",
    "RunRecorder": "recorder",
    "RUN_STATUSES": "runs_schema",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
