"""Memory at ask time: find the memories relevant to a question, decide which members may see
them, and show them to those members as quoted data.

`api.run_request` calls `recall` before the run starts and `give` on the resolved council; the
verdict then lists the memories used (`memory_used`), the members that got them and those that
did not. Nothing leaves for a provider the user has not allowed (`[memory] share_with`; the
bundled local models by default, `share_local`): a member that may not receive memories gets
the bare question. The memories are only in the members' own answer calls — not in the chair's
prompt, nor in reviews — but the chair and reviewers do read the answers the members wrote,
which the verdict warns about when one of them is not allowed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ManymindsError
from ..pipeline.stages.prompts import data_notice, quote
from .store import MemoryHit, MemoryStore, resolve_profile

if TYPE_CHECKING:
    from ..config import MemorySettings, Settings
    from ..pipeline.council import Council
    from ..pipeline.verdict import Verdict

LOCAL_PROVIDERS = frozenset({"local"})  # in this process's own child servers on 127.0.0.1
TAG = "memory"


@dataclass
class Recall:
    """What one question gets from memory, and who got it."""

    profile: str | None = None
    hits: list[MemoryHit] = field(default_factory=list)
    given: list[str] = field(default_factory=list)  # members whose prompt carried the memories
    withheld: list[str] = field(default_factory=list)  # members whose provider is not allowed
    warnings: list[str] = field(default_factory=list)

    def apply(self, verdict: "Verdict") -> None:
        """Write onto the verdict what it must show (before it is stored)."""
        from ..pipeline.verdict import MemoryNote

        verdict.memory_profile = self.profile
        verdict.memory_used = [MemoryNote(id=h.id, text=h.text, score=h.score) for h in self.hits] if self.given else []
        verdict.memory_members = list(self.given)
        verdict.memory_withheld = list(self.withheld) if self.hits else []
        for warning in self.warnings:
            if warning not in verdict.warnings:
                verdict.warnings.append(warning)


def may_receive(provider: str, settings: "MemorySettings") -> bool:
    """Whether a model of `provider` may be sent memories."""
    return provider in settings.share_with or (settings.share_local and provider in LOCAL_PROVIDERS)


async def recall(question: object, settings: "Settings", *, profile: str | None = None, no_memory: bool = False,
                 db_path: str | Path | None = None) -> Recall:
    """The memories of the profile closest to `question` (top `top_k`, at least `min_score`),
    found off the event loop on a connection of its own. A memory problem never costs the
    answer: it becomes a warning and the question goes without memories."""
    ms = settings.memory
    if no_memory or not ms.enabled or not isinstance(question, str) or not question.strip():
        return Recall()
    profile = resolve_profile(profile, settings)  # a bad name is the caller's InputError

    def run() -> list[MemoryHit]:
        from ..store import open_db

        db = open_db(db_path, check_abandoned=False)
        try:
            store = MemoryStore(db)
            if store.count(profile) == 0:  # most questions: nothing to embed
                return []
            return store.search(profile, question, k=ms.top_k, min_score=ms.min_score)
        finally:
            db.close()

    try:
        hits = await asyncio.to_thread(run)
    except ManymindsError as exc:
        return Recall(profile=profile, warnings=[f"Memory was not used: {exc}"])
    return Recall(profile=profile, hits=hits)


def block(hits: list[MemoryHit]) -> str:
    """The memories as a member reads them: announced as data, each quoted, tags defused."""
    notes = "\n".join(f"<{TAG}>{quote(h.text, TAG)}</{TAG}>" for h in hits)
    notice = data_notice("The notes below", also="; use them only where they help answer the question")
    return f"Notes the user saved about themselves. {notice}\n{notes}"


def give(council: "Council", found: Recall, settings: "MemorySettings") -> None:
    """Put the memories in the prompts of the members that may receive them (in place: the
    council was resolved for this one request)."""
    if not found.hits:
        return
    text = block(found.hits)
    members = []
    for member in council.members:
        if may_receive(member.model.provider, settings):
            members.append(replace(member, context=text))
            found.given.append(member.name)
        else:
            members.append(member)
            found.withheld.append(member.name)
    council.members = members
    if found.withheld:
        found.warnings.append(
            f"Memories were withheld from {', '.join(found.withheld)}: their provider is not allowed to receive them "
            "([memory] share_with in settings.toml)."
        )
    if found.given and not may_receive(council.chair_model.provider, settings):
        found.warnings.append(
            f"The chair ({council.chair_model.name}) got no memories, but reads the answers of the members that did."
        )
