"""The worker: claims queued jobs (queue.py) one at a time, runs each stored request through
`run_request` with the job's run id, folds the run's events into progress (progress.py), writes
a heartbeat, and puts unfinished jobs back in the queue when it stops. It runs inside
`manyminds serve`, `serve --worker-only`, or a test."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import sqlite_utils

from ..config import Settings
from ..errors import ManymindsError
from ..pipeline.events import Event
from ..request import AskRequest
from ..store.db import from_json, now_iso, write_transaction, to_json
from .progress import Progress
from .queue import (
    CANCELLED_ERROR,
    HEARTBEAT_S,
    POLL_S,
    STALE_AFTER_S,
    WORKER_BEAT_S,
    WorkerIdentity,
    beat_worker,
    cancel_job,
    claim_job,
    finish_job,
    get_job,
    heartbeat_job,
    register_worker,
    release_job,
)

log = logging.getLogger("manyminds.jobs")


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
        request = AskRequest.model_validate(job["request"])
        if request.strategy is None:  # a job queued before requests were checked in full
            request = request.model_copy(update={"strategy": "deep"})
        progress = Progress(request.strategy, len(request.models or []), request.params)
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

    async def _ask(self, request: AskRequest, run_id: str, on_event: Callable[[Event], None]) -> Any:
        from ..api import run_request
        from ..config import load_settings

        return await run_request(
            request, settings=self.settings or load_settings(), db_path=self.db_path, on_event=on_event, run_id=run_id
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
