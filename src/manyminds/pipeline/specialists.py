"""Specialists: routing a question to the members whose role covers it, enforcing what each
role must refuse, and the critics that score the others' answers.

Before the run (`plan_specialists`):
- an answering member with a role is asked only when the question is in its domain
  (roles.Role.in_domain: one of its topics matches, or the role has no topic list) and touches
  nothing it must refuse. Out of domain, it is **skipped** — not asked, not counted in the vote
  or in the confidence — rather than asked and weighted down: a maths model's guess at a
  history question costs a call and can only add noise. Members without a role always answer.
- a member whose role is a critic never answers; it waits for the fan-out (a critic with
  topics only for the questions of its domain; otherwise it is skipped too).

After the fan-out (`SpecialistPlan.screen`, then `.critique`, both called by gather_answers):
- an answer that touches a topic its role must refuse is **withheld** (failed, with the rule
  named), and one that says the role's decline sentence is **declined**: neither votes.
- each critic reviews the other members' answers, anonymised ("Response A, B…", review.py's
  prompt and parser; the texts quoted as data, instruction-like passages removed as for any
  reviewer, claims.sanitize), and ranks them. A member's score from one
  critic is 1 for the best-ranked answer down to 0 for the worst, minus 0.25 for each error the
  critic names in it (floored at 0); with several critics the scores are averaged. The score
  **adjusts the vote weight**: weight × (0.5 + score), so a critic can halve a member's vote or
  add half again, never silence it or decide alone. The scores and the weights after them
  are reported in the verdict's `specialists`.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..errors import InputError
from ..models.base import Message
from ..roles import DECLINE_TEXT
from ..topics import first_match
from .stages.claims import sanitize
from .stages.fanout import Member
from .stages.prompts import anonymise
from .stages.review import REVIEW_MAX_TOKENS, REVIEW_SYSTEM, parse_review, review_prompt
from .verdict import MemberAnswer, Review, SpecialistNote, Verdict

if TYPE_CHECKING:
    from .council import Council
    from .run import RunContext

ERROR_PENALTY = 0.25  # score lost per error a critic names in an answer
WEIGHT_FLOOR, WEIGHT_SPAN = 0.5, 1.0  # weight × (WEIGHT_FLOOR + WEIGHT_SPAN × score)


@dataclass
class SpecialistPlan:
    """Who answers this question, who was skipped and why, and the critics waiting."""

    council: "Council"  # the routed council: the members that answer (critics and skipped left out)
    notes: dict[str, SpecialistNote] = field(default_factory=dict)  # member → note, members with a role only
    critics: list[Member] = field(default_factory=list)
    reviews: list[Review] = field(default_factory=list)
    critiqued: bool = False

    def screen(self, answers: list[MemberAnswer]) -> list[MemberAnswer]:
        """Apply each role's refusal rules to its member's answer."""
        by_name = {m.name: m for m in self.council.members}
        out = []
        for answer in answers:
            member = by_name.get(answer.member)
            role = member.role if member is not None else None
            if role is None or not answer.ok or not role.spec.refuse:
                out.append(answer)
                continue
            if _declines(answer.text):
                out.append(_withhold(answer, "SpecialistDeclined", f"member {answer.member!r} declined, as role {role.name!r} tells it to"))
                continue
            hit = first_match(role.spec.refuse, answer.text)
            if hit is not None:
                out.append(_withhold(answer, "RoleViolation", (
                    f"member '{answer.member}' answered about '{hit}', which role '{role.name}' must refuse; its answer is withheld")))
                continue
            out.append(answer)
        return out

    async def critique(self, ctx: "RunContext", answers: list[MemberAnswer]) -> None:
        """The critics review the ok answers; their scores reweight `ctx.council` for the vote."""
        if self.critiqued or not self.critics:
            return
        self.critiqued = True
        ok = [a for a in answers if a.ok]
        if not ok:
            return
        fan = ctx.fanout("critic")
        with ctx.watch.stage("critic"):
            self.reviews = list(await asyncio.gather(*(critic_review(fan, ctx.question, ok, c, seed=ctx.run_id) for c in self.critics)))
        ctx.count_reviews(self.reviews)
        scores = member_scores(self.reviews)
        for review in self.reviews:
            note = self.notes[review.reviewer]
            if review.status == "ok":
                note.status, note.scores = "reviewed", review_scores(review)
                note.reason = f"scored {len(note.scores)} answer(s); the scores adjust their vote weights"
            else:
                note.status, note.reason = "failed", f"the review failed: {(review.error or {}).get('message', '')}"
        if scores:
            ctx.council = reweighted(ctx.council, scores)
            self.council = ctx.council

    def finish(self, verdict: Verdict) -> None:
        """Fill the verdict's `specialists` from what happened, and add the warnings of roles that spoke."""
        answered = {a.member: a for a in verdict.members}
        weights = self.council.weights
        for name, note in self.notes.items():
            if note.kind == "critic":
                if not self.critiqued and note.status != "skipped":
                    note.status, note.reason = "not_run", "the strategy gave the critic no answers to review"
                continue
            if note.status == "skipped":
                continue
            answer = answered.get(name)
            if answer is None:
                note.status, note.reason = "failed", "no answer recorded"
            elif answer.ok:
                note.status = "spoke"
            elif (answer.error or {}).get("type") == "RoleViolation":
                note.status, note.reason = "withheld", answer.error["message"]
            elif (answer.error or {}).get("type") == "SpecialistDeclined":
                note.status, note.reason = "declined", answer.error["message"]
            else:
                note.status, note.reason = "failed", (answer.error or {}).get("message", answer.status)
            note.weight = weights.get(name)
        verdict.specialists = list(self.notes.values())
        by_name = {m.name: m for m in self.council.members}
        for note in verdict.specialists:
            role = by_name[note.member].role if note.member in by_name else None
            if note.status == "spoke" and role is not None and role.spec.warning and role.spec.warning not in verdict.warnings:
                verdict.warnings.append(role.spec.warning)


def plan_specialists(council: "Council", question: str) -> SpecialistPlan | None:
    """Route the question; None when no member has a role (nothing changes)."""
    if not any(m.role is not None for m in council.members):
        return None
    notes: dict[str, SpecialistNote] = {}
    answering, critics, skipped = [], [], []
    for m in council.members:
        role = m.role
        if role is None:
            answering.append(m)
            continue
        note = SpecialistNote(member=m.name, role=role.name if role.source != "inline" else "inline", kind=role.spec.kind,
                              status="spoke", reason="", domain=role.spec.domain)
        notes[m.name] = note
        ok, why = role.in_domain(question)
        note.reason = why
        if role.is_critic:  # a critic with topics reviews only the questions of its domain
            if ok:
                critics.append(m)
                note.status, note.reason = "not_run", "a critic reviews the others' answers instead of answering"
            else:
                note.status = "skipped"
            continue
        if ok:
            answering.append(m)
        else:
            note.status = "skipped"
            skipped.append(f"{m.name}: {why}")
    if not answering:
        detail = "; ".join(skipped) or "every member is a critic"
        raise InputError(f"No member of council {council.name!r} may answer this question ({detail}).")
    routed = replace(council, members=answering)
    return SpecialistPlan(council=routed, notes=notes, critics=critics)


async def critic_review(fan, question: str, answers: list[MemberAnswer], critic: Member, *, seed: str) -> Review:  # noqa: ANN001
    """One critic's anonymous review of `answers` (review.py's prompt; the critic's role prompt first)."""
    # As reviewers see them: instruction-like passages and fake verdicts removed, the rest quoted.
    visible = [a.model_copy(update={"text": sanitize(a.text)[0]}) for a in answers]
    labelled = anonymise(visible, f"{seed}:{critic.name}:critic")
    labels = {label: a.member for label, a in labelled.items()}
    system = f"{critic.settings.system}\n\n{REVIEW_SYSTEM}" if critic.settings.system else REVIEW_SYSTEM
    messages = [Message(role="system", content=system), Message(role="user", content=review_prompt(question, labelled))]
    result = await fan.one(question, critic, messages, max_tokens=max(REVIEW_MAX_TOKENS, critic.settings.max_tokens or 0))
    if not result.ok:
        return Review(reviewer=critic.name, status="failed", labels=labels, error=result.error)
    ranking, errors = parse_review(result.text, labels)
    return Review(reviewer=critic.name, ranking=ranking, errors=errors, labels=labels, text=result.text, usage=result.usage)


def review_scores(review: Review) -> dict[str, float]:
    """One critic's score per member: 1 best-ranked … 0 worst, minus ERROR_PENALTY per named error."""
    n = len(review.ranking)
    out = {}
    for i, member in enumerate(review.ranking):
        base = 1.0 - (i / (n - 1) if n > 1 else 0.0)
        errors = sum(1 for e in review.errors if e.member == member)
        out[member] = round(max(0.0, base - ERROR_PENALTY * errors), 4)
    return out


def member_scores(reviews: list[Review]) -> dict[str, float]:
    """The mean score per member over the critics that reviewed it."""
    collected: dict[str, list[float]] = {}
    for review in reviews:
        if review.status != "ok":
            continue
        for member, score in review_scores(review).items():
            collected.setdefault(member, []).append(score)
    return {m: round(sum(v) / len(v), 4) for m, v in collected.items()}


def reweighted(council: "Council", scores: dict[str, float]) -> "Council":
    """A copy of the council whose scored members' weights are × (0.5 + score)."""
    members = []
    for m in council.members:
        if m.name in scores:
            weight = round(m.weight * (WEIGHT_FLOOR + WEIGHT_SPAN * scores[m.name]), 4)
            settings = m.settings.model_copy(update={"weight": weight})
            settings._role = m.settings._role
            m = replace(m, settings=settings)
        members.append(m)
    return replace(council, members=members)


def _declines(text: str) -> bool:
    core = re.sub(r"[^a-z ]", "", DECLINE_TEXT.lower()).strip()
    return core in re.sub(r"[^a-z ]", "", text.lower())


def _withhold(answer: MemberAnswer, kind: str, message: str) -> MemberAnswer:
    return answer.model_copy(update={"status": "failed", "text": "", "short_answer": None, "error": {"type": kind, "message": message, "member": answer.member}})
