"""The run store: every run, as it happens, in one SQLite file (`config.db_path()`).

    db = open_db()                               # WAL, busy timeout, foreign keys, migrations
    recorder = RunRecorder(db)
    run_id = recorder.start(question, council, members=[...], settings_snapshot={...})
    ...                                          # pipeline events -> recorder.sink
    recorder.finish(run_id, verdict)
    list_runs(db, status="complete", search="hamlet"); get_run(db, "01JC3"); export_run(db, run_id)

Tables: `runs` (one row per question asked), `member_answers` (one row per member per answering
stage), `stages` (timings and summaries), `_migrations`, and the full-text index `runs_fts`.
See migrations.py for the columns.
"""

from .abandoned import STALE_AFTER_HOURS, mark_abandoned_runs, pid_alive
from .db import applied_migrations, migrate, open_db, write_transaction
from .migrations import MIGRATIONS, RUN_STATUSES
from .queries import export_all, export_run, get_run, list_runs, resolve_run_id
from .recorder import ANSWER_STAGE, RunRecorder
from .ulid import is_ulid, new_ulid, ulid_datetime

__all__ = [
    "ANSWER_STAGE",
    "MIGRATIONS",
    "RUN_STATUSES",
    "STALE_AFTER_HOURS",
    "RunRecorder",
    "applied_migrations",
    "export_all",
    "export_run",
    "get_run",
    "is_ulid",
    "list_runs",
    "mark_abandoned_runs",
    "migrate",
    "new_ulid",
    "open_db",
    "pid_alive",
    "resolve_run_id",
    "ulid_datetime",
    "write_transaction",
]
