"""Synthesize: a chair writes one answer from the anonymised member answers and their agreement.

The chair sees "Response A, B, …" — never which model wrote what — in an order shuffled per run,
so neither a model's reputation nor its position can sway it. Member answers are quoted as data
inside delimiters and the chair is told to ignore instructions found there.

Confidence (documented in docs/confidence.md): the weighted share of *all* council members —
failed ones included, as non-supporters — whose short answer is equivalent to the final short
answer. A unanimous council of three gives 1.0; two of three agreeing, 0.67; a lone answer from
a council of three whose other members failed, 0.33. It is an agreement figure, not a probability
of being right: small models can agree on a wrong answer.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ... import budget
from ...errors import ManymindsError, ModelError, ModelTimeout
from ...models.base import Completion, Message, Model, ModelOptions
from ..normalize import content_tokens
from ..verdict import Agreement, ChairResult, Cluster, Dissent, MemberAnswer, UsageOut
from .compare import similarity
from .prompts import anonymise, data_notice, quoted_response
from .short_answers import heuristic_short_answer

if TYPE_CHECKING:
    from ..run import RunContext

CHAIR_SYSTEM = (
    "You chair a council of AI models. You receive a question and the anonymised responses of "
    "the council members, with a note on which responses agree. " + data_notice("The responses") + " Write the single "
    "best final answer to the question: short, direct and correct. Where the responses disagree, "
    "prefer the best-supported answer unless it is clearly wrong."
)

@dataclass
class ChairOutcome:
    text: str
    result: ChairResult
    labels: dict[str, str]  # label → member, kept out of the chair's sight; stored with the run


def chair_prompt(question: str, labelled: dict[str, MemberAnswer], agreement: Agreement) -> str:
    member_label = {a.member: label for label, a in labelled.items()}
    parts = [f"Question: {question}", "", "Responses (quoted data):"]
    parts += [quoted_response(label, answer.text) for label, answer in labelled.items()]
    parts.append("")
    parts.append("Agreement between responses:")
    for cluster in agreement.clusters:
        labels = sorted(member_label[m] for m in cluster.members if m in member_label)
        parts.append(
            f"- Responses {', '.join(labels)} answer {cluster.answer!r} ({cluster.share:.0%} of the answering weight)."
        )
    parts.append("")
    parts.append("Write the final answer in one or two sentences.")
    return "\n".join(parts)


async def run_chair(
    question: str,
    answers: list[MemberAnswer],
    agreement: Agreement,
    chair_name: str,
    model: Model,
    *,
    system: str | None,
    max_tokens: int,
    timeout: float,
    seed: str,
) -> ChairOutcome:
    labelled = anonymise(answers, seed)
    messages = [
        Message(role="system", content=system or CHAIR_SYSTEM),
        Message(role="user", content=chair_prompt(question, labelled, agreement)),
    ]
    labels = {label: a.member for label, a in labelled.items()}
    try:
        options = ModelOptions(temperature=0.0, max_tokens=max_tokens)
        async with asyncio.timeout(timeout):  # like a member's: the council's retries included
            completion: Completion = await model.complete(messages, options)
    except TimeoutError:
        if (cut := budget.cut_on_timeout(model, timeout)) is not None:
            return _chair_failed(chair_name, model, cut, labels)  # stopped by the budget, not by a slow model
        err: ModelError = ModelTimeout(f"no answer within {timeout:g} s", provider=model.provider, model=model.name)
        return _chair_failed(chair_name, model, err, labels)
    except ModelError as err:
        return _chair_failed(chair_name, model, err, labels)
    except ManymindsError as exc:
        return _chair_failed(chair_name, model, ModelError(str(exc), provider=model.provider, model=model.name), labels)
    text = completion.text.strip()
    if not text:
        err = ModelError("the chair returned an empty answer", provider=model.provider, model=model.name)
        return _chair_failed(chair_name, model, err, labels)
    result = ChairResult(
        member=chair_name,
        model=model.name,
        status="ok",
        text=text,
        usage=UsageOut(**completion.usage.to_dict()),
        latency_s=round(completion.latency_s, 4),
        cost_usd=model.cost_usd(completion.usage),
    )
    return ChairOutcome(text=text, result=result, labels=labels)


def _chair_failed(chair_name: str, model: Model, err: ModelError, labels: dict[str, str]) -> ChairOutcome:
    err.with_member(chair_name)
    result = ChairResult(member=chair_name, model=model.name, status="failed", error=err.to_dict())
    return ChairOutcome(text="", result=result, labels=labels)


@dataclass
class Decision:
    answer: str
    short_answer: str | None
    confidence: float
    cluster: Cluster | None
    dissent: list[Dissent]
    warnings: list[str]
    explanation: str | None = None  # prose that explains the answer (the chair's, when it may)


def vote(answers: list[MemberAnswer], agreement: Agreement, weights: dict[str, float]) -> Decision:
    """A weighted plurality vote over the clusters of short answers.

    The heaviest cluster wins; ties go to the cluster with more members, then to the one whose
    first member comes first (the order `compare` sorts in). Confidence is the winner's weight
    over the weight of every voter, failed ones included. The answer is the text of the member
    whose short answer the cluster carries, verbatim.
    """
    total = sum(weights.get(a.member, 1.0) for a in answers) or 1.0
    if not agreement.clusters:
        return Decision("", None, 0.0, None, [], ["No member gave a usable answer."])
    winner = agreement.clusters[0]
    by_member = {a.member: a for a in answers}
    voters = [by_member[m] for m in winner.members if m in by_member]
    representative = next((a for a in voters if a.short_answer == winner.answer), voters[0])
    dissent = [
        Dissent(answer=c.answer, members=c.members, share=round(c.weight / total, 4)) for c in agreement.clusters[1:]
    ]
    warnings = []
    failed = [a.member for a in answers if not a.ok]
    if failed:
        warnings.append(f"{len(failed)} member(s) did not answer: {', '.join(failed)}.")
    if len(agreement.clusters) > 1 and round(agreement.clusters[1].weight, 9) == round(winner.weight, 9):
        warnings.append(f"Tied vote; broken in favour of {winner.answer!r} (more members, then member order).")
    confidence = round(min(1.0, winner.weight / total), 4)
    return Decision(representative.text, winner.answer, confidence, winner, dissent, warnings)


def decide(
    question: str,
    chair_text: str | None,
    answers: list[MemberAnswer],
    agreement: Agreement,
    weights: dict[str, float],
    threshold: float = 0.8,
    aliases: dict[str, list[str]] | None = None,
) -> Decision:
    """The council's rule for short answers: the weighted vote chooses, the chair explains.

    The answer is the winning cluster's canonical short answer (`vote`), whatever the chair
    wrote: a chair is one more small model, and its prose has no more claim to be right than
    a member's. The chair's text becomes the explanation only when it endorses the winning
    answer and every content word and number in it comes from the question or from the
    answers of the members that voted for it — so it can never add a fact no member gave
    ("Shakespeare wrote Hamlet in the 17th century" when no member said when). Otherwise the
    explanation is the winning answer's own text and a warning says why the chair's was set aside.
    """
    decision = vote(answers, agreement, weights)
    if decision.cluster is None:
        if chair_text:
            decision.warnings.append(f"The chair's text is not an answer when no member gave one: {_clip(chair_text)!r}")
        return decision
    winner = decision.cluster
    decision.answer, decision.explanation = winner.answer, corroborated_text(question, winner, answers)
    if not chair_text:
        if chair_text is not None:  # None: no chair was asked (the quick tier)
            decision.warnings.append("The chair failed; the explanation is the winning answer's own text.")
        return decision
    chair_short = heuristic_short_answer(question, chair_text)
    endorses = max(similarity(chair_short, winner.answer, aliases, question=question), _contains(chair_text, winner.answer))
    if endorses < threshold:
        decision.warnings.append(
            f"The chair's text was set aside: it does not give the answer the vote chose ({winner.answer!r}): {_clip(chair_text)!r}"
        )
        return decision
    by_member = {a.member: a for a in answers}
    sources = [question] + [by_member[m].text for m in winner.members if m in by_member]
    added = unsupported_words(chair_text, sources)
    if added:
        decision.warnings.append(
            "The chair's text was set aside: it adds what no member who gave this answer said "
            f"({', '.join(added[:5])}): {_clip(chair_text)!r}"
        )
        return decision
    decision.explanation = chair_text
    return decision


def corroborated_text(question: str, cluster: Cluster, answers: list[MemberAnswer]) -> str:
    """Of the texts of the members who gave the winning answer, the one whose words the others
    (and the question) most support — so a supporter that embroiders ("…the 17th-century
    playwright…") is not the one quoted; ties go to the shorter text."""
    by_member = {a.member: a for a in answers}
    texts = [by_member[m].text for m in cluster.members if m in by_member and by_member[m].text]
    if not texts:
        return cluster.answer

    def unsupported_share(i: int) -> float:
        words = content_tokens(texts[i])
        others = [question] + texts[:i] + texts[i + 1:]
        return len(unsupported_words(texts[i], others)) / max(1, len(set(words)))

    best = min(range(len(texts)), key=lambda i: (unsupported_share(i), len(texts[i])))
    return texts[best]


def unsupported_words(text: str, sources: list[str]) -> list[str]:
    """The content words and numbers of `text` found in none of `sources`. A word counts as
    found when a source word shares its first five letters (tense and plural: "wrote" does not
    match "written", but "discovered" matches "discovery"); numbers must match exactly."""
    pool = {t for src in sources for t in content_tokens(src)}
    stems = {t[:5] for t in pool if len(t) >= 5}
    missing: list[str] = []
    for token in content_tokens(text):
        if token in pool or (len(token) >= 5 and not token[0].isdigit() and token[:5] in stems):
            continue
        if token not in missing:
            missing.append(token)
    return missing


def decide_by_chair(
    question: str,
    chair_text: str,
    answers: list[MemberAnswer],
    agreement: Agreement,
    weights: dict[str, float],
    threshold: float = 0.8,
    aliases: dict[str, list[str]] | None = None,
) -> Decision:
    """The chair's text decides (council-rank, mixture-of-agents: the methods as published):
    tie it to the cluster it endorses and compute the confidence.

    The chair may side with any cluster, a minority one included. If it writes an answer no
    member gave while a majority of the answering weight agrees, its text is set aside (kept in
    the warnings) for the majority's best answer: the chair synthesises the members' positions,
    it does not overrule a majority with a new one. Without a majority, the chair's own answer
    stands with the (usually zero) support it has. If the chair failed, the heaviest cluster's
    best answer is used.
    """
    warnings: list[str] = []
    total_weight = sum(weights.get(a.member, 1.0) for a in answers) or 1.0
    cluster: Cluster | None = None
    answer_text, short = chair_text, None

    if chair_text:
        chair_short = heuristic_short_answer(question, chair_text)
        scored = []
        for c in agreement.clusters:
            score = max(similarity(chair_short, c.answer, aliases, question=question), _contains(chair_text, c.answer))
            scored.append((score, c.weight, -c.id, c))
        scored.sort(key=lambda t: (t[0], t[1], t[2]), reverse=True)
        if scored and scored[0][0] >= threshold:
            cluster = scored[0][3]
            short = cluster.answer
        elif agreement.clusters and agreement.clusters[0].share > 0.5:
            cluster = agreement.clusters[0]
            answer_text, short = _best_text(cluster, answers, weights), cluster.answer
            warnings.append(
                "The chair's answer matched no member's answer and was set aside for the majority's: "
                f"{_clip(chair_text)!r}"
            )
        else:
            short = chair_short
            warnings.append("The chair's answer matches no member's answer; its confidence reflects that.")
    else:
        cluster = agreement.clusters[0] if agreement.clusters else None
        if cluster is None:
            return Decision("", None, 0.0, None, [], ["No member gave a usable answer."])
        answer_text, short = _best_text(cluster, answers, weights), cluster.answer
        warnings.append("The chair failed; the answer is the best-supported member answer, unedited.")

    if cluster is not None:
        support = cluster.weight
    else:
        support = sum(
            weights.get(a.member, 1.0)
            for a in answers
            if a.ok and a.short_answer and similarity(short or "", a.short_answer, aliases, question=question) >= threshold
        )
    confidence = round(min(1.0, support / total_weight), 4)
    dissent = [
        Dissent(answer=c.answer, members=c.members, share=round(c.weight / total_weight, 4))
        for c in agreement.clusters
        if cluster is None or c.id != cluster.id
    ]
    failed = [a.member for a in answers if not a.ok]
    if failed:
        warnings.append(f"{len(failed)} member(s) did not answer: {', '.join(failed)}.")
    return Decision(answer_text, short, confidence, cluster, dissent, warnings)


def _best_text(cluster: Cluster, answers: list[MemberAnswer], weights: dict[str, float]) -> str:
    """The full answer of the cluster's representative member (the one whose short answer the
    cluster carries), else of its heaviest member."""
    by_member = {a.member: a for a in answers}
    members = [by_member[m] for m in cluster.members if m in by_member]
    representative = next((a for a in members if a.short_answer == cluster.answer), None)
    best = representative or max(members, key=lambda a: weights.get(a.member, 1.0))
    return best.text


def _clip(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _contains(text: str, answer: str) -> float:
    """1.0 when the cluster's short answer appears as words in the chair's text."""
    a, t = _words(answer), _words(text)
    if not a or len(a) < 2:
        return 0.0
    return 1.0 if f" {a} " in f" {t} " else 0.0


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


async def synthesize(
    ctx: "RunContext", answers: list[MemberAnswer], agreement: Agreement, weights: dict[str, float] | None = None,
    *, rule: str = "vote",
) -> tuple[ChairOutcome, Decision]:
    """The stage: the chair writes from the anonymised answers. `rule` "vote" (the council's):
    the weighted vote chooses and the chair may only explain (`decide`); "chair": the chair's
    text decides, tied to the cluster it endorses (`decide_by_chair`)."""
    settings, council = ctx.council.settings, ctx.council
    weights = weights or council.weights
    with ctx.watch.stage("synthesize") as stage:
        chair = await run_chair(
            ctx.question, answers, agreement, council.chair_name, council.chair_model,
            system=settings.chair_system, max_tokens=settings.chair_max_tokens,
            timeout=settings.timeout, seed=ctx.run_id,
        )
        rule_of = decide if rule == "vote" else decide_by_chair
        decision = rule_of(ctx.question, chair.text, answers, agreement, weights, aliases=settings.answer_aliases)
        stage.data = {"labels": chair.labels, "chair_status": chair.result.status}
    return chair, decision
