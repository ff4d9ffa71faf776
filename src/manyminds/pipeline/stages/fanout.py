"""Fan-out: every member answers the question concurrently, streaming as it goes.

One loop serves every strategy. Each member call is bounded by the member's timeout (which
covers its retries); the retries on 429 / 5xx / dropped connections and the per-provider
concurrency cap are the council's model wrappers' (models/wrappers.py), which this stage
observes to report each retry and count attempts. A member that fails is recorded with its
cause; whether the run can go on is the caller's decision (the quorum).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ... import budget
from ...config import MemberSettings
from ...errors import ContextTooLong, LocalModelMissing, ManymindsError, ModelError, ModelTimeout, QuorumNotMet
from ...models.base import Completion, Message, Model, ModelOptions, Timer
from ...models.wrappers import CallObserver, observe
from ..events import Event, EventSink, ignore_event
from ..verdict import MemberAnswer, UsageOut
from .signals import answer_signals, with_confidence_request

if TYPE_CHECKING:
    from ..run import RunContext
    from .consensus import Settled

    Settle = Callable[[list[MemberAnswer], list["Member"]], Settled | None]


@dataclass
class Member:
    """A council seat: the settings plus the model that fills it."""

    settings: MemberSettings
    model: Model
    max_concurrency: int = 8
    # Quoted data put before the question in this member's own answer call (the personal
    # memory, memory/context.py); None for members that may not receive it.
    context: str | None = None
    role: Any = None  # the member's roles.Role, if it has one (its prompt is already in settings.system)

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def weight(self) -> float:
        return self.settings.weight

    def messages(self, question: str) -> list[Message]:
        out = []
        if self.settings.system:
            out.append(Message(role="system", content=self.settings.system))
        content = with_confidence_request(question) if self.settings.ask_confidence else question
        if self.context:
            content = f"{self.context}\n\nQuestion: {content}"
        out.append(Message(role="user", content=content))
        return out

    def options(self) -> ModelOptions:
        s = self.settings
        # Token logprobs are always asked for a member's answer: they are its cheapest signal,
        # and a provider that has none ignores the request.
        return ModelOptions(temperature=s.temperature, max_tokens=s.max_tokens, top_p=s.top_p, seed=s.seed, logprobs=True)

    def prompt_tokens(self, question: str) -> int:
        return sum(self.model.count_tokens(m.content) for m in self.messages(question)) + 16


def check_context(question: str, members: list[Member]) -> None:
    """Refuse, before any call, a question that does not fit a member's context window."""
    for member in members:
        limit = member.model.context_window
        if not limit:
            continue
        needed = member.prompt_tokens(question) + (member.settings.max_tokens or 0)
        if needed > limit:
            raise ContextTooLong(member.name, member.model.name, needed, limit)


def usage_out(completion: Completion | None) -> UsageOut:
    if completion is None:
        return UsageOut()
    return UsageOut(**completion.usage.to_dict())


@dataclass
class FanOut:
    timeout: float
    emit: EventSink = ignore_event
    run_id: str = ""
    stage: str = "fan_out"
    settled: "Settled | None" = None  # set by `run` when early consensus cut members

    async def run(self, question: str, members: list[Member], settle: "Settle | None" = None) -> list[MemberAnswer]:
        """Every member's answer, in member order. With `settle` (early consensus), after each
        answer arrives `settle(answers so far, members still answering)` may return a
        `Settled`: the members still answering are then cancelled and returned with status
        "cut" (not failed), each announced by a `member_cut` event."""
        if settle is None or len(members) < 2:
            return list(await asyncio.gather(*(self.one(question, m) for m in members)))
        timer = Timer()
        tasks = {asyncio.create_task(self.one(question, m)): m for m in members}
        got: dict[str, MemberAnswer] = {}
        pending = set(tasks)
        try:
            while pending:
                finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    got[tasks[task].name] = task.result()
                if pending:
                    done = [got[m.name] for m in members if m.name in got]
                    outcome = settle(done, [tasks[t] for t in pending])
                    if outcome is not None:
                        self.settled = outcome
                        break
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        for task in pending:
            member = tasks[task]
            cut = MemberAnswer(member=member.name, model=member.model.name, status="cut", latency_s=round(timer.elapsed, 4))
            self.emit(Event("member_cut", run_id=self.run_id, stage=self.stage, member=member.name,
                            data={"answer": cut.model_dump(), "reason": outcome.reason()}))
            got[member.name] = cut
        return [got[m.name] for m in members]

    async def one(
        self,
        question: str,
        member: Member,
        messages: list[Message] | None = None,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> MemberAnswer:
        """One member's call. Later stages (reviews, revisions, samples) pass their own
        `messages` and may need a larger `max_tokens` or another `temperature` than the seat's.
        Only the member's own messages carry the confidence request, so only then is the
        answer's last line read as a confidence."""
        asked_confidence = messages is None and member.settings.ask_confidence
        messages = messages or member.messages(question)
        options = member.options()
        if max_tokens is not None:
            options = options.model_copy(update={"max_tokens": max_tokens})
        if temperature is not None:
            options = options.model_copy(update={"temperature": temperature})
        timeout = member.settings.timeout or self.timeout
        model = member.model
        timer = Timer()

        def emit(kind: str, **data) -> None:  # noqa: ANN003
            self.emit(Event(kind, run_id=self.run_id, stage=self.stage, member=member.name, data=data))

        async def call() -> Completion:
            completion: Completion | None = None
            async for chunk in model.stream(messages, options):
                if chunk.delta:
                    emit("member_delta", text=chunk.delta)
                if chunk.completion is not None:
                    completion = chunk.completion
            if completion is None:
                raise ModelError("the stream ended without a final completion", provider=model.provider, model=model.name)
            return completion

        def on_retry(attempt_no: int, err: ModelError, delay: float) -> None:
            # Front ends drop the text streamed so far: the next attempt starts afresh.
            emit("member_retry", attempt=attempt_no, cause=err.cause, delay_s=round(delay, 3))

        emit("member_started", model=model.name)
        observer = CallObserver()  # attempts are counted by the council's Retrying wrapper
        try:
            with observe(on_retry) as observer:
                async with asyncio.timeout(timeout):
                    completion = await call()
        except TimeoutError:
            if (cut := budget.cut_on_timeout(model, timer.elapsed)) is not None:
                return self._failed(member, cut, "failed", max(1, observer.attempts), timer.elapsed, emit)
            err = ModelTimeout(f"no complete answer within {timeout:g} s", provider=model.provider, model=model.name)
            return self._failed(member, err, "timeout", max(1, observer.attempts), timer.elapsed, emit)
        except ModelError as err:
            return self._failed(member, err, "failed", max(1, observer.attempts), timer.elapsed, emit)
        except ManymindsError as err:  # e.g. a local model package that is missing
            wrapped = ModelError(str(err), provider=model.provider, model=model.name)
            return self._failed(member, wrapped, "failed", max(1, observer.attempts), timer.elapsed, emit, origin=err)
        except Exception as err:  # noqa: BLE001 - a faulty provider plugin fails its member, not the run
            wrapped = ModelError(f"{type(err).__name__}: {err}", provider=model.provider, model=model.name)
            return self._failed(member, wrapped, "failed", max(1, observer.attempts), timer.elapsed, emit)

        text, signals = answer_signals(completion, asked_confidence=asked_confidence)
        answer = MemberAnswer(
            member=member.name,
            model=model.name,
            status="ok",
            text=text,
            signals=signals,
            finish_reason=completion.finish_reason,
            usage=usage_out(completion),
            latency_s=round(timer.elapsed, 4),
            cost_usd=model.cost_usd(completion.usage),
            attempts=max(1, observer.attempts),
        )
        if not answer.text:
            err = ModelError("the model returned an empty answer", provider=model.provider, model=model.name)
            return self._failed(member, err, "failed", max(1, observer.attempts), timer.elapsed, emit, usage=answer.usage)
        emit("member_done", answer=answer.model_dump())
        return answer

    def _failed(self, member, err, status, attempts, elapsed, emit, usage=None, origin=None) -> MemberAnswer:  # noqa: ANN001
        err.with_member(member.name)
        error = err.to_dict()
        if origin is not None:  # keep what the original error knows (e.g. the install command)
            error = {**origin.to_dict(), **{k: v for k, v in error.items() if k != "type"}}
        answer = MemberAnswer(
            member=member.name,
            model=member.model.name,
            status=status,
            error=error,
            usage=usage or UsageOut(),
            latency_s=round(elapsed, 4),
            attempts=max(attempts, 1),
        )
        emit("member_failed", answer=answer.model_dump())
        return answer


async def gather_answers(
    ctx: "RunContext", members: list[Member] | None = None, *, stage: str = "fan_out", early: bool = False,
) -> list[MemberAnswer]:
    """The stage: every member answers concurrently. Raises `QuorumNotMet` (or
    `LocalModelMissing`, which nothing can retry) when too few answered.

    With `early` (the quick tier), the stage stops waiting once the weighted vote's winner can
    no longer change (consensus.py): the members still answering are cancelled and come back
    with status "cut"; `ctx.settled` says why, and the stage_done event lists them."""
    from .consensus import settled

    members = members if members is not None else ctx.council.members
    quorum = min(ctx.council.settings.quorum, len(members))
    weights = {m.name: m.weight for m in members}
    aliases = ctx.council.settings.answer_aliases

    def settle(done: list[MemberAnswer], pending: list[Member]) -> "Settled | None":
        return settled(ctx.question, done, [(m.name, m.weight) for m in pending], weights, quorum=quorum, aliases=aliases)

    fanout = ctx.fanout(stage)
    with ctx.watch.stage(stage) as st:
        answers = await fanout.run(ctx.question, members, settle if early else None)
        if fanout.settled is not None:
            ctx.settled = fanout.settled
            st.data = {"cut": fanout.settled.pending, "early_consensus": fanout.settled.reason()}
    specialists = getattr(ctx, "specialists", None)  # pipeline/specialists.py: roles' rules and critics
    if specialists is not None:
        answers = specialists.screen(answers)
    check_quorum(answers, quorum)
    if specialists is not None and stage == "fan_out":
        await specialists.critique(ctx, answers)
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
