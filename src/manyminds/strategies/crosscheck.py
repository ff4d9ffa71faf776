"""The claim path: long answers cross-checked claim by claim, and the `crosscheck` strategy.

    fan-out ─▶ claims (claims.py) ─▶ matrix (claim_matrix.py) ─▶ review (optional, review.py)
            ─▶ revision rounds on the contested claims, until the matrix stops changing
            ─▶ ground contested / critical claims (ground.py, when a collection or search is given)
            ─▶ synthesize from what survived: the chair sees the *claims* (never the raw answers),
               writes the answer with citation markers [n]; contested points with their sides;
               2–3 follow-up questions from the disputes and the unique claims

`claim_path` is shared: the `council` strategy takes it when the members' answers are long
(`prefers_claims`), `deep` when a collection is configured, `crosscheck` always.

Confidence (docs/claims.md): a claim's support is the weight of the members supporting it minus
the weight contradicting it, over the weight of *all* council members (failed ones included),
at least 0; a source that supports the claim makes it 1, one that refutes it 0. The answer's
confidence is the support-weighted mean of the supports of the claims it rests on: the
consensus and contested claims and any claim a source supports (unique, unsourced claims are
not asserted; when there is nothing else, every claim counts).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from ..models.base import Message, Usage
from ..pipeline.stages.claim_matrix import (
    ANSWER_FRAME,
    MatrixBuild,
    PairJudge,
    apply_reviews,
    build_matrix,
    matrix_changed,
    support,
)
from ..pipeline.stages.claims import (
    ExtractedClaims,
    extract_claims,
    extraction_mode,
    sanitize,
    side_call,
    units,
)
from ..pipeline.stages.compare import compare, with_agreement_signals
from ..pipeline.stages.short_answers import extract_short_answers
from ..evidence.sources import Sources
from ..pipeline.stages.ground import MAX_CHECKS, Grounding, attach, ground_claims, select_claims
from ..pipeline.stages.review import review_answers, revise_answers
from ..pipeline.run import RunContext, build_verdict
from ..pipeline.stages.fanout import gather_answers
from ..pipeline.stages.prompts import anonymise, data_notice, quote
from ..pipeline.stages.synthesize import ChairOutcome, Decision
from ..pipeline.verdict import (
    Agreement,
    ChairResult,
    Citation,
    Claim,
    ClaimMatrix,
    Dissent,
    MemberAnswer,
    Review,
    Verdict,
)
from .base import Strategy

# An answer is "long" — compared claim by claim — from this many words, or two sentences
# of at least LONG_MIN_WORDS words together (measured on the local council: docs/claims.md).
LONG_WORDS = 30
LONG_MIN_WORDS = 16
MAX_FOLLOW_UPS = 3
# The chair's text must take this share of its content words from the claims and the question,
# or it added facts of its own and the composed answer is used instead.
CHAIR_GROUNDING = 0.6

CLAIM_CHAIR_SYSTEM = (
    "You chair a council of AI models. You receive a question and the claims the council's "
    "responses made, sorted by how well they are supported. " + data_notice("The claims") + " Write the answer from "
    "the established claims only; never add facts of your own."
)


def is_long(text: str) -> bool:
    clean, _ = sanitize(text)
    words = len(clean.split())
    return words >= LONG_WORDS or (len(units(clean)) >= 2 and words >= LONG_MIN_WORDS)


_EXPLAIN = re.compile(
    r"^\s*(?:explain|describe|discuss|compare|contrast|summari[sz]e|outline|tell me about|why\b|"
    r"how\s+(?!many\b|much\b|old\b|long\b|far\b|tall\b|big\b|high\b|deep\b|fast\b|often\b)\w+|"
    r"what\s+(?:are|were|is|was)\s+(?:the\s+)?(?:main\s+|key\s+|major\s+)?(?:causes|reasons|effects|"
    r"consequences|differences|advantages|disadvantages|benefits|risks|pros|steps|factors|arguments))\b",
    re.I,
)
EXPLAIN_MIN_WORDS = 12


def asks_for_explanation(question: str) -> bool:
    """"Explain …", "Why …", "How does …", "What were the main causes of …": a question whose
    answer is a set of claims, not one name or number ("How many …" is a number)."""
    return bool(_EXPLAIN.match(question or ""))


_YES_NO = re.compile(
    r"^\s*(?:is|are|am|was|were|do|does|did|can|could|will|would|should|shall|has|have|had|may|might|must)\b",
    re.I,
)
_OPTION_LINE = re.compile(r"^\s*\(?[A-Ha-h][.)]\s+\S", re.M)


def is_closed_question(question: str) -> bool:
    """A yes/no question ("Is …?", "Could …?" — judged on its last line, so a preamble does not
    hide it), one that says "yes or no" / "true or false", or one that lists lettered options.

    Its answer is one word however long the members' explanations: comparing short answers
    decides it, and a chair writing paragraphs from claims would bury the yes, the no or the
    letter (measured on the eval harness: 34 of 120 such answers became unreadable)."""
    text = (question or "").strip()
    if not text:
        return False
    last = text.splitlines()[-1]
    if _YES_NO.match(last) or re.search(r"\b(?:yes or no|true or false)\b", text, re.I):
        return True
    return len(_OPTION_LINE.findall(text)) >= 2


def prefers_claims(answers: list[MemberAnswer], question: str | None = None) -> bool:
    """Whether to compare claim by claim: at least half of the members that answered wrote
    paragraphs rather than a name or a number — or, for a question that asks for an
    explanation, at least a full sentence (EXPLAIN_MIN_WORDS words). Never for a closed
    question (yes/no, lettered options) that does not ask for an explanation."""
    ok = [a for a in answers if a.ok]
    if not ok:
        return False
    if is_closed_question(question or "") and not asks_for_explanation(question or ""):
        return False
    if sum(is_long(a.text) for a in ok) * 2 >= len(ok):
        return True
    wordy = sum(len(sanitize(a.text)[0].split()) >= EXPLAIN_MIN_WORDS for a in ok)
    return asks_for_explanation(question or "") and wordy * 2 >= len(ok)


@dataclass
class PathOptions:
    review: bool = False
    rounds: int = 0
    sources: Sources | None = None
    extract: str = "auto"  # auto | model | split
    judge: str = "auto"  # auto | on | off: a model for borderline pairs and for evidence
    max_checks: int = MAX_CHECKS


@dataclass
class _State:
    claims: dict[str, ExtractedClaims] = field(default_factory=dict)
    reviews: list[Review] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


async def extract_stage(ctx: RunContext, answers: list[MemberAnswer], state: _State, mode: str, stage: str = "claims") -> None:
    """Claims of every ok answer whose text changed since the last extraction."""
    models = {m.name: m.model for m in ctx.council.members}
    todo = [a for a in answers if a.ok and a.member not in state.claims]
    with ctx.watch.stage(stage) as st:
        results = await asyncio.gather(
            *(extract_claims(ctx.question, a.member, a.text, models.get(a.member), mode=mode) for a in todo)
        )
        for answer, result in zip(todo, results):
            state.claims[answer.member] = result
            ctx.count_call(models.get(answer.member), result.usage)
            for note in result.notes:
                state.warnings.append(f"Claims of {answer.member}: {note}.")
            if not result.claims:
                state.warnings.append(f"{answer.member}'s answer has no extractable claims; it is silent on every claim.")
        st.data = {
            "claims": {m: len(r.claims) for m, r in state.claims.items()},
            "methods": {m: r.method for m, r in state.claims.items()},
            "removed": {m: r.removed for m, r in state.claims.items() if r.removed},
        }


async def matrix_stage(ctx: RunContext, answers: list[MemberAnswer], state: _State, judge: PairJudge | None, stage: str = "claim_matrix") -> MatrixBuild:
    member_claims = {a.member: state.claims[a.member].claims for a in answers if a.ok and a.member in state.claims}
    with ctx.watch.stage(stage) as st:
        build = await build_matrix(member_claims, ctx.council.weights, judge=judge)
        if judge is not None:
            ctx.count_call(judge.model, build.usage)
        st.data = {
            "claims": len(build.matrix.claims),
            "status": {s: len(build.matrix.by_status(s)) for s in ("consensus", "contested", "unique")},
            "judged_pairs": build.judged,
        }
    return build


def as_data(answers: list[MemberAnswer]) -> list[MemberAnswer]:
    """The answers as reviewers and debaters see them: instruction-like text, fake verdicts and
    role tags removed (claims.sanitize), so that one member's answer cannot steer another's
    review or revision. Answers with nothing to remove are passed as they are."""
    out = []
    for a in answers:
        clean, removed = sanitize(a.text) if a.ok else (a.text, [])
        out.append(a.model_copy(update={"text": clean}) if removed else a)
    return out


def disputes(build: MatrixBuild) -> list[list[Claim]]:
    """Contested claims grouped into disputes: claims linked by a contradiction form one
    dispute (its positions); a contested claim with no such link is a dispute of its own."""
    by_id = {c.id: c for c in build.matrix.claims}
    parent = {c.id: c.id for c in build.matrix.claims}

    def root(x: str) -> str:
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b, _ in build.conflicts:
        if a in parent and b in parent:
            parent[root(a)] = root(b)
    groups: dict[str, list[Claim]] = {}
    for claim in build.matrix.claims:
        if claim.status == "contested":
            groups.setdefault(root(claim.id), []).append(claim)
    for a, b, _ in build.conflicts:  # a non-contested side of a conflict cannot exist, but be safe
        for x in (a, b):
            if by_id[x].status != "contested" and by_id[x] not in groups.get(root(x), []):
                groups.setdefault(root(x), []).append(by_id[x])
    return list(groups.values())


def _describe_dispute(group: list[Claim], weights: dict[str, float]) -> str:
    return " vs ".join(
        f'"{c.text}" ({", ".join(m for m, s in c.stances.items() if s == "supports") or "no one"})'
        for c in sorted(group, key=lambda c: -support(c, weights))
    )


async def revision_rounds(ctx: RunContext, answers: list[MemberAnswer], build: MatrixBuild, state: _State,
                          options: PathOptions, judge: PairJudge | None, mode: str) -> tuple[list[MemberAnswer], MatrixBuild]:
    """Debate on the contested claims: members revise after seeing them, claims and matrix are
    rebuilt; stops when no claim is contested, the matrix stops changing, or `rounds` is reached."""
    weights = ctx.council.weights
    for round_no in range(1, int(options.rounds) + 1):
        groups = disputes(build)
        if not groups:
            break
        disputed = [_describe_dispute(g, weights) for g in groups]
        with ctx.watch.stage(f"revise_{round_no}") as st:
            shown = await revise_answers(
                ctx.fanout(), ctx.question, as_data(answers), ctx.council.members,
                seed=ctx.run_id, round_no=round_no, disputed=disputed,
            )
            # A member that kept its answer keeps the original object (and its own wording).
            revised = [a if r.text == d.text and r.member == a.member else r for a, d, r in zip(answers, as_data(answers), shown)]
            st.data = {"disputed": len(disputed)}
        ctx.count([a for a, r in zip(answers, revised) if r is not a])  # the superseded answers
        for old, new in zip(answers, revised):
            if new is not old and new.text != old.text:
                state.claims.pop(new.member, None)
        answers = revised
        await extract_stage(ctx, answers, state, mode, stage=f"claims_{round_no + 1}")
        new_build = await matrix_stage(ctx, answers, state, judge, stage=f"claim_matrix_{round_no + 1}")
        changed = await matrix_changed(build.matrix, new_build.matrix)
        build = new_build
        if not changed:
            break
    return answers, build


# --- synthesis ------------------------------------------------------------------------------


def number_citations(matrix: ClaimMatrix) -> tuple[list[Citation], dict[str, list[int]]]:
    """Citations [1], [2]… for the evidence on the claims, in matrix order; claim id → markers."""
    citations: list[Citation] = []
    index: dict[tuple[str, str, str], Citation] = {}
    markers: dict[str, list[int]] = {}
    for claim in matrix.claims:
        for ev in claim.evidence:
            if ev.verdict not in ("supported", "refuted"):
                continue
            key = (ev.document, ev.location, ev.quote)
            if key not in index:
                index[key] = Citation(id=len(citations) + 1, document=ev.document, location=ev.location, quote=ev.quote)
                citations.append(index[key])
            if claim.id not in index[key].claim_ids:
                index[key].claim_ids.append(claim.id)
            markers.setdefault(claim.id, []).append(index[key].id)
    return citations, markers


def _marks(ids: list[int]) -> str:
    return "".join(f"[{i}]" for i in ids)


def established(matrix: ClaimMatrix) -> list[Claim]:
    """What the answer may state as fact: consensus claims no source refutes, and any claim a
    source supports."""
    return [
        c for c in matrix.claims
        if (c.status == "consensus" and c.evidence_verdict != "refuted") or c.evidence_verdict == "supported"
    ]


def chair_prompt(question: str, build: MatrixBuild, markers: dict[str, list[int]], labels: dict[str, str]) -> str:
    """`labels`: member → "Response X" (the chair never learns which model holds a side)."""
    matrix = build.matrix

    def held(claim: Claim, stance: str) -> str:
        names = sorted(labels[m] for m, s in claim.stances.items() if s == stance and m in labels)
        return ", ".join(names)

    settled = established(matrix)
    parts = [f"Question: {question}", "", "Established by the responses (quoted data; [n] marks a source):"]
    parts += [f"- {quote(c.text)} {_marks(markers.get(c.id, []))}".rstrip() for c in settled] or ["- (nothing)"]
    groups = disputes(build)
    if groups:
        parts += ["", "Contested points (state them as open, with who holds which side):"]
        for group in groups:
            sides = [f'{held(c, "supports") or "no response"}: "{quote(c.text)}" {_marks(markers.get(c.id, []))}'.rstrip() for c in group]
            against = {held(c, "contradicts") for c in group if held(c, "contradicts")} if len(group) == 1 else set()
            line = " versus ".join(sides) + (f" (disputed by {', '.join(sorted(against))})" if against else "")
            parts.append(f"- {line}")
    refuted = [c for c in matrix.claims if c.evidence_verdict == "refuted"]
    if refuted:
        parts += ["", "Contradicted by a source (do not state as fact):"]
        parts += [f"- {quote(c.text)} {_marks(markers.get(c.id, []))}".rstrip() for c in refuted]
    unique = [c for c in matrix.claims if c.status == "unique" and c not in settled and c not in refuted]
    if unique:
        parts += ["", "Said by one response only (unconfirmed):"]
        parts += [f"- {quote(c.text)}" for c in unique[:6]]
    parts += [
        "",
        "Write the answer in a short paragraph from the established points. Keep each [n] after "
        "the point it supports. Say which responses hold which side of each contested point. "
        "Add nothing that is not listed above.",
    ]
    return "\n".join(parts)


def compose_answer(build: MatrixBuild, markers: dict[str, list[int]]) -> str:
    """The answer without a chair: the established claims, then each dispute with its sides."""
    weights = build.weights
    lines = [f"{c.text.rstrip('.')}{' ' + _marks(markers[c.id]) if c.id in markers else ''}." for c in established(build.matrix)]
    text = " ".join(lines)
    groups = disputes(build)
    if groups:
        text += ("\n\n" if text else "") + "Contested: " + "; ".join(_describe_dispute(g, weights) for g in groups) + "."
    if not text:
        unique = build.matrix.by_status("unique")
        text = "The members made no claim in common. " + " ".join(
            f"{next(iter(c.wordings))} says: {c.text}" for c in unique[:4]
        )
    return text.strip()


def grounded_in(text: str, sources: list[str]) -> float:
    from ..pipeline.stages.claims import grounding

    return grounding(text, " ".join(sources))


def follow_ups(question: str, build: MatrixBuild, limit: int = MAX_FOLLOW_UPS) -> list[str]:
    """Questions the user did not ask: one per dispute ("Which is right: …?"), then one per
    unique claim no source settled ("Is it true that …?")."""
    out: list[str] = []
    for group in disputes(build):
        positions = [_answer_of(c.text) for c in group]
        if len(positions) >= 2:
            out.append(f"Which is right: {positions[0]}, or {positions[1]}?")
        else:
            out.append(f"Is it true that {lower_first(positions[0])}?")
    for claim in build.matrix.by_status("unique"):
        if claim.evidence_verdict in ("supported", "refuted"):
            continue
        out.append(f"Is it true that {lower_first(_answer_of(claim.text))}?")
    seen: list[str] = []
    for q in out:
        if q not in seen and q.rstrip("?") not in question:
            seen.append(q)
    return seen[:limit]


def _answer_of(text: str) -> str:
    match = ANSWER_FRAME.match(text.strip())
    body = f"the answer is {match.group(1)}" if match else text
    return body.strip().rstrip(".")


_COMMON_STARTS = frozenset(
    "the a an it its this that these those there some most many all their they he she his her we our one each".split()
)


def lower_first(text: str) -> str:
    """A claim as the tail of a question ("Is it true that the Nile …?"): the first letter is
    lowered only for a common word — "Paris is …" keeps its capital."""
    first = text.split(" ", 1)[0]
    return text[0].lower() + text[1:] if first.lower() in _COMMON_STARTS else text


def claim_confidence(matrix: ClaimMatrix, weights: dict[str, float], total_weight: float) -> tuple[float, list[Claim]]:
    """(confidence, the claims it rests on); see the module docstring."""
    total_weight = total_weight or 1.0

    def score(c: Claim) -> float:
        if c.evidence_verdict == "supported":
            return 1.0
        if c.evidence_verdict == "refuted":
            return 0.0
        against = sum(weights.get(m, 1.0) for m, s in c.stances.items() if s == "contradicts")
        return max(0.0, support(c, weights) - against) / total_weight

    basis = [c for c in matrix.claims if c.status != "unique" or c.evidence_verdict == "supported"] or list(matrix.claims)
    mass = sum(support(c, weights) for c in basis)
    if not basis or mass <= 0:
        return 0.0, basis
    return round(min(1.0, sum(support(c, weights) * score(c) for c in basis) / mass), 4), basis


async def synthesize_claims(ctx: RunContext, build: MatrixBuild, answers: list[MemberAnswer]) -> tuple[ChairOutcome, str, list[Citation], list[str]]:
    """(the chair's outcome, the answer, citations, warnings)."""
    settings, council = ctx.council.settings, ctx.council
    citations, markers = number_citations(build.matrix)
    labelled = anonymise(answers, ctx.run_id)
    labels = {a.member: f"Response {label}" for label, a in labelled.items()}
    warnings: list[str] = []
    with ctx.watch.stage("synthesize") as st:
        messages = [
            Message(role="system", content=settings.chair_system or CLAIM_CHAIR_SYSTEM),
            Message(role="user", content=chair_prompt(ctx.question, build, markers, labels)),
        ]
        call = await side_call(council.chair_model, messages, max_tokens=settings.chair_max_tokens,
                               timeout=settings.timeout)
        model = council.chair_model
        if call.text is None or not call.text.strip():
            error = {"type": "ModelError", "message": call.error or "the chair returned an empty answer", "member": council.chair_name}
            result = ChairResult(member=council.chair_name, model=model.name, status="failed", error=error, usage=call.usage)
        else:
            result = ChairResult(member=council.chair_name, model=model.name, status="ok", text=call.text.strip(),
                                 usage=call.usage, cost_usd=model.cost_usd(Usage(call.usage.input_tokens, call.usage.output_tokens)))
        composed = compose_answer(build, markers)
        answer = composed
        if result.status == "ok":
            text = _named(result.text, labels)
            basis = [c.text for c in build.matrix.claims] + [ctx.question]
            # The labels are not facts: "Responses A and B hold …" must not count against the chair.
            share = grounded_in(re.sub(r"\bResponses?\s+[A-Z]\d*(?:\s*(?:,|and|&)\s*[A-Z]\d*\b)*", " ", result.text), basis)
            if share >= CHAIR_GROUNDING:
                answer = text
                if citations and not re.search(r"\[\d+\]", answer):
                    answer += "\n\nSources: " + " ".join(f"[{c.id}]" for c in citations)
            else:
                warnings.append(
                    f"The chair's answer was set aside: only {share:.0%} of its words come from the members' "
                    f"claims (it would add facts); the answer is composed from the claims: {_clip(result.text)!r}"
                )
        st.data = {"labels": {v: k for k, v in labels.items()}, "chair_status": result.status}
    outcome = ChairOutcome(text=result.text, result=result, labels={v.removeprefix("Response "): k for k, v in labels.items()})
    return outcome, answer, citations, warnings


def _named(text: str, labels: dict[str, str]) -> str:
    """"Response A" → the member's name: the verdict says who holds which side."""
    by_letter = {v.removeprefix("Response "): k for k, v in labels.items()}

    def one(match: re.Match[str]) -> str:
        letters = re.findall(r"\b([A-Z]\d*)\b", match.group(1))
        names = [by_letter.get(x, x) for x in letters]
        return ", ".join(names)

    return re.sub(r"\bResponses?\s+((?:[A-Z]\d*)(?:\s*(?:,|and|&)\s*[A-Z]\d*\b)*)", one, text)


def _clip(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the path -------------------------------------------------------------------------------


async def claim_path(ctx: RunContext, strategy: str, answers: list[MemberAnswer], options: PathOptions | None = None) -> Verdict:
    """From the members' answers to a verdict with the claim matrix; see the module docstring."""
    options = options or PathOptions()
    settings = ctx.council.settings
    mode = extraction_mode(options.extract, settings.short_answer)
    use_judge = options.judge == "on" or (options.judge == "auto" and mode != "split")
    judge = PairJudge(ctx.council.chair_model, timeout=settings.timeout) if use_judge else None
    state = _State()
    with ctx.watch.stage("compare") as st:
        # Short answers of paragraphs say little, but the verdict keeps the answer-level view.
        answers = await extract_short_answers(ctx.question, answers, {}, mode="heuristic")
        agreement: Agreement = compare(answers, ctx.council.weights, aliases=settings.answer_aliases, question=ctx.question)
        answers = with_agreement_signals(answers, agreement)
        st.data = {"clusters": len(agreement.clusters), "claim_path": True}
    await extract_stage(ctx, answers, state, mode)
    build = await matrix_stage(ctx, answers, state, judge)
    if options.review:
        with ctx.watch.stage("review_1") as st:
            reviews = await review_answers(ctx.fanout(), ctx.question, as_data(answers), ctx.council.members, seed=ctx.run_id, round_no=1)
            ctx.count_reviews(reviews)
            state.reviews += reviews
            st.data = {"reviews": len(reviews), "stances_changed": apply_reviews(build, reviews)}
    if options.rounds:
        answers, build = await revision_rounds(ctx, answers, build, state, options, judge, mode)
    grounding: Grounding | None = None
    if options.sources is not None and options.sources.active:
        with ctx.watch.stage("ground") as st:
            chosen = select_claims(build.matrix, options.max_checks)
            grounding = await ground_claims(
                [(c.id, c.text) for c in chosen], options.sources,
                judge=ctx.council.chair_model if use_judge else None, question=ctx.question, timeout=settings.timeout,
            )
            attach(build.matrix, grounding)
            ctx.count_call(ctx.council.chair_model, grounding.usage)
            state.warnings += grounding.warnings
            st.data = {"checked": len(chosen), "verdicts": grounding.verdicts, "judge_calls": grounding.judge_calls}
    chair, answer, citations, chair_warnings = await synthesize_claims(ctx, build, answers)
    weights = ctx.council.weights
    total = sum(weights.get(m.name, 1.0) for m in ctx.council.members)
    confidence, basis = claim_confidence(build.matrix, weights, total)
    dissent = [
        Dissent(answer=c.text, members=[m for m, s in c.stances.items() if s == "supports"], share=round(support(c, weights) / (total or 1.0), 4))
        for c in build.matrix.claims if c.status == "contested"
    ]
    failed = [a.member for a in answers if not a.ok]
    warnings = state.warnings + build.warnings + chair_warnings
    if failed:
        warnings.append(f"{len(failed)} member(s) did not answer: {', '.join(failed)}.")
    top = next((c for c in build.matrix.claims if c.status == "consensus"), None)
    frame = ANSWER_FRAME.match(top.text) if top else None
    decision = Decision(answer, frame.group(1).rstrip(".") if frame else None, confidence, None, dissent, warnings)
    verdict = build_verdict(
        ctx, strategy, answers, agreement, chair, decision,
        claims=build.matrix, citations=citations, follow_ups=follow_ups(ctx.question, build), reviews=state.reviews,
    )
    verdict.confidence_explanation = explain_claims(build.matrix, basis, confidence)
    return verdict


def explain_claims(matrix: ClaimMatrix, basis: list[Claim], confidence: float) -> str:
    counts = {s: len(matrix.by_status(s)) for s in ("consensus", "contested", "unique")}
    sourced = sum(1 for c in matrix.claims if c.evidence_verdict in ("supported", "refuted"))
    text = (
        f"{len(matrix.claims)} claims: {counts['consensus']} consensus, {counts['contested']} contested, "
        f"{counts['unique']} unique"
        + (f", {sourced} checked against sources" if sourced else "")
        + f". Confidence is the support-weighted mean support of the {len(basis)} claim(s) the answer rests on "
        "(a claim's support: the weight of the members stating it minus those contradicting it, over all "
        "members' weight; a supporting source makes it 1, a refuting one 0)."
    )
    return text


# --- the strategy ---------------------------------------------------------------------------


class CrossCheck(Strategy):
    """fan-out → claims → matrix → review → revision rounds → ground → synthesize from evidence."""

    name = "crosscheck"
    summary = "Answers are split into claims and cross-checked, reviewed, debated and grounded; a chair writes from what survived."
    params = {
        "review": True, "rounds": 1, "collection": None, "search": None, "db": None,
        "extract": "auto", "judge": "auto", "max_checks": MAX_CHECKS,
    }

    def path_options(self) -> PathOptions:
        o = self.options
        sources = Sources(o["collection"], db=o["db"], providers=o["search"]) if (o["collection"] or o["search"]) else None
        return PathOptions(review=bool(o["review"]), rounds=int(o["rounds"]), sources=sources,
                           extract=str(o["extract"]), judge=str(o["judge"]), max_checks=int(o["max_checks"]))

    async def run(self, ctx: RunContext) -> Verdict:
        options = self.path_options()
        if options.sources is not None:
            options.sources.check()  # an unknown or empty collection fails before any model call
        answers = await gather_answers(ctx)
        return await claim_path(ctx, self.name, answers, options)
