"""The call cache of an eval run: deterministic calls made once and shared across strategies.

Cost fairness: at temperature 0 several strategies make identical calls (the council's fan-out
*is* each member's single answer). The `Cached` model wrapper (models/wrappers.py) shares them within a run (persisted, so a
resumed run does not pay again), but every strategy is charged the tokens as if it had made the
call itself; only wall time benefits, and the report says so.

`TALLY` counts, per (item, strategy) pair, the calls asked for and those the cache served; the
runner sets a fresh `Tally` around each pair and stores its `new_entries` with that pair.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..models.base import Completion, Message, Model, ModelOptions
from ..models.wrappers import Cached
from ..pipeline.council import Council


@dataclass
class Tally:
    """Per pair: model calls asked for, and how many a cache served."""

    calls: int = 0
    cached: int = 0
    borrowed: int = 0  # of `cached`: served from an earlier run's cache (`--cache-from`)
    new_entries: dict[str, dict[str, Any]] = field(default_factory=dict)


TALLY: contextvars.ContextVar[Tally | None] = contextvars.ContextVar("eval_tally", default=None)


class CallCache:
    """Completions of one eval run, by call. A call is cacheable when it is deterministic: at
    temperature 0, or with a seed (self-consistency samples carry one each)."""

    def __init__(self, stored: dict[str, dict[str, Any]] | None = None, borrowed: frozenset[str] = frozenset()) -> None:
        self.stored = dict(stored or {})
        # Keys taken from other runs' caches: served like this run's own, counted apart so the
        # report can say that those calls were made, and timed, by the earlier runs.
        self.borrowed = frozenset(borrowed)
        self._inflight: dict[str, asyncio.Task[Completion]] = {}

    def borrow(self, entries: dict[str, dict[str, Any]]) -> None:
        """Add an earlier run's deterministic calls (`eval run --cache-from`); this run's own
        entries win. Sound because a key is the whole call — model
        name, messages and options — and only deterministic calls are cached; it does assume a
        model name still means the same weights (true of the bundled local models)."""
        new = {k: v for k, v in entries.items() if k not in self.stored}
        self.stored.update(new)
        self.borrowed |= new.keys()

    async def fetch(
        self, model: str, messages: list[Message], options: ModelOptions | None, call: Callable[[], Awaitable[Completion]]
    ) -> Completion:
        """The `CompletionCache` protocol of `models.wrappers.Cached`: a cacheable call from the
        cache (or made once), any other call made and counted."""
        key = self.key(model, messages, options)
        if key is None:
            tally = TALLY.get()
            if tally is not None:
                tally.calls += 1
            return await call()
        return await self.get(key, call)

    @staticmethod
    def key(model: str, messages: list[Message], options: ModelOptions | None) -> str | None:
        opts = (options or ModelOptions()).model_dump(exclude_none=True)
        if opts.get("temperature") != 0 and opts.get("seed") is None:
            return None
        doc = {"model": model, "messages": [[m.role, m.content] for m in messages], "options": opts}
        return hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    async def get(self, key: str, call: Callable[[], Any]) -> Completion:
        tally = TALLY.get()
        if tally is not None:
            tally.calls += 1
        if key in self.stored:
            if tally is not None:
                tally.cached += 1
                tally.borrowed += key in self.borrowed
            return Completion.from_dict(self.stored[key])  # logprobs included, so cached calls keep their signals
        task = self._inflight.get(key)
        if task is None:
            # The first asker owns the call; asking twice at once (two strategies of one item)
            # waits for the same call. Shielded: one waiter's timeout must not cancel the others'.
            task = self._inflight[key] = asyncio.ensure_future(call())
            task.add_done_callback(lambda t, k=key: self._done(k, t, tally))
        elif tally is not None:
            tally.cached += 1
        return await asyncio.shield(task)

    def _done(self, key: str, task: asyncio.Task[Completion], tally: Tally | None) -> None:
        self._inflight.pop(key, None)
        if task.cancelled() or task.exception() is not None:
            return  # failures are not cached: a resumed run tries again
        entry = task.result().to_dict()
        self.stored[key] = entry
        if tally is not None:
            tally.new_entries[key] = entry  # stored with the item that paid for it


def with_cache(council: Council, cache: CallCache) -> Council:
    """A copy of `council` whose models (members and chair) go through `cache`: `Cached` outside
    the council's own wrappers, so a cached call takes no provider slot and is never retried.
    Cached calls report their original usage, so token counts stay as if uncached."""
    wrapped: dict[int, Cached] = {}

    def wrap(model: Model) -> Model:
        if id(model) not in wrapped:
            wrapped[id(model)] = Cached(model, cache)
        return wrapped[id(model)]

    members = [replace(m, model=wrap(m.model)) for m in council.members]
    return replace(council, members=members, chair_model=wrap(council.chair_model))
