"""The per-run event broker: every pipeline `Event` of the runs this process executes, kept for
replay and handed live to each SSE follower.

    broker.publish(event)                      # the runs' on_event (called in the loop's thread)
    async for item in broker.follow(run_id, after=last_event_id):
        ...                                    # (n, event dict), or None for a heartbeat tick

Each run gets a `RunChannel`: its events numbered 1, 2, … in the order they happened (the `id:`
of the SSE message, which a reconnecting client sends back as `Last-Event-ID`). A channel ends
with its `verdict` or `run_failed` event and is kept `retain_s` after that, so that a page that
opens the stream just after a quick run finished still replays it from the start; older runs are
answered from the database instead (runs_api.py).

Memory: a run's events are mostly `member_delta`s. Past `max_events` a channel stops keeping
deltas for replay (they still reach live followers); every other event is kept.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from ..pipeline.events import Event

FINAL_KINDS = ("verdict", "run_failed")
RETAIN_S = 600.0
MAX_CHANNELS = 2000
MAX_EVENTS = 20_000


@dataclass
class RunChannel:
    run_id: str
    meta: dict[str, Any] = field(default_factory=dict)  # question, council, tier… before the row exists
    max_events: int = MAX_EVENTS
    ids: list[int] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    last_id: int = 0  # ids continue from here; a restarted job's attempt starts at a new base
    done: bool = False
    final: str | None = None  # the kind of the final event, if the run sent one
    finished_at: float | None = None  # monotonic

    def __post_init__(self) -> None:
        self._changed = asyncio.Event()
        self._live: dict[int, list[tuple[int, dict[str, Any]]]] = {}  # follower → deltas not kept

    def publish(self, event: Event) -> int:
        if self.done:
            return self.last_id  # a late event after the verdict (e.g. a cleanup) is not news
        self.last_id += 1
        item = event.to_dict()
        if event.kind != "member_delta" or len(self.events) < self.max_events:
            self.ids.append(self.last_id)
            self.events.append(item)
        else:
            for pending in self._live.values():
                pending.append((self.last_id, item))
        if event.kind in FINAL_KINDS:
            self.final = event.kind
            self.finish()
        self._notify()
        return self.last_id

    def finish(self) -> None:
        self.done = True
        self.finished_at = time.monotonic()
        self._notify()

    def _notify(self) -> None:
        # Wake every follower waiting on the current Event, and give later waits a fresh one.
        self._changed.set()
        self._changed = asyncio.Event()

    async def follow(self, after: int = 0, heartbeat_s: float = 15.0) -> AsyncIterator[tuple[int, dict[str, Any]] | None]:
        """Events with id > `after`, then live ones until the final event; None every
        `heartbeat_s` of silence (the caller writes an SSE comment)."""
        key = id(object())
        self._live[key] = []
        try:
            pos = bisect.bisect_right(self.ids, after)
            sent = after
            while True:
                pending = self._live[key]
                while pos < len(self.ids) or pending:
                    # Kept events and live-only deltas, merged in id order.
                    if pending and (pos >= len(self.ids) or pending[0][0] < self.ids[pos]):
                        n, item = pending.pop(0)
                    else:
                        n, item = self.ids[pos], self.events[pos]
                        pos += 1
                    if n > sent:
                        sent = n
                        yield n, item
                if self.done:
                    return
                changed = self._changed
                try:
                    await asyncio.wait_for(changed.wait(), heartbeat_s)
                except TimeoutError:
                    yield None
        finally:
            self._live.pop(key, None)


class EventBroker:
    """All channels of this process, dropped `retain_s` after their run ended."""

    def __init__(self, retain_s: float = RETAIN_S, max_channels: int = MAX_CHANNELS, max_events: int = MAX_EVENTS) -> None:
        self.retain_s, self.max_channels, self.max_events = retain_s, max_channels, max_events
        self._channels: dict[str, RunChannel] = {}

    def open(self, run_id: str, *, base: int | None = None, **meta: Any) -> RunChannel:
        """The run's channel, created if needed. `base` starts a fresh channel whose ids
        continue from `base` (a job's new attempt: its events are all new, and a client that
        reconnects with an id of the interrupted attempt must get every one of them)."""
        channel = self._channels.get(run_id)
        if channel is None or base is not None:
            self._prune()
            channel = self._channels[run_id] = RunChannel(run_id, dict(meta), self.max_events, last_id=base or 0)
        elif meta:
            channel.meta.update(meta)
        return channel

    def get(self, run_id: str) -> RunChannel | None:
        self._prune()
        return self._channels.get(run_id)

    def publish(self, event: Event) -> None:
        if event.run_id:
            self.open(event.run_id).publish(event)

    def end(self, run_id: str) -> None:
        """End a channel whose run stopped without a final event (cancelled, crashed)."""
        channel = self._channels.get(run_id)
        if channel is not None and not channel.done:
            channel.finish()

    def close_all(self) -> None:
        for channel in self._channels.values():
            if not channel.done:
                channel.finish()

    def _prune(self) -> None:
        now = time.monotonic()
        expired = [k for k, c in self._channels.items() if c.finished_at is not None and now - c.finished_at > self.retain_s]
        for k in expired:
            del self._channels[k]
        if len(self._channels) >= self.max_channels:
            # Too many at once: drop the oldest finished ones first; live runs are never dropped.
            finished = sorted((c.finished_at, k) for k, c in self._channels.items() if c.finished_at is not None)
            for _, k in finished[: len(self._channels) - self.max_channels + 1]:
                del self._channels[k]


def sse_message(kind: str, n: int | str, data: Any) -> bytes:
    """One SSE message. `data` is one line of JSON (json.dumps escapes newlines)."""
    return f"event: {kind}\nid: {n}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n".encode()


HEARTBEAT_COMMENT = b": keep-alive\n\n"
