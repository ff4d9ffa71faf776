"""The agreement matrix of long answers: claims clustered across members, and each member's stance.

    claims per member ─▶ embeddings (MiniLM, cosine) ─▶ relation of every cross-member pair
                      ─▶ average-link clusters of "same" claims ─▶ stances ─▶ status

Relation of two claims a, b from different members (cosine c of their embeddings):
  1. c ≥ TOPIC and a cheap contradiction rule fires          → contradicts
  2. c ≥ SAME, numbers compatible, ≥ 60 % of the shorter
     claim's content words in the longer                     → same
  3. c ≥ BORDER and nearly the same content words (Jaccard ≥ 0.8, numbers compatible) → same
  4. BORDER ≤ c (and not decided above)                      → borderline: a judge model decides
     (one batched call per matrix, cached), else different
  5. otherwise                                               → different

Thresholds (measured on MiniLM-L6 int8, docs/claims.md): paraphrases score 0.88–0.93, the same
topic with another fact 0.58–0.82, a number or an entity swapped 0.81–0.97 — so cosine says
"same topic", never "same claim" alone; the lexical gates and the rules decide.

Contradiction rules (the "cheap contradiction check"; each needs c ≥ TOPIC):
  * negation — exactly one claim negates (not, never, no, n't…) and their other content words
    are the same (Jaccard ≥ 0.6): "produces oxygen" / "does not produce oxygen";
  * number — both state numbers, none shared, same other words (Jaccard ≥ 0.6): "won two Nobel
    Prizes" / "won one Nobel Prize";
  * substitution in the same frame — split at the copula ("X is Y"), at a passive "by", or at a
    shared main verb with the same object: one side the same (Jaccard ≥ 0.8), the other
    disjoint and naming an entity (capitalised) or a number on both sides: "the capital is Paris" /
    "the capital is Lyon", "written by Shakespeare" / "written by Marlowe", "Shakespeare wrote
    Hamlet" / "Marlowe wrote Hamlet". A different *object* of the same subject and verb
    ("wrote Hamlet" / "wrote Macbeth") is not a contradiction: lists are common. Our own frame
    "The answer to "Q" is X" contradicts any other X.
A judge model's "contradicts" for a borderline pair counts too.

Stances per cluster and member: supports (the member has a claim in the cluster); contradicts
(it has none there but has a claim that contradicts one there — or, after review, it named a
claim of the cluster as an error); silent otherwise. Status: contested if anyone contradicts;
consensus if the supporters hold more than half the answering weight; unique if one member
supports it; contested (a split) otherwise.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from rapidfuzz import fuzz

from ...errors import LocalModelMissing
from ...models.base import Message, Model
from .claims import add_usage, side_call
from .compare import cluster_indices, similarity
from .prompts import data_notice
from ..jsonparse import JSONExtractionError, extract_json_object
from ..normalize import STOPWORDS, analyse, fold, numbers_equal
from ..verdict import Claim, ClaimMatrix, ClaimStatus, Review, Stance, UsageOut

SAME = 0.85
BORDER = 0.72
TOPIC = 0.60
JUDGE_MAX_PAIRS = 24
JUDGE_TOKENS_PER_PAIR = 6
JUDGE_CACHE_SIZE = 2048

Relation = Literal["same", "contradicts", "different", "borderline"]

_NEGATION = re.compile(r"\b(?:not|never|no|none|neither|nor|cannot|false|untrue)\b|n['’]t\b", re.I)
_COPULA = re.compile(r"\s(?:is|are|was|were)\s(?!(?:\w+\s)?by\b)", re.I)
_BY = re.compile(r"\s(\w+(?:ed|en|wn|ung|ote))\s+by\s", re.I)
_MAIN_VERB = re.compile(r"\s([a-z]{3,}ed|wrote|won|made|built|founded|discovered|invented|painted|composed|directed)\s", re.I)
ANSWER_FRAME = re.compile(r'^the answer to ["“].*?["”] is\s+(.+?)\.?$', re.I | re.S)


# --- lexical helpers ------------------------------------------------------------------------


_LEMMAS = {
    "wrote": "write", "written": "write", "won": "win", "made": "make", "built": "build", "gave": "give",
    "given": "give", "took": "take", "taken": "take", "began": "begin", "begun": "begin", "led": "lead",
    "grew": "grow", "grown": "grow", "knew": "know", "known": "know", "became": "become", "held": "hold",
    "sold": "sell", "born": "bear", "bore": "bear", "fought": "fight", "spoke": "speak", "spoken": "speak",
    "chose": "choose", "chosen": "choose", "drew": "draw", "drawn": "draw", "rose": "rise", "risen": "rise",
    "fell": "fall", "fallen": "fall", "met": "meet", "left": "leave", "lost": "lose",
}


def _stem(word: str) -> str:
    """A crude stem, so "produces" / "produce" and "wrote" / "written" meet."""
    if word in _LEMMAS:
        return _LEMMAS[word]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    if len(word) > 5 and word.endswith("ing"):
        word = word[:-3]
    elif len(word) > 4 and word.endswith("ed"):
        word = word[:-2]
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


def frame(text: str) -> set[str]:
    """Content words, stemmed, without numbers or negations: what a claim is about."""
    tokens = analyse(text).words
    return {_stem(t) for t in tokens if t not in STOPWORDS and not _NEGATION.fullmatch(t)}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def containment(a: str, b: str) -> float:
    """The share of the shorter claim's frame found in the longer's."""
    fa, fb = frame(a), frame(b)
    short, long = (fa, fb) if len(fa) <= len(fb) else (fb, fa)
    return len(short & long) / len(short) if short else 0.0


_ORDINAL_WORDS = re.compile(
    r"\b(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth)\b", re.I
)


def numbers(text: str) -> tuple:
    """The numbers a claim states. Ordinal words are left out: "the first woman to win" is a
    rank, not a count, and must not contradict "won two prizes" (digit ordinals such as "19th
    century" stay: they are dates)."""
    return analyse(_ORDINAL_WORDS.sub(" ", text)).numbers


def numbers_compatible(a: str, b: str) -> bool:
    """One claim's numbers all appear in the other's (or one states none)."""
    na, nb = numbers(a), numbers(b)
    if not na or not nb:
        return True
    small, large = (na, nb) if len(na) <= len(nb) else (nb, na)
    return all(any(numbers_equal(x, y) for y in large) for x in small)


def _negated(text: str) -> bool:
    return bool(_NEGATION.search(fold(text)))


def _entity(text: str) -> bool:
    """A capitalised word after the first, or a number: the filler of a frame."""
    words = text.split()
    return bool(analyse(text).numbers) or any(w[:1].isupper() for w in words[1:]) or (
        bool(words) and words[0][:1].isupper() and fold(words[0]) not in {"the", "a", "an", "it", "he", "she", "they"}
    )


def _split(text: str, pattern: re.Pattern[str]) -> tuple[str, str] | None:
    match = pattern.search(" " + text + " ")
    if not match:
        return None
    padded = " " + text + " "
    return padded[: match.start()].strip(), padded[match.end() :].strip(" .")


def contradiction(a: str, b: str) -> str | None:
    """Why two claims on the same topic cannot both be true — "negation", "number",
    "substitution" — or None. See the module docstring for the rules."""
    answers = _answer_pair(a, b)
    if answers:  # our own frame: two answers to one question
        return "substitution" if similarity(*answers) < 0.5 else None
    fa, fb = frame(a), frame(b)
    if _negated(a) != _negated(b) and jaccard(fa, fb) >= 0.6:
        return "negation"
    if not numbers_compatible(a, b) and numbers(a) and numbers(b) and jaccard(fa, fb) >= 0.6:
        return "number"
    for pattern in (_BY, _COPULA):
        sa, sb = _split(a, pattern), _split(b, pattern)
        if not sa or not sb:
            continue
        (la, ra), (lb, rb) = sa, sb
        for same_a, same_b, diff_a, diff_b in ((la, lb, ra, rb), (ra, rb, la, lb)):
            if frame(same_a) and jaccard(frame(same_a), frame(same_b)) >= 0.8 and _filler_swapped(diff_a, diff_b):
                return "substitution"
        break  # only the first frame both share is compared
    va, vb = _split(a, _MAIN_VERB), _split(b, _MAIN_VERB)
    verb_a, verb_b = _MAIN_VERB.search(" " + a + " "), _MAIN_VERB.search(" " + b + " ")
    if va and vb and verb_a and verb_b and fold(verb_a.group(1)) == fold(verb_b.group(1)):
        (la, ra), (lb, rb) = va, vb
        # Another agent for the same act: "Shakespeare wrote Hamlet" / "Marlowe wrote Hamlet".
        if frame(ra) and jaccard(frame(ra), frame(rb)) >= 0.8 and _filler_swapped(la, lb):
            return "substitution"
    return None


def _compatible(a: str, b: str) -> bool:
    """Numbers that let two claims be the same claim: the same ones, none at all, or only the
    more specific claim has them and says everything the other says ("discovered polonium" /
    "discovered polonium in 1898"; but not "won two Nobel Prizes" / "was the first woman to win
    a Nobel Prize", where the other claim says something else)."""
    na, nb = numbers(a), numbers(b)
    if bool(na) == bool(nb):
        return numbers_compatible(a, b)
    vague, specific = (a, b) if not na else (b, a)
    fv, fs = frame(vague), frame(specific)
    return bool(fv) and len(fv & fs) / len(fv) >= 0.9


def _answer_pair(a: str, b: str) -> tuple[str, str] | None:
    """The two answers X, Y when both claims are our frame "The answer to "Q" is X" for the
    same question, else None."""
    ma, mb = ANSWER_FRAME.match(a.strip()), ANSWER_FRAME.match(b.strip())
    if not ma or not mb or fold(a.strip()[: ma.start(1)]) != fold(b.strip()[: mb.start(1)]):
        return None
    return ma.group(1), mb.group(1)


def _filler_swapped(x: str, y: str) -> bool:
    """Two fillers of one frame that name different things of the same kind: two numbers, or
    two entities with no number ("330 metres tall" / "located in Paris" is another fact)."""
    fx, fy = frame(x), frame(y)
    nx, ny = analyse(x).numbers, analyse(y).numbers
    if not ((fx or nx) and (fy or ny)) or fx & fy or bool(nx) != bool(ny):
        return False
    if nx:
        return not numbers_compatible(x, y)
    return _entity(x) and _entity(y)


def relation(a: str, b: str, cosine: float) -> tuple[Relation, str | None]:
    """(relation, reason) of two claims from different members; see the module docstring."""
    answers = _answer_pair(a, b)
    if answers and similarity(*answers) >= 0.8:
        return "same", None  # two answers to the same question that the short-answer rules equate
    if cosine >= TOPIC or answers:
        why = contradiction(a, b)
        if why:
            return "contradicts", why
    compatible = _compatible(a, b)
    if cosine >= SAME and compatible and containment(a, b) >= 0.6:
        return "same", None
    if cosine >= BORDER and compatible and jaccard(frame(a), frame(b)) >= 0.8:
        return "same", None
    if cosine >= BORDER:
        return "borderline", None
    return "different", None


# --- the judge for borderline pairs --------------------------------------------------------

JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "relations": {"type": "array", "items": {"type": "string", "enum": ["same", "contradicts", "different"]}}
    },
    "required": ["relations"],
}
JUDGE_SYSTEM = (
    "You compare pairs of statements. " + data_notice("The statements")
)
JUDGE_PROMPT = """For each numbered pair, say whether the two statements state the same fact ("same"),
cannot both be true ("contradicts"), or are about different things ("different").

{pairs}

Reply with JSON only, one relation per pair in order: {{"relations": ["same", "different", ...]}}"""

_CACHE: OrderedDict[tuple[str, str, str], str] = OrderedDict()


class PairJudge:
    """Judges borderline pairs with one batched model call; answers are cached per model."""

    def __init__(self, model: Model, *, timeout: float = 60.0, max_pairs: int = JUDGE_MAX_PAIRS) -> None:
        self.model, self.timeout, self.max_pairs = model, timeout, max_pairs
        self.usage = UsageOut()
        self.notes: list[str] = []
        self.calls = 0

    @staticmethod
    def _key(model: str, a: str, b: str) -> tuple[str, str, str]:
        x, y = sorted((" ".join(a.split()), " ".join(b.split())))
        return model, x, y

    async def judge(self, pairs: list[tuple[str, str]]) -> list[str | None]:
        """One relation ("same", "contradicts", "different") per pair, None where unjudged."""
        out: list[str | None] = [_CACHE.get(self._key(self.model.name, a, b)) for a, b in pairs]
        todo = [i for i, r in enumerate(out) if r is None]
        if len(todo) > self.max_pairs:
            self.notes.append(f"{len(todo) - self.max_pairs} borderline pair(s) beyond the judge's cap treated as different")
            todo = todo[: self.max_pairs]
        if not todo:
            return out
        listing = "\n".join(
            f'{n}. A: "{_defuse(pairs[i][0])}"\n   B: "{_defuse(pairs[i][1])}"' for n, i in enumerate(todo, 1)
        )
        messages = [
            Message(role="system", content=JUDGE_SYSTEM),
            Message(role="user", content=JUDGE_PROMPT.format(pairs=listing)),
        ]
        self.calls += 1
        call = await side_call(
            self.model, messages, max_tokens=16 + JUDGE_TOKENS_PER_PAIR * len(todo), timeout=self.timeout, schema=JUDGE_SCHEMA
        )
        self.usage = add_usage(self.usage, call.usage)
        if call.text is None:
            self.notes.append(f"judge call failed ({call.error}); {len(todo)} borderline pair(s) treated as different")
            return out
        try:
            relations = extract_json_object(call.text, JUDGE_SCHEMA, allow_bare=False).value["relations"]
        except JSONExtractionError as exc:
            self.notes.append(f"judge output unreadable ({exc.reason}); {len(todo)} borderline pair(s) treated as different")
            return out
        if len(relations) != len(todo):
            # Which answer belongs to which pair is unknowable: use none of them.
            self.notes.append(
                f"judge gave {len(relations)} relations for {len(todo)} pairs; borderline pairs treated as different"
            )
            return out
        for i, rel in zip(todo, relations):
            out[i] = rel
            _CACHE[self._key(self.model.name, *pairs[i])] = rel
            if len(_CACHE) > JUDGE_CACHE_SIZE:
                _CACHE.popitem(last=False)
        return out


def _defuse(text: str) -> str:
    return text.replace('"', "'").replace("\n", " ")[:400]


# --- the matrix -----------------------------------------------------------------------------


@dataclass
class MatrixBuild:
    """A claim matrix and what was learned building it."""

    matrix: ClaimMatrix
    conflicts: list[tuple[str, str, str]] = field(default_factory=list)  # (claim id, claim id, reason)
    warnings: list[str] = field(default_factory=list)
    usage: UsageOut = field(default_factory=UsageOut)
    judged: int = 0  # borderline pairs a judge decided
    weights: dict[str, float] = field(default_factory=dict)


def _vectors(texts: list[str]) -> tuple[Any, str | None]:
    """Unit vectors for `texts`, or a lexical stand-in (and a warning) without the model."""
    import numpy as np

    try:
        from ...embeddings import embed

        return embed(texts), None
    except LocalModelMissing as exc:
        n = len(texts)
        sims = np.eye(n, dtype=np.float32)
        for i in range(n):
            for j in range(i + 1, n):
                sims[i, j] = sims[j, i] = fuzz.token_set_ratio(fold(texts[i]), fold(texts[j])) / 100
        return sims, f"embeddings unavailable ({exc.package} missing): claims compared by word overlap"


async def build_matrix(
    member_claims: dict[str, list[str]],
    weights: dict[str, float] | None = None,
    *,
    judge: PairJudge | None = None,
) -> MatrixBuild:
    """Cluster the claims of every member that answered (`member_claims` in member order; a
    member with no claims is still a column, silent everywhere) and fill in stances and status."""
    weights = {m: float((weights or {}).get(m, 1.0)) for m in member_claims}
    nodes = [(m, text) for m, claims in member_claims.items() for text in claims]
    texts = [t for _, t in nodes]
    warnings: list[str] = []
    n = len(nodes)
    if n:
        vectors, note = await asyncio.to_thread(_vectors, texts)
        if note:
            warnings.append(note)
            cos = vectors
        else:
            cos = vectors @ vectors.T
    rel: dict[tuple[int, int], tuple[Relation, str | None]] = {}
    borderline: list[tuple[int, int]] = []
    for i in range(n):
        for j in range(i + 1, n):
            if nodes[i][0] == nodes[j][0]:
                continue  # a member's own claims are distinct by construction
            r = relation(texts[i], texts[j], float(cos[i][j]))
            rel[(i, j)] = r
            if r[0] == "borderline":
                borderline.append((i, j))
    build = MatrixBuild(ClaimMatrix(members=list(member_claims), claims=[]), warnings=warnings, weights=weights)
    if borderline and judge is not None:
        answers = await judge.judge([(texts[i], texts[j]) for i, j in borderline])
        build.usage = judge.usage
        build.warnings += judge.notes
        for (i, j), answer in zip(borderline, answers):
            if answer in ("same", "contradicts", "different"):
                rel[(i, j)] = (answer, "judge")  # type: ignore[assignment]
                build.judged += 1
    sim = [[1.0 if i == j else 0.0 for j in range(n)] for i in range(n)]
    for (i, j), (kind, _) in rel.items():
        if kind == "same":
            sim[i][j] = sim[j][i] = max(float(cos[i][j]), SAME)
    groups = cluster_indices(sim, SAME)
    _fill(build, groups, nodes, rel, sim)
    return build


def _fill(build: MatrixBuild, groups: list[list[int]], nodes: list[tuple[str, str]], rel, sim) -> None:  # noqa: ANN001
    members, weights = build.matrix.members, build.weights
    total = sum(weights.values()) or 1.0
    group_of = {i: g for g, group in enumerate(groups) for i in group}

    def related(i: int, j: int) -> tuple[Relation, str | None]:
        return rel.get((min(i, j), max(i, j)), ("different", None))

    drafts = []
    for g, group in enumerate(groups):
        supporters = {nodes[i][0] for i in group}
        contradictors: dict[str, str] = {}
        for i in group:
            for j in range(len(nodes)):
                kind, why = related(i, j)
                if kind == "contradicts" and nodes[j][0] not in supporters:
                    contradictors.setdefault(nodes[j][0], why or "")
        rep = max(group, key=lambda i: (sum(sim[i][j] for j in group), weights[nodes[i][0]], -i))
        stances: dict[str, Stance] = {
            m: "supports" if m in supporters else "contradicts" if m in contradictors else "silent" for m in members
        }
        wordings = {}
        for i in group:
            wordings.setdefault(nodes[i][0], nodes[i][1])
        drafts.append((g, nodes[rep][1], stances, wordings, min(group)))
    claims = []
    for g, text, stances, wordings, first in drafts:
        status = claim_status(stances, weights, total)
        claims.append((g, Claim(id="", text=text, stances=stances, status=status, wordings=wordings), first))
    order = {"consensus": 0, "contested": 1, "unique": 2}
    claims.sort(key=lambda t: (order[t[1].status], -support(t[1], weights), t[2]))
    ids = {}
    for k, (g, claim, _) in enumerate(claims, 1):
        claim.id = f"c{k}"
        ids[g] = claim.id
    build.matrix.claims = [c for _, c, _ in claims]
    seen = set()
    for (i, j), (kind, why) in rel.items():
        if kind == "contradicts":
            a, b = ids[group_of[i]], ids[group_of[j]]
            if a != b and (a, b) not in seen:
                seen.add((a, b))
                seen.add((b, a))
                build.conflicts.append((a, b, why or ""))


def support(claim: Claim, weights: dict[str, float]) -> float:
    return sum(weights.get(m, 1.0) for m, s in claim.stances.items() if s == "supports")


def claim_status(stances: dict[str, Stance], weights: dict[str, float], total: float | None = None) -> ClaimStatus:
    """contested if anyone contradicts; consensus above half the answering weight; unique with
    one supporter; contested (split) otherwise."""
    total = total if total is not None else sum(weights.get(m, 1.0) for m in stances) or 1.0
    if any(s == "contradicts" for s in stances.values()):
        return "contested"
    backing = sum(weights.get(m, 1.0) for m, s in stances.items() if s == "supports")
    if backing > total / 2 + 1e-9:
        return "consensus"
    if sum(1 for s in stances.values() if s == "supports") == 1:
        return "unique"
    return "contested"


def restatus(build: MatrixBuild) -> None:
    total = sum(build.weights.values()) or 1.0
    for claim in build.matrix.claims:
        claim.status = claim_status(claim.stances, build.weights, total)


# --- reviews onto claims --------------------------------------------------------------------


def apply_reviews(build: MatrixBuild, reviews: Sequence[Review]) -> int:
    """Turn review errors into stances: a reviewer that names a claim of another member as an
    error (its quote matches that member's wording of the claim) contradicts the claim, unless
    it supports it itself. Quotes that match no claim change nothing — an injected "verdict"
    in a review cannot invent a dispute. Returns how many stances changed."""
    changed = 0
    for review in reviews:
        if review.status != "ok" or review.reviewer not in build.matrix.members:
            continue
        for error in review.errors:
            quote = error.quote.strip()
            if len(frame(quote)) < 2:
                continue  # "wrong" or "X" identifies no claim
            for claim in build.matrix.claims:
                wording = claim.wordings.get(error.member)
                if wording is None or claim.stances.get(review.reviewer) != "silent":
                    continue
                if fuzz.partial_ratio(fold(quote), fold(wording)) >= 85 or containment(quote, wording) >= 0.8:
                    claim.stances[review.reviewer] = "contradicts"
                    changed += 1
    if changed:
        restatus(build)
    return changed


# --- has the matrix changed? ------------------------------------------------------------------


async def matrix_changed(old: ClaimMatrix, new: ClaimMatrix) -> bool:
    """Whether a revision round changed what the council holds: every claim of each matrix must
    have a counterpart (same relation by the rules above) with the same stances and status."""
    if len(old.claims) != len(new.claims) or old.members != new.members:
        return True
    if not old.claims:
        return False
    texts = [c.text for c in old.claims] + [c.text for c in new.claims]
    vectors, note = await asyncio.to_thread(_vectors, texts)
    cos = vectors if note else vectors @ vectors.T
    k = len(old.claims)
    used: set[int] = set()
    for i, claim in enumerate(old.claims):
        match = None
        for j, other in enumerate(new.claims):
            if j in used:
                continue
            same = claim.text == other.text or relation(claim.text, other.text, float(cos[i][k + j]))[0] == "same"
            if same and other.stances == claim.stances and other.status == claim.status:
                match = j
                break
        if match is None:
            return True
        used.add(match)
    return False
