"""Opening the run store: connection settings, then migrations, then the abandoned-run check.

Every connection gets WAL mode (readers never block the writer and a killed writer loses only its
open transaction), a busy timeout (a second process waits for the lock instead of failing at once
with "database is locked" — simonw/llm issue #789) and foreign keys. Writes then go through
`store.db.write_transaction`; the migrations are `migrator.py`'s, the check `abandoned.py`'s.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import sqlite_utils

from ..config import db_path
from .abandoned import mark_abandoned_runs
from .migrator import Migration, migrate

BUSY_TIMEOUT_S = 5.0


def open_db(
    path: str | Path | None = None,
    *,
    migrations: Sequence[Migration] | None = None,
    busy_timeout: float = BUSY_TIMEOUT_S,
    check_abandoned: bool = True,
) -> sqlite_utils.Database:
    """Open (creating if needed) the run store at `path`, default `config.db_path()`.

    Applies pending migrations (`migrations` defaults to every registered one, see
    `migrator.registered_migrations`; tests pass a longer list) and then marks runs whose process
    has died as incomplete.
    """
    path = Path(path).expanduser() if path is not None else db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # The timeout given to connect() is SQLite's busy timeout; the PRAGMA below states it again
    # so that it is visible (and testable) on the connection.
    conn = sqlite3.connect(str(path), timeout=busy_timeout)
    db = sqlite_utils.Database(conn, execute_plugins=False)
    try:
        configure(db, busy_timeout)
        migrate(db, migrations)
        if check_abandoned:
            mark_abandoned_runs(db)
    except BaseException:
        db.close()
        raise
    return db


def configure(db: sqlite_utils.Database, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
    """The per-connection settings. Safe to call on any sqlite-utils Database."""
    db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    db.execute("PRAGMA foreign_keys = ON")
    # journal_mode is stored in the file, but setting it on each connection is what the
    # contract asks for and costs nothing once the file is already in WAL mode.
    db.enable_wal()
    # With WAL, NORMAL survives a killed process (only power loss can drop the last commits),
    # and avoids an fsync per commit — the recorder commits after every member answer.
    db.execute("PRAGMA synchronous = NORMAL")
