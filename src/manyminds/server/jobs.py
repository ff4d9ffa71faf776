"""Background deep runs: a queue of jobs in the run store, and the worker that runs them.

A job is a row in `jobs` (migration m005) keyed by the id of the run it will produce, so the
id a user gets back on submission is the id of the finished run:

    queued ──claim──▶ running ──▶ done | failed | cancelled
       ▲                 │
       └── released ─────┘   (worker stopped cleanly; or a crashed worker's job re-claimed)

- `submit_job` validates the request (no half-written rows for bad input) and inserts a queued
  job. It needs no server: `manyminds ask --deep` calls it directly.
- A `Worker` (inside `manyminds serve`, or `serve --worker-only`, or a test) claims jobs one
  at a time in a BEGIN IMMEDIATE transaction, so two workers never run the same job, runs
  `aask(strategy="deep", run_id=job id)`, folds the run's events into `progress`, and writes a
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

Nothing here imports FastAPI: the CLI uses this module without the server's dependencies.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import sqlite_utils

from ..config import Settings
from ..errors import InputError, ManymindsError
from ..pipeline.events import Event
from ..store.abandoned import pid_alive
from ..store.db import from_json, now_iso, parse_iso, to_json, write_transaction

log = logging.getLogger("manyminds.server.jobs")

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


# --- requests -----------------------------------------------------------------------------


def check_request(
    settings: Settings,
    question: Any,
    *,
    council: str | None = None,
    models: list[str] | None = None,
    strategy: str | None = None,
    params: dict[str, Any] | None = None,
    timeout: float | None = None,
    quorum: int | None = None,
    tier: str = "quick",
    registry: Any = None,
) -> dict[str, Any]:
    """The normalised request for a run, or the `InputError` / `ConfigError` that refuses it.

    Checked before anything is stored, so a refused request leaves no row: the question (as
    `run_council` would check it), the council or the model names, the strategy and its
    parameters, the quorum. Keys are never part of a request.
    """
    from ..models.registry import build_registry
    from ..pipeline.council import validate_question
    from ..pipeline.strategies import STRATEGIES, get_strategy

    question = validate_question(question)
    registry = registry or build_registry(settings)
    if models:
        models = [registry.canonical(m) for m in models]  # UnknownModel, with suggestions
        members = len(models)
        council_name = None
    else:
        council_name, council_settings = settings.council(council)
        members = len(council_settings.members)
    strategy = strategy or ("deep" if tier == "deep" else "council")
    if strategy not in STRATEGIES:
        raise InputError(f"Unknown strategy {strategy!r}. Valid strategies: {', '.join(sorted(STRATEGIES))}.")
    get_strategy(strategy, params)  # checks the parameters (InputError), runs nothing
    if quorum is not None and quorum > members:
        raise InputError(f"A quorum of {quorum} is larger than the council's {members} members.")
    return {
        "question": question,
        "council": council_name,
        "models": models or None,
        "strategy": strategy,
        "params": params or None,
        "timeout": timeout,
        "quorum": quorum,
        "tier": tier,
    }


# --- the queue (plain functions of a database) ------------------------------------------------


def submit_job(
    db: sqlite_utils.Database,
    question: Any,
    *,
    settings: Settings,
    council: str | None = None,
    models: list[str] | None = None,
    strategy: str | None = None,
    params: dict[str, Any] | None = None,
    timeout: float | None = None,
    quorum: int | None = None,
    run_id: str | None = None,
    registry: Any = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> dict[str, Any]:
    """Validate and queue a deep run; return the job. The run row appears when a worker starts it."""
    from ..ids import new_ulid

    request = check_request(
        settings, question, council=council, models=models, strategy=strategy, params=params,
        timeout=timeout, quorum=quorum, tier="deep", registry=registry,
    )
    run_id = run_id or new_ulid()
    stamp = now_iso()
    with write_transaction(db):
        db.execute(
            "INSERT INTO jobs (run_id, status, tier, request, progress, max_attempts, created_at, updated_at) "
            "VALUES (?, 'queued', 'deep', ?, ?, ?, ?, ?)",
            [run_id, to_json(request), to_json(_queued_progress()), max_attempts, stamp, stamp],
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
    from datetime import datetime, timezone

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
    from datetime import datetime, timedelta, timezone

    return now_iso(datetime.now(timezone.utc) - timedelta(seconds=seconds))


# --- progress -----------------------------------------------------------------------------------

# How many stages a strategy runs, for the progress estimate only (the deep tier's review and
# revision rounds may stop early, which makes the fraction jump forward, never back).
EXPECTED_STAGES = {"council": 3, "deep": 7}


class Progress:
    """Folds a run's events into `{stage, fraction, message, stages_done, members_done,
    members_total}`. The fraction is an estimate: stages done plus the share of members that
    have answered in the current stage, over the stages the strategy is expected to run."""

    def __init__(self, strategy: str | None, members_total: int = 0) -> None:
        self.expected = EXPECTED_STAGES.get(strategy or "", 3)
        self.stage: str | None = None
        self.stages_done: list[str] = []
        self.members_done = 0
        self.members_total = members_total
        self.fraction = 0.0
        self.dirty = True

    def handle(self, event: Event) -> None:
        kind = event.kind
        if kind == "run_started":
            council = (event.data or {}).get("council") or {}
            self.members_total = len(council.get("members") or []) or self.members_total
        elif kind == "stage_started":
            self.stage, self.members_done = event.stage, 0
        elif kind in ("member_done", "member_failed"):
            self.members_done += 1
        elif kind == "stage_done" and event.stage:
            self.stages_done.append(event.stage)
            self.members_done = 0
        else:
            return  # deltas and retries do not move the estimate; skip the write
        within = self.members_done / self.members_total if self.members_total and self.stage not in self.stages_done else 0.0
        expected = max(self.expected, len(self.stages_done) + 1)
        # Never backwards, and never 1.0 before the verdict is stored.
        self.fraction = max(self.fraction, min(0.99, (len(self.stages_done) + min(within, 1.0)) / expected))
        self.dirty = True

    def snapshot(self) -> dict[str, Any]:
        self.dirty = False
        if self.stage and self.stage not in self.stages_done and self.members_total:
            message = f"{self.stage}: {self.members_done}/{self.members_total} members done"
        elif self.stage:
            message = f"{self.stage} done"
        else:
            message = "starting"
        return {
            "stage": self.stage,
            "fraction": round(self.fraction, 3),
            "message": message,
            "stages_done": list(self.stages_done),
            "members_done": self.members_done,
            "members_total": self.members_total,
        }


@dataclass
class Worker:
    """Runs queued jobs in the current event loop: `await worker.run(stop_event)`.

    `publish` receives every pipeline event of the runs it executes (the server's broker, so
    SSE followers see deep runs live). `settings` None reads the settings file for each job, so
    a long-lived worker picks up edits. `concurrency` jobs may run at once.
    """

    db_path: str | Path | None = None
    settings: Settings | None = None
    concurrency: int = 1
    poll_s: float = POLL_S
    heartbeat_s: float = HEARTBEAT_S
    stale_after_s: float = STALE_AFTER_S
    publish: Callable[[Event], None] | None = None
    on_claim: Callable[[dict[str, Any]], None] | None = None  # called before each attempt starts
    identity: WorkerIdentity = field(default_factory=WorkerIdentity.new)

    def __post_init__(self) -> None:
        self._tasks: dict[str, asyncio.Task] = {}
        self._wake = asyncio.Event()
        self._db: sqlite_utils.Database | None = None

    @property
    def id(self) -> str:
        return self.identity.id

    def db(self) -> sqlite_utils.Database:
        if self._db is None:
            from ..store import open_db

            self._db = open_db(self.db_path)
        return self._db

    def wake(self) -> None:
        """A job was just queued in this process: look now rather than at the next poll."""
        self._wake.set()

    def running(self) -> list[str]:
        return [run_id for run_id, t in self._tasks.items() if not t.done()]

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Claim and run jobs until `stop` is set (or the task is cancelled); then put the jobs
        still running back in the queue, so that the next worker resumes them."""
        stop = stop or asyncio.Event()
        db = self.db()
        register_worker(db, self.identity)
        log.info("worker started", extra={"worker": self.id})
        last_beat = 0.0
        try:
            while not stop.is_set():
                self._wake.clear()  # before looking: a wake() during the claim is not lost
                try:
                    self._claim_available(db)
                    if time.monotonic() - last_beat >= WORKER_BEAT_S:
                        beat_worker(db, self.identity)
                        last_beat = time.monotonic()
                except sqlite3.Error as exc:  # locked past the busy timeout, disk full…: retry next poll
                    log.warning("worker could not reach the database", extra={"error": str(exc)})
                waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
                await asyncio.wait(waiters, timeout=self.poll_s, return_when=asyncio.FIRST_COMPLETED)
                for w in waiters:
                    w.cancel()
        finally:
            await self._stop_all()
            beat_worker(db, self.identity, stopped=True)
            log.info("worker stopped", extra={"worker": self.id})

    async def run_until_idle(self, timeout: float = 60.0) -> None:
        """Run jobs until none is queued or running here (tests, one-shot use)."""
        db = self.db()
        register_worker(db, self.identity)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self._claim_available(db)
                    if not self.running():
                        return
                    await asyncio.wait(list(self._tasks.values()), return_when=asyncio.FIRST_COMPLETED)
        finally:
            await self._stop_all()
            beat_worker(db, self.identity, stopped=True)

    def _claim_available(self, db: sqlite_utils.Database) -> None:
        self._tasks = {k: t for k, t in self._tasks.items() if not t.done()}
        while len(self._tasks) < self.concurrency:
            job = claim_job(db, self.identity, stale_after_s=self.stale_after_s)
            if job is None:
                return
            self._tasks[job["run_id"]] = asyncio.create_task(self._execute(job), name=f"job-{job['run_id']}")

    async def cancel(self, run_id: str, wait: float = 5.0) -> bool:
        """Cancel a job this worker is running now (the API's fast path; other processes'
        workers see `cancel_requested` instead). True if it was running here."""
        task = self._tasks.get(run_id)
        if task is None or task.done():
            return False
        cancel_job(self.db(), run_id)  # sets cancel_requested: _execute reads it as "the user"
        task.cancel()
        await asyncio.wait([task], timeout=wait)
        return True

    async def _stop_all(self) -> None:
        tasks = [t for t in self._tasks.values() if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _execute(self, job: dict[str, Any]) -> None:
        db, run_id = self.db(), job["run_id"]
        try:
            if self._resume_leftovers(db, job):
                return
        except sqlite3.Error as exc:
            finish_job(db, run_id, self.id, "failed", {"type": "StoreError", "message": f"cannot restart the run: {exc}"})
            return
        request = job["request"]
        progress = Progress(request.get("strategy"), len(request.get("models") or []))
        if self.on_claim is not None:
            self.on_claim(job)
        log.info("job started", extra={"run_id": run_id, "attempt": job["attempts"], "worker": self.id})

        def on_event(event: Event) -> None:
            progress.handle(event)
            if self.publish is not None:
                self.publish(event)

        run = asyncio.create_task(self._ask(request, run_id, on_event))
        cancelled_by_user = False
        try:
            while not run.done():
                await asyncio.wait([run], timeout=self.heartbeat_s)
                if run.done():
                    break
                try:
                    ours, cancel = heartbeat_job(db, run_id, self.id, progress.snapshot() if progress.dirty else None)
                except sqlite3.Error as exc:  # a missed beat; the run goes on (stale only after many)
                    log.warning("missed a job heartbeat", extra={"run_id": run_id, "error": str(exc)})
                    continue
                if not ours or cancel:
                    cancelled_by_user = cancel and ours
                    run.cancel()
                    await asyncio.gather(run, return_exceptions=True)
        except asyncio.CancelledError:
            # Either `Worker.cancel` (the user, via the API: cancel_requested is set) or the
            # worker stopping (the job goes back to the queue for the next worker).
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
            current = get_job(db, run_id)
            if current and current["cancel_requested"]:
                finish_job(db, run_id, self.id, "cancelled", CANCELLED_ERROR, progress.snapshot())
                self._announce(run_id, CANCELLED_ERROR)
            else:
                release_job(db, run_id, self.id, "worker stopped before the run finished; requeued")
            raise
        outcome = self._outcome(run, cancelled_by_user)
        for attempt in range(3):  # the run is stored; losing its job's outcome would rerun it
            try:
                finish_job(db, run_id, self.id, outcome[0], outcome[1], {**progress.snapshot(), **outcome[2]})
                break
            except sqlite3.Error as exc:
                log.warning("could not mark the job finished", extra={"run_id": run_id, "error": str(exc), "try": attempt + 1})
                await asyncio.sleep(1.0)
        if outcome[0] != "done":
            self._announce(run_id, outcome[1] or {})
        log.info("job finished", extra={"run_id": run_id, "status": outcome[0], "worker": self.id})

    def _announce(self, run_id: str, error: dict[str, Any]) -> None:
        """A final event for followers when the pipeline sent none (cancelled, crashed); a
        channel ignores it if the run already ended with its own."""
        if self.publish is not None:
            self.publish(Event("run_failed", run_id=run_id, data=error))

    @staticmethod
    def _outcome(run: asyncio.Task, cancelled_by_user: bool) -> tuple[str, dict | None, dict]:
        if run.cancelled():
            return ("cancelled", CANCELLED_ERROR, {"message": "cancelled"}) if cancelled_by_user else (
                "failed", {"type": "JobLost", "message": "another worker took the job over"}, {"message": "lost"})
        exc = run.exception()
        if exc is None:
            return "done", None, {"fraction": 1.0, "message": "done"}
        if isinstance(exc, ManymindsError):
            return "failed", exc.to_dict(), {"message": "failed"}
        log.error("job crashed", exc_info=exc)
        return "failed", {"type": type(exc).__name__, "message": str(exc)}, {"message": "failed"}

    async def _ask(self, request: dict[str, Any], run_id: str, on_event: Callable[[Event], None]) -> Any:
        from ..api import aask
        from ..config import load_settings

        return await aask(
            request["question"],
            council=request.get("council"),
            models=request.get("models"),
            settings=self.settings or load_settings(),
            db_path=self.db_path,
            on_event=on_event,
            timeout=request.get("timeout"),
            quorum=request.get("quorum"),
            strategy=request.get("strategy") or "deep",
            params=request.get("params"),
            run_id=run_id,
        )

    def _resume_leftovers(self, db: sqlite_utils.Database, job: dict[str, Any]) -> bool:
        """Deal with the run row an earlier attempt left. True if that settles the job."""
        run_id = job["run_id"]
        row = db.execute("SELECT status, error FROM runs WHERE id = ?", [run_id]).fetchone()
        if row is None:
            return False
        status, error = row[0], from_json(row[1])
        if status == "complete":
            finish_job(db, run_id, self.id, "done", None, {"stage": None, "fraction": 1.0, "message": "done"})
            return True
        if status == "failed":
            finish_job(db, run_id, self.id, "failed", error)
            return True
        # running / incomplete: an interrupted attempt. Delete it (answers and stages cascade)
        # so the new attempt can write the same id; remember what it had got to.
        stages = [r[0] for r in db.execute("SELECT stage FROM stages WHERE run_id = ? AND finished_at IS NOT NULL ORDER BY id", [run_id])]
        answers = db.execute("SELECT count(*) FROM member_answers WHERE run_id = ?", [run_id]).fetchone()[0]
        entry = {
            "attempt": job["attempts"] - 1,
            "worker": job.get("previous_worker"),
            "ended_at": now_iso(),
            "outcome": "interrupted (worker gone); run restarted",
            "run_status": status,
            "stages_done": stages,
            "answers_stored": answers,
        }
        with write_transaction(db):
            history = (from_json(db.execute("SELECT history FROM jobs WHERE run_id = ?", [run_id]).fetchone()[0]) or [])
            db.execute("UPDATE jobs SET history = ? WHERE run_id = ?", [to_json(history + [entry]), run_id])
            db.execute("DELETE FROM runs WHERE id = ? AND status != 'complete'", [run_id])
        log.info("restarting interrupted run", extra={"run_id": run_id, "previous": entry})
        return False


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
