"""Budgets per question (or per eval run): at most so many USD, tokens or seconds.

    Budget          what the caller asks for (`--max-cost`, `--max-tokens`, `--max-seconds`)
    BudgetTracker   what one run (or one eval run, shared by its questions) has spent so far
    Budgeted        the model wrapper (models/wrappers.py) that asks the tracker before every
                    call and charges it after, so members, the chair and side calls all count

The tracker of the running question is found through a context variable (`current`), set by
`run_council` for the length of the run: a council's models are wrapped once, and the same
wrapped model serves runs with and without a budget.

How a call is checked, before it is made:
- tokens: the prompt is estimated with the model's `count_tokens` (the same estimate as the
  context-window check); the call *reserves* that estimate plus its `max_tokens`, lowered to
  what the budget has left unreserved, so members answering at once cannot overspend together
  and those that finish are kept (cutting every stream when the total runs out would keep
  none). A call that cannot have its prompt and one output token is refused. A stream is also
  counted as it arrives and cut if it runs far past its `max_tokens` (a provider ignoring it).
- cost: the same reservation priced with the model's price (`prices.py`); a price that is
  unknown cannot be checked, so a cost budget refuses such a call (and `precheck` refuses the
  run before any call when a member's price is unknown).
- seconds: a call is refused once the deadline has passed, and one in flight is cut there.

A refused or cut call raises `BudgetExceeded`, a `ModelError`: the fan-out records that member
as failed, the chair and side stages degrade as they do for any failed call, and the run ends
with what it has — marked `budget_limited` in the verdict and the stored run.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .errors import InputError, ManymindsError, ModelError

if TYPE_CHECKING:
    from .models.base import Message, Model, ModelOptions, Usage

BudgetKind = Literal["cost", "tokens", "seconds"]
# What each budget is called on the command line (errors name the option the user typed).
OPTION = {"cost": "--max-cost", "tokens": "--max-tokens", "seconds": "--max-seconds"}
UNIT = {"cost": "USD", "tokens": "tokens", "seconds": "s"}


class Budget(BaseModel):
    """Limits for one question (or one eval run); None: no limit of that kind."""

    model_config = ConfigDict(extra="forbid", strict=True)  # "5" or 1.0 for max_tokens: a schema violation, refused
    max_cost: float | None = Field(default=None, gt=0, description="USD across every model call.")
    max_tokens: int | None = Field(default=None, gt=0, description="Input + output tokens across every model call.")
    max_seconds: float | None = Field(default=None, gt=0, description="Wall-clock seconds from the start of the run.")

    @classmethod
    def of(cls, max_cost: Any = None, max_tokens: Any = None, max_seconds: Any = None) -> "Budget | None":
        """The budget from loose values (API keywords), or None when none is set. A value
        that is not a positive number is an `InputError` naming the option."""
        values = {"cost": max_cost, "tokens": max_tokens, "seconds": max_seconds}
        for kind, value in values.items():
            if value is None:
                continue
            ok_type = (int,) if kind == "tokens" else (int, float)
            if isinstance(value, bool) or not isinstance(value, ok_type) or not value > 0:
                need = "a whole number of tokens" if kind == "tokens" else f"a number of {UNIT[kind]}"
                raise InputError(f"{OPTION[kind]} must be {need} greater than 0, not {value!r}.")
        if all(v is None for v in values.values()):
            return None
        return cls(max_cost=max_cost, max_tokens=max_tokens, max_seconds=max_seconds)

    @classmethod
    def checked(cls, value: Any) -> "Budget | None":
        """A budget given as a `Budget`, a dict (an unvalidated request) or None."""
        if value is None:
            return None
        if isinstance(value, Budget):
            return cls.of(value.max_cost, value.max_tokens, value.max_seconds)
        if isinstance(value, dict):
            unknown = set(value) - {"max_cost", "max_tokens", "max_seconds"}
            if unknown:
                raise InputError(f"Unknown budget field(s): {', '.join(sorted(unknown))} (max_cost, max_tokens, max_seconds).")
            return cls.of(value.get("max_cost"), value.get("max_tokens"), value.get("max_seconds"))
        raise InputError(f"A budget must be an object with max_cost, max_tokens, max_seconds, not {value!r}.")

    def describe(self) -> str:
        parts = []
        if self.max_cost is not None:
            parts.append(f"${self.max_cost:g}")
        if self.max_tokens is not None:
            parts.append(f"{self.max_tokens} tokens")
        if self.max_seconds is not None:
            parts.append(f"{self.max_seconds:g} s")
        return ", ".join(parts)


class BudgetExceeded(ModelError):
    """A call refused (or cut) because a budget ran out. Not retryable."""

    def __init__(self, kind: BudgetKind, cause: str, **kw: Any) -> None:
        super().__init__(cause, **kw)
        self.kind = kind

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "budget": self.kind}


class BudgetTooSmall(InputError):
    """The budget cannot pay for even one member's call: refused before any call."""


class BudgetLimited(ManymindsError):
    """The run stopped on a budget before enough members answered for a verdict."""

    exit_code = 3

    def __init__(self, report: dict[str, Any], reason: str) -> None:
        self.report = report
        super().__init__(f"{reason} {limit_sentence(report)}")

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "budget_limited": self.report}


current: contextvars.ContextVar["BudgetTracker | None"] = contextvars.ContextVar("manyminds_budget", default=None)


def cut_on_timeout(model: "Model", waited_s: float) -> "BudgetExceeded | None":
    """For a call whose own timeout just ran out: the budget error when the running question's
    budget kept it waiting for tokens until then (`BudgetTracker.cut_while_waiting`), else None
    (no budget, or a slow model)."""
    tracker = current.get()
    return tracker.cut_while_waiting(model, waited_s) if tracker is not None else None


def limit_sentence(report: dict[str, Any]) -> str:
    """"The 200-token budget (--max-tokens) ran out: 187 tokens, $0.0000, 3.1 s spent." """
    kind, limit = report["budget"], report["limit"]
    spent = report["spent"]
    cost = "cost unknown" if spent.get("cost_usd") is None else f"${spent['cost_usd']:.4f}"
    amount = {"cost": f"${limit:g}", "tokens": f"{limit}-token", "seconds": f"{limit:g}-second"}[kind]
    cut = f" Not answered or cut short: {', '.join(report['cut'])}." if report.get("cut") else ""
    return (f"The {amount} budget ({OPTION[kind]}) ran out: {spent['tokens']} tokens, {cost}, "
            f"{spent['seconds']:.1f} s spent.{cut}")


@dataclass
class Reservation:
    """What one call in flight holds of the budget (its prompt and its whole `max_tokens`), so
    concurrent calls cannot spend the same tokens twice."""

    model: Any
    prompt: int  # the prompt's estimated tokens
    allowance: int | None  # the max_tokens the call was made with
    tokens: int = 0  # held of the budget: prompt + allowance
    cost: float = 0.0
    streamed: int = 0  # estimated tokens of a stream's output so far


class _WouldFitLater(Exception):
    """Internal to `BudgetTracker.admit`: the call fits once reservations in flight are given back."""


class BudgetTracker:
    """What a run has spent against its `Budget`. One tracker may be shared by concurrent runs
    (an eval run's questions); it is used from one event loop, so no locks are needed."""

    def __init__(self, budget: Budget, *, clock: Any = time.monotonic) -> None:
        self.budget = budget
        self.clock = clock
        self.started = clock()
        self.tokens = 0
        self.cost = 0.0
        self.cost_unknown = False
        self.reserved_tokens = 0
        self.reserved_cost = 0.0
        self.hit: BudgetKind | None = None
        self.cut: list[str] = []
        self._freed = asyncio.Event()  # set whenever a reservation is given back (binds to a loop on first wait)
        # tasks cancelled (by their member's timeout, say) while waiting in `admit`: never called
        self._cancelled_waiting: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()

    # --- reading ------------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def seconds_left(self) -> float | None:
        if self.budget.max_seconds is None:
            return None
        return self.budget.max_seconds - self.elapsed

    def exhausted(self) -> BudgetKind | None:
        """Which budget has nothing left (for callers deciding whether to start more work)."""
        b = self.budget
        if b.max_seconds is not None and self.elapsed >= b.max_seconds:
            return "seconds"
        if b.max_tokens is not None and self.tokens >= b.max_tokens:
            return "tokens"
        if b.max_cost is not None and self.cost >= b.max_cost:
            return "cost"
        return None

    def report(self) -> dict[str, Any] | None:
        """None unless a budget was hit; else which, its limit, what was spent, what was cut."""
        if self.hit is None:
            return None
        limit = {"cost": self.budget.max_cost, "tokens": self.budget.max_tokens, "seconds": self.budget.max_seconds}[self.hit]
        return {
            "budget": self.hit, "limit": limit, "budget_set": self.budget.model_dump(exclude_none=True),
            "spent": {"tokens": self.tokens, "cost_usd": None if self.cost_unknown else round(self.cost, 6),
                      "seconds": round(self.elapsed, 3)},
            "cut": list(dict.fromkeys(self.cut)),
        }  # fmt: skip

    # --- before any call --------------------------------------------------------------------
    def precheck(self, question: str, members: list[Any], chair: "Model | None" = None) -> None:
        """Refuse, before any call, a budget too small for even one member (`BudgetTooSmall`).
        A member's call is estimated as its prompt (`Member.prompt_tokens`: the model's token
        count of the messages + 16) plus one output token."""
        b = self.budget
        estimates = [(m, m.prompt_tokens(question)) for m in members]
        if not estimates:
            return
        if b.max_tokens is not None:
            member, tokens = min(estimates, key=lambda e: e[1])
            if tokens + 1 > b.max_tokens:
                raise BudgetTooSmall(
                    f"--max-tokens {b.max_tokens} is too small for even one member: the smallest prompt (member "
                    f"{member.name!r}) is about {tokens} tokens (the model's token estimate of its messages + 16), "
                    f"and an answer needs at least one more. Allow at least {tokens + 1} tokens.")  # fmt: skip
        if b.max_cost is not None:
            from .models.base import Usage

            models = [m.model for m in members] + ([chair] if chair is not None else [])
            unknown = sorted({m.name for m in models if m.cost_usd(Usage(1, 1)) is None})
            if unknown:
                raise BudgetTooSmall(
                    f"--max-cost cannot be enforced: the price of {', '.join(unknown)} is unknown. Add it to "
                    "settings.toml as [prices.\"provider/model\"] input = …, output = … (USD per million tokens), "
                    "or drop --max-cost.")  # fmt: skip
            member, cost = min(((m, m.model.cost_usd(Usage(t, 1)) or 0.0) for m, t in estimates), key=lambda e: e[1])
            if cost > b.max_cost:
                raise BudgetTooSmall(
                    f"--max-cost {b.max_cost:g} is too small for even one member: the cheapest call (member "
                    f"{member.name!r}: its prompt and one output token at its price) costs about ${cost:.6f}.")  # fmt: skip

    # --- around each call -------------------------------------------------------------------
    def _refuse(self, kind: BudgetKind, cause: str, model: "Model") -> BudgetExceeded:
        self.hit = self.hit or kind
        self.cut.append(model.name)
        return BudgetExceeded(kind, cause, provider=model.provider, model=model.name)

    async def admit(self, model: "Model", messages: "list[Message]", options: "ModelOptions | None") -> tuple["ModelOptions", "Reservation"]:
        """`before_call`, but a call that does not fit only because calls in flight hold their
        whole `max_tokens` waits for them to finish and give back what they did not use (until
        the deadline, if one is set). Without this, a fan-out under a tight budget would cut
        every member after the first, though the first spent a tenth of what it held."""
        while True:
            try:
                return self.before_call(model, messages, options, wait_ok=True)
            except _WouldFitLater:
                pass
            self._freed.clear()
            left = self.seconds_left()
            try:
                async with asyncio.timeout(None if left is None else max(left, 0.0)):
                    await self._freed.wait()
            except TimeoutError:
                raise self.cut_at_deadline(model) from None
            except asyncio.CancelledError:
                if (task := asyncio.current_task()) is not None:
                    self._cancelled_waiting.add(task)
                raise

    def cut_while_waiting(self, model: "Model", waited_s: float) -> BudgetExceeded | None:
        """The budget error for a call whose task was cancelled while it waited in `admit` for
        tokens held by calls in flight (its member's timeout ran out first), else None: such a
        member was stopped by the budget, not by a slow model, and is recorded so."""
        task = asyncio.current_task()
        if task is None or task not in self._cancelled_waiting:
            return None
        self._cancelled_waiting.discard(task)
        return self._refuse("tokens", f"waited {waited_s:.1f} s, until its timeout, for budget tokens held by calls "
                            "in flight (--max-tokens); not called", model)  # fmt: skip

    def before_call(self, model: "Model", messages: "list[Message]", options: "ModelOptions | None",
                    *, wait_ok: bool = False) -> tuple["ModelOptions", "Reservation"]:  # fmt: skip
        """Check a call against what is left and reserve its share: its prompt and its whole
        `max_tokens` (lowered to what is left), so calls in flight together never promise the
        same tokens twice and the ones that finish are kept. Returns the options to call with
        and the reservation to `release` (or, for a cut stream, `spend_held`) when it ends."""
        from .models.base import ModelOptions, Usage

        b = self.budget
        options = options or ModelOptions()
        left_s = self.seconds_left()
        if left_s is not None and left_s <= 0:
            raise self._refuse("seconds", f"the {b.max_seconds:g}-second budget (--max-seconds) had run out; not called", model)
        prompt = sum(model.count_tokens(m.content) for m in messages) + 8  # + role and framing tokens
        max_out = options.max_tokens
        if b.max_tokens is not None:
            free = b.max_tokens - self.tokens - self.reserved_tokens
            if free < prompt + 1 and wait_ok and self.reserved_tokens and b.max_tokens - self.tokens >= prompt + 1:
                raise _WouldFitLater
            if free < prompt + 1:
                raise self._refuse("tokens", f"the {b.max_tokens}-token budget (--max-tokens) has {max(free, 0)} "
                                   f"tokens left, too few for this prompt of about {prompt}; not called", model)  # fmt: skip
            max_out = min(max_out or free - prompt, free - prompt)
        if b.max_cost is not None:
            in_cost, out_one = model.cost_usd(Usage(prompt, 0)), model.cost_usd(Usage(0, 1))
            if in_cost is None or out_one is None:
                raise self._refuse("cost", f"the price of {model.name} is unknown, so the ${b.max_cost:g} budget "
                                   "(--max-cost) cannot cover it; not called", model)  # fmt: skip
            free_cost = b.max_cost - self.cost - self.reserved_cost
            if (free_cost < in_cost + out_one and wait_ok and self.reserved_cost
                    and b.max_cost - self.cost >= in_cost + out_one):
                raise _WouldFitLater
            if free_cost < in_cost + out_one:
                raise self._refuse("cost", f"the ${b.max_cost:g} budget (--max-cost) has ${max(free_cost, 0):.6f} left, "
                                   f"too little for this prompt (about ${in_cost + out_one:.6f}); not called", model)  # fmt: skip
            if out_one > 0:
                affordable = int((free_cost - in_cost) / out_one)
                max_out = min(max_out or affordable, affordable)
        if max_out is not None and max_out != options.max_tokens:
            options = options.model_copy(update={"max_tokens": max(1, max_out)})
        reservation = Reservation(model, prompt, options.max_tokens)
        if b.max_tokens is not None or b.max_cost is not None:
            reservation.tokens = prompt + (options.max_tokens or 0)
            reservation.cost = (model.cost_usd(Usage(prompt, options.max_tokens or 0)) or 0.0) if b.max_cost is not None else 0.0
            self.reserved_tokens += reservation.tokens
            self.reserved_cost += reservation.cost
        return options, reservation

    def grow(self, reservation: "Reservation", text: str) -> None:
        """A stream's output grew by `text`. The provider was asked for at most the reserved
        `max_tokens`; one that sends far more (estimated: twice that, + 16) is cut here."""
        if not text or reservation.allowance is None:
            return
        reservation.streamed += reservation.model.count_tokens(text)
        if reservation.streamed > 2 * reservation.allowance + 16:
            kind: BudgetKind = "tokens" if self.budget.max_tokens is not None else "cost"
            raise self._refuse(kind, f"cut: the answer ran past the {reservation.allowance} tokens its budget allowed",
                               reservation.model)  # fmt: skip

    def spend_held(self, reservation: "Reservation") -> None:
        """A stream that failed or was cut after some output: the provider bills what it
        sent, which only our estimate knows — count the prompt and that estimate as spent."""
        from .models.base import Usage

        usage = Usage(reservation.prompt, reservation.streamed)
        self.tokens += usage.total_tokens
        cost = reservation.model.cost_usd(usage)
        if cost is None:
            self.cost_unknown = True
        else:
            self.cost += cost
        self.release(reservation)

    def release(self, reservation: "Reservation") -> None:
        self.reserved_tokens -= reservation.tokens
        self.reserved_cost -= reservation.cost
        reservation.tokens, reservation.cost = 0, 0.0
        self._freed.set()  # waiting calls look again (after the caller's charge: same tick)

    def charge(self, model: "Model", usage: "Usage") -> None:
        """Add a finished call's usage (and cost; unknown stays unknown, never 0)."""
        self.tokens += usage.total_tokens
        cost = model.cost_usd(usage)
        if cost is None:
            self.cost_unknown = self.cost_unknown or usage.total_tokens > 0
        else:
            self.cost += cost

    def cut_at_deadline(self, model: "Model") -> BudgetExceeded:
        return self._refuse("seconds", f"cut at the {self.budget.max_seconds:g}-second budget (--max-seconds)", model)


__all__ = ["Budget", "BudgetExceeded", "BudgetLimited", "BudgetTooSmall", "BudgetTracker", "current", "limit_sentence"]
