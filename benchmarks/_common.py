"""Shared set-up for the benchmarks: councils on loopback servers or scripted models."""

from __future__ import annotations

import statistics
from typing import Iterable

from manyminds.config import CouncilSettings, MemberSettings
from manyminds.models.base import Model
from manyminds.pipeline.council import Council
from manyminds.pipeline.stages.fanout import Member


def council_of(models: dict[str, Model], *, chair: Model, timeout: float = 60.0, cap: int = 64) -> Council:
    members = [
        Member(settings=MemberSettings(name=name, model=model.name, temperature=0.0, max_tokens=64), model=model, max_concurrency=cap)
        for name, model in models.items()
    ]
    settings = CouncilSettings(
        members=[m.settings for m in members], quorum=1, timeout=timeout, short_answer="heuristic",
        max_concurrency_per_provider=cap,
    )
    return Council("bench", settings, members, "chair", chair)


def summary(values: Iterable[float]) -> str:
    values = sorted(values)
    return f"median {statistics.median(values):.4f} · min {values[0]:.4f} · max {values[-1]:.4f} (n={len(values)})"
