"""What one server process holds: its settings, the database path, the event broker, the quick
runs it is executing and (optionally) the deep-run worker.

Quick runs (`POST /api/runs` with tier "quick", and every chat completion) run as asyncio
tasks in the server's event loop, through `aask` with a run id fixed in advance, so the id can
be answered (202) before the run has written anything. At most `max_concurrent_runs` execute at
once; the others wait their turn (their status is "running" from the client's point of view).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from ..config import Settings
from ..pipeline.events import Event
from ..pipeline.verdict import Verdict
from .events import EventBroker
from ..jobs.queue import CANCELLED_ERROR
from ..jobs.worker import Worker
from ..request import AskRequest

log = logging.getLogger("manyminds.server")

DEFAULT_MAX_BODY = 1024 * 1024  # a question is at most 100,000 characters: 400 kB of UTF-8
SERVER_STOPPED = {"type": "RunIncomplete", "message": "the server stopped before the run finished"}
ATTEMPT_ID_STRIDE = 1_000_000  # event ids of a job's attempt n start at (n - 1) × this


@dataclass
class ServerConfig:
    token: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    max_body_bytes: int = DEFAULT_MAX_BODY
    sse_heartbeat_s: float = 15.0
    max_concurrent_runs: int = 16
    worker: bool = False  # run the deep-run worker inside the server
    worker_concurrency: int = 1
    worker_poll_s: float = 1.0
    worker_heartbeat_s: float = 2.0
    worker_stale_after_s: float = 30.0
    static_dir: Path | None = None


class ServerState:
    def __init__(self, settings: Settings, db_path: Path, config: ServerConfig) -> None:
        from ..models.registry import build_registry

        self.settings, self.db_path, self.config = settings, db_path, config
        self.registry = build_registry(settings)  # built once: validation runs on every request
        self.broker = EventBroker()
        self.started = int(time.time())
        self.quick: dict[str, asyncio.Task] = {}
        self._user_cancelled: set[str] = set()
        self._limit: asyncio.Semaphore | None = None
        self._local = threading.local()
        self.worker: Worker | None = None
        self._worker_task: asyncio.Task | None = None
        self._worker_stop: asyncio.Event | None = None

    # --- database ---------------------------------------------------------------------------

    def db(self) -> sqlite_utils.Database:
        """This thread's connection (sqlite3 connections stay in the thread that made them)."""
        db = getattr(self._local, "db", None)
        if db is None:
            from ..store import open_db

            db = self._local.db = open_db(self.db_path)
        return db

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._limit = asyncio.Semaphore(self.config.max_concurrent_runs)
        self.db()  # migrations (and the jobs table) before the first request
        if self.config.worker:
            c = self.config
            self.worker = Worker(
                db_path=self.db_path, settings=self.settings, concurrency=c.worker_concurrency, poll_s=c.worker_poll_s,
                heartbeat_s=c.worker_heartbeat_s, stale_after_s=c.worker_stale_after_s, publish=self.broker.publish,
                on_claim=self._job_claimed,
            )
            self._worker_stop = asyncio.Event()
            self._worker_task = asyncio.create_task(self.worker.run(self._worker_stop), name="deep-worker")
            self._worker_task.add_done_callback(_report_worker_exit)

    def _job_claimed(self, job: dict[str, Any]) -> None:
        # Each attempt gets a fresh channel whose ids start past any earlier attempt's.
        request = job["request"]
        self.broker.open(job["run_id"], base=(job["attempts"] - 1) * ATTEMPT_ID_STRIDE, question=request["question"],
                         council=request.get("council"), strategy=request.get("strategy"), tier="deep")

    async def stop(self) -> None:
        """Cancel quick runs (stored as incomplete) and put running jobs back in the queue."""
        if self._worker_task is not None and self._worker_stop is not None:
            self._worker_stop.set()
            await asyncio.gather(self._worker_task, return_exceptions=True)
        tasks = [t for t in self.quick.values() if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.broker.close_all()

    # --- quick runs -------------------------------------------------------------------------

    def start_quick(self, request: AskRequest, run_id: str) -> asyncio.Task:
        """Start a run in the background; its events go to the broker under `run_id`."""
        self.broker.open(run_id, question=request.question, council=request.council, strategy=request.strategy, tier="quick")
        task = asyncio.create_task(self._run(request, run_id), name=f"run-{run_id}")
        self.quick[run_id] = task
        task.add_done_callback(lambda t: self._finished(run_id, request, t))
        return task

    async def _run(self, request: AskRequest, run_id: str) -> Verdict:
        from ..api import run_request

        assert self._limit is not None, "ServerState.start() was not called"
        async with self._limit:
            return await run_request(
                request, settings=self.settings, db_path=self.db_path, on_event=self.broker.publish, run_id=run_id
            )

    def _finished(self, run_id: str, request: AskRequest, task: asyncio.Task) -> None:
        from ..errors import ManymindsError

        self.quick.pop(run_id, None)
        user_cancelled = run_id in self._user_cancelled
        self._user_cancelled.discard(run_id)
        # The pipeline sends `run_failed` for the errors it knows; for a cancelled or crashed
        # run, say it here (a channel that already has its final event ignores this one).
        if task.cancelled():
            error = CANCELLED_ERROR if user_cancelled else SERVER_STOPPED
            self._record_cancelled(run_id, request, error)
            self.broker.publish(Event("run_failed", run_id=run_id, data=error))
        elif task.exception() is not None:
            exc = task.exception()
            if isinstance(exc, ManymindsError):
                log.info("run failed", extra={"run_id": run_id, "error": exc.to_dict()})
                self.broker.publish(Event("run_failed", run_id=run_id, data=exc.to_dict()))
            else:
                log.error("run crashed", extra={"run_id": run_id}, exc_info=exc)
                self.broker.publish(Event("run_failed", run_id=run_id, data={"type": type(exc).__name__, "message": "internal error"}))
        self.broker.end(run_id)

    def _record_cancelled(self, run_id: str, request: AskRequest, error: dict[str, Any]) -> None:
        """A cancelled run is stored as incomplete with who stopped it. The pipeline has stored
        it as "interrupted" if it had begun; a run cancelled while waiting for its turn never
        wrote a row, but its id was handed out, so it gets one."""
        from ..store import RunRecorder
        from ..store.db import to_json, write_transaction

        db = self.db()
        try:
            if db.execute("SELECT 1 FROM runs WHERE id = ?", [run_id]).fetchone() is None:
                recorder = RunRecorder(db)
                recorder.start(request.question, request.council or "ad-hoc", members=[], settings_snapshot={},
                               strategy=request.strategy, run_id=run_id)
                recorder.fail(run_id, error, status="incomplete")
            else:
                with write_transaction(db):
                    db.execute("UPDATE runs SET error = ? WHERE id = ? AND status = 'incomplete'", [to_json(error), run_id])
        except sqlite3.Error as exc:  # the run's record is secondary to stopping it; say so and go on
            log.warning("could not record a cancelled run", extra={"run_id": run_id, "error": str(exc)})

    async def cancel_quick(self, run_id: str, wait: float = 5.0) -> bool:
        """Cancel a quick run executing (or waiting for its turn) in this server."""
        task = self.quick.get(run_id)
        if task is None or task.done():
            return False
        self._user_cancelled.add(run_id)
        task.cancel()
        await asyncio.wait([task], timeout=wait)
        return True


def _report_worker_exit(task: asyncio.Task) -> None:
    """The worker only returns when told to stop; anything else would silently strand the
    deep runs, so it is logged as an error (the HTTP API keeps serving)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("the deep-run worker stopped with an error; deep runs wait for a restart", exc_info=task.exception())
