"""The overnight tier: everything the council can do for one question, then a written report.

    fan-out ─▶ samples: each member answers SAMPLES more times at a raised temperature;
               its answer in the vote becomes its most common one (self-consistency),
               and its spread (semantic entropy) goes into its signals
            ─▶ the deep tier on those answers, grounded in *every* source: each non-empty
               document collection in the run store and each configured search provider
            ─▶ a markdown report, stored with the run (`verdict.report`;
               `manyminds runs show ID --report` prints it)

`manyminds ask --effort overnight` (and the server, the MCP tool) queue it as a background job
(jobs/): a worker runs it, and a job whose worker died is run again, as the deep jobs are.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..pipeline.run import RunContext
from ..pipeline.stages.compare import compare, semantic_entropy
from ..pipeline.stages.fanout import gather_answers
from ..pipeline.verdict import MemberAnswer, Verdict
from .base import Strategy
from .deep import deep_verdict
from .tiers import NO_SOURCE_WARNING

SAMPLES = 3
TEMPERATURE = 0.7


class EverySource:
    """Passages from every document collection (one `Sources` each) and the search providers,
    with the interface the grounding stage uses."""

    def __init__(self, collections: list[str], db: Any, providers: Any) -> None:
        from ..evidence.sources import Sources

        self.names = list(collections)
        self.parts = [Sources(c, db=db) for c in collections]
        if providers:
            self.parts.append(Sources(None, providers=providers))
            self.names += [f"search:{n}" for n in (providers if isinstance(providers, dict) else range(len(list(providers))))]

    @property
    def active(self) -> bool:
        return any(p.active for p in self.parts)

    async def passages(self, query: str) -> tuple[list[Any], list[str]]:
        found: list[Any] = []
        warnings: list[str] = []
        for part in self.parts:
            more, notes = await part.passages(query)
            found += more
            warnings += notes
        return found, warnings


def every_source(db: Any, providers: Any) -> EverySource:
    from ..evidence import DocumentIndex
    from ..store import open_db

    database = db if hasattr(db, "execute") else open_db(db)
    names = [c["name"] for c in DocumentIndex(database).collections() if c["chunks"]]
    return EverySource(names, database, providers)


async def sample_members(ctx: RunContext, answers: list[MemberAnswer], k: int, temperature: float) -> list[MemberAnswer]:
    """Each answering member sampled `k` more times (seeds 1…k); the member's answer becomes
    the representative of its most common cluster of {answer, samples} (its own answer wins a
    tie), with the spread in its signals. The samples' tokens count in the run's totals."""
    seats = {m.name: m for m in ctx.council.members}
    ok = [a for a in answers if a.ok and a.member in seats]
    drawn = [replace(seats[a.member], settings=seats[a.member].settings.model_copy(
        update={"name": f"{a.member}#{i}", "temperature": temperature, "seed": i, "weight": 1.0}))
        for a in ok for i in range(1, k + 1)]
    with ctx.watch.stage("samples") as st:
        samples = await ctx.fanout("samples").run(ctx.question, drawn)
        ctx.count(samples)
        changed: list[str] = []
        out = []
        for answer in answers:
            mine = [s for s in samples if s.member.split("#")[0] == answer.member and s.ok]
            if not answer.ok or not mine:
                out.append(answer)
                continue
            pool = [answer] + mine
            agreement = compare(pool, {}, aliases=ctx.council.settings.answer_aliases, question=ctx.question)
            entropy = semantic_entropy(agreement)
            top = agreement.clusters[0] if agreement.clusters else None
            pick = answer
            if top is not None and answer.member not in top.members:
                runner = next((c for c in agreement.clusters if answer.member in c.members), None)
                if runner is None or len(runner.members) < len(top.members):
                    pick = next(s for s in mine if s.member == top.members[0])
                    changed.append(answer.member)
            signals = answer.signals.model_copy(update={"semantic_entropy": entropy, "samples": len(pool)})
            out.append(pick.model_copy(update={"member": answer.member, "signals": signals}) if pick is not answer
                       else answer.model_copy(update={"signals": signals}))
        st.data = {"samples": len(samples), "per_member": k, "changed": changed}
    return out


class OvernightTier(Strategy):
    name = "tier:overnight"
    summary = "Deep, with members sampled (self-consistency), every grounding source, and a written report."
    params = {"rounds": 2, "samples": SAMPLES, "temperature": TEMPERATURE, "collection": None, "search": None, "db": None}
    stages = ("fan_out", "samples", "compare", "claims", "claim_matrix", "review_1", "revise_1", "ground", "synthesize")

    async def run(self, ctx: RunContext) -> Verdict:
        from ..errors import InputError

        o = self.options
        k = int(o["samples"])
        if not 0 <= k <= 16:
            raise InputError(f"The overnight tier samples 0 to 16 times per member, not {k}.")
        sources = every_source(o["db"], o["search"])
        answers = await gather_answers(ctx)
        if k:
            answers = await sample_members(ctx, answers, k, float(o["temperature"]))
        verdict = await deep_verdict(ctx, self.name, answers, int(o["rounds"]), sources if sources.active else None)
        if not sources.active:
            verdict.warnings.append(NO_SOURCE_WARNING.replace("deep tier", "overnight tier"))
        verdict.effort = "overnight"
        verdict.report = write_report(verdict, sources.names, k)
        return verdict


def write_report(v: Verdict, sources: list[str], samples: int) -> str:
    """The overnight report in markdown: answer, confidence, who said what, the claims and what
    the sources said, the disputes, the reviews and the cost. Member text is quoted as data."""

    def cell(text: Any) -> str:
        return " ".join(str(text or "").split()).replace("|", "\\|")[:300]

    lines = [f"# {cell(v.question)}", "", f"Run `{v.run_id}` · council `{v.council}` · effort: overnight", "",
             "## Answer", "", v.answer, ""]
    if v.explanation and v.explanation.strip() != v.answer.strip():
        lines += [f"> {cell(v.explanation)}", ""]
    lines += [f"**Confidence {v.confidence:.0%}** — {v.confidence_explanation}", ""]
    lines += ["## Members", "", "| member | model | status | answer | self-consistency | seconds | tokens |",
              "|---|---|---|---|---|---|---|"]
    for m in v.members:
        spread = "—" if m.signals.semantic_entropy is None else f"entropy {m.signals.semantic_entropy:.2f} over {m.signals.samples}"
        lines.append(f"| {cell(m.member)} | {cell(m.model)} | {m.status} | {cell(m.short_answer or m.text)} | {spread} | "
                     f"{m.latency_s:.1f} | {m.usage.total_tokens} |")
    lines += ["", f"Each member was sampled {samples} more time(s); its answer in the vote is its most common one.", ""]
    if v.claims is not None:
        lines += ["## Claims", "", "| id | claim | status | sources |", "|---|---|---|---|"]
        lines += [f"| {c.id} | {cell(c.text)} | {c.status} | {c.evidence_verdict} |" for c in v.claims.claims]
        lines.append("")
    lines += ["## Sources consulted", ""]
    lines += [f"- {cell(s)}" for s in sources] or ["- none configured (add documents with `manyminds docs add`)"]
    if v.citations:
        lines += ["", "## Citations", ""]
        lines += [f"[{c.id}] {cell(c.document)} ({cell(c.location)}): “{cell(c.quote)}”" for c in v.citations]
    if v.dissent:
        lines += ["", "## Dissent", ""]
        lines += [f"- {cell(d.answer)} — {', '.join(d.members)} ({d.share:.0%})" for d in v.dissent]
    if v.reviews:
        lines += ["", "## Reviews", ""]
        for r in v.reviews:
            flagged = "; ".join(f"{e.member}: {cell(e.reason)}" for e in r.errors) or "no errors flagged"
            lines.append(f"- round {r.round}, {r.reviewer} ({r.status}): ranking {', '.join(r.ranking) or '—'}; {flagged}")
    if v.follow_ups:
        lines += ["", "## Questions to ask next", ""] + [f"- {cell(q)}" for q in v.follow_ups]
    if v.warnings:
        lines += ["", "## Warnings", ""] + [f"- {cell(w)}" for w in v.warnings]
    cost = f"${v.cost_usd:.4f}" if v.cost_usd is not None else "unknown"
    lines += ["", "## Cost", "", f"{v.usage.total_tokens} tokens · cost {cost} · "
              + ", ".join(f"{k} {s:.1f}s" for k, s in v.timings.items()), ""]
    return "\n".join(lines)
