"""A recorder that tapes a run on a Ray worker, for the driver to write into SQLite.

A worker never opens the database: `TapeRecorder` is the `Recorder` (pipeline/run.py) that
`run_request` gets there; it keeps the calls the run store acts on — start, member answers,
stage starts and ends, finish, fail — as plain data (streaming deltas are dropped, as
`RunRecorder` drops them). `replay` makes the same calls on the driver's `RunRecorder`, so a run
made on a worker is stored exactly as one made in-process, under the id the worker gave it.
"""

from __future__ import annotations

from typing import Any

from ..ids import new_ulid

KEPT_EVENTS = ("member_done", "member_failed", "stage_started", "stage_done")


class TapeRecorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.run_id: str | None = None

    def start(self, question: str, council: str, **kwargs: Any) -> str:
        kwargs["run_id"] = kwargs.get("run_id") or new_ulid()
        self.run_id = kwargs["run_id"]
        self.calls.append(("start", (question, council), kwargs))
        return self.run_id

    def sink(self, event: Any) -> None:
        if event.kind in KEPT_EVENTS:
            self.calls.append(("sink", (event,), {}))

    def finish(self, run_id: str, verdict: Any) -> None:
        self.calls.append(("finish", (run_id, verdict), {}))

    def fail(self, run_id: str, error: dict, status: str = "failed") -> None:
        self.calls.append(("fail", (run_id, error), {"status": status}))

    def mark_incomplete(self, run_id: str, reason: str) -> None:
        self.calls.append(("mark_incomplete", (run_id, reason), {}))


def replay(calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]], recorder: Any) -> None:
    """Make the taped calls on `recorder` (a `RunRecorder`), in order."""
    for method, args, kwargs in calls:
        getattr(recorder, method)(*args, **kwargs)
