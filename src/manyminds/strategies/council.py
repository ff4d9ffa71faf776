"""The default strategy of `manyminds ask`: fan-out → compare → synthesize, or claim by claim
(crosscheck.py's claim path) when the members answered in paragraphs."""

from __future__ import annotations

from ..errors import InputError
from ..pipeline.run import RunContext, build_verdict
from ..pipeline.stages.compare import compare_answers
from ..pipeline.stages.fanout import gather_answers
from ..pipeline.stages.synthesize import Decision, decide, synthesize
from ..pipeline.verdict import Agreement, Dissent, MemberAnswer, Verdict
from .base import Strategy
from .crosscheck import claim_path, prefers_claims


class CouncilStrategy(Strategy):
    """fan-out → compare → synthesize: the default of `manyminds ask`.

    With `lead` (a member's name) no chair writes: the answer is that member's, and the others
    are shown agreeing or dissenting. This is what `eval fit-trust` makes the default when no
    council configuration was as accurate as the best single member: the answer is as accurate
    as that member alone, and the user still sees where the others disagree.
    """

    name = "council"
    summary = "Every member answers; answers are compared; a chair writes the verdict."
    params = {"lead": None}

    async def run(self, ctx: RunContext) -> Verdict:
        answers = await gather_answers(ctx)
        lead = self.options["lead"]
        if lead is not None:
            if lead not in {m.name for m in ctx.council.members}:
                names = ", ".join(m.name for m in ctx.council.members)
                raise InputError(f"The council has no member {lead!r} to lead (members: {names}).")
            answers, agreement = await compare_answers(ctx, answers)
            led = lead_decision(ctx, answers, agreement, lead)
            if led is not None:
                return build_verdict(ctx, self.name, answers, agreement, None, led)
            chair, decision = await synthesize(ctx, answers, agreement)
            decision.warnings.insert(0, f"The lead member {lead!r} did not answer; a chair wrote the verdict.")
            return build_verdict(ctx, self.name, answers, agreement, chair, decision)
        return await council_verdict(ctx, self.name, answers)


async def council_verdict(ctx: RunContext, name: str, answers: list[MemberAnswer], *, chair: bool = True) -> Verdict:
    """After the fan-out: claim by claim when the members wrote paragraphs, else compare the
    short answers and let the weighted vote choose. `chair=False` (the quick tier) asks no
    chair: the explanation is the winning members' own text."""
    if prefers_claims(answers, ctx.question):  # paragraphs, not a name or a number: claim by claim
        return await claim_path(ctx, name, answers)
    answers, agreement = await compare_answers(ctx, answers)
    if not chair:
        decision = decide(ctx.question, None, answers, agreement, ctx.council.weights, aliases=ctx.council.settings.answer_aliases)
        return build_verdict(ctx, name, answers, agreement, None, decision)
    outcome, decision = await synthesize(ctx, answers, agreement)
    return build_verdict(ctx, name, answers, agreement, outcome, decision)


def lead_decision(ctx: RunContext, answers: list[MemberAnswer], agreement: Agreement, lead: str) -> Decision | None:
    """The lead member's answer as the verdict; confidence is the weight that agrees with it
    over the weight of all members. None when the lead did not answer."""
    own = next((a for a in answers if a.member == lead and a.ok), None)
    if own is None:
        return None
    weights = ctx.council.weights
    total = sum(weights.get(a.member, 1.0) for a in answers) or 1.0
    cluster = next((c for c in agreement.clusters if lead in c.members), None)
    support = cluster.weight if cluster else weights.get(lead, 1.0)
    dissent = [
        Dissent(answer=c.answer, members=c.members, share=round(c.weight / total, 4))
        for c in agreement.clusters
        if cluster is None or c.id != cluster.id
    ]
    warnings = [f"The answer is {lead}'s, the member that stored eval runs found most accurate for this council."]
    failed = [a.member for a in answers if not a.ok]
    if failed:
        warnings.append(f"{len(failed)} member(s) did not answer: {', '.join(failed)}.")
    short = cluster.answer if cluster else own.short_answer
    return Decision(own.text, short, round(min(1.0, support / total), 4), cluster, dissent, warnings)
