"""Write transactions and the column encodings every store module shares.

The bottom of the store: it imports nothing else from `store/`, so the migration runner
(`migrator.py`), the abandoned-run check (`abandoned.py`), the recorder and the feature stores
(eval, evidence, jobs) all build on it without import cycles. Opening a database is `connect.py`.

Writes go through `write_transaction`, which starts with BEGIN IMMEDIATE: a deferred
transaction that reads first and writes later can fail with SQLITE_BUSY_SNAPSHOT in WAL mode
*without* waiting for the busy timeout, so we take the write lock up front.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite_utils


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


# --- column encodings -------------------------------------------------------------------


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
