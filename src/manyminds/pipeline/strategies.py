"""Strategies: compositions of the pipeline's stages, from a single model to the deep tier.

A strategy is a small class whose `run` calls stage functions in order — `gather_answers`
(fan-out + quorum), `compare_answers`, `review_answers` / `revise_answers` (review.py),
`synthesize` — and assembles a `Verdict` with `build_verdict`. The run's lifecycle (the stored
record, events, errors) belongs to `council.run_council`, so every strategy is stored,
streamed and failed the same way. The eval harness's baselines are strategies too: one
mechanism, no parallel copies.

Strategies are named in `STRATEGIES` ("module:Class", imported on first use).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import InputError, LocalModelMissing, QuorumNotMet
from ..models.retry import ProviderLimiter
from .compare import compare, extract_short_answers
from .events import EventSink
from .fanout import FanOut, Member
from .review import revise_answers, review_answers
from .synthesize import ChairOutcome, Decision, decide, run_chair
from .verdict import Agreement, Dissent, MemberAnswer, Review, UsageOut, Verdict

if TYPE_CHECKING:
    from .council import Council, Stopwatch

# name → "module:Class". The default strategy of `ask` is "council".
STRATEGIES: dict[str, str] = {
    "council": "manyminds.pipeline.strategies:CouncilStrategy",
    "deep": "manyminds.pipeline.strategies:DeepStrategy",
    "single": "manyminds.pipeline.baselines:SingleModel",
    "majority": "manyminds.pipeline.baselines:MajorityVote",
    "self-consistency": "manyminds.pipeline.baselines:SelfConsistency",
    "council-rank": "manyminds.pipeline.baselines:CouncilRank",
    "moa": "manyminds.pipeline.baselines:MixtureOfAgents",
    "debate": "manyminds.pipeline.baselines:Debate",
    "crosscheck": "manyminds.pipeline.crosscheck:CrossCheck",
}


@dataclass
class RunContext:
    """What every stage of one run needs: the question, the council, the run's id, the
    stopwatch (stage events and timings), the event sink, the shared provider limiter."""

    question: str
    council: "Council"
    run_id: str
    watch: "Stopwatch"
    emit: EventSink
    limiter: ProviderLimiter
    extra_usage: list[UsageOut] = field(default_factory=list)  # calls outside the member answers
    extra_costs: list[float | None] = field(default_factory=list)

    def fanout(self, stage: str = "fan_out") -> FanOut:
        s = self.council.settings
        return FanOut(timeout=s.timeout, retries=s.retries, limiter=self.limiter, emit=self.emit, run_id=self.run_id, stage=stage)

    def count(self, answers: list[MemberAnswer]) -> None:
        """Add the usage and cost of calls whose answers are not the final member answers
        (reviews, earlier debate rounds, samples) to the run's totals."""
        for a in answers:
            self.extra_usage.append(a.usage)
            self.extra_costs.append(a.cost_usd if a.ok else 0.0)

    def count_reviews(self, reviews: list[Review]) -> None:
        self.extra_usage.extend(r.usage for r in reviews)


class Strategy(ABC):
    """One way to turn a question into a verdict. Parameters are keyword arguments checked
    by `__init__`; unknown ones are an `InputError`."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    params: ClassVar[dict[str, Any]] = {}  # parameter → default

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            valid = ", ".join(sorted(self.params)) or "none"
            raise InputError(f"Strategy {self.name!r} has no parameter {', '.join(unknown)} (valid: {valid}).")
        self.options = {**self.params, **params}

    @abstractmethod
    async def run(self, ctx: RunContext) -> Verdict: ...

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **self.options}


def get_strategy(name: str, params: dict[str, Any] | None = None) -> Strategy:
    target = STRATEGIES.get(name)
    if target is None:
        raise InputError(f"Unknown strategy {name!r}. Valid strategies: {', '.join(sorted(STRATEGIES))}.")
    module, attr = target.split(":")
    cls = getattr(importlib.import_module(module), attr)
    return cls(**(params or {}))


# --- stages ------------------------------------------------------------------------------


async def gather_answers(ctx: RunContext, members: list[Member] | None = None, *, stage: str = "fan_out") -> list[MemberAnswer]:
    """Fan-out: every member answers concurrently. Raises `QuorumNotMet` (or
    `LocalModelMissing`, which nothing can retry) when too few answered."""
    members = members if members is not None else ctx.council.members
    with ctx.watch.stage(stage):
        answers = await ctx.fanout(stage).run(ctx.question, members)
    check_quorum(answers, min(ctx.council.settings.quorum, len(members)))
    return answers


def check_quorum(answers: list[MemberAnswer], quorum: int) -> None:
    ok = [a for a in answers if a.ok]
    if len(ok) >= quorum:
        return
    missing = next((a.error for a in answers if (a.error or {}).get("type") == "LocalModelMissing"), None)
    if missing:
        # Nothing to retry or wait for: say which package to install and how.
        raise LocalModelMissing(missing["model"], missing["package"], missing["command"])
    failures = {a.member: (a.error or {}).get("message", a.status) for a in answers if not a.ok}
    raise QuorumNotMet(len(ok), quorum, failures)


async def compare_answers(
    ctx: RunContext, answers: list[MemberAnswer], weights: dict[str, float] | None = None
) -> tuple[list[MemberAnswer], Agreement]:
    """Short answers, then the member × member agreement and clusters."""
    settings = ctx.council.settings
    models = {m.name: m.model for m in ctx.council.members}
    with ctx.watch.stage("compare") as stage:
        answers = await extract_short_answers(ctx.question, answers, models, mode=settings.short_answer)
        agreement = compare(answers, weights or ctx.council.weights, aliases=settings.answer_aliases, question=ctx.question)
        stage.data = {"clusters": len(agreement.clusters)}
    return answers, agreement


async def synthesize(
    ctx: RunContext, answers: list[MemberAnswer], agreement: Agreement, weights: dict[str, float] | None = None
) -> tuple[ChairOutcome, Decision]:
    """The chair writes the answer from the anonymised answers; `decide` ties it to a cluster."""
    settings, council = ctx.council.settings, ctx.council
    weights = weights or council.weights
    with ctx.watch.stage("synthesize") as stage:
        chair = await run_chair(
            ctx.question, answers, agreement, council.chair_name, council.chair_model,
            system=settings.chair_system, max_tokens=settings.chair_max_tokens,
            timeout=settings.timeout, seed=ctx.run_id, retries=settings.retries,
        )
        decision = decide(ctx.question, chair.text, answers, agreement, weights, aliases=settings.answer_aliases)
        stage.data = {"labels": chair.labels, "chair_status": chair.result.status}
    return chair, decision


def build_verdict(
    ctx: RunContext,
    strategy: str,
    answers: list[MemberAnswer],
    agreement: Agreement,
    chair: ChairOutcome | None,
    decision: Decision,
    **extra: Any,
) -> Verdict:
    """The verdict of a run: totals include the chair and every counted extra call."""
    chair_usage = chair.result.usage if chair else UsageOut()
    usage = total_usage([a.usage for a in answers] + [chair_usage] + ctx.extra_usage)
    costs = [a.cost_usd for a in answers if a.ok] + ctx.extra_costs
    if chair and chair.result.status == "ok":
        costs.append(chair.result.cost_usd)
    warnings = list(decision.warnings)
    if chair and chair.result.status == "failed":
        warnings.insert(0, f"Chair failed: {(chair.result.error or {}).get('message', '')}")
    return Verdict(
        run_id=ctx.run_id,
        question=ctx.question,
        council=ctx.council.name,
        answer=decision.answer,
        short_answer=decision.short_answer,
        confidence=decision.confidence,
        confidence_explanation=explain(decision.cluster, answers),
        agreement=agreement,
        dissent=decision.dissent,
        members=answers,
        chair=chair.result if chair else None,
        usage=usage,
        cost_usd=round(sum(costs), 6) if costs and all(c is not None for c in costs) else None,
        timings=dict(ctx.watch.timings),
        warnings=warnings,
        strategy=strategy,
        **extra,
    )


def total_usage(usages: list[UsageOut]) -> UsageOut:
    total = UsageOut()
    for u in usages:
        total.input_tokens += u.input_tokens
        total.output_tokens += u.output_tokens
    total.total_tokens = total.input_tokens + total.output_tokens
    return total


def explain(cluster, answers: list[MemberAnswer]) -> str:  # noqa: ANN001
    total = len(answers)
    if cluster is None:
        return (
            "The final answer matches no cluster of member answers; confidence is the "
            f"weighted share of the {total} members whose answer is equivalent to it."
        )
    return (
        f"{len(cluster.members)} of {total} members ({', '.join(cluster.members)}) gave an "
        f"equivalent answer; confidence is their weight over the weight of all {total} members, failed ones included."
    )


# --- the built-in strategies ---------------------------------------------------------------


class CouncilStrategy(Strategy):
    """fan-out → compare → synthesize: the default of `manyminds ask`.

    With `lead` (a member's name) no chair writes: the answer is that member's, and the others
    are shown agreeing or dissenting. This is what `eval fit-trust` makes the default when no
    council configuration was as accurate as the best single member: the answer is as accurate
    as that member alone, and the user still sees where the others disagree.
    """

    name = "council"
    summary = "Every member answers; answers are compared; a chair writes the verdict."
    params = {"lead": None}

    async def run(self, ctx: RunContext) -> Verdict:
        answers = await gather_answers(ctx)
        lead = self.options["lead"]
        if lead is not None:
            if lead not in {m.name for m in ctx.council.members}:
                names = ", ".join(m.name for m in ctx.council.members)
                raise InputError(f"The council has no member {lead!r} to lead (members: {names}).")
            answers, agreement = await compare_answers(ctx, answers)
            led = lead_decision(ctx, answers, agreement, lead)
            if led is not None:
                return build_verdict(ctx, self.name, answers, agreement, None, led)
            chair, decision = await synthesize(ctx, answers, agreement)
            decision.warnings.insert(0, f"The lead member {lead!r} did not answer; a chair wrote the verdict.")
            return build_verdict(ctx, self.name, answers, agreement, chair, decision)
        if prefers_claims(answers, ctx.question):  # paragraphs, not a name or a number: claim by claim
            from .crosscheck import claim_path

            return await claim_path(ctx, self.name, answers)
        answers, agreement = await compare_answers(ctx, answers)
        chair, decision = await synthesize(ctx, answers, agreement)
        return build_verdict(ctx, self.name, answers, agreement, chair, decision)


def lead_decision(ctx: RunContext, answers: list[MemberAnswer], agreement: Agreement, lead: str) -> Decision | None:
    """The lead member's answer as the verdict; confidence is the weight that agrees with it
    over the weight of all members. None when the lead did not answer."""
    own = next((a for a in answers if a.member == lead and a.ok), None)
    if own is None:
        return None
    weights = ctx.council.weights
    total = sum(weights.get(a.member, 1.0) for a in answers) or 1.0
    cluster = next((c for c in agreement.clusters if lead in c.members), None)
    support = cluster.weight if cluster else weights.get(lead, 1.0)
    dissent = [
        Dissent(answer=c.answer, members=c.members, share=round(c.weight / total, 4))
        for c in agreement.clusters
        if cluster is None or c.id != cluster.id
    ]
    warnings = [f"The answer is {lead}'s, the member that stored eval runs found most accurate for this council."]
    failed = [a.member for a in answers if not a.ok]
    if failed:
        warnings.append(f"{len(failed)} member(s) did not answer: {', '.join(failed)}.")
    short = cluster.answer if cluster else own.short_answer
    return Decision(own.text, short, round(min(1.0, support / total), 4), cluster, dissent, warnings)


def prefers_claims(answers: list[MemberAnswer], question: str) -> bool:
    """Whether the members' answers are long enough to compare claim by claim (crosscheck.py)."""
    from .crosscheck import prefers_claims as long_answers

    return long_answers(answers, question)


class DeepStrategy(Strategy):
    """fan-out → anonymous review → revision rounds → compare → synthesize.

    Revision rounds stop early once no member changes its short answer. Meant for the
    background tier: it costs several times a council run. With a `collection` (or `search`
    providers) it takes the claim path instead (crosscheck.py): claims, matrix, review,
    revision rounds on the contested claims, grounding in the sources, synthesis with citations.
    """

    name = "deep"
    summary = "Members answer, review each other anonymously and revise; a chair writes the verdict."
    params = {"rounds": 2, "collection": None, "search": None, "db": None}

    async def run(self, ctx: RunContext) -> Verdict:
        if self.options["collection"] or self.options["search"]:
            from .crosscheck import CrossCheck, claim_path

            o = self.options
            options = CrossCheck(review=True, rounds=int(o["rounds"]), collection=o["collection"], search=o["search"],
                                 db=o["db"]).path_options()
            options.sources.check()  # an unknown or empty collection fails before any model call
            return await claim_path(ctx, self.name, await gather_answers(ctx), options)
        answers = await gather_answers(ctx)
        reviews: list[Review] = []
        for round_no in range(1, int(self.options["rounds"]) + 1):
            with ctx.watch.stage(f"review_{round_no}") as stage:
                round_reviews = await review_answers(
                    ctx.fanout(), ctx.question, answers, ctx.council.members, seed=ctx.run_id, round_no=round_no
                )
                reviews += round_reviews
                ctx.count_reviews(round_reviews)
                stage.data = {"reviews": len(round_reviews)}
            before = await extract_short_answers(ctx.question, answers, {}, mode="heuristic")
            disputed = sorted({a.short_answer for a in before if a.ok and a.short_answer})
            with ctx.watch.stage(f"revise_{round_no}"):
                revised = await revise_answers(
                    ctx.fanout(), ctx.question, answers, ctx.council.members,
                    seed=ctx.run_id, round_no=round_no, disputed=disputed if len(disputed) > 1 else None,
                )
            ctx.count([a for a, r in zip(answers, revised) if r is not a])  # the superseded answers
            after = await extract_short_answers(ctx.question, revised, {}, mode="heuristic")
            changed = any((a.short_answer or "") != (b.short_answer or "") for a, b in zip(before, after))
            answers = revised
            if not changed:
                break
        answers, agreement = await compare_answers(ctx, answers)
        chair, decision = await synthesize(ctx, answers, agreement)
        return build_verdict(ctx, self.name, answers, agreement, chair, decision, reviews=reviews)
