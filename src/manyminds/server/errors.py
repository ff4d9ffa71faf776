"""Every error the server answers with has one JSON shape, whatever the route:

    {"error": {"type": "...", "message": "...", "param": "..." | null, "code": "..." | null, ...}}

That is OpenAI's error object (`message`, `type`, `param`, `code`: what the `openai` client
parses) and the run API's `{"error": {"type", "message", ...}}` at once; extra keys carry
details (validation errors' `details`, a failed run's `run_id`). Routes under /v1 use OpenAI's
type names (`invalid_request_error`, …); the others use manyminds' error class names.
"""

from __future__ import annotations

from typing import Any

from ..budget import BudgetLimited
from ..errors import (
    ConfigError,
    ContextTooLong,
    InputError,
    LocalModelMissing,
    ManymindsError,
    QuorumNotMet,
    UnknownModel,
)
from ..jobs.queue import JobFinished


class ApiError(Exception):
    """Raised by route code; rendered by the app's handler as `status` + the error body."""

    def __init__(
        self, status: int, type: str, message: str, *, param: str | None = None, code: str | None = None,
        headers: dict[str, str] | None = None, **details: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.param, self.code = status, type, message, param, code
        self.headers = headers
        self.details = details

    def body(self) -> dict[str, Any]:
        return error_body(self.type, self.message, param=self.param, code=self.code, **self.details)


def error_body(type: str, message: str, *, param: str | None = None, code: str | None = None, **details: Any) -> dict[str, Any]:
    return {"error": {"type": type, "message": message, "param": param, "code": code, **details}}


# OpenAI's `type` per status, so its client maps our errors to its exception classes.
OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def from_manyminds(exc: ManymindsError, *, openai: bool = False, param: str | None = None) -> ApiError:
    """A manyminds error → the HTTP status that says whose fault it is.

    4xx: the request (bad input, unknown council or model, a finished job); 502: the council's
    members failed (the upstream models, not this server); 503: this server lacks a local model
    package."""
    details: dict[str, Any] = {}
    run_id = getattr(exc, "run_id", None)
    if run_id:
        details["run_id"] = run_id
    if isinstance(exc, UnknownModel):
        status, code, param = 422, "model_not_found", param or "models"
        details["suggestions"] = exc.suggestions
    elif isinstance(exc, ConfigError) and str(exc).startswith("Unknown council"):
        status, code, param = (404 if openai else 422), "model_not_found" if openai else "unknown_council", param or ("model" if openai else "council")
    elif isinstance(exc, ContextTooLong):
        status, code = (400 if openai else 422), "context_length_exceeded"
    elif isinstance(exc, JobFinished):
        status, code = 409, "already_finished"
    elif isinstance(exc, (InputError, ConfigError)):
        status, code = (400 if openai else 422), None
    elif isinstance(exc, BudgetLimited):
        # The caller's own budget stopped the run before a verdict: retrying the same request
        # cannot help, a larger budget can.
        status, code = (400 if openai else 422), "budget_limited"
        details["budget_limited"] = exc.report
    elif isinstance(exc, QuorumNotMet):
        status, code = 502, "quorum_not_met"
        details["failures"] = exc.failures
    elif isinstance(exc, LocalModelMissing):
        status, code = 503, "local_model_missing"
        details["command"] = exc.command
    else:
        status, code = 502, None
    kind = (OPENAI_TYPES.get(status, "server_error") if openai else type(exc).__name__)
    return ApiError(status, kind, str(exc), param=param, code=code, **details)
