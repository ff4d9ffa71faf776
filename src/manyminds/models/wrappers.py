"""Wrappers around any `Model`, composed once when a council is built, so that the rules for
calling a model live here and not at call sites: stages (fan-out, chair, claim extraction,
pair judging, grounding) just call `model.complete` / `model.stream`.

    Budgeted(Retrying(Limited(model, limiter, cap), retries))   what `Council.build` applies
    Cached(…, cache)                                    what the eval runner adds on top

- `Limited` holds one of the provider's slots (`ProviderLimiter`) for the length of one
  attempt, so a per-provider cap covers every call a run makes — members, chair, side calls —
  and no slot is held while a retry waits.
- `Retrying` retries retryable `ModelError`s (429, 5xx, dropped connections, a stream that
  ended without its final completion) with backoff (retry.py). A caller that wants to know
  about each attempt — the fan-out, which reports `member_retry` events and counts attempts —
  wraps its call in `observe(on_retry)`; the observer travels with the task (a context
  variable), so concurrent calls never see each other's.
- `Budgeted` checks every call against the running question's budget (budget.py: the tracker
  `run_council` sets in a context variable) before it is made, reserves its share and lowers
  its `max_tokens` to fit, cuts it at the deadline and charges what it used; without a budget
  it only forwards.
- `Cached` answers deterministic calls from a `CompletionCache` (the eval runner's, persisted
  per run), reporting the original call's usage so token counts stay as if uncached.

A wrapper forwards every attribute it does not define to the model it wraps, so a wrapped
`ScriptedModel` still shows its `calls`, and `unwrap` reaches the provider's own object.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator, Protocol

from .. import budget
from ..errors import ModelError
from .base import Chunk, Completion, Message, Model, ModelOptions, Usage
from .retry import ProviderLimiter, RetryHook, backoff_delay, call_with_retries

log = logging.getLogger(__name__)


class ModelWrapper(Model):
    """Delegates everything to `inner`; subclasses change `complete` and `stream`."""

    def __init__(self, inner: Model) -> None:
        super().__init__(inner.model_id, context_window=inner.context_window)
        self.inner = inner
        for attr in ("provider", "supports_json", "supports_stream", "needs_key", "key_env_var",
                     "input_price_per_mtok", "output_price_per_mtok"):  # fmt: skip
            setattr(self, attr, getattr(inner, attr))

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes this object lacks (a provider's own: url, calls, …).
        if name == "inner":  # not set yet: during unpickling or a failed __init__
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def name(self) -> str:
        return self.inner.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.inner!r}>"

    async def complete(self, messages: list[Message], options: ModelOptions | None = None) -> Completion:
        return await self.inner.complete(messages, options)

    async def stream(self, messages: list[Message], options: ModelOptions | None = None) -> AsyncIterator[Chunk]:
        async for chunk in self.inner.stream(messages, options):
            yield chunk

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def cost_usd(self, usage: Usage) -> float | None:
        return self.inner.cost_usd(usage)

    def availability(self) -> tuple[bool, str]:
        return self.inner.availability()

    async def aclose(self) -> None:
        await self.inner.aclose()


def unwrap(model: Model) -> Model:
    """The provider's model under any number of wrappers."""
    while isinstance(model, ModelWrapper):
        model = model.inner
    return model


# --- limited --------------------------------------------------------------------------------


class Limited(ModelWrapper):
    """At most `limit` calls at once against this model's provider, counted by `limiter`
    (shared by every model of a council, so the cap is per provider, not per model)."""

    def __init__(self, inner: Model, limiter: ProviderLimiter, limit: int) -> None:
        super().__init__(inner)
        self.limiter, self.limit = limiter, limit

    async def complete(self, messages: list[Message], options: ModelOptions | None = None) -> Completion:
        async with self.limiter.slot(self.provider, self.limit):
            return await self.inner.complete(messages, options)

    async def stream(self, messages: list[Message], options: ModelOptions | None = None) -> AsyncIterator[Chunk]:
        async with self.limiter.slot(self.provider, self.limit):
            async for chunk in self.inner.stream(messages, options):
                yield chunk


# --- retrying -------------------------------------------------------------------------------


@dataclass
class CallObserver:
    """What one observed call went through: how many attempts, and a hook for each retry."""

    on_retry: RetryHook | None = None
    attempts: int = 0


_observer: contextvars.ContextVar[CallObserver | None] = contextvars.ContextVar("manyminds_call_observer", default=None)


@contextmanager
def observe(on_retry: RetryHook | None = None) -> Iterator[CallObserver]:
    """Watch the model calls made inside the block (in this task): `with observe(hook) as obs:
    await model.complete(…)`; then `obs.attempts`. Nested blocks shadow outer ones."""
    observer = CallObserver(on_retry=on_retry)
    token = _observer.set(observer)
    try:
        yield observer
    finally:
        _observer.reset(token)


class Retrying(ModelWrapper):
    """Retries retryable errors up to `retries` times (so `retries + 1` attempts), waiting
    `backoff_delay` between them; the last error is raised with `attempts` set. A stream is
    retried from the start (observers are told, so front ends drop the text so far)."""

    def __init__(self, inner: Model, retries: int, *, base_delay: float = 0.5, max_delay: float = 20.0) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        super().__init__(inner)
        self.retries, self.base_delay, self.max_delay = retries, base_delay, max_delay

    async def _failed(self, attempt: int, err: ModelError) -> None:
        """For streams (call_with_retries covers `complete`): raise `err` if it is final;
        else report the retry and wait."""
        err.attempts = attempt  # type: ignore[attr-defined]
        if not err.retryable or attempt > self.retries:
            raise err
        delay = backoff_delay(attempt, err, base_delay=self.base_delay, max_delay=self.max_delay)
        log.debug("retrying %s after %s in %.2fs (attempt %d of %d)", self.name, type(err).__name__, delay, attempt, self.retries + 1)
        observer = _observer.get()
        if observer is not None and observer.on_retry is not None:
            observer.on_retry(attempt, err, delay)
        await asyncio.sleep(delay)

    def _count(self, attempt: int) -> None:
        observer = _observer.get()
        if observer is not None:
            observer.attempts = attempt

    async def complete(self, messages: list[Message], options: ModelOptions | None = None) -> Completion:
        attempt = 0

        async def once() -> Completion:
            nonlocal attempt
            attempt += 1
            self._count(attempt)
            return await self.inner.complete(messages, options)

        observer = _observer.get()
        return await call_with_retries(once, retries=self.retries, base_delay=self.base_delay, max_delay=self.max_delay,
                                       on_retry=observer.on_retry if observer is not None else None)

    async def stream(self, messages: list[Message], options: ModelOptions | None = None) -> AsyncIterator[Chunk]:
        attempt = 0
        while True:
            attempt += 1
            self._count(attempt)
            try:
                finished = False
                async for chunk in self.inner.stream(messages, options):
                    finished = finished or chunk.completion is not None
                    yield chunk
                if not finished:
                    raise ModelError("the stream ended without a final completion", provider=self.provider, model=self.name)
                return
            except ModelError as err:
                await self._failed(attempt, err)


# --- budgeted ------------------------------------------------------------------------------


class Budgeted(ModelWrapper):
    """Every call asks the current `BudgetTracker` (if any) first and charges it after; a
    stream is also counted as it arrives (and cut if it runs far past the `max_tokens` it was
    allowed). Outside the retries, so a retried call is checked once and charged for what it
    returned."""

    async def complete(self, messages: list[Message], options: ModelOptions | None = None) -> Completion:
        tracker = budget.current.get()
        if tracker is None:
            return await self.inner.complete(messages, options)
        options, held = await tracker.admit(self, messages, options)
        try:
            completion = await _until_deadline(tracker, self, self.inner.complete(messages, options))
        finally:
            tracker.release(held)
        tracker.charge(self, completion.usage)
        return completion

    async def stream(self, messages: list[Message], options: ModelOptions | None = None) -> AsyncIterator[Chunk]:
        tracker = budget.current.get()
        if tracker is None:
            async for chunk in self.inner.stream(messages, options):
                yield chunk
            return
        options, held = await tracker.admit(self, messages, options)
        chunks = self.inner.stream(messages, options).__aiter__()
        streamed = False
        try:
            while True:
                try:
                    # The deadline covers each wait for the next chunk, never our caller's work.
                    chunk = await _until_deadline(tracker, self, chunks.__anext__())
                except StopAsyncIteration:
                    return
                if chunk.completion is not None:
                    tracker.release(held)
                    tracker.charge(self, chunk.completion.usage)
                    streamed = False  # charged for what it reported: nothing left to estimate
                else:
                    streamed = streamed or bool(chunk.delta)
                    tracker.grow(held, chunk.delta)
                yield chunk
        finally:
            # Cut or failed after some output: the estimate of what was sent counts as spent.
            (tracker.spend_held if streamed else tracker.release)(held)
            await chunks.aclose()  # type: ignore[attr-defined]


async def _until_deadline(tracker: "budget.BudgetTracker", model: Model, awaitable: Awaitable[Any]) -> Any:
    left = tracker.seconds_left()
    if left is None:
        return await awaitable
    try:
        async with asyncio.timeout(max(left, 0.0)) as scope:
            return await awaitable
    except TimeoutError:
        if scope.expired():
            raise tracker.cut_at_deadline(model) from None
        raise


# --- cached ---------------------------------------------------------------------------------


class CompletionCache(Protocol):
    """Where `Cached` keeps completions. `fetch` returns the stored completion of an identical
    call, or awaits `call()` (and may store it); it decides which calls are cacheable."""

    async def fetch(
        self, model: str, messages: list[Message], options: ModelOptions | None, call: Callable[[], Awaitable[Completion]]
    ) -> Completion: ...


class Cached(ModelWrapper):
    """Answers through `cache`. Streams yield the whole completion as one chunk: a cached
    call has no deltas, and nobody watches an eval's."""

    def __init__(self, inner: Model, cache: CompletionCache) -> None:
        super().__init__(inner)
        self.cache = cache

    async def complete(self, messages: list[Message], options: ModelOptions | None = None) -> Completion:
        return await self.cache.fetch(self.inner.name, messages, options, lambda: self.inner.complete(messages, options))

    async def stream(self, messages: list[Message], options: ModelOptions | None = None) -> AsyncIterator[Chunk]:
        completion = await self.complete(messages, options)
        yield Chunk(delta=completion.text, completion=completion)


def wrap_for_council(model: Model, *, limiter: ProviderLimiter, limit: int, retries: int) -> Model:
    """The wrappers every council model gets, in the order that matters: a slot per attempt
    (inside), retries around it (so no slot is held during a backoff wait), the budget outside
    (a call is checked and charged once, whatever its retries)."""
    return Budgeted(Retrying(Limited(model, limiter, limit), retries))


__all__ = [
    "Budgeted",
    "Cached",
    "CallObserver",
    "CompletionCache",
    "Limited",
    "ModelWrapper",
    "Retrying",
    "observe",
    "unwrap",
    "wrap_for_council",
]
