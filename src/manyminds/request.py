"""A request to ask: the one type the Python API, the CLI, the server, the job queue and the MCP
server build and pass on.

What is asked (the question), of whom (a named council, or ad-hoc model names), how (a strategy
and its parameters, the tier), and per-call overrides of the council's rules (timeout,
quorum). How the run is executed — the settings, the database, keys, the event sink, the run id
— is not part of it: keys never are (a request is stored with its job), and the rest belongs to
the caller. `min_confidence` asks for abstention below that confidence (calibration.py); `budget`
limits what the question may spend (budget.py). `check` normalises a request against the settings and refuses a bad one before
anything is stored; jobs store `model_dump()` and rebuild it with `model_validate`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .budget import Budget

if TYPE_CHECKING:
    from .config import Settings
    from .models.registry import Registry

Tier = Literal["quick", "deep"]
# How much work the question gets (strategies/tiers.py); `tier` above is only *when* it runs.
Effort = Literal["quick", "standard", "deep", "overnight", "auto"]


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: Any = Field(description="The question (or, with strategy 'verify', the text to check).")
    council: str | None = Field(default=None, description="A council from the settings (default: the default council).")
    models: list[str] | None = Field(default=None, description="Ask these models instead of a council.")
    strategy: str | None = Field(default=None, description="How the council works (default: 'council', or 'deep' for the deep tier).")
    params: dict[str, Any] | None = Field(default=None, description="The strategy's parameters.")
    timeout: float | None = Field(default=None, gt=0, description="Seconds per member call, overriding the council's.")
    quorum: int | None = Field(default=None, ge=1, description="Members that must answer, overriding the council's.")
    tier: Tier = Field(default="quick", description="quick: runs now; deep: a queued background job.")
    effort: Effort | None = Field(
        default=None,
        description="Effort tier: quick, standard, deep, overnight (always a queued job) or auto (the router picks). "
                    "Runs the strategy 'tier:EFFORT'; not with `strategy`.",
    )
    min_confidence: float | None = Field(
        default=None, gt=0, le=1,
        description="Below this confidence (calibrated, else raw) the verdict abstains: 'not sure' and the competing answers.",
    )
    no_memory: bool = Field(default=False, description="Ask without the personal memory (no memories in any prompt).")
    profile: str | None = Field(
        default=None, description="The memory profile to draw on (default: $MANYMINDS_PROFILE, else [memory] profile).",
    )

    budget: Budget | None = Field(
        default=None, description="Limits for this question: max_cost (USD), max_tokens, max_seconds; the run stops cleanly at one.",
    )

    def check(self, settings: "Settings", registry: "Registry | None" = None) -> "AskRequest":
        """The normalised request, or the `InputError` / `ConfigError` that refuses it: the
        question (as `run_council` checks it), the council or the model names (canonical, with
        suggestions for unknown ones), the strategy and its parameters, the quorum. Runs nothing."""
        from .errors import InputError
        from .models.registry import build_registry
        from .pipeline.council import validate_question
        from .strategies.base import get_strategy

        question = validate_question(self.question)
        budget = Budget.checked(self.budget)
        registry = registry or build_registry(settings)
        if self.models:
            models: list[str] | None = [registry.canonical(m) for m in self.models]  # UnknownModel, with suggestions
            members, council = len(models), None
        else:
            council, council_settings = settings.council(self.council)
            models, members = None, len(council_settings.members)
        if self.profile is not None:
            from .memory.store import check_profile

            check_profile(self.profile)
        from .strategies.tiers import check_effort

        effort = check_effort(self.effort)
        tier = "deep" if effort == "overnight" else self.tier  # overnight is a background job by nature
        if effort and self.strategy and self.strategy != f"tier:{effort}":
            raise InputError(f"Give an effort tier or a strategy, not both (effort {effort!r}, strategy {self.strategy!r}).")
        strategy = f"tier:{effort}" if effort else (self.strategy or ("deep" if self.tier == "deep" else "council"))
        get_strategy(strategy, self.params)  # unknown strategy or parameter: InputError
        if self.quorum is not None and self.quorum > members:
            raise InputError(f"A quorum of {self.quorum} is larger than the council's {members} members.")
        return self.model_copy(update={
            "question": question, "council": council, "models": models, "strategy": strategy, "params": self.params or None,
            "effort": effort, "tier": tier,
            "budget": budget,
        })
