"""A running job's progress: the run's events folded into `{stage, fraction, message, …}`,
which the worker writes with each heartbeat and `runs wait`, the API and the web page show."""

from __future__ import annotations

from typing import Any

from ..errors import ManymindsError
from ..pipeline.events import Event


def expected_stages(strategy: str | None, params: dict[str, Any] | None = None) -> tuple[str, ...]:
    """The stages the strategy declares for these parameters (strategies/base.py); a strategy
    that cannot be built (it was checked at submission, so: a plugin since removed) gets the
    council's three."""
    from ..strategies.base import get_strategy

    try:
        return get_strategy(strategy or "council", params).expected_stages()
    except ManymindsError:
        return ("fan_out", "compare", "synthesize")


class Progress:
    """Folds a run's events into `{stage, fraction, message, stages_done, members_done,
    members_total}`. The fraction is an estimate: stages done plus the share of members that
    have answered in the current stage, over the stages the strategy is expected to run."""

    def __init__(self, strategy: str | None, members_total: int = 0, params: dict[str, Any] | None = None) -> None:
        self.expected = len(expected_stages(strategy, params))
        self.stage: str | None = None
        self.stages_done: list[str] = []
        self.members_done = 0
        self.members_total = members_total
        self.fraction = 0.0
        self.dirty = True

    def handle(self, event: Event) -> None:
        kind = event.kind
        if kind == "run_started":
            council = (event.data or {}).get("council") or {}
            self.members_total = len(council.get("members") or []) or self.members_total
        elif kind == "stage_started":
            self.stage, self.members_done = event.stage, 0
        elif kind in ("member_done", "member_failed", "member_cut"):
            self.members_done += 1
        elif kind == "stage_done" and event.stage:
            self.stages_done.append(event.stage)
            self.members_done = 0
        else:
            return  # deltas and retries do not move the estimate; skip the write
        within = self.members_done / self.members_total if self.members_total and self.stage not in self.stages_done else 0.0
        expected = max(self.expected, len(self.stages_done) + 1)
        # Never backwards, and never 1.0 before the verdict is stored.
        self.fraction = max(self.fraction, min(0.99, (len(self.stages_done) + min(within, 1.0)) / expected))
        self.dirty = True

    def snapshot(self) -> dict[str, Any]:
        self.dirty = False
        if self.stage and self.stage not in self.stages_done and self.members_total:
            message = f"{self.stage}: {self.members_done}/{self.members_total} members done"
        elif self.stage:
            message = f"{self.stage} done"
        else:
            message = "starting"
        return {
            "stage": self.stage,
            "fraction": round(self.fraction, 3),
            "message": message,
            "stages_done": list(self.stages_done),
            "members_done": self.members_done,
            "members_total": self.members_total,
        }
