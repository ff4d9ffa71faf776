"""call_with_retries and ProviderLimiter, with real SDK calls against the loopback server."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from manyminds.errors import BadResponse, ModelError, ModelTimeout, RateLimited, ServerError
from manyminds.models.base import Message
from manyminds.models.openai_compat import OpenAICompatModel
from manyminds.models.retry import ProviderLimiter, backoff_delay, call_with_retries
from manyminds.testing import Behaviour

Q = [Message(role="user", content="What is the capital of France?")]
FAST = {"base_delay": 0.01, "max_delay": 0.05}


@pytest.fixture
def answer() -> str:
    return "Paris"  # what conftest's `server` answers by default


@pytest.fixture
def make(server, closing):
    """Builds models on the test's server (conftest's `server`, `closing`)."""

    def build(provider: str = "fake", **kw) -> OpenAICompatModel:
        return closing(OpenAICompatModel("m", provider=provider, base_url=server.base_url, api_key="k", **kw))

    return build


async def test_rate_limit_retry_after_is_honoured(server, make):
    server.queue(Behaviour.rate_limited(retry_after=1))
    model = make()
    retries: list[tuple[int, str, float]] = []
    c = await call_with_retries(
        lambda: model.complete(Q),
        retries=2,
        base_delay=0.01,
        on_retry=lambda n, err, delay: retries.append((n, type(err).__name__, delay)),
    )
    assert c.text == "Paris"
    first, second = server.requests
    waited = second.started - first.ended
    assert waited >= 1.0  # the header said 1 s; backoff alone would have been ~0.01 s
    assert retries[0][:2] == (1, "RateLimited") and retries[0][2] >= 1.0


async def test_429_twice_then_success(server, make):
    server.queue(Behaviour.rate_limited(retry_after=0.05), "429", model="m")
    server.set_behaviour("m", Behaviour(text="finally"))
    model = make()
    c = await call_with_retries(lambda: model.complete(Q), retries=3, base_delay=0.01, max_delay=0.1)
    assert c.text == "finally"
    assert [r.behaviour.status for r in server.requests] == [429, 429, 200]


async def test_retry_after_is_capped_by_max_delay(server, make):
    server.queue(Behaviour.rate_limited(retry_after=3600))
    model = make()
    start = time.perf_counter()
    c = await call_with_retries(lambda: model.complete(Q), retries=1, base_delay=0.01, max_delay=0.2)
    assert c.text == "Paris" and time.perf_counter() - start < 1.0


@pytest.mark.parametrize("fault", ["500", "503", "drop", "truncated"])
async def test_server_fault_then_success(server, fault, make):
    server.queue(fault)
    model = make()
    seen: list[int] = []
    c = await call_with_retries(lambda: model.complete(Q), retries=2, on_retry=lambda n, e, d: seen.append(n), **FAST)
    assert c.text == "Paris" and len(server.requests) == 2 and seen == [1]


async def test_stream_fault_then_success(server, make):
    server.queue("drop")
    model = make()

    async def attempt() -> str:
        return "".join([c.delta async for c in model.stream(Q)])

    assert await call_with_retries(attempt, retries=1, **FAST) == "Paris"


@pytest.mark.parametrize("fault", ["401", "404", "garbage", "empty_choices"])
async def test_non_retryable_not_retried(server, fault, make):
    server.queue(fault, fault)
    model = make()
    calls: list[int] = []
    with pytest.raises(ModelError) as info:
        await call_with_retries(lambda: model.complete(Q), retries=3, on_retry=lambda *a: calls.append(1), **FAST)
    assert not info.value.retryable
    assert info.value.attempts == 1 and len(server.requests) == 1 and calls == []


async def test_retries_exhausted_reraises_last_error(server, make):
    server.queue("500", "500", "429")
    model = make()
    with pytest.raises(RateLimited) as info:
        await call_with_retries(lambda: model.complete(Q), retries=2, **FAST)
    assert info.value.attempts == 3 and len(server.requests) == 3
    assert "m via fake" in str(info.value)


async def test_timeout_is_not_retried():
    calls = 0

    async def fn():
        nonlocal calls
        calls += 1
        raise ModelTimeout("no response within 1 s (timeout)", provider="p", model="p/m")

    with pytest.raises(ModelTimeout):
        await call_with_retries(fn, retries=5, **FAST)
    assert calls == 1


async def test_other_exceptions_pass_through_unretried():
    calls = 0

    async def fn():
        nonlocal calls
        calls += 1
        raise KeyError("a bug, not a provider failure")

    with pytest.raises(KeyError):
        await call_with_retries(fn, retries=5, **FAST)
    assert calls == 1


async def test_zero_retries_and_success_first_time():
    async def ok():
        return 42

    assert await call_with_retries(ok, retries=0) == 42
    with pytest.raises(ServerError) as info:
        await call_with_retries(_raiser(ServerError("boom", provider="p")), retries=0)
    assert info.value.attempts == 1
    with pytest.raises(ValueError):
        await call_with_retries(ok, retries=-1)


def _raiser(err: ModelError):
    async def fn():
        raise err

    return fn


def test_backoff_delay_grows_with_jitter_and_cap():
    rng = random.Random(1)
    delays = [backoff_delay(n, base_delay=0.5, max_delay=20, rng=rng) for n in range(1, 9)]
    for n, d in enumerate(delays, start=1):
        ceiling = min(20, 0.5 * 2 ** (n - 1))
        assert ceiling / 2 <= d <= ceiling
    assert delays[-1] <= 20
    limited = RateLimited("429", retry_after=5.0)
    assert backoff_delay(1, limited, base_delay=0.5, max_delay=20) >= 5.0
    assert backoff_delay(1, limited, base_delay=0.5, max_delay=2) == 2
    assert backoff_delay(1, BadResponse("x"), base_delay=0.5, max_delay=20) <= 0.5


# --- ProviderLimiter --------------------------------------------------------------------


async def test_limiter_caps_requests_seen_by_server(server, make):
    server.set_behaviour("m", Behaviour(latency=0.15, text="ok"))
    limiter = ProviderLimiter()
    model = make()
    await model.complete(Q)  # warm up imports and the connection pool
    server.reset()

    async def one():
        async with limiter.slot(model.provider, 3):
            return await model.complete(Q)

    start = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(12)))
    elapsed = time.perf_counter() - start
    assert len(results) == 12 and len(server.requests) == 12
    assert server.max_concurrent == 3
    assert 0.55 <= elapsed < 2.0  # 4 waves of 0.15 s
    assert limiter.limit("fake") == 3


async def test_limiter_is_per_provider(server, make):
    server.set_behaviour("m", Behaviour(latency=0.15, text="ok"))
    limiter = ProviderLimiter()
    a, b = make("alpha"), make("beta")
    await a.complete(Q)
    server.reset()

    async def one(model):
        async with limiter.slot(model.provider, 2):
            return await model.complete(Q)

    await asyncio.gather(*(one(m) for m in [a, b] * 5))
    assert server.max_concurrent == 4  # 2 per provider, both at once


async def test_limiter_rejects_bad_limit():
    with pytest.raises(ValueError):
        async with ProviderLimiter().slot("p", 0):
            pass


def test_limiter_works_across_event_loops():
    limiter = ProviderLimiter()
    peak = 0
    running = 0

    async def one():
        nonlocal peak, running
        async with limiter.slot("p", 2):
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1

    async def many():
        await asyncio.gather(*(one() for _ in range(6)))

    asyncio.run(many())
    asyncio.run(many())  # a semaphore bound to the first loop would fail here
    assert peak == 2
