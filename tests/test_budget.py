"""Budgets and cost accounting in process: the price table and its settings overrides, the
tracker's checks, `run_council` stopping cleanly on each budget (ScriptedModel councils, which
stand in for priced remote providers), the verdict's cost totals, the stored run and bad input."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from helpers import make_council

from manyminds.api import aask
from manyminds import budget as budget_module
from manyminds.budget import Budget, BudgetLimited, BudgetTooSmall, BudgetTracker
from manyminds.cli.render import cost_line, plain_verdict
from manyminds.config import CouncilSettings, MemberSettings, PriceSettings, Settings
from manyminds.errors import InputError
from manyminds.models.base import Message, ModelOptions, Usage
from manyminds.models.prices import lookup, shipped_prices
from manyminds.models.registry import build_registry
from manyminds.pipeline.run import run_council
from manyminds.store import RunRecorder, open_db
from manyminds.testing import ScriptedModel

QUESTION = "Who wrote Hamlet?"
LONG = "William Shakespeare wrote Hamlet around 1600, in London. " * 4  # about 60 tokens


def priced(council, prices: dict[str, tuple[float, float] | None]):
    """Give the council's (wrapped) models prices in USD per million tokens; None: unknown."""
    for m in council.members:
        inp, out = prices.get(m.name) or (None, None)
        for model in _chain(m.model):
            model.input_price_per_mtok, model.output_price_per_mtok = inp, out
    inp, out = prices.get("chair") or (None, None)
    for model in _chain(council.chair_model):
        model.input_price_per_mtok, model.output_price_per_mtok = inp, out
    return council


def _chain(model):
    while True:
        yield model
        if not hasattr(model, "__dict__") or "inner" not in model.__dict__:
            return
        model = model.inner


# --- the price table -------------------------------------------------------------------------


def test_the_shipped_table_prices_every_provider_and_lists_free_ones_explicitly():
    table = shipped_prices()
    for provider in ("openai", "anthropic", "gemini", "groq", "openrouter", "perplexity"):
        assert any(k.startswith(provider + "/") for k in table), provider
    assert table["local/*"] == (0.0, 0.0) and table["scripted/*"] == (0.0, 0.0)
    registry = build_registry()
    assert registry.get_model("openai/gpt-4o-mini").cost_usd(Usage(1_000_000, 1_000_000)) == pytest.approx(0.75)
    assert registry.get_model("local/smollm2").cost_usd(Usage(500, 500)) == 0.0
    # No entry: unknown, never 0 — for a listed provider's unlisted model and for one with no prices at all.
    assert registry.get_model("openai/gpt-9-imaginary").cost_usd(Usage(10, 10)) is None
    assert registry.get_model("deepseek/deepseek-chat").cost_usd(Usage(10, 10)) is None


def test_settings_prices_override_and_extend_the_table():
    settings = Settings(prices={"openai/gpt-4o-mini": PriceSettings(input=1.0, output=2.0),
                                "deepseek/*": PriceSettings(input=0.5, output=0.5)})  # fmt: skip
    assert lookup("openai/gpt-4o-mini", settings) == (1.0, 2.0)
    registry = build_registry(settings)
    assert registry.get_model("openai/gpt-4o-mini").cost_usd(Usage(1_000_000, 1_000_000)) == pytest.approx(3.0)
    assert registry.get_model("deepseek/deepseek-chat").cost_usd(Usage(2_000_000, 0)) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        PriceSettings(input=-1, output=1)


# --- cost accounting -------------------------------------------------------------------------


async def test_the_verdict_totals_every_call_and_shows_each_member():
    council = priced(make_council({"a": LONG, "b": "Shakespeare.", "c": "Shakespeare"}, quorum=2),
                     {"a": (1.0, 2.0), "b": (1.0, 2.0), "c": (3.0, 4.0), "chair": (10.0, 10.0)})
    verdict = await run_council(QUESTION, council)
    by_member = {m.member: m for m in verdict.members}
    for name, (inp, out) in {"a": (1.0, 2.0), "b": (1.0, 2.0), "c": (3.0, 4.0)}.items():
        u = by_member[name].usage
        assert by_member[name].cost_usd == pytest.approx((u.input_tokens * inp + u.output_tokens * out) / 1e6)
    chair = verdict.chair
    assert chair.status == "ok" and chair.cost_usd == pytest.approx(chair.usage.total_tokens * 10 / 1e6)
    assert verdict.cost_usd == pytest.approx(sum(m.cost_usd for m in verdict.members) + chair.cost_usd, abs=1e-6)
    line = cost_line(verdict)
    assert line.startswith(f"Cost: ${verdict.cost_usd:.4f} (") and "a $" in line and "chair $" in line


async def test_one_unknown_price_makes_the_total_unknown_not_zero(manyminds_home):
    council = priced(make_council({"a": "Shakespeare", "b": "Shakespeare"}), {"a": (1.0, 1.0), "chair": (1.0, 1.0)})
    db = open_db(manyminds_home / "m.db")
    verdict = await run_council(QUESTION, council, recorder=RunRecorder(db))
    assert verdict.cost_usd is None
    assert {m.member: m.cost_usd is None for m in verdict.members} == {"a": False, "b": True}
    text = plain_verdict(verdict)
    assert re.search(r"^Cost: cost unknown \(a \$0\.0000, b cost unknown, chair \$0\.\d{4}\)$", text, re.M)
    assert "$0.0000, " not in text.splitlines()[-1]  # the run line says unknown, not $0
    assert db.execute("select cost_usd from runs").fetchone()[0] is None


# --- the tracker ---------------------------------------------------------------------------


def test_a_call_reserves_its_share_and_is_lowered_to_fit():
    model = ScriptedModel("m")
    tracker = BudgetTracker(Budget(max_tokens=100))
    messages = [Message(role="user", content="x" * 80)]  # 20 tokens + 8 framing
    options, held = tracker.before_call(model, messages, ModelOptions(max_tokens=500))
    assert options.max_tokens == 100 - 28 and held.tokens == 100
    with pytest.raises(Exception, match="has 0 tokens left"):
        tracker.before_call(model, messages, None)  # everything is reserved by the call in flight
    tracker.release(held)
    tracker.charge(model, Usage(28, 10))
    options, held = tracker.before_call(model, messages, ModelOptions(max_tokens=10))
    assert options.max_tokens == 10 and tracker.tokens == 38


async def test_a_call_that_fits_once_others_give_back_their_share_waits_for_them():
    model = ScriptedModel("m")
    tracker = BudgetTracker(Budget(max_tokens=100))
    messages = [Message(role="user", content="x" * 80)]  # 28 tokens with framing
    _, first = await tracker.admit(model, messages, ModelOptions(max_tokens=500))  # holds all 100
    waiting = asyncio.ensure_future(tracker.admit(model, messages, ModelOptions(max_tokens=500)))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # it would fit in what the first call will not use
    tracker.release(first)
    tracker.charge(model, Usage(28, 10))
    options, second = await waiting
    assert options.max_tokens == 100 - 38 - 28 and tracker.hit is None
    tracker.release(second)
    tracker.charge(model, Usage(28, 40))  # 106 spent: nothing in flight and nothing left
    with pytest.raises(Exception, match="has 0 tokens left"):
        await tracker.admit(model, messages, None)
    assert tracker.hit == "tokens"


async def test_a_waiting_call_is_cut_at_the_deadline():
    model = ScriptedModel("m")
    tracker = BudgetTracker(Budget(max_tokens=100, max_seconds=0.2))
    messages = [Message(role="user", content="x" * 80)]
    await tracker.admit(model, messages, ModelOptions(max_tokens=500))  # held, never given back
    with pytest.raises(Exception, match="cut at the 0.2-second budget"):
        await tracker.admit(model, messages, None)
    assert tracker.hit == "seconds"


async def test_a_member_whose_timeout_runs_out_while_it_waits_for_budget_is_budget_cut_not_timed_out():
    # a is admitted first and holds nearly all 130 tokens for its 0.6 s answer; b would fit in
    # what a gives back, but b's own timeout (0.2 s) runs out while it waits
    council = make_council({"a": "Paris", "b": "Paris"}, quorum=1, timeout=5.0, delays={"a": 0.6})
    b = council.members[1]
    council.members[1] = type(b)(settings=b.settings.model_copy(update={"timeout": 0.2}), model=b.model)
    verdict = await run_council("What is the capital of France?", council, strategy="majority",
                                budget=Budget(max_tokens=130))  # fmt: skip
    answers = {m.member: m for m in verdict.members}
    assert answers["a"].status == "ok" and answers["b"].status == "failed"
    assert answers["b"].error["budget"] == "tokens"
    assert "until its timeout, for budget tokens held by calls in flight" in answers["b"].error["message"]
    assert verdict.budget_limited
    # without a budget to wait for, b answers well within its timeout
    plain = await run_council("What is the capital of France?", council, strategy="majority")
    assert {m.member: m.status for m in plain.members} == {"a": "ok", "b": "ok"}


def test_a_cost_budget_refuses_an_unknown_price():
    model = ScriptedModel("m")  # no price
    tracker = BudgetTracker(Budget(max_cost=1.0))
    with pytest.raises(Exception, match="price of scripted/m is unknown"):
        tracker.before_call(model, [Message(role="user", content="hi")], None)
    assert tracker.hit == "cost"


@pytest.mark.parametrize("kwargs, message", [
    ({"max_cost": 0}, "--max-cost must be a number of USD greater than 0, not 0."),
    ({"max_tokens": -5}, "--max-tokens must be a whole number of tokens greater than 0, not -5."),
    ({"max_tokens": 2.5}, "--max-tokens must be a whole number of tokens greater than 0, not 2.5."),
    ({"max_seconds": -1.0}, "--max-seconds must be a number of s greater than 0, not -1.0."),
    ({"max_seconds": True}, "--max-seconds must be a number of s greater than 0, not True."),
])  # fmt: skip
def test_zero_or_negative_budgets_are_refused_with_the_option_named(kwargs, message):
    with pytest.raises(InputError) as info:
        Budget.of(**kwargs)
    assert str(info.value) == message


async def test_a_bad_budget_through_the_api_is_refused_and_stored(manyminds_home):
    settings = scripted_settings()
    with pytest.raises(InputError, match="--max-tokens must be"):
        await aask(QUESTION, settings=settings, max_tokens=0)
    row = open_db().execute("select status, error from runs").fetchone()
    assert row[0] == "failed" and json.loads(row[1])["type"] == "InputError"


# --- runs that hit a budget --------------------------------------------------------------------


async def test_max_tokens_keeps_the_answers_that_fit_and_marks_the_verdict(manyminds_home):
    council = make_council({"a": "Shakespeare", "b": "Shakespeare.", "c": LONG * 3}, quorum=2)
    db = open_db(manyminds_home / "m.db")
    verdict = await run_council(QUESTION, council, budget=Budget(max_tokens=150), recorder=RunRecorder(db))
    limited = verdict.budget_limited
    assert limited["budget"] == "tokens" and limited["limit"] == 150
    assert verdict.usage.total_tokens <= limited["spent"]["tokens"] <= 150
    status = {m.member: m.status for m in verdict.members}
    # a and b reserved their prompts and max_tokens (100) first; c waited until they gave back
    # what they did not use (they spent 8 each), then answered within what was left.
    assert status == {"a": "ok", "b": "ok", "c": "ok"}
    assert len(council.members[2].model.calls) == 1
    # The chair's long prompt no longer fitted: the vote decided.
    assert verdict.chair.status == "failed" and verdict.chair.error["type"] == "BudgetExceeded"
    assert "150-token budget" in verdict.chair.error["message"] and limited["cut"] == ["scripted/chair"]
    assert "Shakespeare" in verdict.answer
    assert verdict.warnings[0].startswith("Budget-limited: ")
    stored = json.loads(db.execute("select budget_limited from runs").fetchone()[0])
    assert stored["budget"] == "tokens" and stored["spent"] == limited["spent"]


async def test_max_seconds_cuts_the_slow_member_and_keeps_the_fast_ones():
    council = make_council({"a": "Shakespeare", "b": "Shakespeare", "slow": "Marlowe"}, quorum=1, delays={"slow": 5.0},
                           timeout=30)  # fmt: skip
    loop = asyncio.get_running_loop()
    started = loop.time()
    verdict = await run_council(QUESTION, council, budget=Budget(max_seconds=0.6))
    assert loop.time() - started < 4  # the slow member was not waited for
    assert verdict.budget_limited["budget"] == "seconds"
    slow = next(m for m in verdict.members if m.member == "slow")
    assert slow.status == "failed" and slow.error["budget"] == "seconds"
    assert "Shakespeare" in verdict.answer and verdict.confidence > 0


async def test_max_cost_cuts_at_the_price_and_keeps_what_finished():
    council = priced(make_council({"a": "Shakespeare", "b": "Shakespeare.", "c": LONG * 3}, quorum=2),
                     {"a": (1000.0, 1000.0), "b": (1000.0, 1000.0), "c": (1000.0, 1000.0), "chair": (1000.0, 1000.0)})
    verdict = await run_council(QUESTION, council, budget=Budget(max_cost=0.15))  # 150 tokens at $1000/Mtok
    assert verdict.budget_limited["budget"] == "cost" and verdict.cost_usd <= 0.15
    c = next(m for m in verdict.members if m.member == "c")
    # c waited for a and b to give back what they held, then answered what the rest could buy.
    assert c.status == "ok" and c.usage.output_tokens < len(LONG * 3) // 4
    assert verdict.chair.status == "failed" and verdict.chair.error["budget"] == "cost"


async def test_a_budget_that_stops_the_quorum_fails_clearly_and_is_stored(manyminds_home):
    council = make_council({"a": LONG * 3, "b": LONG * 3}, quorum=2)
    db = open_db(manyminds_home / "m.db")
    with pytest.raises(BudgetLimited) as info:
        await run_council(QUESTION, council, budget=Budget(max_tokens=90), recorder=RunRecorder(db))
    assert "before the quorum was met (1 of 2 members answered)" in str(info.value)  # a held all 90 tokens
    assert "The 90-token budget (--max-tokens) ran out: 82 tokens" in str(info.value) and "scripted/b" in str(info.value)
    status, error, limited = db.execute("select status, error, budget_limited from runs").fetchone()
    assert status == "failed" and json.loads(error)["type"] == "BudgetLimited"
    assert json.loads(limited)["budget"] == "tokens"


async def test_a_budget_too_small_for_one_member_is_refused_before_any_call(manyminds_home):
    council = make_council({"a": "Shakespeare", "b": "Shakespeare"})
    prompt = council.members[0].prompt_tokens(QUESTION)
    db = open_db(manyminds_home / "m.db")
    with pytest.raises(BudgetTooSmall) as info:
        await run_council(QUESTION, council, budget=Budget(max_tokens=prompt), recorder=RunRecorder(db))
    assert f"--max-tokens {prompt} is too small for even one member" in str(info.value)
    assert f"Allow at least {prompt + 1} tokens" in str(info.value)
    assert all(m.model.calls == [] for m in council.members)  # no model was called
    assert db.execute("select status from runs").fetchone()[0] == "failed"


async def test_a_cost_budget_below_the_cheapest_call_or_with_an_unknown_price_is_refused_before_any_call():
    council = priced(make_council({"a": "x", "b": "y"}), {"a": (1.0, 1.0), "b": (2.0, 2.0), "chair": (1.0, 1.0)})
    with pytest.raises(BudgetTooSmall, match=r"--max-cost 1e-06 is too small for even one member: the cheapest call \(member 'a'"):
        await run_council(QUESTION, council, budget=Budget(max_cost=1e-6))
    unknown = priced(make_council({"a": "x", "b": "y"}), {"a": (1.0, 1.0), "chair": (1.0, 1.0)})
    with pytest.raises(BudgetTooSmall, match=r"--max-cost cannot be enforced: the price of scripted/b is unknown"):
        await run_council(QUESTION, unknown, budget=Budget(max_cost=1.0))
    assert all(m.model.calls == [] for m in council.members + unknown.members)


async def test_no_budget_hit_means_no_mark(manyminds_home):
    verdict = await aask(QUESTION, settings=scripted_settings(), max_tokens=100_000, max_seconds=60, max_cost=5)
    assert verdict.budget_limited is None and verdict.cost_usd == 0.0  # scripted/* is free, by an explicit entry
    assert not any(w.startswith("Budget-limited") for w in verdict.warnings)


def scripted_settings() -> Settings:
    for name, text in {"alpha": "Shakespeare", "beta": "William Shakespeare", "chair": "Shakespeare wrote it."}.items():
        ScriptedModel.register_script(name, text)
    council = CouncilSettings(members=[MemberSettings(name=n, model=f"scripted/{n}", max_tokens=50) for n in ("alpha", "beta")],
                              chair="scripted/chair", quorum=1, retries=0, short_answer="heuristic")  # fmt: skip
    return Settings(default_council="duo", councils={"duo": council})


class IgnoresMaxTokens(ScriptedModel):
    """A provider that streams its whole answer whatever max_tokens it was sent."""

    async def stream(self, messages, options=None):
        async for chunk in super().stream(messages, None):
            yield chunk


async def test_a_stream_running_far_past_its_allowance_is_cut_and_its_tokens_counted():
    council = make_council({"a": "Shakespeare", "b": "Shakespeare"}, quorum=1)
    council.members[1].model.inner.inner.inner = IgnoresMaxTokens("b", LONG * 6, chunk_size=20)
    verdict = await run_council(QUESTION, council, budget=Budget(max_tokens=200))
    b = next(m for m in verdict.members if m.member == "b")
    assert b.status == "failed" and "ran past the" in b.error["message"]
    # What it streamed before the cut is counted as spent (estimated), though no answer kept it.
    assert verdict.budget_limited["spent"]["tokens"] > verdict.usage.total_tokens


async def test_a_side_call_chair_or_extraction_whose_timeout_runs_out_while_it_waits_for_budget_says_so():
    # A slow call holds nearly all 400 tokens; the claim extraction's side call, the chair and a
    # short-answer extraction would fit in what it gives back, but their own timeouts (0.2 s) run out while they wait.
    from manyminds.models.wrappers import Budgeted
    from manyminds.pipeline.stages.claims import side_call
    from manyminds.pipeline.stages.short_answers import extract_short_answers
    from manyminds.pipeline.stages.synthesize import run_chair
    from manyminds.pipeline.verdict import Agreement, MemberAnswer

    slow, quick = Budgeted(ScriptedModel("slow", delay=0.6)), Budgeted(ScriptedModel("quick"))
    question = [Message(role="user", content="hi")]
    for attempt in ("side call", "chair", "short answer"):
        tracker = BudgetTracker(Budget(max_tokens=400))
        token = budget_module.current.set(tracker)
        try:
            holder = asyncio.create_task(slow.complete(question, ModelOptions(max_tokens=385)))
            await asyncio.sleep(0.05)
            if attempt == "side call":
                message = (await side_call(quick, question, max_tokens=20, timeout=0.2)).error
            elif attempt == "short answer":
                events: list = []
                long = "The play Hamlet was written, as far as anyone knows, by William Shakespeare himself."
                answer = MemberAnswer(member="quick", model="scripted/quick", status="ok", text=long)
                [out] = await extract_short_answers("hi", [answer], {"quick": quick}, "model", events.append, timeout=0.2)
                assert out.short_answer_method == "heuristic"  # it still gets a short answer
                [done] = [e for e in events if e.kind == "stage_done"]
                message = done.data["notes"]["quick"]
                assert message.startswith("extraction stopped by the budget: ")
            else:
                chair = await run_chair("hi", [], Agreement(members=[], matrix=[], clusters=[]), "chair", quick,
                                        system=None, max_tokens=20, timeout=0.2, seed="s")  # fmt: skip
                assert chair.result.status == "failed" and chair.result.error["budget"] == "tokens"
                message = chair.result.error["message"]
            await holder
        finally:
            budget_module.current.reset(token)
        assert "until its timeout, for budget tokens held by calls in flight" in message, attempt
        assert tracker.hit == "tokens" and quick.name in tracker.cut
        # without a budget to wait for, the same call answers well within its timeout
        assert (await side_call(quick, question, max_tokens=20, timeout=0.2)).text == "hi"
