"""Strategies: compositions of the pipeline's stages, from a single model to the deep tier.

A strategy is a small class whose `run(ctx)` calls stage functions (pipeline/stages/) in
order — `gather_answers` (fan-out + quorum), `compare_answers`, `review_answers` /
`revise_answers`, `synthesize` — and assembles a `Verdict` with `build_verdict`
(pipeline/run.py). The run's lifecycle (the stored record, events, errors) belongs to
`run_council`, so every strategy is stored, streamed and failed the same way. The eval
harness's baselines are strategies too: one mechanism, no parallel copies.

The registry: the built-ins are named in `STRATEGIES` ("module:Class", imported on first
use); third-party packages add theirs through the entry-point group `manyminds.strategies`
(name = "package.module:Class"), exactly as providers plug in through `manyminds`. A built-in
name cannot be taken over by a plugin.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import InputError

if TYPE_CHECKING:
    from ..pipeline.run import RunContext
    from ..pipeline.verdict import Verdict

ENTRY_POINT_GROUP = "manyminds.strategies"

# name → "module:Class". The default strategy of `ask` is "council".
STRATEGIES: dict[str, str] = {
    "council": "manyminds.strategies.council:CouncilStrategy",
    "deep": "manyminds.strategies.deep:DeepStrategy",
    "single": "manyminds.strategies.baselines:SingleModel",
    "majority": "manyminds.strategies.baselines:MajorityVote",
    "self-consistency": "manyminds.strategies.baselines:SelfConsistency",
    "council-rank": "manyminds.strategies.baselines:CouncilRank",
    "moa": "manyminds.strategies.baselines:MixtureOfAgents",
    "debate": "manyminds.strategies.baselines:Debate",
    "crosscheck": "manyminds.strategies.crosscheck:CrossCheck",
    "verify": "manyminds.strategies.verify:VerifyStrategy",
    # Effort tiers (tiers.py): `manyminds ask --effort quick|standard|deep|overnight|auto`.
    "tier:quick": "manyminds.strategies.tiers:QuickTier",
    "tier:standard": "manyminds.strategies.tiers:StandardTier",
    "tier:deep": "manyminds.strategies.tiers:DeepTier",
    "tier:overnight": "manyminds.strategies.overnight:OvernightTier",
    "tier:auto": "manyminds.strategies.tiers:AutoTier",
}


class Strategy(ABC):
    """One way to turn a question into a verdict. Parameters are keyword arguments checked
    by `__init__`; unknown ones are an `InputError`. `stages` names the stages a run is
    expected to go through, in order (the job worker's progress estimate reads it; stages
    that repeat per round or per claim count once, so the estimate can jump forward, never
    back)."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    params: ClassVar[dict[str, Any]] = {}  # parameter → default
    stages: ClassVar[tuple[str, ...]] = ("fan_out", "compare", "synthesize")

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            valid = ", ".join(sorted(self.params)) or "none"
            raise InputError(f"Strategy {self.name!r} has no parameter {', '.join(unknown)} (valid: {valid}).")
        self.options = {**self.params, **params}

    @abstractmethod
    async def run(self, ctx: "RunContext") -> "Verdict": ...

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **self.options}

    def expected_stages(self) -> tuple[str, ...]:
        """The stages this configured strategy is expected to run (parameters may add some)."""
        return self.stages


_plugins: dict[str, str] | None = None


def plugin_strategies() -> dict[str, str]:
    """name → "module:Class" from the entry-point group, read once per process."""
    global _plugins
    if _plugins is None:
        from importlib.metadata import entry_points

        _plugins = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in STRATEGIES}
    return _plugins


def strategy_names() -> list[str]:
    """Every strategy a run may name: the built-ins, then the plugins'."""
    return list(STRATEGIES) + sorted(plugin_strategies())


def strategy_class(name: str) -> type[Strategy]:
    target = (STRATEGIES.get(name) or plugin_strategies().get(name)) if isinstance(name, str) else None
    if target is None:
        raise InputError(f"Unknown strategy {name!r}. Valid strategies: {', '.join(sorted(strategy_names()))}.")
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:  # a broken plugin: say which, never crash the run
        raise InputError(f"Strategy {name!r} cannot be loaded from {target!r}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise InputError(f"Strategy {name!r} ({target}) is not a manyminds Strategy subclass.")
    return cls


def get_strategy(name: str, params: dict[str, Any] | None = None) -> Strategy:
    """The strategy `name`, configured with `params` (InputError for unknown ones)."""
    return strategy_class(name)(**(params or {}))
