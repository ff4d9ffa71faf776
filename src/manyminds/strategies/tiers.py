"""Effort tiers: how much work a question gets, as strategies over the same stages.

    tier:quick     the fastest k seats (k = quorum + 1, at most the council: the fewest that can
                   settle a vote with one dissenter), early consensus on, no chair — the
                   weighted vote chooses and the winners' own text explains.
    tier:standard  today's council (strategies/council.py), every member waited for.
    tier:deep      review and revision rounds, plus claim grounding when a source is given or
                   configured (strategies/deep.py, crosscheck.py's claim path).
    tier:overnight deep with every grounding source, members sampled (self-consistency) and a
                   markdown report (overnight.py); `manyminds ask --effort overnight` queues it
                   as a background job.
    tier:auto      the router (router.py) picks quick, standard or deep, and explains why.

"Fastest" is measured: the median seconds of each seat's last answers stored in the run
database (`member_answers`, the answering stage, ok answers only, at least MIN_TIMINGS of them
for the same member name and model). Seats with too few stored answers come after the measured
ones, in settings order; with nothing stored the order is the settings'.

Early consensus is the quick tier's alone. The standard tier waits for everyone: its later
stages (claim matrix, chair, confidence, calibration) read every member's answer, and a council
fitted by `eval calibrate` was fitted on full runs.
"""

from __future__ import annotations

import sqlite3
import statistics
from dataclasses import dataclass
from typing import Any

from ..pipeline.run import RunContext
from ..pipeline.stages.compare import compare
from ..pipeline.stages.fanout import Member, check_quorum, gather_answers
from ..pipeline.verdict import EarlyConsensus, MemberAnswer, Route, Verdict
from .base import Strategy
from .baselines import with_members
from .council import council_verdict
from .deep import deep_verdict

EFFORTS = ("quick", "standard", "deep", "overnight", "auto")
MIN_TIMINGS = 3
RECENT_TIMINGS = 50  # per seat, newest first
NO_SOURCE_WARNING = ("No source to ground claims in (give a collection, or configure a search provider): "
                     "the deep tier ran review and revision rounds only.")


def check_effort(value: Any) -> str | None:
    """The effort tier, or None; anything else is an `InputError` listing the tiers."""
    from ..errors import InputError

    if value is None:
        return None
    if not isinstance(value, str) or value.strip().lower() not in EFFORTS:
        raise InputError(f"Unknown effort tier {value!r}. Tiers: {', '.join(EFFORTS)}.")
    return value.strip().lower()


# --- which seats are fastest -----------------------------------------------------------------


def stored_timings(db: Any = None) -> list[tuple[str, str, float]]:
    """(member, model, seconds) of stored ok answers, newest first; [] without a database."""
    sql = ("SELECT member, model, latency_s FROM member_answers WHERE status = 'ok' AND stage = 'fan_out' "
           "AND latency_s > 0 ORDER BY finished_at DESC LIMIT 20000")
    try:
        if db is not None and hasattr(db, "execute"):
            return [tuple(r) for r in db.execute(sql).fetchall()]
        from ..config import db_path

        path = db or db_path()
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
        try:
            return [tuple(r) for r in con.execute(sql).fetchall()]
        finally:
            con.close()
    except sqlite3.Error:  # no database yet, or one from before member_answers: settings order
        return []


def member_speeds(members: list[Member], db: Any = None) -> dict[str, float]:
    """Seat name → median seconds over its last RECENT_TIMINGS stored answers (only seats with
    at least MIN_TIMINGS of them, for the same member name and model)."""
    wanted = {(m.name, m.model.name) for m in members}
    seen: dict[str, list[float]] = {}
    for member, model, seconds in stored_timings(db):
        if (member, model) in wanted and len(seen.setdefault(member, [])) < RECENT_TIMINGS:
            seen[member].append(float(seconds))
    return {m: round(statistics.median(v), 4) for m, v in seen.items() if len(v) >= MIN_TIMINGS}


@dataclass
class Pick:
    members: list[Member]
    rule: str
    speeds: dict[str, float]


def fastest_members(members: list[Member], quorum: int, db: Any = None, k: int | None = None) -> Pick:
    """The k fastest seats (default quorum + 1, at most the council), in council order."""
    k = max(1, min(len(members), quorum + 1 if k is None else int(k)))
    speeds = member_speeds(members, db)
    order = sorted(range(len(members)), key=lambda i: (speeds.get(members[i].name, float("inf")), i))
    chosen = [members[i] for i in sorted(order[:k])]  # council order, so the vote's ties break as usual
    if speeds:
        timed = ", ".join(f"{n} {s:.2f}s" for n, s in sorted(speeds.items(), key=lambda kv: kv[1]))
        rule = f"the {k} fastest by median stored answer time ({timed}; unmeasured seats last)"
    else:
        rule = f"the first {k} seats in settings order (no stored answer times yet)"
    return Pick(chosen, rule, speeds)


# --- the tiers -------------------------------------------------------------------------------


@dataclass
class QuickResult:
    heard: list[MemberAnswer]  # answered or failed: everything but the cut
    cut: list[MemberAnswer]
    pick: Pick


async def quick_fanout(ctx: RunContext, db: Any = None, k: int | None = None) -> QuickResult:
    pick = fastest_members(ctx.council.members, ctx.council.settings.quorum, db, k)
    answers = await gather_answers(ctx, pick.members, early=True)
    return QuickResult([a for a in answers if a.status != "cut"], [a for a in answers if a.status == "cut"], pick)


async def quick_verdict(ctx: RunContext, name: str, quick: QuickResult) -> Verdict:
    """Quick's verdict from its fan-out: the seats it asked vote (no chair), the cut ones are
    listed with status "cut" and left out of the vote and of the confidence's denominator."""
    sub = with_members(ctx, [m for m in ctx.council.members if m.name in {a.member for a in quick.heard}])
    verdict = await council_verdict(sub, name, quick.heard, chair=False)
    verdict.members += quick.cut
    if ctx.settled is not None:
        s = ctx.settled
        verdict.early_consensus = EarlyConsensus(answer=s.answer, members=s.members, cut=[a.member for a in quick.cut],
                                                 reason=s.reason(), after_s=max((a.latency_s for a in quick.cut), default=0.0))
    verdict.warnings.append(f"Quick tier: asked {', '.join(m.name for m in quick.pick.members)} — {quick.pick.rule}"
                            + (f"; {len(quick.cut)} cut by early consensus." if quick.cut else "."))
    return verdict


class QuickTier(Strategy):
    name = "tier:quick"
    summary = "The fastest members; stop waiting once the vote is settled; no chair."
    params = {"db": None, "k": None}  # k: how many seats (default quorum + 1)
    stages = ("fan_out", "compare")

    async def run(self, ctx: RunContext) -> Verdict:
        from ..errors import InputError

        k = self.options["k"]
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise InputError(f"The quick tier's k (seats to ask) must be a whole number of at least 1, not {k!r}.")
        verdict = await quick_verdict(ctx, self.name, await quick_fanout(ctx, self.options["db"], k))
        verdict.effort = "quick"
        return verdict


class StandardTier(Strategy):
    name = "tier:standard"
    summary = "Today's council: every member answers, a chair writes, the vote chooses."

    async def run(self, ctx: RunContext) -> Verdict:
        verdict = await council_verdict(ctx, self.name, await gather_answers(ctx))
        verdict.effort = "standard"
        return verdict


def tier_sources(options: dict[str, Any]) -> Any:
    from ..evidence.sources import Sources

    if options.get("collection") or options.get("search"):
        sources = Sources(options.get("collection"), db=options.get("db"), providers=options.get("search"))
        sources.check()  # an unknown or empty collection fails before any model call
        return sources
    return None


class DeepTier(Strategy):
    name = "tier:deep"
    summary = "Review and revision rounds, plus grounding of the claims in the given or configured sources."
    params = {"rounds": 2, "collection": None, "search": None, "db": None}
    stages = ("fan_out", "review_1", "revise_1", "review_2", "revise_2", "compare", "synthesize")

    async def run(self, ctx: RunContext) -> Verdict:
        sources = tier_sources(self.options)
        verdict = await deep_verdict(ctx, self.name, await gather_answers(ctx), int(self.options["rounds"]), sources)
        if sources is None:
            verdict.warnings.append(NO_SOURCE_WARNING)
        verdict.effort = "deep"
        return verdict


class AutoTier(Strategy):
    """The router picks the tier (router.py); quick's answers are kept when it escalates."""

    name = "tier:auto"
    summary = "The router picks quick, standard or deep from the question and quick's disagreement."
    params = {"rounds": 2, "collection": None, "search": None, "db": None}

    async def run(self, ctx: RunContext) -> Verdict:
        from .router import escalate, features, first_tier

        choice = first_tier(features(ctx.question))
        sources = tier_sources(self.options) if choice.tier != "standard" else None
        quick: QuickResult | None = None
        if choice.tier == "quick":
            quick = await quick_fanout(ctx, self.options["db"])
            ok = [a for a in quick.heard if a.ok]
            agreement = compare(ok, ctx.council.weights, aliases=ctx.council.settings.answer_aliases, question=ctx.question)
            heard_weight = sum(ctx.council.weights.get(a.member, 1.0) for a in ok) or 1.0
            top = agreement.clusters[0].weight / heard_weight if agreement.clusters else 0.0
            choice = escalate(choice, clusters=len(agreement.clusters), failed=len(quick.heard) - len(ok),
                              settled=ctx.settled is not None, top_share=top, unheard=len(ctx.council.members) - len(ok))
            if choice.tier == "quick":
                verdict = await quick_verdict(ctx, self.name, quick)
            else:
                sources = tier_sources(self.options) if choice.tier == "deep" else None
                answers = await rest_of_council(ctx, ok)
                verdict = await self._escalated(ctx, choice.tier, answers, sources)
        else:
            verdict = await self._escalated(ctx, choice.tier, await gather_answers(ctx), sources)
        verdict.effort = "auto"
        verdict.route = Route(tier=choice.tier, reason=choice.reason, kind=choice.features.kind,
                              features={**choice.features.to_dict(), **({"quick": choice.quick} if choice.quick else {})},
                              escalated=choice.escalated)
        return verdict

    async def _escalated(self, ctx: RunContext, tier: str, answers: list[MemberAnswer], sources: Any) -> Verdict:
        if tier == "deep":
            verdict = await deep_verdict(ctx, self.name, answers, int(self.options["rounds"]), sources)
            if sources is None:
                verdict.warnings.append(NO_SOURCE_WARNING)
            return verdict
        return await council_verdict(ctx, self.name, answers)


async def rest_of_council(ctx: RunContext, have: list[MemberAnswer]) -> list[MemberAnswer]:
    """The whole council's answers when quick escalates: the members quick heard keep their
    answers; the others (cut, failed or not asked) are asked now, in a stage of their own."""
    kept = {a.member: a for a in have if a.ok}
    rest = [m for m in ctx.council.members if m.name not in kept]
    if rest:
        with ctx.watch.stage("fan_out_rest") as st:
            more = await ctx.fanout("fan_out_rest").run(ctx.question, rest)
            st.data = {"members": [m.name for m in rest]}
        kept.update({a.member: a for a in more})
    answers = [kept[m.name] for m in ctx.council.members]
    check_quorum(answers, ctx.council.settings.quorum)
    return answers
