"""Fan-out through the real OpenAI SDK against the fault-injecting loopback server: retries
honour Retry-After, dropped connections are retried, the per-provider cap holds, and members
stream concurrently."""

from __future__ import annotations

import time

import pytest

from manyminds.config import CouncilSettings, MemberSettings
from manyminds.models.openai_compat import OpenAICompatModel
from manyminds.testing import Behaviour, FakeOpenAIServer, ScriptedModel
from manyminds.pipeline.council import Council
from manyminds.pipeline.run import run_council
from manyminds.pipeline.stages.fanout import FanOut, Member


def council_on(server: FakeOpenAIServer, names: list[str], *, cap: int = 8, timeout: float = 20, quorum: int = 1) -> Council:
    members = [
        Member(
            settings=MemberSettings(name=n, model=f"loop/{n}", temperature=0.0, max_tokens=32),
            model=OpenAICompatModel(n, provider="loop", base_url=server.base_url, api_key=None, needs_key=False),
            max_concurrency=cap,
        )
        for n in names
    ]
    settings = CouncilSettings(members=[m.settings for m in members], quorum=quorum, timeout=timeout, retries=2,
                               short_answer="heuristic")
    return Council("loop", settings, members, "chair", ScriptedModel("chair", "Paris"))


async def test_429_with_retry_after_is_honoured_then_succeeds():
    with FakeOpenAIServer({"a": Behaviour(text="Paris"), "b": Behaviour(text="Paris")}) as server:
        server.queue(Behaviour.rate_limited(retry_after=1), model="a")
        council = council_on(server, ["a", "b"])
        events = []
        start = time.perf_counter()
        verdict = await run_council("What is the capital of France?", council, emit=events.append)
        elapsed = time.perf_counter() - start
        await council.aclose()
    a = next(m for m in verdict.members if m.member == "a")
    assert a.status == "ok" and a.attempts == 2
    assert elapsed >= 1.0  # waited as long as the server asked
    retry = next(e for e in events if e.kind == "member_retry")
    assert retry.member == "a" and retry.data["delay_s"] >= 1.0 and "429" in retry.data["cause"]
    assert verdict.confidence == 1.0


@pytest.mark.parametrize("fault", ["drop", "truncated", "500"])
async def test_transient_faults_are_retried(fault):
    with FakeOpenAIServer({"a": Behaviour(text="Paris")}) as server:
        server.queue(Behaviour.parse(fault), model="a")
        council = council_on(server, ["a"])
        verdict = await run_council("What is the capital of France?", council)
        await council.aclose()
    assert verdict.members[0].status == "ok" and verdict.members[0].attempts == 2


async def test_retries_give_up_and_the_member_is_recorded_with_its_cause():
    with FakeOpenAIServer({"a": Behaviour.error(503, "overloaded"), "b": Behaviour(text="Paris")}) as server:
        council = council_on(server, ["a", "b"])
        verdict = await run_council("What is the capital of France?", council)
        await council.aclose()
        assert len(server.requests_for("a")) == 3  # first try + 2 retries
    a = next(m for m in verdict.members if m.member == "a")
    assert a.status == "failed" and a.attempts == 3
    assert "503" in a.error["message"] and "member 'a'" in a.error["message"]


async def test_per_provider_concurrency_cap():
    behaviours = {n: Behaviour(text="Paris", latency=0.3) for n in "abcde"}
    with FakeOpenAIServer(behaviours) as server:
        council = council_on(server, list("abcde"), cap=2)
        await FanOut(timeout=20).run("What is the capital of France?", council.members)
        assert server.max_concurrent == 2
        server.reset()
        council_free = council_on(server, list("abcde"), cap=8)
        await FanOut(timeout=20).run("What is the capital of France?", council_free.members)
        assert server.max_concurrent == 5
        await council.aclose()
        await council_free.aclose()


async def test_members_stream_deltas_concurrently():
    behaviours = {n: Behaviour(text="one two three four five six", token_delay=0.05) for n in "ab"}
    with FakeOpenAIServer(behaviours) as server:
        council = council_on(server, ["a", "b"])
        events = []
        await FanOut(timeout=20, emit=events.append).run("Count.", council.members)
        await council.aclose()
    deltas = [e.member for e in events if e.kind == "member_delta"]
    assert deltas.count("a") >= 3 and deltas.count("b") >= 3
    # Interleaved, not one member after the other.
    first_b = deltas.index("b")
    assert "a" in deltas[first_b:]
