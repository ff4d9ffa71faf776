"""Plain-data results of a run. The same JSON goes to `--json`, the API and the database."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

MemberStatus = Literal["ok", "failed", "timeout"]
ShortAnswerMethod = Literal["json", "model", "heuristic", "none"]


class UsageOut(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


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
