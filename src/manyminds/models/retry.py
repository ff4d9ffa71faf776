"""Retries and per-provider concurrency caps for model calls.

The SDK clients are built with `max_retries=0`: retrying is done here, once, so that every
provider gets the same policy, the events can report each retry, and a `Retry-After` from a
rate limit is honoured the same way everywhere.
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from contextlib import asynccontextmanager
from typing import AsyncIterator, Awaitable, Callable, TypeVar

from ..errors import ModelError, RateLimited

log = logging.getLogger(__name__)

T = TypeVar("T")

RetryHook = Callable[[int, ModelError, float], None]


def backoff_delay(
    attempt: int,
    err: ModelError | None = None,
    *,
    base_delay: float = 0.5,
    max_delay: float = 20.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based).

    Exponential with jitter: a random point in the upper half of `base * 2**(attempt-1)`, so
    that many members hitting the same limit do not come back in lock-step. A rate limit's
    `retry_after` is a floor (the server said when it will accept us again), capped by
    `max_delay` so a hostile or confused header cannot park a run for an hour.
    """
    rng = rng or random
    ceiling = min(max_delay, base_delay * (2 ** max(0, attempt - 1)))
    delay = ceiling * (0.5 + rng.random() / 2)
    if isinstance(err, RateLimited) and err.retry_after is not None:
        delay = max(delay, min(float(err.retry_after), max_delay))
    return max(0.0, min(delay, max_delay))


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    *,
    retries: int,
    base_delay: float = 0.5,
    max_delay: float = 20.0,
    on_retry: RetryHook | None = None,
) -> T:
    """Await `fn()` (a zero-argument coroutine factory), retrying retryable `ModelError`s.

    At most `retries` retries, so `retries + 1` calls in all. `on_retry(attempt, err, delay)`
    is called before each wait, with the number of the attempt that just failed (1-based).
    A non-retryable error, or the last retryable one, is re-raised with `err.attempts` set to
    the number of calls made. Anything that is not a `ModelError` (a bug, a cancellation)
    passes straight through.
    """
    if retries < 0:
        raise ValueError("retries must be >= 0")
    attempt = 0
    while True:
        attempt += 1
        try:
            return await fn()
        except ModelError as err:
            err.attempts = attempt  # type: ignore[attr-defined]
            if not err.retryable or attempt > retries:
                raise
            delay = backoff_delay(attempt, err, base_delay=base_delay, max_delay=max_delay)
            log.debug("retrying after %s in %.2fs (attempt %d of %d)", type(err).__name__, delay, attempt, retries + 1)
            if on_retry is not None:
                on_retry(attempt, err, delay)
            await asyncio.sleep(delay)


class ProviderLimiter:
    """Caps how many calls run at once against each provider.

    `async with limiter.slot("openai", 8): ...` waits for one of the provider's 8 slots.
    Semaphores belong to the event loop that first uses them, so they are kept per loop: the
    same limiter can serve `asyncio.run` after `asyncio.run` (the sync API does that). Within
    one loop, the first limit given for a provider is the one that holds.
    """

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = (
            weakref.WeakKeyDictionary()
        )
        self._limits: dict[str, int] = {}

    def _semaphore(self, provider: str, limit: int) -> asyncio.Semaphore:
        if limit < 1:
            raise ValueError(f"concurrency limit for {provider!r} must be >= 1, got {limit}")
        loop = asyncio.get_running_loop()
        sems = self._by_loop.setdefault(loop, {})
        sem = sems.get(provider)
        if sem is None:
            sem = sems[provider] = asyncio.Semaphore(limit)
            self._limits[provider] = limit
        return sem

    def limit(self, provider: str) -> int | None:
        """The limit in force for `provider`, once it has been used."""
        return self._limits.get(provider)

    @asynccontextmanager
    async def slot(self, provider: str, limit: int) -> AsyncIterator[None]:
        sem = self._semaphore(provider, limit)
        async with sem:
            yield


__all__ = ["ProviderLimiter", "RetryHook", "backoff_delay", "call_with_retries"]
