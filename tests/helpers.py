"""Shared test helpers: a council of `ScriptedModel`s built in one call."""

from __future__ import annotations

from manyminds.config import CouncilSettings, MemberSettings
from manyminds.pipeline.council import Council
from manyminds.pipeline.stages.fanout import Member
from manyminds.testing import ScriptedModel


def make_council(scripts: dict[str, object], *, chair: object = "William Shakespeare wrote Hamlet.", quorum: int = 2,
                 timeout: float = 5.0, delays: dict[str, float] | None = None, weights: dict[str, float] | None = None,
                 context_window: int = 8192) -> Council:
    delays = delays or {}
    weights = weights or {}
    members = []
    for name, script in scripts.items():
        ms = MemberSettings(name=name, model=f"scripted/{name}", temperature=0.0, max_tokens=100,
                            weight=weights.get(name, 1.0))
        model = ScriptedModel(name, script, delay=delays.get(name, 0.0), chunk_size=5, context_window=context_window)
        members.append(Member(settings=ms, model=model))
    settings = CouncilSettings(members=[m.settings for m in members], quorum=quorum, timeout=timeout,
                               retries=2, short_answer="heuristic")
    chair_model = ScriptedModel("chair", chair)
    return Council("test", settings, members, "chair", chair_model)
