"""Reading runs back: lists, one run in full, and the JSON export.

Results are plain dicts: a run's ULID is `id`, usage is a nested `{"input_tokens",
"output_tokens", "total_tokens"}` dict as in a Verdict, JSON columns come back decoded, and member
answers look like `MemberAnswer.model_dump()` plus the `stage` and `finished_at` the store adds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import sqlite_utils

from ..errors import InputError
from ..ids import CROCKFORD
from .abandoned import mark_abandoned_runs
from .db import from_json
from .recorder import ANSWER_STAGE
from .runs_schema import RUN_STATUSES

# Columns a listing shows; the verdict, settings and seats are left to get_run.
_SUMMARY_COLUMNS = (
    "id, created_at, updated_at, finished_at, status, question, council, strategy, error, answer, "
    "short_answer, confidence, input_tokens, output_tokens, total_tokens, cost_usd, seconds, pid, hostname, budget_limited"
)
# Counted over the answering stage only: review rounds store rows for the same members.
_MEMBER_COUNTS = (
    "(SELECT count(*) FROM member_answers m WHERE m.run_id = runs.id AND m.stage = '{stage}' "
    "AND m.status = 'ok') AS members_ok, "
    "(SELECT count(*) FROM member_answers m WHERE m.run_id = runs.id AND m.stage = '{stage}') AS members_total"
).format(stage=ANSWER_STAGE)
_LOOKALIKES = str.maketrans({"I": "1", "L": "1", "O": "0"})
_ID_CHARS = re.compile(f"^[{CROCKFORD}]+$")


def list_runs(
    db: sqlite_utils.Database,
    limit: int | None = 20,
    status: str | Iterable[str] | None = None,
    search: str | None = None,
) -> list[dict[str, Any]]:
    """Newest runs first. `status` is one status or several; `search` matches words (prefixes)
    in the question or the answer. `limit=None` lists everything."""
    mark_abandoned_runs(db)
    where: list[str] = []
    params: list[Any] = []
    statuses = _statuses(status)
    if statuses:
        where.append(f"status IN ({', '.join('?' for _ in statuses)})")
        params += statuses
    if search is not None and search.strip():
        clause, value = _search_clause(db, search)
        where.append(clause)
        params.append(value)
    if limit is not None and limit < 0:
        raise InputError(f"limit must be zero or more, not {limit}.")
    sql = f"SELECT {_SUMMARY_COLUMNS}, {_MEMBER_COUNTS} FROM runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at DESC, id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [_run_out(row) for row in db.query(sql, params)]


def resolve_run_id(db: sqlite_utils.Database, run_id_or_prefix: str) -> str:
    """The full id of the one run whose id starts with `run_id_or_prefix` (case-insensitive)."""
    # Crockford base32 reads the look-alikes I, L as 1 and O as 0.
    prefix = (run_id_or_prefix or "").strip().upper().translate(_LOOKALIKES)
    if not prefix:
        raise InputError("Give a run id (or the first characters of one).")
    if not _ID_CHARS.match(prefix):
        raise InputError(f"No run with id {run_id_or_prefix!r}: run ids use only the characters 0-9 and A-Z.")
    # A range over the unique index instead of LIKE, which would scan. '~' sorts after every
    # id character, so [prefix, prefix + '~') holds exactly the ids starting with prefix.
    rows = db.execute(
        "SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 3", [prefix, prefix + "~"]
    ).fetchall()
    if not rows:
        raise InputError(f"No run with id {run_id_or_prefix!r}. `manyminds runs` lists the stored runs.")
    if len(rows) > 1 and rows[0][0] != prefix:
        shown = ", ".join(r[0] for r in rows[:2]) + (", …" if len(rows) > 2 else "")
        raise InputError(
            f"Run id prefix {run_id_or_prefix!r} is ambiguous: it matches {shown}. Type more characters."
        )
    return rows[0][0]


def get_run(db: sqlite_utils.Database, run_id_or_prefix: str) -> dict[str, Any]:
    """One run with everything stored about it: the run, its member answers and its stages."""
    mark_abandoned_runs(db)
    run_id = resolve_run_id(db, run_id_or_prefix)
    row = next(db.query(f"SELECT *, {_MEMBER_COUNTS} FROM runs WHERE id = ?", [run_id]))
    run = _run_out(row)
    run["members"] = [
        _member_out(m) for m in db.query("SELECT * FROM member_answers WHERE run_id = ? ORDER BY rowid", [run_id])
    ]
    run["stages"] = [
        _stage_out(s) for s in db.query("SELECT * FROM stages WHERE run_id = ? ORDER BY id", [run_id])
    ]
    return run


def export_run(db: sqlite_utils.Database, run_id_or_prefix: str) -> dict[str, Any]:
    """The run as one JSON document, with the same keys whatever its status: everything
    `get_run` returns plus `timings` (seconds per stage and "total"). `verdict` holds the full
    Verdict when the run is complete and is None otherwise; `status` and `error` then say why,
    and `members` / `stages` hold what was stored before the run stopped."""
    run = get_run(db, run_id_or_prefix)
    run["timings"] = _timings(run)
    return run


def export_all(db: sqlite_utils.Database, status: str | Iterable[str] | None = None) -> Iterator[dict[str, Any]]:
    """Every run's export, oldest first, one at a time (for JSON-lines dumps)."""
    statuses = _statuses(status)
    sql = "SELECT id FROM runs"
    if statuses:
        sql += f" WHERE status IN ({', '.join('?' for _ in statuses)})"
    ids = [row[0] for row in db.execute(sql + " ORDER BY created_at, id", statuses)]
    for run_id in ids:
        yield export_run(db, run_id)


# --- helpers ----------------------------------------------------------------------------


def _statuses(status: str | Iterable[str] | None) -> list[str]:
    if status is None:
        return []
    wanted = [status] if isinstance(status, str) else list(status)
    unknown = [s for s in wanted if s not in RUN_STATUSES]
    if unknown:
        raise InputError(f"Unknown run status {unknown[0]!r}; use one of: {', '.join(RUN_STATUSES)}.")
    return wanted


def _search_clause(db: sqlite_utils.Database, search: str) -> tuple[str, str]:
    """FTS5 when the index exists: every word must occur, as a word or a word prefix.
    Each word is quoted, so the user's text is never read as FTS query syntax; NUL characters
    are dropped (SQLite's FTS5 parser ends a string at one: "unterminated string")."""
    search = search.replace("\x00", " ")
    words = search.split()
    if db["runs_fts"].exists():
        query = " ".join('"' + w.replace('"', '""') + '"*' for w in words)
        return "seq IN (SELECT rowid FROM runs_fts WHERE runs_fts MATCH ?)", query
    escaped = search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return "(question LIKE ? ESCAPE '\\')", f"%{escaped}%"


def _usage(row: dict[str, Any]) -> dict[str, int]:
    return {k: row.pop(k) or 0 for k in ("input_tokens", "output_tokens", "total_tokens")}


def _run_out(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    row.pop("seq", None)
    out: dict[str, Any] = {"id": row.pop("id")}
    usage = _usage(row)
    for key, value in row.items():
        out[key] = from_json(value) if key in ("error", "verdict", "settings", "seats", "budget_limited") else value
    out["usage"] = usage
    return out


def _member_out(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    row.pop("run_id")
    usage = _usage(row)
    row["error"] = from_json(row["error"])
    # None for answers stored before the signals column (m006) existed.
    row["signals"] = from_json(row.get("signals"))
    row["usage"] = usage
    row["short_answer_method"] = row["short_answer_method"] or "none"
    return row


def _stage_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "stage": row["stage"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "seconds": row["seconds"],
        "data": from_json(row["data"]),
    }


def _timings(run: dict[str, Any]) -> dict[str, float]:
    timings: dict[str, float] = {}
    for stage in run["stages"]:
        if stage["seconds"] is not None:
            timings[stage["stage"]] = timings.get(stage["stage"], 0.0) + stage["seconds"]
    if run["seconds"] is not None:
        timings["total"] = run["seconds"]
    return timings
