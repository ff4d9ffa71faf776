"""Opening the run store: connection settings, write transactions and the migration runner.

Every connection gets WAL mode (readers never block the writer and a killed writer loses only its
open transaction), a busy timeout (a second process waits for the lock instead of failing at once
with "database is locked" — simonw/llm issue #789) and foreign keys. Writes go through
`write_transaction`, which starts with BEGIN IMMEDIATE: a deferred transaction that reads first
and writes later can fail with SQLITE_BUSY_SNAPSHOT in WAL mode *without* waiting for the busy
timeout, so we take the write lock up front.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlite_utils

from ..config import db_path

BUSY_TIMEOUT_S = 5.0
MIGRATIONS_TABLE = "_migrations"

Migration = Callable[[sqlite_utils.Database], None]


def open_db(
    path: str | Path | None = None,
    *,
    migrations: Sequence[Migration] | None = None,
    busy_timeout: float = BUSY_TIMEOUT_S,
    check_abandoned: bool = True,
) -> sqlite_utils.Database:
    """Open (creating if needed) the run store at `path`, default `config.db_path()`.

    Applies pending migrations (`migrations` defaults to the package's list; tests pass a longer
    one) and then marks runs whose process has died as incomplete.
    """
    path = Path(path).expanduser() if path is not None else db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # The timeout given to connect() is SQLite's busy timeout; the PRAGMA below states it again
    # so that it is visible (and testable) on the connection.
    conn = sqlite3.connect(str(path), timeout=busy_timeout)
    db = sqlite_utils.Database(conn, execute_plugins=False)
    try:
        configure(db, busy_timeout)
        if migrations is None:
            from .migrations import MIGRATIONS

            migrations = MIGRATIONS
        migrate(db, migrations)
        if check_abandoned:
            from .abandoned import mark_abandoned_runs

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


@contextmanager
def write_transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """One short write transaction, committed on exit and rolled back on any exception.

    Nested use (inside another transaction) becomes a savepoint of the outer one.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.rollback()
        raise
    try:
        db.execute("COMMIT")
    except BaseException:
        db.rollback()
        raise


# --- migrations -------------------------------------------------------------------------


def applied_migrations(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    if not db[MIGRATIONS_TABLE].exists():
        return []
    return list(db.query(f"SELECT name, applied_at FROM {MIGRATIONS_TABLE} ORDER BY rowid"))


def migrate(db: sqlite_utils.Database, migrations: Sequence[Migration]) -> list[str]:
    """Apply, in order, each migration not yet recorded in `_migrations`; return their names.

    Each migration runs in its own IMMEDIATE transaction together with the row that records it,
    so a failing migration leaves neither its changes nor its record, and two processes opening
    a new database at once cannot both apply it (the second waits, then sees it recorded).
    """
    names = [m.__name__ for m in migrations]
    if len(set(names)) != len(names):
        raise ValueError(f"migration names must be unique: {names}")
    done = {row["name"] for row in applied_migrations(db)}
    applied: list[str] = []
    for migration in migrations:
        name = migration.__name__
        if name in done:
            continue
        with write_transaction(db):
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
                "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            # Another process may have applied it since we looked.
            if db.execute(f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE name = ?", [name]).fetchone():
                continue
            migration(db)
            db.execute(f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, ?)", [name, now_iso()])
        applied.append(name)
    return applied


# --- small shared helpers ---------------------------------------------------------------


def now_iso(moment: datetime | None = None) -> str:
    """UTC with milliseconds and a Z, e.g. 2026-11-05T09:30:01.250Z — sorts as text."""
    moment = moment or datetime.now(timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hours_ago_iso(hours: float, now: datetime | None = None) -> str:
    return now_iso((now or datetime.now(timezone.utc)) - timedelta(hours=hours))


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def to_json(value: Any) -> str | None:
    """JSON text for a TEXT column; None stays NULL. Pydantic models are dumped in JSON mode."""
    if value is None:
        return None
    return json.dumps(value, default=_json_default, ensure_ascii=False)


def _json_default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, (Path, datetime)):
        return str(value)
    raise TypeError(f"cannot store a {type(value).__name__} as JSON")


def from_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)
