"""The compare stage for short answers: score how far two short answers agree, and cluster
members that gave the same answer.

    answers ─▶ extract_short_answers (short_answers.py: JSON text │ the member's own model │ heuristic)
            ─▶ compare: similarity matrix ─▶ clusters (average link) ─▶ Agreement

Clustering rule: average-link agglomeration. Two clusters merge when the mean similarity over
all member pairs between them is ≥ `threshold` (0.8 by default) and no single pair is below
threshold/2 (a veto). Merges happen best-first. Unlike single-link union-find, A ~ B and
B ~ C do not pull A and C together when A and C disagree, and two different numbers
(similarity 0) never share a cluster. The representative answer is the most central member's
(the largest weighted similarity to the rest of its cluster; then the heavier member; then
input order).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Sequence

from rapidfuzz import fuzz

from ..normalize import STOPWORDS, Analysed, analyse, content_tokens, fold, numbers_equal, yes_no
from ..verdict import Agreement, Cluster, MemberAnswer
from .short_answers import extract_short_answers, heuristic_short_answer

if TYPE_CHECKING:
    from ..run import RunContext

DEFAULT_THRESHOLD = 0.8

# Words that name a kind of thing; a longer answer that only adds one ("Pacific Ocean" for
# "Pacific", "New York City" for "New York") names the same thing.
_DESCRIPTORS = frozenset(
    """city town village capital river ocean sea lake mountain mount mt island islands state
    country nation kingdom republic province county region desert bay gulf peninsula strait canal
    empire dynasty language planet moon star galaxy university college company corporation inc
    ltd""".split()
)


# --- similarity ---------------------------------------------------------------------------


def similarity(
    a: str | None, b: str | None, aliases: dict[str, list[str]] | None = None, *, question: str | None = None
) -> float:
    """How far two short answers agree, in [0, 1].

    Normalised text (case, accents, punctuation, articles) that is equal scores 1. Yes/no
    answers agree only with the same polarity. Numbers decide when present: equal values at
    the written precision score 1 (0.5 if both name different units), different values 0.
    Otherwise a shorter answer contained in a longer one scores 0.9 when it ends the longer
    ("Shakespeare" / "William Shakespeare") and 0.7 when the longer adds a qualifier after it
    ("Paris" / "Paris, Texas"), unless the added words are in `question` (then 0.95). Fuzzy
    character similarity counts in full only above 0.88 (typos), so "Niger" / "Nigeria" stay
    apart. `aliases` maps a canonical name to other names for it.
    """
    if not a or not b or not a.strip() or not b.strip():
        return 0.0
    ea, eb = analyse(a), analyse(b)
    if aliases:
        ea, eb = _aliased(ea, aliases), _aliased(eb, aliases)
    if not ea.tokens or not eb.tokens:
        return 1.0 if fold(a).strip() == fold(b).strip() else 0.0
    if ea.text == eb.text:
        return 1.0
    ya, yb = yes_no(a), yes_no(b)
    if ya is not None and yb is not None:
        return 1.0 if ya == yb else 0.0
    qtok = frozenset(content_tokens(question)) if question else frozenset()
    if ea.numbers or eb.numbers:
        score = _number_similarity(ea, eb, qtok)
        if score is not None:
            return score
    return _text_similarity(ea, eb, qtok)


def _number_similarity(ea: Analysed, eb: Analysed, qtok: frozenset[str]) -> float | None:
    """A score when numbers decide it, None to let the text decide."""
    na, nb = ea.number, eb.number
    if na is not None and nb is not None:
        if not numbers_equal(na, nb):
            return 0.0
        ua, ub = set(ea.unit_words) - qtok, set(eb.unit_words) - qtok
        return 0.5 if ua and ub and not ua & ub else 1.0
    if not ea.numbers or not eb.numbers:
        # A bare number against an answer with no number at all cannot agree.
        alone = (na is not None and not ea.unit_words) or (nb is not None and not eb.unit_words)
        return 0.0 if alone else None
    if na is not None or nb is not None:
        # "144" against "12 times 12 is 144": agree if the longer one contains the number.
        single, other = (na, eb) if na is not None else (nb, ea)
        return 0.9 if any(numbers_equal(single, n) for n in other.numbers) else 0.0
    va, vb = {n.value for n in ea.numbers}, {n.value for n in eb.numbers}
    if not va & vb:
        return 0.0  # "World War 1" / "World War 2", "Apollo 11" / "Apollo 13"
    return None


def _text_similarity(ea: Analysed, eb: Analysed, qtok: frozenset[str]) -> float:
    ta, tb = ea.tokens, eb.tokens
    if sorted(ta) == sorted(tb):
        return 1.0
    ratio = max(fuzz.ratio(ea.text, eb.text), fuzz.token_sort_ratio(ea.text, eb.text)) / 100
    # Only near-identical strings are the same answer by spelling alone; below the knee the
    # score is scaled under the default threshold ("Mali" / "Malawi" are 0.8 by ratio).
    score = ratio if ratio >= 0.88 else ratio * 0.8
    score = max(score, _containment(ta, tb, qtok))
    only_a, only_b = set(ta) - set(tb), set(tb) - set(ta)
    if len(only_a) == 1 and len(only_b) == 1:
        (x,), (y,) = only_a, only_b
        if min(len(x), len(y)) == 1 and x[0] == y[0] and len(ta) == len(tb):
            score = max(score, 0.9)  # an initial: "W. Shakespeare" / "William Shakespeare"
        elif min(len(x), len(y)) <= 2:
            score = min(score, 0.5)  # "Vitamin C" / "Vitamin D", "Plan A" / "Plan B"
    return score


def _containment(ta: tuple[str, ...], tb: tuple[str, ...], qtok: frozenset[str]) -> float:
    short, long = (ta, tb) if len(ta) <= len(tb) else (tb, ta)
    if not any(t not in STOPWORDS for t in short) or not set(short) <= set(long):
        return 0.0
    added = [t for t in long if t not in set(short)]
    informative = [t for t in added if t not in qtok and t not in STOPWORDS and t not in _DESCRIPTORS]
    if not informative:
        return 0.95  # only echoes the question or names the kind of thing
    if all(len(t) == 1 for t in informative):
        return 0.9  # initials: "George Bush" / "George W. Bush"
    if long[len(long) - len(short) :] == short:
        return 0.9  # the longer one ends with it: a given name or title in front
    return 0.7  # a qualifier after it may change the referent: "Paris" / "Paris, Texas"


def _aliased(ea: Analysed, aliases: dict[str, list[str]]) -> Analysed:
    text = ea.text
    for pattern, canonical in _alias_patterns(tuple((k, tuple(v)) for k, v in aliases.items())):
        text = pattern.sub(canonical, text)
    return analyse(text) if text != ea.text else ea


_ALIAS_CACHE: dict[tuple, list[tuple[re.Pattern[str], str]]] = {}


def _alias_patterns(key: tuple) -> list[tuple[re.Pattern[str], str]]:
    """Word-bounded patterns for every alias, longest first, each mapped to the canonical form."""
    if key not in _ALIAS_CACHE:
        pairs: list[tuple[str, str]] = []
        for canonical, others in key:
            target = analyse(canonical).text
            pairs += [(analyse(o).text, target) for o in (canonical, *others) if analyse(o).text]
        pairs.sort(key=lambda p: -len(p[0]))
        _ALIAS_CACHE[key] = [(re.compile(rf"(?<!\S){re.escape(src)}(?!\S)"), dst) for src, dst in pairs if src != dst]
        if len(_ALIAS_CACHE) > 64:
            _ALIAS_CACHE.pop(next(iter(_ALIAS_CACHE)))
    return _ALIAS_CACHE[key]


# --- clustering ---------------------------------------------------------------------------


def compare(
    answers: Sequence[MemberAnswer],
    weights: dict[str, float] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    aliases: dict[str, list[str]] | None = None,
    *,
    question: str | None = None,
) -> Agreement:
    """The agreement between the members that answered (status ok, non-empty answer).

    Each member is compared by its `short_answer`, or by a heuristic short answer of its text
    when none was extracted. `weights` maps member → weight (default 1). `question` lets words
    that only repeat the question count as no difference ("Paris" / "Paris, France").
    """
    weights = weights or {}
    members: list[str] = []
    shorts: list[str] = []
    for answer in answers:
        if not answer.ok:
            continue
        short = (answer.short_answer or "").strip() or heuristic_short_answer(question or "", answer.text)
        if short:
            members.append(answer.member)
            shorts.append(short)
    n = len(members)
    matrix = [[1.0 if i == j else 0.0 for j in range(n)] for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            matrix[i][j] = matrix[j][i] = round(similarity(shorts[i], shorts[j], aliases, question=question), 4)
    w = [float(weights.get(m, 1.0)) for m in members]
    total = sum(w)
    clusters: list[Cluster] = []
    for group in cluster_indices(matrix, threshold):
        rep = max(group, key=lambda i: (sum(w[j] * matrix[i][j] for j in group), w[i], -i))
        weight = sum(w[i] for i in group)
        clusters.append(
            Cluster(
                id=0,
                answer=shorts[rep],
                members=[members[i] for i in group],
                weight=weight,
                share=weight / total if total else 0.0,
            )
        )
    order = {m: i for i, m in enumerate(members)}
    # Heaviest first; rounding keeps float noise (0.1 + 0.2) from breaking a tie by accident.
    clusters.sort(key=lambda c: (-round(c.weight, 9), -len(c.members), order[c.members[0]]))
    for i, c in enumerate(clusters):
        c.id = i  # ids are positions in the heaviest-first list
    return Agreement(members=members, matrix=matrix, clusters=clusters)


def cluster_indices(matrix: Sequence[Sequence[float]], threshold: float = DEFAULT_THRESHOLD) -> list[list[int]]:
    """Average-link agglomerative clustering of a symmetric similarity matrix.

    Repeatedly merges the pair of clusters with the highest mean cross similarity, as long as
    that mean is ≥ threshold and no cross pair is below threshold/2. Ties go to the pair with
    the earliest members, so the result depends only on the matrix. Members inside a cluster
    stay in input order.
    """
    clusters = [[i] for i in range(len(matrix))]
    floor = threshold / 2
    while True:
        best: tuple[float, int, int] | None = None
        for x in range(len(clusters)):
            for y in range(x + 1, len(clusters)):
                pairs = [matrix[i][j] for i in clusters[x] for j in clusters[y]]
                mean = sum(pairs) / len(pairs)
                if mean + 1e-9 < threshold or min(pairs) + 1e-9 < floor:
                    continue
                if best is None or mean > best[0] + 1e-9:
                    best = (mean, x, y)
        if best is None:
            return clusters
        _, x, y = best
        clusters[x] = sorted(clusters[x] + clusters.pop(y))


# --- signals from the agreement ------------------------------------------------------------


def with_agreement_signals(answers: Sequence[MemberAnswer], agreement: Agreement) -> list[MemberAnswer]:
    """Each answer with its row of the member × member matrix in its signals: member → the
    similarity of their short answers. Members outside the matrix (failed, or no short answer)
    keep an empty row and no mean: they had nothing to agree with."""
    index = {m: i for i, m in enumerate(agreement.members)}
    out = []
    for answer in answers:
        i = index.get(answer.member)
        if i is None:
            out.append(answer)
            continue
        row = {m: agreement.matrix[i][j] for m, j in index.items() if j != i}
        mean = round(sum(row.values()) / len(row), 4) if row else None
        signals = answer.signals.model_copy(update={"agreement": row, "mean_agreement": mean})
        out.append(answer.model_copy(update={"signals": signals}))
    return out


def semantic_entropy(agreement: Agreement) -> float | None:
    """The entropy (nats) of the cluster shares: the semantic entropy of Kuhn et al. (2023) /
    Farquhar et al. (Nature 2024) with the shares counted, not weighted by sequence likelihood
    — the discrete variant, which needs no logprobs and so works for every provider.

    0 when every sample says the same thing, ln(k) when k samples all differ. The clusters are
    the compare stage's (the equivalence rules above), so "Shakespeare" and "William
    Shakespeare" are one meaning. None with fewer than two answers: one sample has no spread.
    """
    n = sum(len(c.members) for c in agreement.clusters)
    if n < 2:
        return None
    shares = [len(c.members) / n for c in agreement.clusters]
    return round(max(0.0, -sum(p * math.log(p) for p in shares if p > 0)), 6)


async def compare_answers(
    ctx: "RunContext", answers: list[MemberAnswer], weights: dict[str, float] | None = None
) -> tuple[list[MemberAnswer], Agreement]:
    """The stage: short answers, then the member × member agreement and clusters."""
    settings = ctx.council.settings
    models = {m.name: m.model for m in ctx.council.members}
    with ctx.watch.stage("compare") as stage:
        answers = await extract_short_answers(ctx.question, answers, models, mode=settings.short_answer)
        agreement = compare(answers, weights or ctx.council.weights, aliases=settings.answer_aliases, question=ctx.question)
        answers = with_agreement_signals(answers, agreement)
        stage.data = {"clusters": len(agreement.clusters)}
    return answers, agreement
