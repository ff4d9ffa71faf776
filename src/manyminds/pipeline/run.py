"""The lifecycle of one run: `run_council`, the `RunContext` every stage receives, and the
verdict it assembles.

`run_council` is the one path from a question to a `Verdict`, whatever the strategy
(strategies/ composes the stages in pipeline/stages/). The CLI, the Python API, the eval
harness, the job worker and the server call it; they differ only in how they show the events
it emits. The run is recorded through a `Recorder` as it goes: started first, every event,
then finished, failed or marked incomplete — before any error leaves `run_council`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..budget import Budget, BudgetLimited, BudgetTracker, limit_sentence
from ..budget import current as current_budget
from ..errors import ManymindsError, QuorumNotMet
from ..models.base import Usage
from .council import Council, validate_question
from .events import Event, EventSink, fan_events, ignore_event
from .specialists import SpecialistPlan, plan_specialists
from .stages.fanout import FanOut, check_context
from .verdict import MemberAnswer, Review, UsageOut, Verdict

if TYPE_CHECKING:
    from ..strategies.base import Strategy
    from .stages.synthesize import ChairOutcome, Decision
    from .verdict import Agreement


@runtime_checkable
class Recorder(Protocol):
    """Where a run is written as it happens. `store.RunRecorder` writes SQLite; `NullRecorder`
    (`store=False`) writes nothing. `start` returns the run's id (the one given, or a new ULID)."""

    def start(
        self, question: str, council: str, *, members: list[str], settings_snapshot: dict[str, Any],
        strategy: str | None = None, run_id: str | None = None,
    ) -> str: ...

    def sink(self, event: Event) -> None: ...

    def finish(self, run_id: str, verdict: Verdict) -> None: ...

    def fail(self, run_id: str, error: dict, status: str = "failed") -> None: ...

    def mark_incomplete(self, run_id: str, reason: str) -> None: ...


class NullRecorder:
    """Used with `store=False`: same calls, nothing written."""

    def start(self, question: str, council: str, **_: Any) -> str:
        from ..ids import new_ulid

        return new_ulid()

    def sink(self, event: Event) -> None:
        pass

    def finish(self, run_id: str, verdict: Verdict) -> None:
        pass

    def fail(self, run_id: str, error: dict, status: str = "failed") -> None:
        pass

    def mark_incomplete(self, run_id: str, reason: str) -> None:
        pass


class Stopwatch:
    """Times each stage and announces its start and end as events (the recorder listens)."""

    def __init__(self, run_id: str, emit: EventSink) -> None:
        self.run_id, self.emit = run_id, emit
        self.timings: dict[str, float] = {}

    def stage(self, name: str) -> "_Stage":
        return _Stage(self, name)


class _Stage:
    def __init__(self, watch: Stopwatch, name: str) -> None:
        self.watch, self.name, self.data = watch, name, {}

    def __enter__(self) -> "_Stage":
        self.start = time.perf_counter()
        self.watch.emit(Event("stage_started", run_id=self.watch.run_id, stage=self.name))
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        seconds = round(time.perf_counter() - self.start, 4)
        self.watch.timings[self.name] = seconds
        if exc_type is None:
            self.watch.emit(
                Event("stage_done", run_id=self.watch.run_id, stage=self.name, data={"seconds": seconds, **self.data})
            )


@dataclass
class RunContext:
    """What every stage of one run needs: the question, the council (whose models carry the
    retries and the per-provider cap), the run's id, the stopwatch (stage events and timings)
    and the event sink."""

    question: str
    council: Council
    run_id: str
    watch: Stopwatch
    emit: EventSink
    extra_usage: list[UsageOut] = field(default_factory=list)  # calls outside the member answers
    extra_costs: list[float | None] = field(default_factory=list)
    specialists: SpecialistPlan | None = None  # roles: routing, refusal rules, critics (specialists.py)
    settled: Any = None  # consensus.Settled when the fan-out stopped early (the quick tier)
    # What the run may still spend (budget.py); the council's `Budgeted` wrapper charges it.
    budget: BudgetTracker | None = None

    def fanout(self, stage: str = "fan_out") -> FanOut:
        return FanOut(timeout=self.council.settings.timeout, emit=self.emit, run_id=self.run_id, stage=stage)

    def count(self, answers: list[MemberAnswer]) -> None:
        """Add the usage and cost of calls whose answers are not the final member answers
        (reviews, earlier debate rounds, samples) to the run's totals."""
        for a in answers:
            self.extra_usage.append(a.usage)
            self.extra_costs.append(a.cost_usd if a.ok else 0.0)

    def count_reviews(self, reviews: list[Review]) -> None:
        self.extra_usage.extend(r.usage for r in reviews)

    def count_call(self, model: Any, usage: UsageOut) -> None:
        """A side call of a stage (claim extraction, pair judging, grounding): its tokens, and
        its cost when the model's price is known, into the run's totals."""
        if not usage.total_tokens:
            return
        self.extra_usage.append(usage)
        self.extra_costs.append(model.cost_usd(Usage(usage.input_tokens, usage.output_tokens)) if model is not None else None)


def build_verdict(
    ctx: RunContext,
    strategy: str,
    answers: list[MemberAnswer],
    agreement: "Agreement",
    chair: "ChairOutcome | None",
    decision: "Decision",
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
        **({"explanation": decision.explanation} if decision.explanation is not None else {}),
        **extra,
    )


async def _run_within_budget(chosen: "Strategy", ctx: RunContext) -> Verdict:
    """The strategy's run with the budget tracker current (so every wrapped model call is
    checked and charged); a budget that stopped the run is written into the verdict, or turns
    a missed quorum into `BudgetLimited`."""
    tracker = ctx.budget
    if tracker is None:
        return await chosen.run(ctx)
    token = current_budget.set(tracker)
    try:
        verdict = await chosen.run(ctx)
    except QuorumNotMet as exc:
        if tracker.hit is None:
            raise
        raise BudgetLimited(tracker.report() or {}, f"The run stopped on its budget before the quorum was met "
                            f"({exc.answered} of {exc.quorum} members answered).") from exc  # fmt: skip
    finally:
        current_budget.reset(token)
    report = tracker.report()
    if report is not None:
        verdict.budget_limited = report
        verdict.warnings.insert(0, f"Budget-limited: the verdict is built from what was done in budget. {limit_sentence(report)}")
    return verdict


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


async def run_council(
    question: str,
    council: Council,
    *,
    strategy: "str | Strategy" = "council",
    params: dict[str, Any] | None = None,
    recorder: Recorder | None = None,
    emit: EventSink = ignore_event,
    run_id: str | None = None,
    budget: Budget | BudgetTracker | None = None,
) -> Verdict:
    """Ask the council one question with a strategy (default: the council's fan-out → compare
    → synthesize). Raises `InputError`, `QuorumNotMet`, …; the run is stored (as failed or
    incomplete) before any error leaves this function. `run_id` fixes the run's id in advance
    (a ULID), for callers that hand it out before the run ends. `budget` limits what the run
    may spend (a `BudgetTracker` is shared with other runs, e.g. an eval run's): a run that hits
    it ends with what it has, its verdict marked `budget_limited`, or raises `BudgetLimited`
    when too few members answered."""
    from ..guardrails import check_question
    from ..strategies.base import get_strategy

    recorder = recorder or NullRecorder()
    tracker = budget if isinstance(budget, BudgetTracker) else (BudgetTracker(budget) if budget is not None else None)
    started = time.perf_counter()
    created_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    strategy_name = strategy if isinstance(strategy, str) else strategy.name
    run_id = recorder.start(
        question if isinstance(question, str) else repr(question),
        council.name,
        members=[m.name for m in council.members],
        settings_snapshot={**council.describe(), **({"budget": tracker.budget.model_dump(exclude_none=True)} if tracker else {})},
        strategy=strategy_name,
        run_id=run_id,
    )
    sink = fan_events(recorder.sink, emit)
    sink(Event("run_started", run_id=run_id, data={"question": question, "council": council.describe()}))
    watch = Stopwatch(run_id, sink)
    try:
        chosen = get_strategy(strategy, params) if isinstance(strategy, str) else strategy
        question = validate_question(question)
        guard_notes = check_question(council.settings.guardrails, question)  # QuestionRefused: stored as failed
        plan = plan_specialists(council, question)  # who may answer: specialists out of their domain are skipped
        asked = plan.council if plan is not None else council
        check_context(question, asked.members)
        if tracker is not None:
            tracker.precheck(question, asked.members, asked.chair_model)
        ctx = RunContext(question, asked, run_id, watch, sink, specialists=plan, budget=tracker)
        verdict = await _run_within_budget(chosen, ctx)
        if plan is not None:
            plan.finish(verdict)
        verdict.guardrails = guard_notes
        verdict.warnings[:0] = [f"Guardrail: {n.message}" for n in guard_notes]
        verdict.timings["total"] = round(time.perf_counter() - started, 4)
        verdict.created_at = created_at
        recorder.finish(run_id, verdict)
        sink(Event("verdict", run_id=run_id, data=verdict.model_dump()))
        return verdict
    except ManymindsError as exc:
        exc.run_id = run_id  # type: ignore[attr-defined] - the CLI and callers report it
        recorder.fail(run_id, exc.to_dict())
        sink(Event("run_failed", run_id=run_id, data=exc.to_dict()))
        raise
    except (asyncio.CancelledError, KeyboardInterrupt):
        recorder.mark_incomplete(run_id, "interrupted before the run finished")
        raise
    except Exception as exc:  # a bug, not bad input: still leave a record of what happened
        recorder.fail(run_id, {"type": type(exc).__name__, "message": str(exc)})
        raise
