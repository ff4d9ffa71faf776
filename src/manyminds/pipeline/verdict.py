"""Plain-data results of a run. The same JSON goes to `--json`, the API and the database."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

# "cut": not waited for — early consensus settled the vote before it answered (not a failure).
MemberStatus = Literal["ok", "failed", "timeout", "cut"]
ShortAnswerMethod = Literal["json", "model", "heuristic", "none"]


class UsageOut(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


class MemberSignals(BaseModel):
    """What one member answer tells about its own reliability: the inputs of the calibrator.

    Every field is None when the signal is absent (the endpoint returned no logprobs, the member
    was not asked for a confidence, the strategy drew no samples) — never 0, which would read as
    "certainly wrong". Sources: the fan-out (token probabilities, verbalised confidence), the
    compare stage (agreement), self-consistency (semantic entropy).
    """

    # Over the answer's generated tokens (the "Confidence: NN%" line left out where it can be).
    token_count: int | None = None  # how many tokens the figures below are over
    mean_token_prob: float | None = None  # arithmetic mean of exp(logprob)
    min_token_prob: float | None = None
    mean_logprob: float | None = None  # length-normalised log-likelihood (≤ 0)
    # The member's own "Confidence: NN%", as a fraction; None when not asked or not given.
    verbal_confidence: float | None = None
    # Similarity of this member's short answer to each other member's (the compare stage's
    # member × member matrix). Empty when the member gave no short answer to compare.
    agreement: dict[str, float] = Field(default_factory=dict)
    mean_agreement: float | None = None  # the mean of `agreement`; None when there is no other member
    # Self-consistency only: the semantic entropy (nats) of the cluster shares over all samples
    # of the sampled member, the same value on each sample's signals; `samples` is how many
    # answered samples it is over. None for every other strategy.
    semantic_entropy: float | None = None
    samples: int | None = None


class MemberAnswer(BaseModel):
    member: str
    model: str
    status: MemberStatus
    text: str = ""
    short_answer: str | None = None
    short_answer_method: ShortAnswerMethod = "none"
    finish_reason: str | None = None
    error: dict[str, Any] | None = None
    usage: UsageOut = Field(default_factory=UsageOut)
    latency_s: float = 0.0
    cost_usd: float | None = None
    attempts: int = 1
    signals: MemberSignals = Field(default_factory=MemberSignals)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Cluster(BaseModel):
    """Members whose short answers are equivalent."""

    id: int
    answer: str  # the representative short answer
    members: list[str]
    weight: float  # sum of member weights
    share: float  # weight / total weight of the members that answered


class Agreement(BaseModel):
    members: list[str]  # row/column order of `matrix`
    matrix: list[list[float]]  # pairwise agreement in [0, 1] between members' short answers
    clusters: list[Cluster]  # heaviest first


class Dissent(BaseModel):
    answer: str
    members: list[str]
    share: float


class ChairResult(BaseModel):
    member: str
    model: str
    status: Literal["ok", "failed", "skipped"]
    text: str = ""  # what the chair wrote, kept even when the verdict sets it aside
    error: dict[str, Any] | None = None
    usage: UsageOut = Field(default_factory=UsageOut)
    latency_s: float = 0.0
    cost_usd: float | None = None


Stance = Literal["supports", "contradicts", "silent"]
ClaimStatus = Literal["consensus", "contested", "unique"]
EvidenceVerdict = Literal["supported", "refuted", "not_found"]


class Evidence(BaseModel):
    """A passage a claim was checked against, and what it says about the claim."""

    verdict: EvidenceVerdict
    document: str  # path or URL as added
    location: str  # "page 3", "§ Heading", a URL…
    quote: str  # the span that supports or refutes the claim, verbatim from the passage
    collection: str | None = None
    score: float | None = None  # retrieval score


class Claim(BaseModel):
    """One atomic claim, clustered across members: who supports, contradicts or is silent."""

    id: str  # "c1", "c2"… in the order of the matrix
    text: str  # the representative wording
    stances: dict[str, Stance]  # member → stance, every answering member present
    status: ClaimStatus
    wordings: dict[str, str] = Field(default_factory=dict)  # member → that member's own wording
    evidence: list[Evidence] = Field(default_factory=list)
    evidence_verdict: EvidenceVerdict | Literal["unchecked"] = "unchecked"


class ClaimMatrix(BaseModel):
    """The agreement matrix of long answers: claims × members."""

    members: list[str]
    claims: list[Claim]

    def by_status(self, status: ClaimStatus) -> list[Claim]:
        return [c for c in self.claims if c.status == status]


class Citation(BaseModel):
    id: int  # [1], [2]… as written in the answer
    document: str
    location: str
    quote: str
    claim_ids: list[str] = Field(default_factory=list)


class ReviewError(BaseModel):
    member: str  # the reviewed member (de-anonymised after the review)
    quote: str  # what the reviewer says is wrong
    reason: str


class Review(BaseModel):
    """One member's anonymous review of the others' answers."""

    reviewer: str
    round: int = 1
    status: Literal["ok", "failed"] = "ok"
    ranking: list[str] = Field(default_factory=list)  # reviewed members, best first
    errors: list[ReviewError] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)  # label → member, hidden from the reviewer
    text: str = ""  # the raw review
    error: dict[str, Any] | None = None
    usage: UsageOut = Field(default_factory=UsageOut)


class Alternative(BaseModel):
    """One of the competing answers an abstaining verdict lists instead of an answer."""

    answer: str
    members: list[str]
    share: float  # weight of its members over the weight of all members (the raw confidence's scale)


class MemoryNote(BaseModel):
    """A memory the question was given (manyminds.memory): which one, its text, how close it was."""

    id: str
    text: str
    score: float


class SpecialistNote(BaseModel):
    """What one member with a role did in a run (pipeline/specialists.py)."""

    member: str
    role: str  # the role's name, or "inline"
    kind: Literal["answer", "critic"]
    # spoke: answered and voted; skipped: not asked (out of its domain, or a refused topic);
    # withheld: its answer broke its refusal rules; declined: it refused as its role told it;
    # failed: its call failed; reviewed: a critic that scored the others; not_run: a critic
    # the strategy gave nothing to review.
    status: Literal["spoke", "skipped", "withheld", "declined", "failed", "reviewed", "not_run"]
    reason: str
    domain: str = ""
    scores: dict[str, float] = Field(default_factory=dict)  # a critic's score per reviewed member, 0..1
    weight: float | None = None  # an answering specialist's vote weight after the critics


class GuardNote(BaseModel):
    """A council guardrail that applied to the question (guardrails.py)."""

    action: Literal["warn"]
    topic: str  # the pattern that matched
    message: str


class Route(BaseModel):
    """How `--effort auto` chose the tier: the tier that answered, why (for people), and the
    features the rule read (strategies/router.py)."""

    tier: str  # quick | standard | deep
    reason: str
    kind: str  # closed | maths | long-form | high-stakes
    features: dict[str, Any] = Field(default_factory=dict)
    escalated: bool = False  # quick ran first and its members disagreed


class EarlyConsensus(BaseModel):
    """The fan-out stopped waiting: the vote's winner could no longer change (consensus.py)."""

    answer: str
    members: list[str]  # who agreed when it settled
    cut: list[str]  # cancelled, status "cut" in `members`
    reason: str
    after_s: float  # seconds into the fan-out


class Verdict(BaseModel):
    run_id: str
    question: str
    council: str
    answer: str
    short_answer: str | None
    confidence: float
    confidence_explanation: str
    agreement: Agreement
    dissent: list[Dissent]
    members: list[MemberAnswer]
    chair: ChairResult | None
    usage: UsageOut
    cost_usd: float | None  # None when any model's price is unknown
    timings: dict[str, float]  # seconds per stage, plus "total"
    warnings: list[str] = Field(default_factory=list)
    created_at: str = ""
    strategy: str = "council"
    reviews: list[Review] = Field(default_factory=list)
    claims: ClaimMatrix | None = None  # long answers compared claim by claim
    citations: list[Citation] = Field(default_factory=list)
    follow_ups: list[str] = Field(default_factory=list)  # questions the disagreements suggest
    # Prose that explains a short answer: the chair's, when it gives the voted answer and adds
    # nothing no supporting member said; else the winning member's own text.
    explanation: str | None = None
    # calibration.py: `confidence` is the calibrated probability when `calibrated`, and
    # `confidence_raw` the agreement share it was computed from (None: never calibrated).
    confidence_raw: float | None = None
    calibrated: bool = False
    calibration: dict[str, Any] | None = None  # {method, fitted_at, items}
    # Abstention (--min-confidence): "not sure", the competing answers, the answer withheld.
    abstained: bool = False
    alternatives: list[Alternative] = Field(default_factory=list)
    withheld_answer: str | None = None
    # Personal memory: the memories added to the question as quoted data, the profile they came
    # from, the members that got them and those that did not (their provider was not allowed).
    memory_used: list[MemoryNote] = Field(default_factory=list)
    memory_profile: str | None = None
    memory_members: list[str] = Field(default_factory=list)
    memory_withheld: list[str] = Field(default_factory=list)
    # Roles (pipeline/specialists.py) and guardrails (guardrails.py): which specialists spoke,
    # which were skipped and why; the warning rules that applied to the question.
    specialists: list[SpecialistNote] = Field(default_factory=list)
    guardrails: list[GuardNote] = Field(default_factory=list)
    # Effort tiers (strategies/tiers.py): which tier ran, how auto chose it, what early
    # consensus cut, and the overnight tier's markdown report.
    effort: str | None = None
    route: Route | None = None
    early_consensus: EarlyConsensus | None = None
    report: str | None = None
    # budget.py: set when a budget (--max-cost/--max-tokens/--max-seconds) stopped the run —
    # {budget, limit, budget_set, spent: {tokens, cost_usd, seconds}, cut: [models not answered]}.
    budget_limited: dict[str, Any] | None = None
