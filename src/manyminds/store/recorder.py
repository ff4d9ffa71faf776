"""Writing a run as it happens.

    recorder = RunRecorder(db)
    run_id = recorder.start(question, council, members=[...], settings_snapshot={...})
    ... pipeline(emit=recorder.sink) ...         # member answers and stage timings land as they come
    recorder.finish(run_id, verdict)             # or recorder.fail(run_id, error)

Each call is its own short transaction, committed before it returns, so a process killed half way
leaves every member answer that had finished; `abandoned.mark_abandoned_runs` later turns such a
run from "running" into "incomplete".
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
from collections.abc import Iterable
from typing import Any

import sqlite_utils

from ..errors import InputError
from ..ids import is_ulid, new_ulid
from ..pipeline.events import Event
from ..pipeline.verdict import MemberAnswer, Verdict
from .db import now_iso, parse_iso, to_json, write_transaction

log = logging.getLogger(__name__)

# The stage name under which the pipeline's fan-out reports member answers; `finish` stores the
# verdict's members under it too, so the two writes meet in the same rows.
ANSWER_STAGE = "fan_out"
FAILURE_STATUSES = ("failed", "incomplete")


def _version() -> str | None:
    from ..version import __version__

    return __version__


def _seat(member: Any) -> Any:
    """A council seat as JSON-able data: names stay strings, settings objects become dicts."""
    if hasattr(member, "model_dump"):
        return member.model_dump(mode="json", exclude_none=True)
    return member


def error_dict(error: dict[str, Any] | BaseException | str) -> dict[str, Any]:
    if isinstance(error, dict):
        return error
    if isinstance(error, BaseException):
        to_dict = getattr(error, "to_dict", None)
        return to_dict() if callable(to_dict) else {"type": type(error).__name__, "message": str(error)}
    return {"type": "Error", "message": str(error)}


class RunRecorder:
    """Writes runs to the store. `sink` takes pipeline events; the other methods are explicit.

    Explicit methods raise on a database error. `sink` does not: a full disk must not cost the
    user the answer, so it logs the error and appends it to `errors` for the caller to report.
    """

    def __init__(self, db: sqlite_utils.Database, *, answer_stage: str = ANSWER_STAGE):
        self.db = db
        self.answer_stage = answer_stage
        self.run_id: str | None = None  # the last run started; the sink's default
        self.errors: list[str] = []

    # --- lifecycle ----------------------------------------------------------------------

    def start(
        self,
        question: str,
        council: str,
        members: Iterable[Any] | None = None,
        settings_snapshot: dict[str, Any] | None = None,
        *,
        strategy: str | None = None,
        run_id: str | None = None,
    ) -> str:
        """Insert a "running" run with this process's pid and host; return its id."""
        if not isinstance(question, str):
            raise InputError("Cannot record a run whose question is not text.")
        # An empty question is still recorded: the run that refuses it is stored as failed.
        if run_id is not None and not is_ulid(run_id):
            # Prefix lookup and time ordering rely on ids being ULIDs.
            raise ValueError(f"run_id must be a ULID, not {run_id!r}")
        run_id = run_id or new_ulid()
        stamp = now_iso()
        row = {
            "id": run_id,
            "created_at": stamp,
            "updated_at": stamp,
            "status": "running",
            "question": question,
            "council": council,
            "strategy": strategy,
            "seats": to_json([_seat(m) for m in members]) if members is not None else None,
            "settings": to_json(settings_snapshot),
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "version": _version(),
        }
        with write_transaction(self.db):
            self.db["runs"].insert(row)
        self.run_id = run_id
        return run_id

    def member_finished(
        self, run_id: str, answer: MemberAnswer | dict[str, Any], *, stage: str | None = None
    ) -> None:
        """Store (or replace) one member's answer and refresh the run's running usage totals."""
        answer = MemberAnswer.model_validate(answer)
        with write_transaction(self.db):
            self._touch(run_id)
            self._upsert_answer(run_id, stage or self.answer_stage, answer)
            self._refresh_totals(run_id)

    def stage_started(self, run_id: str, stage: str) -> None:
        with write_transaction(self.db):
            stamp = self._touch(run_id)
            self.db.execute(
                "INSERT INTO stages (run_id, stage, started_at) VALUES (?, ?, ?)", [run_id, stage, stamp]
            )

    def stage_finished(
        self, run_id: str, stage: str, seconds: float | None, data: dict[str, Any] | None = None
    ) -> None:
        """Close the latest open row of `stage` (a stage may run more than once, e.g. review
        rounds); without one — the start was never reported — add a closed row."""
        with write_transaction(self.db):
            stamp = self._touch(run_id)
            open_row = self.db.execute(
                "SELECT id FROM stages WHERE run_id = ? AND stage = ? AND finished_at IS NULL "
                "ORDER BY id DESC LIMIT 1",
                [run_id, stage],
            ).fetchone()
            if open_row:
                self.db.execute(
                    "UPDATE stages SET finished_at = ?, seconds = ?, data = ? WHERE id = ?",
                    [stamp, seconds, to_json(data), open_row[0]],
                )
            else:
                self.db.execute(
                    "INSERT INTO stages (run_id, stage, finished_at, seconds, data) VALUES (?, ?, ?, ?, ?)",
                    [run_id, stage, stamp, seconds, to_json(data)],
                )

    def finish(self, run_id: str, verdict: Verdict) -> None:
        """Store the verdict and mark the run complete. Idempotent."""
        if verdict.run_id and verdict.run_id != run_id:
            raise ValueError(f"verdict is for run {verdict.run_id!r}, not {run_id!r}")
        with write_transaction(self.db):
            stamp = self._touch(run_id)
            created_at = self.db.execute("SELECT created_at FROM runs WHERE id = ?", [run_id]).fetchone()[0]
            verdict = verdict.model_copy(update={"run_id": run_id, "created_at": verdict.created_at or created_at})
            for answer in verdict.members:
                self._upsert_answer(run_id, self.answer_stage, answer)
            self._add_missing_stages(run_id, verdict.timings, stamp)
            self.db.execute(
                """
                UPDATE runs SET status = 'complete', finished_at = ?, error = NULL,
                    answer = ?, short_answer = ?, confidence = ?, verdict = ?,
                    input_tokens = ?, output_tokens = ?, total_tokens = ?, cost_usd = ?, seconds = ?,
                    budget_limited = ?
                WHERE id = ?
                """,
                [
                    stamp,
                    verdict.answer,
                    verdict.short_answer,
                    verdict.confidence,
                    to_json(verdict.model_dump(mode="json")),
                    verdict.usage.input_tokens,
                    verdict.usage.output_tokens,
                    verdict.usage.total_tokens,
                    verdict.cost_usd,
                    verdict.timings.get("total", _elapsed(created_at, stamp)),
                    to_json(verdict.budget_limited) if verdict.budget_limited else None,
                    run_id,
                ],
            )

    def fail(
        self, run_id: str, error: dict[str, Any] | BaseException | str, status: str = "failed"
    ) -> None:
        """End the run without a verdict: `failed` (an error stopped it) or `incomplete`
        (it stopped early, e.g. quorum not met or interrupted). Stored answers are kept."""
        if status not in FAILURE_STATUSES:
            raise ValueError(f"status must be one of {FAILURE_STATUSES}, not {status!r}")
        err = error_dict(error)  # BudgetLimited's carries what the budget stopped (runs.budget_limited)
        with write_transaction(self.db):
            stamp = self._touch(run_id)
            created_at = self.db.execute("SELECT created_at FROM runs WHERE id = ?", [run_id]).fetchone()[0]
            self.db.execute(
                "UPDATE runs SET status = ?, error = ?, finished_at = ?, seconds = ?, budget_limited = ? WHERE id = ?",
                [status, to_json(err), stamp, _elapsed(created_at, stamp), to_json(err.get("budget_limited")), run_id],
            )

    def mark_incomplete(self, run_id: str, reason: str) -> None:
        self.fail(run_id, {"type": "RunIncomplete", "message": reason}, status="incomplete")

    # --- event sink ---------------------------------------------------------------------

    def sink(self, event: Event) -> None:
        """Forward pipeline events here. Stores member answers and stage timings; ignores
        streaming deltas and anything else. The end of a run is written by `finish` / `fail` /
        `mark_incomplete`, not by the `verdict` and `run_failed` events."""
        run_id = event.run_id or self.run_id
        if not run_id:
            return
        try:
            self._handle(run_id, event)
        except (sqlite3.Error, InputError) as exc:
            message = f"could not record {event.kind} for run {run_id}: {exc}"
            log.warning(message)
            self.errors.append(message)

    def _handle(self, run_id: str, event: Event) -> None:
        kind, data = event.kind, event.data or {}
        if kind in ("member_done", "member_failed", "member_cut"):
            answer = data.get("answer")
            if answer is not None:
                self.member_finished(run_id, answer, stage=event.stage)
        elif kind == "stage_started" and event.stage:
            self.stage_started(run_id, event.stage)
        elif kind == "stage_done" and event.stage:
            rest = {k: v for k, v in data.items() if k != "seconds"}
            self.stage_finished(run_id, event.stage, data.get("seconds"), rest or None)

    # --- helpers (called inside a write transaction) --------------------------------------

    def _touch(self, run_id: str) -> str:
        """Bump the run's `updated_at` (the staleness check reads it); fail if there is no run."""
        stamp = now_iso()
        cur = self.db.execute("UPDATE runs SET updated_at = ? WHERE id = ?", [stamp, run_id])
        if cur.rowcount == 0:
            raise InputError(f"No run with id {run_id!r}.")
        return stamp

    def _upsert_answer(self, run_id: str, stage: str, answer: MemberAnswer) -> None:
        self.db.execute(
            """
            INSERT INTO member_answers (
                run_id, stage, member, model, status, text, short_answer, short_answer_method,
                finish_reason, error, input_tokens, output_tokens, total_tokens, latency_s,
                cost_usd, attempts, signals, finished_at
            ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (run_id, stage, member) DO UPDATE SET
                model = excluded.model, status = excluded.status, text = excluded.text,
                short_answer = excluded.short_answer, short_answer_method = excluded.short_answer_method,
                finish_reason = excluded.finish_reason, error = excluded.error,
                input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,
                total_tokens = excluded.total_tokens, latency_s = excluded.latency_s,
                cost_usd = excluded.cost_usd, attempts = excluded.attempts, signals = excluded.signals
            """,
            [
                run_id,
                stage,
                answer.member,
                answer.model,
                answer.status,
                answer.text,
                answer.short_answer,
                answer.short_answer_method,
                answer.finish_reason,
                to_json(answer.error),
                answer.usage.input_tokens,
                answer.usage.output_tokens,
                answer.usage.total_tokens,
                answer.latency_s,
                answer.cost_usd,
                answer.attempts,
                to_json(answer.signals.model_dump(mode="json")),
                now_iso(),
            ],
        )

    def _refresh_totals(self, run_id: str) -> None:
        """Running totals over every stored answer, so a run that never finishes still shows
        what it spent. Cost is NULL as soon as an answer that used tokens has no price."""
        # Correlated subqueries rather than UPDATE ... FROM, which needs SQLite 3.33.
        self.db.execute(
            """
            UPDATE runs SET
                input_tokens  = (SELECT coalesce(sum(input_tokens), 0)  FROM member_answers WHERE run_id = :id),
                output_tokens = (SELECT coalesce(sum(output_tokens), 0) FROM member_answers WHERE run_id = :id),
                total_tokens  = (SELECT coalesce(sum(total_tokens), 0)  FROM member_answers WHERE run_id = :id),
                cost_usd      = (SELECT CASE WHEN sum(cost_usd IS NULL AND total_tokens > 0) > 0 THEN NULL
                                             ELSE coalesce(sum(cost_usd), 0.0) END
                                 FROM member_answers WHERE run_id = :id)
            WHERE id = :id
            """,
            {"id": run_id},
        )

    def _add_missing_stages(self, run_id: str, timings: dict[str, float], stamp: str) -> None:
        """Stage timings from the verdict for stages the events never reported."""
        known = {row[0] for row in self.db.execute("SELECT stage FROM stages WHERE run_id = ?", [run_id])}
        for stage, seconds in timings.items():
            if stage != "total" and stage not in known:
                self.db.execute(
                    "INSERT INTO stages (run_id, stage, finished_at, seconds) VALUES (?, ?, ?, ?)",
                    [run_id, stage, stamp, seconds],
                )


def _elapsed(start: str, end: str) -> float:
    return round((parse_iso(end) - parse_iso(start)).total_seconds(), 3)

