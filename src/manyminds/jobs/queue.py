"""The job queue: background (deep) runs as rows of the run store, and the plain functions of a
database that submit, claim, beat, finish, release and cancel them (worker.py runs them).

A job is a row in `jobs` (migration m005_jobs, jobs/schema.py) keyed by the id of the run it will produce, so the
id a user gets back on submission is the id of the finished run:

    queued ──claim──▶ running ──▶ done | failed | cancelled
       ▲                 │
       └── released ─────┘   (worker stopped cleanly; or a crashed worker's job re-claimed)

- `submit_job` checks the `AskRequest` (no half-written rows for bad input) and inserts a queued
  job holding its `model_dump()`. It needs no server: `manyminds ask --deep` calls it directly.
- A `Worker` (inside `manyminds serve`, or `serve --worker-only`, or a test) claims jobs one
  at a time in a BEGIN IMMEDIATE transaction, so two workers never run the same job, runs
  the stored request with `run_request(…, run_id=job id)`, folds the run's events into `progress`, and writes a
  heartbeat every few seconds. A running job whose worker is gone — a dead pid on this host,
  or no heartbeat for `stale_after_s` — is claimed again by the next worker.
- Restarts: a re-claimed job's interrupted attempt left a run row (`running`, or `incomplete`
  once `mark_abandoned_runs` saw its dead pid). That row and its member answers/stages are
  deleted before the new attempt starts, because the run id is fixed: the id the user holds
  must end up naming one complete run, not a half-run plus a duplicate. What the interrupted
  attempt had done (status, stages, answers stored) is kept in the job's `history`. If the
  row is already `complete` (the process died between storing the verdict and marking the
  job) the job is simply marked done; if `failed`, the job takes the run's error.
- Cancel: a queued job becomes `cancelled` at once; a running one gets `cancel_requested`,
  which its worker (in whatever process) sees on its next tick and cancels the run (stored as
  incomplete, with the error "cancelled").

Nothing in jobs/ imports FastAPI: the CLI uses it without the server's dependencies.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlite_utils

from ..config import Settings
from ..errors import InputError, ManymindsError
from ..request import AskRequest
from ..store.abandoned import pid_alive
from ..store.db import from_json, now_iso, parse_iso, to_json, write_transaction

FINISHED = ("done", "failed", "cancelled")
HEARTBEAT_S = 2.0  # a running job's worker writes its heartbeat (and progress) this often
STALE_AFTER_S = 30.0  # no heartbeat for this long: the worker is presumed gone
POLL_S = 1.0  # an idle worker looks for queued jobs this often (or when woken)
MAX_ATTEMPTS = 3  # a job that keeps killing its worker is failed after this many tries
WORKER_BEAT_S = 5.0  # a worker (busy or idle) says it is alive this often (`ask --deep` reads it)
CANCELLED_ERROR = {"type": "Cancelled", "message": "cancelled by the user"}


class JobFinished(ManymindsError):
    """The job (or run) has already finished: nothing to cancel."""

    exit_code = 2


# --- the queue -------------------------------------------------------------------------------


def submit_job(
    db: sqlite_utils.Database,
    request: AskRequest,
    *,
    settings: Settings,
    run_id: str | None = None,
    registry: Any = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> dict[str, Any]:
    """Check and queue a deep run; return the job. The run row appears when a worker starts it."""
    from ..ids import new_ulid

    checked = request.model_copy(update={"tier": "deep"}).check(settings, registry)
    run_id = run_id or new_ulid()
    stamp = now_iso()
    with write_transaction(db):
        db.execute(
            "INSERT INTO jobs (run_id, status, tier, request, progress, max_attempts, created_at, updated_at) "
            "VALUES (?, 'queued', 'deep', ?, ?, ?, ?, ?)",
            [run_id, to_json(checked.model_dump()), to_json(_queued_progress()), max_attempts, stamp, stamp],
        )
    return get_job(db, run_id)  # type: ignore[return-value]


def get_job(db: sqlite_utils.Database, run_id: str) -> dict[str, Any] | None:
    row = db.execute("SELECT * FROM jobs WHERE run_id = ?", [run_id]).fetchone()
    if row is None:
        return None
    columns = [d[0] for d in db.execute("SELECT * FROM jobs LIMIT 0").description]
    return job_out(dict(zip(columns, row)))


def find_job(db: sqlite_utils.Database, id_or_prefix: str) -> dict[str, Any] | None:
    """The one job whose run id starts with `id_or_prefix` (None if none or ambiguous)."""
    prefix = (id_or_prefix or "").strip().upper()
    if not prefix:
        return None
    rows = db.execute(
        "SELECT run_id FROM jobs WHERE run_id >= ? AND run_id < ? ORDER BY run_id LIMIT 2", [prefix, prefix + "~"]
    ).fetchall()
    if len(rows) == 1 or (rows and rows[0][0] == prefix):
        return get_job(db, rows[0][0])
    return None


def list_jobs(
    db: sqlite_utils.Database, *, status: str | tuple[str, ...] | None = None, without_run: bool = False,
    search: str | None = None, limit: int = 100,
) -> list[dict[str, Any]]:
    """Jobs, newest first. `without_run`: only those whose run row does not exist yet (queued)."""
    where, params = [], []
    statuses = (status,) if isinstance(status, str) else status
    if statuses:
        where.append(f"status IN ({', '.join('?' for _ in statuses)})")
        params += list(statuses)
    if without_run:
        where.append("run_id NOT IN (SELECT id FROM runs)")
    if search and search.strip():
        escaped = search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("json_extract(request, '$.question') LIKE ? ESCAPE '\\'")
        params.append(f"%{escaped}%")
    sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY created_at DESC, run_id DESC LIMIT ?"
    return [job_out(dict(r)) for r in db.query(sql, [*params, limit])]


def job_statuses(db: sqlite_utils.Database, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """{run id: {status, progress}} for those of `run_ids` that are jobs (for run listings)."""
    if not run_ids:
        return {}
    marks = ", ".join("?" for _ in run_ids)
    rows = db.execute(f"SELECT run_id, status, progress FROM jobs WHERE run_id IN ({marks})", run_ids)
    return {r[0]: {"status": r[1], "progress": from_json(r[2])} for r in rows}


def job_out(row: dict[str, Any]) -> dict[str, Any]:
    """A job row as the API and the CLI show it."""
    worker = None
    if row.get("worker_id"):
        worker = {
            "id": row["worker_id"],
            "pid": row["worker_pid"],
            "host": row["worker_host"],
            "heartbeat_at": row["heartbeat_at"],
            "alive": row["status"] == "running" and not _worker_gone(row, STALE_AFTER_S),
        }
    return {
        "run_id": row["run_id"],
        "status": row["status"],
        "tier": row["tier"],
        "progress": from_json(row["progress"]),
        "attempts": row["attempts"],
        "max_attempts": row["max_attempts"],
        "cancel_requested": bool(row["cancel_requested"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "error": from_json(row["error"]),
        "worker": worker,
        "history": from_json(row["history"]) or [],
        "request": from_json(row["request"]),
    }


def cancel_job(db: sqlite_utils.Database, run_id: str) -> dict[str, Any]:
    """Cancel a queued job at once; ask a running one's worker to stop it. Raises `JobFinished`."""
    stamp = now_iso()
    with write_transaction(db):
        row = db.execute("SELECT status FROM jobs WHERE run_id = ?", [run_id]).fetchone()
        if row is None:
            raise InputError(f"No job with id {run_id!r}.")
        if row[0] in FINISHED:
            raise JobFinished(f"Job {run_id} has already finished ({row[0]}).")
        if row[0] == "queued":
            db.execute(
                "UPDATE jobs SET status = 'cancelled', cancel_requested = 1, finished_at = ?, updated_at = ?, "
                "error = ?, progress = ? WHERE run_id = ?",
                [stamp, stamp, to_json(CANCELLED_ERROR), to_json({"stage": None, "fraction": 0.0, "message": "cancelled"}), run_id],
            )
        else:
            db.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE run_id = ?", [stamp, run_id])
    return get_job(db, run_id)  # type: ignore[return-value]


def claim_job(db: sqlite_utils.Database, worker: "WorkerIdentity", *, stale_after_s: float = STALE_AFTER_S) -> dict[str, Any] | None:
    """Take the oldest queued job, or a running one whose worker is gone; None if there is none.

    One IMMEDIATE transaction: the write lock is held from the read to the update, so two
    workers (threads or processes) can never claim the same job. (A single UPDATE … WHERE
    could not say "its worker's pid is dead", which is how a restart finds its jobs at once
    instead of waiting for the heartbeat to go stale.)
    """
    stamp = now_iso()
    with write_transaction(db):
        rows = [dict(r) for r in db.query(
            "SELECT * FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_at, run_id"
        )]
        for row in rows:
            if row["status"] == "running" and (row["worker_id"] == worker.id or not _worker_gone(row, stale_after_s)):
                continue
            if row["cancel_requested"]:
                # Its worker died after the user asked to cancel it: nothing left to stop.
                _set_finished(db, row["run_id"], "cancelled", CANCELLED_ERROR, stamp)
                continue
            if row["attempts"] >= row["max_attempts"]:
                error = {"type": "JobAbandoned",
                         "message": f"gave up after {row['attempts']} attempts; each ended with its worker gone"}
                _set_finished(db, row["run_id"], "failed", error, stamp)
                continue
            db.execute(
                """UPDATE jobs SET status = 'running', attempts = attempts + 1, worker_id = ?, worker_pid = ?,
                   worker_host = ?, heartbeat_at = ?, updated_at = ?, started_at = coalesce(started_at, ?)
                   WHERE run_id = ?""",
                [worker.id, worker.pid, worker.host, stamp, stamp, stamp, row["run_id"]],
            )
            job = get_job(db, row["run_id"])
            assert job is not None
            job["previous_worker"] = row["worker_id"] if row["status"] == "running" else None
            return job
    return None


def heartbeat_job(db: sqlite_utils.Database, run_id: str, worker_id: str, progress: dict[str, Any] | None = None) -> tuple[bool, bool]:
    """Write the heartbeat (and progress, if given). Returns (still ours, cancel requested)."""
    stamp = now_iso()
    with write_transaction(db):
        if progress is not None:
            cur = db.execute(
                "UPDATE jobs SET heartbeat_at = ?, updated_at = ?, progress = ? WHERE run_id = ? AND worker_id = ? AND status = 'running'",
                [stamp, stamp, to_json(progress), run_id, worker_id],
            )
        else:
            cur = db.execute(
                "UPDATE jobs SET heartbeat_at = ? WHERE run_id = ? AND worker_id = ? AND status = 'running'",
                [stamp, run_id, worker_id],
            )
        row = db.execute("SELECT cancel_requested FROM jobs WHERE run_id = ?", [run_id]).fetchone()
    return cur.rowcount == 1, bool(row and row[0])


def finish_job(
    db: sqlite_utils.Database, run_id: str, worker_id: str, status: str,
    error: dict[str, Any] | None = None, progress: dict[str, Any] | None = None,
) -> bool:
    """End a job this worker holds. False if another worker has taken it over meanwhile."""
    stamp = now_iso()
    with write_transaction(db):
        held = db.execute(
            "SELECT 1 FROM jobs WHERE run_id = ? AND worker_id = ? AND status = 'running'", [run_id, worker_id]
        ).fetchone()
        if not held:
            return False
        _set_finished(db, run_id, status, error, stamp, progress)
        if status == "cancelled":
            # The pipeline stored the run as "incomplete: interrupted"; say who interrupted it.
            db.execute("UPDATE runs SET error = ? WHERE id = ? AND status = 'incomplete'", [to_json(CANCELLED_ERROR), run_id])
    return True


def release_job(db: sqlite_utils.Database, run_id: str, worker_id: str, reason: str) -> None:
    """Put a job this worker holds back in the queue (the worker is stopping); the attempt does
    not count against `max_attempts`, it ended cleanly."""
    stamp = now_iso()
    with write_transaction(db):
        row = db.execute(
            "SELECT history, attempts FROM jobs WHERE run_id = ? AND worker_id = ? AND status = 'running'", [run_id, worker_id]
        ).fetchone()
        if not row:
            return
        history = (from_json(row[0]) or []) + [{"attempt": row[1], "worker": worker_id, "ended_at": stamp, "outcome": reason}]
        db.execute(
            "UPDATE jobs SET status = 'queued', attempts = attempts - 1, worker_id = NULL, worker_pid = NULL, "
            "worker_host = NULL, heartbeat_at = NULL, updated_at = ?, history = ?, progress = ? WHERE run_id = ?",
            [stamp, to_json(history), to_json(_queued_progress(reason)), run_id],
        )


def _set_finished(db, run_id, status, error, stamp, progress=None) -> None:  # noqa: ANN001
    if progress is None:
        progress = {"stage": None, "fraction": 1.0 if status == "done" else None, "message": status}
    db.execute(
        "UPDATE jobs SET status = ?, error = ?, finished_at = ?, updated_at = ?, progress = ? WHERE run_id = ?",
        [status, to_json(error), stamp, stamp, to_json(progress), run_id],
    )


def _queued_progress(message: str = "waiting for a worker") -> dict[str, Any]:
    return {"stage": None, "fraction": 0.0, "message": message}


def _worker_gone(row: dict[str, Any], stale_after_s: float) -> bool:
    """A running job's worker is gone if its pid is dead on this host, or it has been silent."""
    if row.get("worker_host") == socket.gethostname() and not pid_alive(row.get("worker_pid")):
        return True
    beat = row.get("heartbeat_at")
    if not beat:
        return True
    return (datetime.now(timezone.utc) - parse_iso(beat)).total_seconds() > stale_after_s


# --- workers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerIdentity:
    id: str
    pid: int
    host: str

    @classmethod
    def new(cls) -> "WorkerIdentity":
        host, pid = socket.gethostname(), os.getpid()
        return cls(f"{host}:{pid}:{secrets.token_hex(3)}", pid, host)


def register_worker(db: sqlite_utils.Database, worker: WorkerIdentity) -> None:
    stamp = now_iso()
    with write_transaction(db):
        # Forget workers that stopped long ago: the table only answers "is one running now?".
        db.execute("DELETE FROM workers WHERE stopped_at IS NOT NULL AND stopped_at < ?", [_ago(86400)])
        db.execute(
            "INSERT OR REPLACE INTO workers (id, pid, hostname, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)",
            [worker.id, worker.pid, worker.host, stamp, stamp],
        )


def beat_worker(db: sqlite_utils.Database, worker: WorkerIdentity, *, stopped: bool = False) -> None:
    stamp = now_iso()
    with write_transaction(db):
        db.execute(
            "UPDATE workers SET heartbeat_at = ?, stopped_at = ? WHERE id = ?",
            [stamp, stamp if stopped else None, worker.id],
        )


def live_workers(db: sqlite_utils.Database, *, within_s: float = 15.0) -> list[dict[str, Any]]:
    """Workers that have announced themselves recently and (on this host) are alive."""
    host = socket.gethostname()
    rows = db.query(
        "SELECT id, pid, hostname, started_at, heartbeat_at FROM workers WHERE stopped_at IS NULL AND heartbeat_at >= ?",
        [_ago(within_s)],
    )
    return [dict(r) for r in rows if r["hostname"] != host or pid_alive(r["pid"])]


def _ago(seconds: float) -> str:
    return now_iso(datetime.now(timezone.utc) - timedelta(seconds=seconds))


# --- waiting (manyminds runs wait) ----------------------------------------------------------------

# Final state → exit code of `manyminds runs wait` (0 done, 3 failed like `ask`, 1 otherwise).
WAIT_EXIT = {"done": 0, "failed": 3, "cancelled": 1, "incomplete": 1}


def run_state(db: sqlite_utils.Database, run_id: str) -> dict[str, Any]:
    """Where a run stands: `final` is done / failed / cancelled / incomplete, or None while it
    is queued or running. A job's status wins over its run row's (a row marked incomplete by a
    dead worker is about to be run again)."""
    job = get_job(db, run_id)
    row = db.execute("SELECT status FROM runs WHERE id = ?", [run_id]).fetchone()
    run_status = row[0] if row else None
    if job is not None:
        final = job["status"] if job["status"] in FINISHED else None
        status = job["status"]
    else:
        final = {"complete": "done", "failed": "failed", "incomplete": "incomplete"}.get(run_status or "")
        status = run_status or "unknown"
    worker_gone = bool(job and job["status"] == "running" and job["worker"] and not job["worker"]["alive"])
    return {"id": run_id, "status": status, "final": final, "job": job, "run_status": run_status, "worker_gone": worker_gone}
