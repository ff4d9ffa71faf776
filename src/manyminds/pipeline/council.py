"""A council (members, chair, rules) and the lifecycle of one run: stored as it goes.

`run_council` is the one path from a question to a `Verdict`, whatever the strategy
(strategies.py composes the stages). The CLI, the Python API, the eval harness and the server
call it; they differ only in how they show the events it emits.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..config import CouncilSettings, MemberSettings
from ..errors import InputError, ManymindsError
from ..models.base import Model
from ..models.registry import Registry
from ..models.retry import ProviderLimiter
from .events import Event, EventSink, fan_events, ignore_event
from .fanout import Member, check_context
from .strategies import RunContext, Strategy, get_strategy
from .verdict import Verdict

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


async def run_council(
    question: str,
    council: Council,
    *,
    strategy: str | Strategy = "council",
    params: dict[str, Any] | None = None,
    recorder: Any = None,
    emit: EventSink = ignore_event,
    limiter: ProviderLimiter | None = None,
    run_id: str | None = None,
) -> Verdict:
    """Ask the council one question with a strategy (default: the council's fan-out → compare
    → synthesize). Raises `InputError`, `QuorumNotMet`, …; the run is stored (as failed or
    incomplete) before any error leaves this function. `run_id` fixes the run's id in advance
    (a ULID), for callers that hand it out before the run ends."""
    recorder = recorder or NullRecorder()
    started = time.perf_counter()
    created_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    strategy_name = strategy if isinstance(strategy, str) else strategy.name
    run_id = recorder.start(
        question if isinstance(question, str) else repr(question),
        council.name,
        members=[m.name for m in council.members],
        settings_snapshot=council.describe(),
        strategy=strategy_name,
        run_id=run_id,
    )
    sink = fan_events(recorder.sink, emit)
    sink(Event("run_started", run_id=run_id, data={"question": question, "council": council.describe()}))
    watch = Stopwatch(run_id, sink)
    try:
        chosen = get_strategy(strategy, params) if isinstance(strategy, str) else strategy
        question = validate_question(question)
        check_context(question, council.members)
        ctx = RunContext(question, council, run_id, watch, sink, limiter or ProviderLimiter())
        verdict = await chosen.run(ctx)
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
