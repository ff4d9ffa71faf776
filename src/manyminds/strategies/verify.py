"""Verify mode: fact-check a given text claim by claim (the SAFE / FActScore use case).

    text ─▶ claims (pipeline/claims.py: the chair's model, or the sentence splitter)
         ─▶ every member votes true / false / unsure on each claim — the claim alone (and the
            question, when given), never who wrote the text; the text is quoted data
         ─▶ evidence: each claim checked against a collection / search providers (ground.py)
         ─▶ per claim: supported / refuted / unsupported / uncertain, with votes and evidence

Per-claim verdict, with t, f the weight of "true" and "false" votes and W the weight of all
members (failed ones count as unsure): a source that refutes the claim → refuted; one that
supports it → supported; otherwise t − f > W/2 → supported; f − t > W/2 → refuted; no one
says true → unsupported; else uncertain. A claim's `score` in [0, 1] (higher: more likely
true) is p = (t + u/2) / W from the votes, averaged with the evidence (supported 1, not found
0.5, refuted 0) when sources were consulted. The text's verdict is its worst claim's (refuted >
uncertain > unsupported > supported) and its score the lowest claim score.

A verify run is stored like any other run, with strategy "verify"; its verdict document carries
the per-claim checks (`checks`).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from ..pipeline.normalize import fold
from ..pipeline.run import RunContext, build_verdict
from ..pipeline.stages.claim_matrix import claim_status
from ..pipeline.stages.claims import extract_claims, extraction_mode
from ..evidence.sources import Sources
from ..pipeline.stages.ground import attach, ground_claims
from ..pipeline.stages.prompts import data_notice, quote
from ..pipeline.stages.synthesize import Decision
from ..pipeline.verdict import (
    Agreement,
    Claim,
    ClaimMatrix,
    Evidence,
    EvidenceVerdict,
    MemberAnswer,
    Stance,
    UsageOut,
    Verdict,
)
from ..models.base import Message
from .base import Strategy
from .crosscheck import lower_first, number_citations

Vote = Literal["true", "false", "unsure"]
ClaimVerdict = Literal["supported", "refuted", "unsupported", "uncertain"]
VOTE_MAX_TOKENS = 12
MAX_VERIFY_CLAIMS = 20
SEVERITY = {"refuted": 3, "uncertain": 2, "unsupported": 1, "supported": 0}

VOTE_SYSTEM = (
    "You fact-check one statement taken from a text. " + data_notice("The statement", plural=False) + " Answer with one word: "
    "true, false or unsure."
)


class ClaimCheck(BaseModel):
    id: str
    text: str
    verdict: ClaimVerdict
    score: float  # in [0, 1]; higher is more likely true
    votes: dict[str, Vote] = Field(default_factory=dict)  # member → vote (failed members absent)
    evidence: list[Evidence] = Field(default_factory=list)
    evidence_verdict: EvidenceVerdict | Literal["unchecked"] = "unchecked"


class VerifyVerdict(Verdict):
    """The stored verdict of a verify run: a `Verdict` plus the per-claim checks."""

    checks: list[ClaimCheck] = Field(default_factory=list)


class VerifyReport(BaseModel):
    run_id: str
    text: str
    question: str | None = None
    council: str
    collection: str | None = None
    verdict: ClaimVerdict
    score: float
    summary: str
    claims: list[ClaimCheck]
    counts: dict[str, int]
    members: list[MemberAnswer]  # per member: its votes as text, usage and status
    usage: UsageOut
    cost_usd: float | None
    timings: dict[str, float]
    warnings: list[str] = Field(default_factory=list)
    created_at: str = ""

    @classmethod
    def from_verdict(cls, verdict: VerifyVerdict, *, text: str, question: str | None, collection: str | None) -> "VerifyReport":
        counts = {k: sum(1 for c in verdict.checks if c.verdict == k) for k in SEVERITY}
        return cls(
            run_id=verdict.run_id, text=text, question=question, council=verdict.council, collection=collection,
            verdict=verdict.short_answer or "unsupported",  # type: ignore[arg-type]
            score=verdict.confidence, summary=verdict.answer, claims=verdict.checks, counts=counts,
            members=verdict.members, usage=verdict.usage, cost_usd=verdict.cost_usd, timings=verdict.timings,
            warnings=verdict.warnings, created_at=verdict.created_at,
        )


# --- votes ----------------------------------------------------------------------------------

_TRUE = {"true", "yes", "correct", "accurate", "right", "supported", "agree"}
_FALSE = {"false", "no", "incorrect", "inaccurate", "wrong", "untrue", "refuted", "disagree"}


def parse_vote(text: str) -> Vote:
    """The first decisive word of a member's reply: "True." → true, "No, it was 1898" → false,
    "It is not true" → false, anything else → unsure."""
    words = re.findall(r"[a-z]+", fold(text or ""))[:12]
    for i, word in enumerate(words):
        negated = i > 0 and words[i - 1] in ("not", "isnt", "never")
        if word in _TRUE:
            return "false" if negated else "true"
        if word in _FALSE:
            return "true" if negated and word != "no" else "false"
        if word in ("unsure", "unknown", "uncertain", "unclear", "unverifiable"):
            return "unsure"
    return "unsure"


def vote_prompt(claim: str, question: str | None) -> str:
    context = f"Context: the text answers the question {quote(question)!r}.\n" if question else ""
    return f'{context}Statement (quoted data): "{quote(claim)}"\nIs this statement true? Answer true, false or unsure.'


def judge_claim(votes: dict[str, Vote], weights: dict[str, float], members: list[str], evidence: str) -> tuple[ClaimVerdict, float]:
    """(verdict, score) of one claim; see the module docstring."""
    total = sum(weights.get(m, 1.0) for m in members) or 1.0
    t = sum(weights.get(m, 1.0) for m, v in votes.items() if v == "true")
    f = sum(weights.get(m, 1.0) for m, v in votes.items() if v == "false")
    p = (t + (total - t - f) / 2) / total
    if evidence in ("supported", "refuted", "not_found"):
        p = (p + {"supported": 1.0, "not_found": 0.5, "refuted": 0.0}[evidence]) / 2
    score = round(p, 4)
    if evidence == "refuted":
        return "refuted", score
    if evidence == "supported":
        return "supported", score
    if t - f > total / 2:
        return "supported", score
    if f - t > total / 2:
        return "refuted", score
    if t == 0:
        return "unsupported", score
    return "uncertain", score


# --- the strategy ---------------------------------------------------------------------------


class VerifyStrategy(Strategy):
    """claims of the text → members vote on each → evidence → per-claim verdicts."""

    name = "verify"
    summary = "Fact-check a text claim by claim: members vote, sources are consulted."
    params: ClassVar[dict[str, Any]] = {
        "question": None, "collection": None, "search": None, "db": None, "extract": "auto",
        "judge": "auto", "max_claims": MAX_VERIFY_CLAIMS,
    }

    async def run(self, ctx: RunContext) -> Verdict:
        o = self.options
        sources = Sources(o["collection"], db=o["db"], providers=o["search"]) if (o["collection"] or o["search"]) else None
        if sources is not None:
            sources.check()  # an unknown or empty collection fails before any model call
        council, settings = ctx.council, ctx.council.settings
        question = o["question"]
        mode = extraction_mode(str(o["extract"]), settings.short_answer)
        use_models = o["judge"] == "on" or (o["judge"] == "auto" and mode != "split")
        warnings: list[str] = []
        with ctx.watch.stage("claims") as st:
            extracted = await extract_claims(
                question or "", "text", ctx.question, council.chair_model, mode=mode, max_claims=int(o["max_claims"])
            )
            ctx.count_call(council.chair_model, extracted.usage)
            warnings += [f"Claims of the text: {n}." for n in extracted.notes]
            st.data = {"claims": len(extracted.claims), "method": extracted.method, "removed": extracted.removed}
        texts = extracted.claims
        if not texts:
            warnings.append("The text has no checkable claims (no factual statement was found).")
        ids = [f"c{i}" for i in range(1, len(texts) + 1)]
        votes: dict[str, dict[str, Vote]] = {cid: {} for cid in ids}
        per_member: dict[str, list[MemberAnswer]] = {m.name: [] for m in council.members}

        async def vote(cid: str, claim: str) -> None:
            fan = ctx.fanout(f"vote_{cid}")
            # The member's own system prompt is replaced: it asks for an answer, not a vote.
            messages = [Message(role="system", content=VOTE_SYSTEM), Message(role="user", content=vote_prompt(claim, question))]
            results = await asyncio.gather(
                *(fan.one(ctx.question, m, messages, max_tokens=VOTE_MAX_TOKENS, temperature=0.0) for m in council.members)
            )
            for member, answer in zip(council.members, results):
                per_member[member.name].append(answer)
                if answer.ok:
                    votes[cid][member.name] = parse_vote(answer.text)

        with ctx.watch.stage("votes") as st:
            await asyncio.gather(*(vote(cid, text) for cid, text in zip(ids, texts)))
            st.data = {"votes": votes}
        evidence_verdicts: dict[str, str] = {}
        matrix = ClaimMatrix(members=[m.name for m in council.members], claims=[])
        for cid, text in zip(ids, texts):
            stances: dict[str, Stance] = {
                m.name: {"true": "supports", "false": "contradicts"}.get(votes[cid].get(m.name, "unsure"), "silent")  # type: ignore[misc]
                for m in council.members
            }
            # A claim no member confirms or denies is held by the text alone: "unique".
            status = claim_status(stances, council.weights) if set(stances.values()) != {"silent"} else "unique"
            matrix.claims.append(Claim(id=cid, text=text, stances=stances, status=status))
        if sources is not None and texts:
            with ctx.watch.stage("ground") as st:
                grounding = await ground_claims(
                    list(zip(ids, texts)), sources, judge=council.chair_model if use_models else None,
                    question=question, timeout=settings.timeout,
                )
                attach(matrix, grounding)
                ctx.count_call(council.chair_model, grounding.usage)
                warnings += grounding.warnings
                evidence_verdicts = dict(grounding.verdicts)
                st.data = {"verdicts": grounding.verdicts}
        checks = []
        names = [m.name for m in council.members]
        for claim in matrix.claims:
            verdict, score = judge_claim(votes[claim.id], council.weights, names, evidence_verdicts.get(claim.id, "unchecked"))
            checks.append(ClaimCheck(id=claim.id, text=claim.text, verdict=verdict, score=score, votes=votes[claim.id],
                                     evidence=claim.evidence, evidence_verdict=claim.evidence_verdict))
        summaries = [_summary(council_member, per_member[council_member.name], votes) for council_member in council.members]
        failed = [a.member for a in summaries if not a.ok]
        if failed:
            warnings.append(f"{len(failed)} member(s) did not vote: {', '.join(failed)}.")
        overall = max((c.verdict for c in checks), key=lambda v: SEVERITY[v], default="unsupported")
        score = min((c.score for c in checks), default=0.5)
        counts = {k: sum(1 for c in checks if c.verdict == k) for k in SEVERITY}
        summary = f"{len(checks)} claim(s): " + ", ".join(f"{n} {k}" for k, n in counts.items() if n) if checks else "No checkable claims."
        citations, _ = number_citations(matrix)
        follow = [f"Is it true that {lower_first(c.text).rstrip('.')}?" for c in checks if c.verdict in ("uncertain", "unsupported")][:3]
        decision = Decision(summary, overall, score, None, [], warnings)
        agreement = Agreement(members=[], matrix=[], clusters=[])
        verdict = build_verdict(ctx, self.name, summaries, agreement, None, decision, claims=matrix, citations=citations, follow_ups=follow)
        verdict.confidence_explanation = (
            "The text's score is its weakest claim's: the share of member weight voting true (unsure counts "
            "half), averaged with the evidence when sources were consulted (supported 1, not found 0.5, refuted 0)."
        )
        return VerifyVerdict(**verdict.model_dump(), checks=checks)


def _summary(member: Any, calls: list[MemberAnswer], votes: dict[str, dict[str, Vote]]) -> MemberAnswer:
    """One member's vote calls as one `MemberAnswer` (what the run's members table shows)."""
    ok = [a for a in calls if a.ok]
    usage = UsageOut()
    for a in calls:
        usage.input_tokens += a.usage.input_tokens
        usage.output_tokens += a.usage.output_tokens
    usage.total_tokens = usage.input_tokens + usage.output_tokens
    lines = [f"{cid}: {v[member.name]}" for cid, v in votes.items() if member.name in v]
    costs = [a.cost_usd for a in ok]
    cost = sum(c for c in costs if c is not None) if costs and all(c is not None for c in costs) else None
    if calls and not ok:
        first = calls[0]
        return first.model_copy(update={"usage": usage, "latency_s": round(sum(a.latency_s for a in calls), 4)})
    return MemberAnswer(
        member=member.name, model=member.model.name, status="ok", text="\n".join(lines) or "(no claims to vote on)",
        short_answer=", ".join(lines)[:100] or None,
        usage=usage, latency_s=round(sum(a.latency_s for a in calls), 4), cost_usd=cost if calls else 0.0,
        attempts=max((a.attempts for a in calls), default=1),
    )
