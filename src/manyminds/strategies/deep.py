"""The deep tier: members answer, review each other anonymously and revise, then the council
compares and a chair writes; with sources, the claim path with grounding instead."""

from __future__ import annotations

from ..pipeline.run import RunContext, build_verdict
from ..pipeline.stages.compare import compare_answers
from ..pipeline.stages.fanout import gather_answers
from ..pipeline.stages.review import review_answers, revise_answers
from ..pipeline.stages.short_answers import extract_short_answers
from ..pipeline.stages.synthesize import synthesize
from ..pipeline.verdict import MemberAnswer, Review, Verdict
from .base import Strategy
from ..evidence.sources import Sources
from .crosscheck import PathOptions, claim_path


class DeepStrategy(Strategy):
    """fan-out → anonymous review → revision rounds → compare → synthesize.

    Revision rounds stop early once no member changes its short answer. Meant for the
    background tier: it costs several times a council run. With a `collection` (or `search`
    providers) it takes the claim path instead (crosscheck.py): claims, matrix, review,
    revision rounds on the contested claims, grounding in the sources, synthesis with citations.
    """

    name = "deep"
    summary = "Members answer, review each other anonymously and revise; a chair writes the verdict."
    params = {"rounds": 2, "collection": None, "search": None, "db": None}
    stages = ("fan_out", "review_1", "revise_1", "review_2", "revise_2", "compare", "synthesize")

    def expected_stages(self) -> tuple[str, ...]:
        rounds = [f"{kind}_{n}" for n in range(1, int(self.options["rounds"]) + 1) for kind in ("review", "revise")]
        return ("fan_out", *rounds, "compare", "synthesize")

    def sources(self) -> Sources | None:
        o = self.options
        return Sources(o["collection"], db=o["db"], providers=o["search"]) if (o["collection"] or o["search"]) else None

    async def run(self, ctx: RunContext) -> Verdict:
        sources = self.sources()
        if sources is not None:
            sources.check()  # an unknown or empty collection fails before any model call
        return await deep_verdict(ctx, self.name, await gather_answers(ctx), int(self.options["rounds"]), sources)


async def deep_verdict(ctx: RunContext, name: str, answers: list[MemberAnswer], rounds: int, sources: "Sources | None" = None) -> Verdict:
    """After the fan-out: with sources, the claim path with review, revision rounds and
    grounding (crosscheck.py); without, anonymous review and revision rounds on the answers."""
    if sources is not None and sources.active:
        return await claim_path(ctx, name, answers, PathOptions(review=True, rounds=rounds, sources=sources))
    reviews: list[Review] = []
    for round_no in range(1, rounds + 1):
        with ctx.watch.stage(f"review_{round_no}") as stage:
            round_reviews = await review_answers(
                ctx.fanout(), ctx.question, answers, ctx.council.members, seed=ctx.run_id, round_no=round_no
            )
            reviews += round_reviews
            ctx.count_reviews(round_reviews)
            stage.data = {"reviews": len(round_reviews)}
        before = await extract_short_answers(ctx.question, answers, {}, mode="heuristic")
        disputed = sorted({a.short_answer for a in before if a.ok and a.short_answer})
        with ctx.watch.stage(f"revise_{round_no}"):
            revised = await revise_answers(
                ctx.fanout(), ctx.question, answers, ctx.council.members,
                seed=ctx.run_id, round_no=round_no, disputed=disputed if len(disputed) > 1 else None,
            )
        ctx.count([a for a, r in zip(answers, revised) if r is not a])  # the superseded answers
        after = await extract_short_answers(ctx.question, revised, {}, mode="heuristic")
        changed = any((a.short_answer or "") != (b.short_answer or "") for a, b in zip(before, after))
        answers = revised
        if not changed:
            break
    answers, agreement = await compare_answers(ctx, answers)
    chair, decision = await synthesize(ctx, answers, agreement)
    return build_verdict(ctx, name, answers, agreement, chair, decision, reviews=reviews)
