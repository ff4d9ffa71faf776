"""The shapes the rest of the code builds on: the strategy registry (built-ins and entry-point
plugins), one `AskRequest` for every entry point, the `Recorder` protocol, and the model
wrappers a council applies once — checked against the fault-injecting loopback server."""

from __future__ import annotations

import asyncio
import json

import pytest

from helpers import make_council
from manyminds.config import CouncilSettings, MemberSettings
from manyminds.errors import ConfigError, InputError, UnknownModel
from manyminds.testing import Behaviour, FakeOpenAIServer, ScriptedModel
from manyminds.models.openai_compat import OpenAICompatModel
from manyminds.models.wrappers import Budgeted, Cached, Limited, Retrying, observe, unwrap
from manyminds.pipeline.council import Council
from manyminds.pipeline.run import NullRecorder, Recorder, run_council
from manyminds.pipeline.stages.fanout import Member
from manyminds.pipeline.verdict import Verdict
from manyminds.request import AskRequest
from manyminds.strategies import base
from manyminds.strategies.base import STRATEGIES, Strategy, get_strategy, strategy_names


# --- the strategy registry -----------------------------------------------------------------


class EchoFirst(Strategy):
    """A third-party strategy: the first member's answer, nothing compared."""

    name = "echo-first"
    params = {"prefix": ""}
    stages = ("fan_out",)

    async def run(self, ctx):  # noqa: ANN001, ANN201
        from manyminds.pipeline.run import build_verdict
        from manyminds.pipeline.stages.fanout import gather_answers
        from manyminds.pipeline.stages.synthesize import Decision
        from manyminds.pipeline.verdict import Agreement

        answers = await gather_answers(ctx)
        first = next(a for a in answers if a.ok)
        decision = Decision(self.options["prefix"] + first.text, first.text, 1.0, None, [], [])
        return build_verdict(ctx, self.name, answers, Agreement(members=[], matrix=[], clusters=[]), None, decision)


class FakeEntryPoint:
    def __init__(self, name: str, value: str) -> None:
        self.name, self.value = name, value


@pytest.fixture
def plugins(monkeypatch):
    """Entry points of the group `manyminds.strategies`, as an installed package would declare."""
    declared: list[FakeEntryPoint] = []

    def entry_points(group: str):  # noqa: ANN202
        return list(declared) if group == base.ENTRY_POINT_GROUP else []

    monkeypatch.setattr("importlib.metadata.entry_points", entry_points)
    monkeypatch.setattr(base, "_plugins", None)
    yield declared
    base._plugins = None


async def test_a_plugin_strategy_runs_through_the_same_lifecycle(plugins):
    plugins.append(FakeEntryPoint("echo-first", f"{__name__}:EchoFirst"))
    plugins.append(FakeEntryPoint("council", f"{__name__}:EchoFirst"))  # cannot take over a built-in
    assert "echo-first" in strategy_names() and strategy_names()[: len(STRATEGIES)] == list(STRATEGIES)
    assert type(get_strategy("council")).__name__ == "CouncilStrategy"
    council = make_council({"a": "Shakespeare.", "b": "Marlowe."})
    events = []
    verdict = await run_council("Who wrote Hamlet?", council, strategy="echo-first", params={"prefix": "> "}, emit=events.append)
    assert verdict.strategy == "echo-first" and verdict.answer == "> Shakespeare."
    assert [e.kind for e in events][:2] == ["run_started", "stage_started"] and events[-1].kind == "verdict"
    with pytest.raises(InputError, match="no parameter depth"):
        get_strategy("echo-first", {"depth": 1})


def test_a_broken_or_foreign_plugin_is_a_clear_input_error(plugins):
    plugins += [FakeEntryPoint("gone", "no_such_package.mod:Thing"), FakeEntryPoint("foreign", "json:JSONDecoder")]
    with pytest.raises(InputError, match=r"Strategy 'gone' cannot be loaded from 'no_such_package.mod:Thing'"):
        get_strategy("gone")
    with pytest.raises(InputError, match="not a manyminds Strategy subclass"):
        get_strategy("foreign")
    with pytest.raises(InputError, match=r"Unknown strategy 'telepathy'. Valid strategies: .*foreign.*gone"):
        get_strategy("telepathy")


def test_strategies_declare_their_stages():
    assert get_strategy("council").expected_stages() == ("fan_out", "compare", "synthesize")
    assert get_strategy("deep").expected_stages() == (
        "fan_out", "review_1", "revise_1", "review_2", "revise_2", "compare", "synthesize")
    assert get_strategy("deep", {"rounds": 1}).expected_stages() == ("fan_out", "review_1", "revise_1", "compare", "synthesize")
    from manyminds.jobs.progress import Progress

    assert Progress("deep", 3, {"rounds": 1}).expected == 5 and Progress("council").expected == 3


async def test_verify_is_a_strategy_reachable_from_aask(tmp_path):
    from manyminds import aask
    from manyminds.strategies.verify import VerifyVerdict

    settings = _scripted_settings()
    verdict = await aask("Paris is the capital of France.", settings=settings, strategy="verify",
                         params={"extract": "split"}, db_path=tmp_path / "v.db")
    assert isinstance(verdict, VerifyVerdict) and verdict.strategy == "verify"
    assert [c.text for c in verdict.checks] == ["Paris is the capital of France."]
    import manyminds

    assert callable(manyminds.verify) and manyminds.verify is manyminds.api.verify  # a function, not a module


# --- one request ---------------------------------------------------------------------------


def _scripted_settings():
    from manyminds.config import Settings

    members = [MemberSettings(name=n, model=f"scripted/{n}") for n in ("alpha", "beta")]
    council = CouncilSettings(members=members, chair="scripted/chair", quorum=1, timeout=10, retries=0, short_answer="heuristic")
    return Settings(councils={"duo": council}, default_council="duo")


def test_a_request_is_normalised_before_anything_runs():
    settings = _scripted_settings()
    checked = AskRequest(question="  Who wrote Hamlet?  ", models=["scripted:alpha"]).check(settings)
    assert checked.question == "Who wrote Hamlet?" and checked.models == ["scripted/alpha"] and checked.council is None
    assert checked.strategy == "council"
    assert AskRequest(question="Who?", tier="deep").check(settings).strategy == "deep"
    assert AskRequest(question="Who?").check(settings).council == "duo"
    stored = json.loads(json.dumps(checked.model_dump()))  # what a job keeps
    assert AskRequest.model_validate(stored) == checked
    assert "key" not in " ".join(AskRequest.model_fields)  # keys are never part of a request


@pytest.mark.parametrize("fields, error, message", [
    ({"question": " "}, InputError, "The question is empty"),
    ({"question": 7}, InputError, "must be text"),
    ({"question": "Who?", "council": "nope"}, ConfigError, "Unknown council 'nope'"),
    ({"question": "Who?", "models": ["nosuch/model"]}, UnknownModel, "nosuch"),
    ({"question": "Who?", "strategy": "telepathy"}, InputError, "Unknown strategy"),
    ({"question": "Who?", "strategy": "deep", "params": {"depth": 2}}, InputError, "no parameter depth"),
    ({"question": "Who?", "quorum": 3}, InputError, "quorum of 3 is larger than the council's 2"),
])
def test_a_bad_request_is_refused_with_the_reason(fields, error, message):
    with pytest.raises(error, match=message):
        AskRequest(**fields).check(_scripted_settings())


def test_a_request_rejects_unknown_fields_and_bad_overrides():
    from pydantic import ValidationError

    for bad in ({"question": "Who?", "api_key": "sk-x"}, {"question": "Who?", "timeout": 0}, {"question": "Who?", "quorum": 0}):
        with pytest.raises(ValidationError):
            AskRequest(**bad)


def test_both_recorders_satisfy_the_protocol(tmp_path):
    from manyminds.store import RunRecorder, open_db

    for recorder in (NullRecorder(), RunRecorder(open_db(tmp_path / "r.db"))):
        assert isinstance(recorder, Recorder)


# --- model wrappers --------------------------------------------------------------------------


def _loop_council(server: FakeOpenAIServer, names: list[str], *, cap: int, retries: int = 2, chair: str = "a") -> Council:
    def model(n: str) -> OpenAICompatModel:
        return OpenAICompatModel(n, provider="loop", base_url=server.base_url, api_key=None, needs_key=False)

    members = [Member(settings=MemberSettings(name=n, model=f"loop/{n}", temperature=0.0, max_tokens=16), model=model(n),
                      max_concurrency=cap) for n in names]
    settings = CouncilSettings(members=[m.settings for m in members], quorum=1, timeout=20, retries=retries,
                               short_answer="heuristic")
    return Council("loop", settings, members, f"chair ({chair})", model(chair))


def test_a_council_wraps_each_model_once_and_copies_keep_the_wrappers():
    council = make_council({"a": "Paris.", "b": "Paris."})
    model = council.members[0].model
    # the budget outermost (a retried call is checked once), then the retries, then the provider's slot
    assert isinstance(model, Budgeted) and isinstance(model.inner, Retrying) and isinstance(model.inner.inner, Limited)
    assert isinstance(unwrap(model), ScriptedModel)
    assert model.calls == [] and model.name == "scripted/a"  # attributes reach the provider's model
    from dataclasses import replace

    copy = replace(council, name="copy")
    assert copy.members[0].model is model and copy.limiter is council.limiter
    cached = replace(council, members=[replace(m, model=Cached(m.model, cache=None)) for m in council.members])  # type: ignore[arg-type]
    assert isinstance(cached.members[0].model, Cached) and cached.members[0].model.inner is model  # not wrapped twice


async def test_the_provider_cap_covers_the_chair_too():
    with FakeOpenAIServer(default=Behaviour(text="Paris", latency=0.3)) as server:
        council = _loop_council(server, ["a", "b", "c"], cap=1)
        # Two runs at once: one run's chair would overlap the other's members if it were not capped.
        verdicts = await asyncio.gather(*(run_council("What is the capital of France?", council) for _ in range(2)))
        await council.aclose()
    assert all(v.chair is not None and v.chair.status == "ok" for v in verdicts)
    assert len(server.requests) == 8 and server.max_concurrent == 1  # members and chairs, one at a time


async def test_the_chair_is_retried_like_a_member():
    with FakeOpenAIServer(default=Behaviour(text="Paris")) as server:
        council = _loop_council(server, ["a", "b"], cap=4, chair="chairman")
        server.queue(Behaviour.error(500, "boom"), model="chairman")
        verdict = await run_council("What is the capital of France?", council)
        await council.aclose()
    assert verdict.chair.status == "ok" and len(server.requests_for("chairman")) == 2


async def test_an_observer_sees_only_its_own_calls_retries():
    with FakeOpenAIServer(default=Behaviour(text="Paris")) as server:
        server.queue(Behaviour.error(503, "busy"), model="a")
        council = _loop_council(server, ["a", "b"], cap=4, retries=1)
        a, b = (m.model for m in council.members)
        seen: dict[str, list[int]] = {"a": [], "b": []}

        async def call(model, name: str) -> int:  # noqa: ANN001
            from manyminds.models.base import Message

            with observe(lambda attempt, err, delay: seen[name].append(attempt)) as obs:
                await model.complete([Message(role="user", content="Capital of France?")])
            return obs.attempts

        attempts = await asyncio.gather(call(a, "a"), call(b, "b"))
        await council.aclose()
    assert attempts == [2, 1] and seen == {"a": [1], "b": []}


async def test_retries_stop_at_the_limit_and_say_how_many_attempts():
    from manyminds.errors import ModelError
    from manyminds.models.base import Message

    with FakeOpenAIServer(default=Behaviour.error(500, "down")) as server:
        council = _loop_council(server, ["a"], cap=2, retries=1)
        with pytest.raises(ModelError) as info:
            await council.members[0].model.complete([Message(role="user", content="Hi")])
        await council.aclose()
    assert info.value.attempts == 2 and len(server.requests) == 2


def test_the_verdict_of_a_null_recorded_run_is_plain_data():
    council = make_council({"a": "Paris.", "b": "Paris."})
    verdict = asyncio.run(run_council("What is the capital of France?", council))
    assert isinstance(verdict, Verdict) and Verdict.model_validate(verdict.model_dump()) == verdict
