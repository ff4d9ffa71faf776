"""The one event type every stage emits and every front end reads (live view, SSE, web page)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

EventKind = Literal[
    "run_started",
    "stage_started",
    "member_started",
    "member_delta",
    "member_retry",
    "member_done",
    "member_failed",
    "member_cut",
    "stage_done",
    "verdict",
    "run_failed",
]


@dataclass
class Event:
    kind: EventKind
    run_id: str = ""
    stage: str | None = None
    member: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "run_id": self.run_id,
            "stage": self.stage,
            "member": self.member,
            "data": self.data,
            "ts": self.ts,
        }


EventSink = Callable[[Event], None]


def ignore_event(event: Event) -> None:
    """The sink used when nobody listens."""


def fan_events(*sinks: EventSink) -> EventSink:
    """One sink that forwards every event to each of `sinks` in order."""

    def sink(event: Event) -> None:
        for s in sinks:
            s(event)

    return sink
