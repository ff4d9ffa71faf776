"""Response shapes, for the OpenAPI document (and so for schemathesis, which checks every
response against it). Documents that mirror stored runs allow extra keys: the run store adds
columns over time and the spec should not break when it does."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    message: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "Malformed request (bad JSON, bad header, unsupported content).",
        401: "Missing or invalid bearer token (only when the server has a token).",
        404: "Unknown run, council or route.",
        405: "Method not allowed.",
        409: "The run or job has already finished (or, for a completion, the run was cancelled).",
        413: "Request body too large.",
        422: "The request is well-formed but invalid (field errors under `error.details`).",
        502: "The council could not answer (too few members answered).",
        503: "A local model package is missing on the server.",
    }
    return {s: {"model": ErrorResponse, "description": text[s]} for s in statuses}


API_ERRORS = _errors(400, 401, 404, 405, 413, 422)
OPENAI_ERRORS = _errors(400, 401, 404, 405, 409, 413, 422, 502, 503)


# --- OpenAI ---------------------------------------------------------------------------------


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ManymindsExtension(BaseModel):
    run_id: str
    confidence: float
    short_answer: str | None
    agreement: dict[str, Any]
    dissent: list[dict[str, Any]]
    citations: list[dict[str, Any]]
    claims: dict[str, Any] | None
    warnings: list[str]
    effort: str | None = None
    route: dict[str, Any] | None = Field(default=None, description="effort auto: {tier, reason, kind, features, escalated}")
    early_consensus: dict[str, Any] | None = Field(default=None, description="the quick tier: {answer, members, cut, reason, after_s}")


class CompletionMessage(BaseModel):
    role: Literal["assistant"]
    content: str
    refusal: str | None = None


class CompletionChoice(BaseModel):
    index: int
    message: CompletionMessage
    finish_reason: str
    logprobs: Any = None


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: CompletionUsage
    system_fingerprint: str | None = None
    manyminds: ManymindsExtension


# --- run API ----------------------------------------------------------------------------------


class Health(BaseModel):
    ok: bool
    version: str


class RunCreated(BaseModel):
    id: str
    status: Literal["running", "queued"]
    tier: Literal["quick", "deep"]
    url: str
    events_url: str


class Job(BaseModel):
    """A deep run's job (quick runs show the same shape when cancelled)."""

    model_config = ConfigDict(extra="allow")
    run_id: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    tier: str
    progress: dict[str, Any] | None = Field(description="{stage, fraction (an estimate, 0–1), message, …}")
    attempts: int
    cancel_requested: bool
    error: dict[str, Any] | None = None


class RunSummary(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    status: str = Field(description="running, complete, incomplete, failed; queued for a deep run not started yet")
    question: str
    created_at: str | None = None
    job: dict[str, Any] | None = Field(default=None, description="{status, progress} for deep runs")


class RunList(BaseModel):
    runs: list[RunSummary]
    limit: int
    offset: int
    next_offset: int | None = Field(description="offset of the next page; null on the last one")


class RunDocument(BaseModel):
    """`manyminds runs export ID` plus the job. `verdict` is the full Verdict once complete."""

    model_config = ConfigDict(extra="allow")
    id: str
    status: str
    question: str
    council: str | None = None
    verdict: dict[str, Any] | None = None
    members: list[dict[str, Any]]
    stages: list[dict[str, Any]]
    job: dict[str, Any] | None


class CouncilMember(BaseModel):
    name: str
    model: str
    role: str | None = Field(default=None, description="The member's role (roles.toml / [roles.NAME]), or \"inline\".")
    role_kind: Literal["answer", "critic"] | None = None
    role_domain: str | None = None
    role_topics: list[str] | None = Field(default=None, description="Topics it answers; null: every topic.")
    role_refuse: list[str] | None = None


class CouncilInfo(BaseModel):
    name: str
    members: list[CouncilMember]
    chair: str
    quorum: int
    guardrails: dict[str, Any] | None = Field(default=None, description="Topics the council refuses or answers with a warning.")


class RoleInfo(BaseModel):
    name: str
    source: Literal["shipped", "settings", "inline"]
    domain: str
    kind: Literal["answer", "critic"]
    system: str | None
    topics: list[str] | None
    refuse: list[str]
    warning: str | None


class RoleList(BaseModel):
    roles: list[RoleInfo]


class CouncilList(BaseModel):
    default: str
    councils: list[CouncilInfo]
