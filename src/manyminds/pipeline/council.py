"""The council strategy: fan-out → compare → synthesize, stored as it goes.

`run_council` is the one path from a question to a `Verdict`. The CLI, the Python API and (later)
the server call it; they differ only in how they show the events it emits.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..config import CouncilSettings, MemberSettings
from ..errors import InputError, LocalModelMissing, ManymindsError, QuorumNotMet
from ..models.base import Model
from ..models.registry import Registry
from ..models.retry import ProviderLimiter
from .compare import compare, extract_short_answers
from .events import Event, EventSink, fan_events, ignore_event
from .fanout import FanOut, Member, check_context
from .synthesize import decide, run_chair
from .verdict import MemberAnswer, UsageOut, Verdict

MAX_QUESTION_CHARS = 100_000


def validate_question(question: str) -> str:
    if not isinstance(question, str):
        raise InputError(f"The question must be text, not {type(question).__name__}.")
    if not question.strip():
        raise InputError("The question is empty. Ask something, e.g. manyminds ask \"Who wrote Hamlet?\"")
    if len(question) > MAX_QUESTION_CHARS:
        raise InputError(
            f"The question is {len(question):,} characters long; the limit is {MAX_QUESTION_CHARS:,}."
        )
    if "\x00" in question:
        raise InputError("The question contains a NUL character.")
    return question.strip()


@dataclass
class Council:
    """A resolved council: members with their models, the chair, and the rules."""

    name: str
    settings: CouncilSettings
    members: list[Member]
    chair_name: str
    chair_model: Model
    _extra_models: list[Model] = field(default_factory=list)

    @classmethod
    def build(
        cls, name: str, settings: CouncilSettings, registry: Registry, keys: dict[str, str] | None = None
    ) -> "Council":
        """Resolve every member's model. `keys` maps provider → API key and wins over the
        environment and the key file."""
        keys = keys or {}

        def model_for(ref: str) -> Model:
            provider, _ = registry.split(ref)
            return registry.get_model(ref, key=keys.get(provider))

        members = []
        for ms in settings.members:
            model = model_for(ms.model)
            spec = registry.providers[model.provider]
            cap = min(spec.max_concurrency, settings.max_concurrency_per_provider)
            members.append(Member(settings=ms, model=model, max_concurrency=cap))
        chair_ref = settings.chair or settings.members[0].name
        seat = next((m for m in members if m.name == chair_ref), None)
        if seat is not None:
            chair_name, chair_model, extra = seat.name, seat.model, []
        else:
            chair_model = model_for(chair_ref)
            chair_name, extra = f"chair ({chair_model.name})", [chair_model]
        return cls(name, settings, members, chair_name, chair_model, extra)

    @classmethod
    def from_models(
        cls, names: list[str], registry: Registry, base: CouncilSettings | None = None, keys: dict[str, str] | None = None
    ) -> "Council":
        """An ad-hoc council from model names (`manyminds ask -m A -m B`)."""
        seen: dict[str, int] = {}
        members = []
        for raw in names:
            canonical = registry.canonical(raw)
            seen[canonical] = seen.get(canonical, 0) + 1
            label = canonical if seen[canonical] == 1 else f"{canonical}#{seen[canonical]}"
            members.append(MemberSettings(name=label, model=canonical, temperature=0.0, max_tokens=400))
        template = base or CouncilSettings(members=members)
        settings = template.model_copy(
            update={"members": members, "chair": members[0].name, "quorum": min(template.quorum, len(members))}
        )
        return cls.build("ad-hoc", settings, registry, keys)

    @property
    def weights(self) -> dict[str, float]:
        return {m.name: m.weight for m in self.members}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "members": [
                {"name": m.name, "model": m.model.name, **m.settings.model_dump(exclude={"name", "model"}, exclude_none=True)}
                for m in self.members
            ],
            "chair": {"member": self.chair_name, "model": self.chair_model.name},
            "quorum": self.settings.quorum,
            "timeout": self.settings.timeout,
            "retries": self.settings.retries,
        }

    async def aclose(self) -> None:
        for model in [m.model for m in self.members] + self._extra_models:
            await model.aclose()


class NullRecorder:
    """Used with `store=False`: same calls, nothing written."""

    def start(self, question: str, council: str, **_: Any) -> str:
        from ..store import new_ulid

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


async def run_council(
    question: str,
    council: Council,
    *,
    recorder: Any = None,
    emit: EventSink = ignore_event,
    limiter: ProviderLimiter | None = None,
) -> Verdict:
    """Ask the council one question. Raises `InputError`, `QuorumNotMet`, …; the run is stored
    (as failed or incomplete) before any error leaves this function."""
    recorder = recorder or NullRecorder()
    started = time.perf_counter()
    created_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    run_id = recorder.start(
        question if isinstance(question, str) else repr(question),
        council.name,
        members=[m.name for m in council.members],
        settings_snapshot=council.describe(),
    )
    sink = fan_events(recorder.sink, emit)
    sink(Event("run_started", run_id=run_id, data={"question": question, "council": council.describe()}))
    watch = Stopwatch(run_id, sink)
    try:
        question = validate_question(question)
        check_context(question, council.members)
        verdict = await _pipeline(question, council, run_id, watch, sink, limiter or ProviderLimiter())
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


async def _pipeline(
    question: str, council: Council, run_id: str, watch: Stopwatch, emit: EventSink, limiter: ProviderLimiter
) -> Verdict:
    settings = council.settings
    with watch.stage("fan_out"):
        fan = FanOut(timeout=settings.timeout, retries=settings.retries, limiter=limiter, emit=emit, run_id=run_id)
        answers = await fan.run(question, council.members)

    ok = [a for a in answers if a.ok]
    if len(ok) < settings.quorum:
        missing = next((a.error for a in answers if (a.error or {}).get("type") == "LocalModelMissing"), None)
        if missing:
            # Nothing to retry or wait for: say which package to install and how.
            raise LocalModelMissing(missing["model"], missing["package"], missing["command"])
        failures = {a.member: (a.error or {}).get("message", a.status) for a in answers if not a.ok}
        raise QuorumNotMet(len(ok), settings.quorum, failures)

    models = {m.name: m.model for m in council.members}
    with watch.stage("compare") as stage:
        answers = await extract_short_answers(question, answers, models, mode=settings.short_answer)
        agreement = compare(answers, council.weights, aliases=settings.answer_aliases, question=question)
        stage.data = {"clusters": len(agreement.clusters)}

    with watch.stage("synthesize") as stage:
        chair = await run_chair(
            question,
            answers,
            agreement,
            council.chair_name,
            council.chair_model,
            system=settings.chair_system,
            max_tokens=settings.chair_max_tokens,
            timeout=settings.timeout,
            seed=run_id,
            retries=settings.retries,
        )
        decision = decide(question, chair.text, answers, agreement, council.weights, aliases=settings.answer_aliases)
        stage.data = {"labels": chair.labels, "chair_status": chair.result.status}

    usage = _total_usage(answers, chair.result.usage)
    costs = [a.cost_usd for a in answers if a.ok] + ([chair.result.cost_usd] if chair.result.status == "ok" else [])
    warnings = decision.warnings
    if chair.result.status == "failed":
        warnings.insert(0, f"Chair failed: {(chair.result.error or {}).get('message', '')}")
    return Verdict(
        run_id=run_id,
        question=question,
        council=council.name,
        answer=decision.answer,
        short_answer=decision.short_answer,
        confidence=decision.confidence,
        confidence_explanation=_explain(decision.cluster, answers),
        agreement=agreement,
        dissent=decision.dissent,
        members=answers,
        chair=chair.result,
        usage=usage,
        cost_usd=round(sum(costs), 6) if costs and all(c is not None for c in costs) else None,
        timings=dict(watch.timings),
        warnings=warnings,
    )


def _total_usage(answers: list[MemberAnswer], chair: UsageOut) -> UsageOut:
    total = UsageOut()
    for u in [a.usage for a in answers] + [chair]:
        total.input_tokens += u.input_tokens
        total.output_tokens += u.output_tokens
    total.total_tokens = total.input_tokens + total.output_tokens
    return total


def _explain(cluster, answers: list[MemberAnswer]) -> str:  # noqa: ANN001
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
