"""The OpenAI-compatible endpoint: any OpenAI client, unchanged, can ask a council.

    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key=TOKEN or "unused")
    r = client.chat.completions.create(model="council/local", messages=[{"role": "user", "content": "…"}])
    r.choices[0].message.content             # the chair's answer
    r.model_extra["manyminds"]               # run_id, confidence, agreement, dissent, …

- `model` is `council` (the default council) or `council/<name>`; `GET /v1/models` lists them.
  A suffix picks the effort tier: `council/local:quick` (quick, standard, deep, auto; an
  unknown tier is a 404 model_not_found, overnight a 400: it is a background job).
- The question is the last user message. Earlier messages, if any, are prepended as context
  (system/developer messages as instructions, then the conversation so far), so that a
  single-message request stores exactly the question asked.
- Sampling options (temperature, max_tokens, …) are accepted and ignored: each member uses its
  council settings. Only `n = 1`, and only text content.
- `manyminds: {"budget": {"max_cost", "max_tokens", "max_seconds"}}` (OpenAI's client:
  `extra_body={"manyminds": {...}}`) limits what the council may spend on the question, as
  `--max-cost/--max-tokens/--max-seconds` do: a run that hits it answers with what it has,
  marked `budget_limited` in the response's `manyminds` field. A bad budget is a 422 and asks
  nothing; one too small for even one member a 400.
- `stream: true` sends `chat.completion.chunk`s: the role, then the chair's final answer in
  pieces once the council has decided (members' progress is never put in `content`; follow
  `/api/runs/{id}/events` for that), keep-alive comments while it works, and `data: [DONE]`.
- Errors use OpenAI's error object and carry `x-should-retry: false` when retrying cannot
  help (OpenAI's client otherwise retries every 5xx, which would ask the council again).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from ..budget import Budget
from ..errors import ManymindsError
from ..pipeline.council import MAX_QUESTION_CHARS
from ..pipeline.verdict import Verdict
from ..request import AskRequest
from .errors import ApiError, from_manyminds
from .events import HEARTBEAT_COMMENT
from .schemas import OPENAI_ERRORS, ChatCompletion, ModelCard, ModelList

router = APIRouter(tags=["OpenAI-compatible"])

NO_RETRY = {"x-should-retry": "false"}


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = Field(max_length=64)
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = Field(default=None, max_length=256)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: StrictBool | None = None  # the schema says boolean: 1 or "yes" is refused


class ManymindsOptions(BaseModel):
    """What a chat completion request has no field for: manyminds' own options."""

    model_config = ConfigDict(extra="forbid")  # a misspelt budget must not be silently unlimited
    budget: Budget | None = Field(default=None, description="max_cost (USD), max_tokens, max_seconds for this question (each > 0).")


class ChatRequest(BaseModel):
    """OpenAI's chat completion request. Unknown fields are accepted (clients send many) and
    ignored."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(max_length=256, description='"council" (the default council) or "council/<name>", optionally '
                       'with an effort tier: "council/local:quick" (quick, standard, deep, auto)')
    messages: list[ChatMessage] = Field(
        min_length=1, max_length=1000, description="The last user message is the question.",
        json_schema_extra={"contains": {"type": "object", "properties": {"role": {"const": "user"}}, "required": ["role"]}},
    )
    stream: StrictBool | None = False  # the schema says boolean: 1 or "true" is refused, not read as true
    stream_options: StreamOptions | None = None
    n: StrictInt | None = Field(default=None, ge=1, le=1, description="Only 1 is supported.")
    manyminds: ManymindsOptions | None = Field(default=None, description='manyminds\' options, e.g. '
                                               '{"budget": {"max_tokens": 2000}}')


def council_name(model: str, state: Any) -> tuple[str, str | None]:
    """`council` / `council/<name>`, optionally with `:EFFORT` (`council/local:quick`) → the
    council's name and the effort tier; 404 (OpenAI's model_not_found) for an unknown council
    or tier."""
    from ..strategies.tiers import EFFORTS

    name: str | None
    base, sep, effort = model.rpartition(":") if ":" in model else (model, "", "")
    if base == "council":
        name = state.settings.default_council
    elif base.startswith("council/"):
        name = base[len("council/"):]
    else:
        name = None
    if not name or name not in state.settings.councils:
        known = ", ".join(["council"] + [f"council/{n}" for n in sorted(state.settings.councils)])
        raise ApiError(404, "invalid_request_error", f"The model {model!r} does not exist. Available: {known} "
                       f"(each optionally with :EFFORT, one of {', '.join(EFFORTS)}).",
                       param="model", code="model_not_found", headers=NO_RETRY)
    if sep and effort not in EFFORTS:
        raise ApiError(404, "invalid_request_error", f"The model {model!r} does not exist: unknown effort tier {effort!r}. "
                       f"Tiers: {', '.join(EFFORTS)} (e.g. {base}:quick).", param="model", code="model_not_found", headers=NO_RETRY)
    if effort == "overnight":
        raise ApiError(400, "invalid_request_error", "The overnight tier runs as a background job: start it with POST "
                       '/api/runs {"effort": "overnight"}, not as a chat completion.', param="model",
                       code="unsupported_effort", headers=NO_RETRY)
    return name, effort or None


def _text(message: ChatMessage, index: int) -> str:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    texts = []
    for part in message.content:
        if part.type != "text" or part.text is None:
            raise ApiError(400, "invalid_request_error", f"Only text content is supported (messages[{index}] has a {part.type!r} part).",
                           param=f"messages[{index}].content", code="unsupported_content", headers=NO_RETRY)
        texts.append(part.text)
    return "\n".join(texts)


def question_from(messages: list[ChatMessage]) -> str:
    """The last user message, with earlier messages prepended as context."""
    last = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last is None:
        raise ApiError(400, "invalid_request_error", "The messages contain no user message to answer.",
                       param="messages", code="no_user_message", headers=NO_RETRY)
    question = _text(messages[last], last)
    earlier = [(m.role, _text(m, i)) for i, m in enumerate(messages[:last])]
    instructions = [t for role, t in earlier if role in ("system", "developer") and t.strip()]
    turns = [f"{role}: {t}" for role, t in earlier if role in ("user", "assistant") and t.strip()]
    if not instructions and not turns:
        return question
    parts = []
    if instructions:
        parts.append("Instructions:\n" + "\n".join(instructions))
    if turns:
        parts.append("Conversation so far:\n" + "\n".join(turns))
    parts.append(f"Question: {question}")
    return "\n\n".join(parts)


def extension(verdict: Verdict) -> dict[str, Any]:
    """The `manyminds` field of a completion: what an OpenAI response has no place for."""
    return {
        "run_id": verdict.run_id,
        "confidence": verdict.confidence,
        "short_answer": verdict.short_answer,
        "agreement": verdict.agreement.model_dump(mode="json"),
        "dissent": [d.model_dump(mode="json") for d in verdict.dissent],
        "citations": [c.model_dump(mode="json") for c in getattr(verdict, "citations", [])],
        "claims": verdict.claims.model_dump(mode="json") if getattr(verdict, "claims", None) is not None else None,
        "warnings": list(verdict.warnings),
        "effort": getattr(verdict, "effort", None),
        "route": verdict.route.model_dump(mode="json") if getattr(verdict, "route", None) is not None else None,
        "early_consensus": (verdict.early_consensus.model_dump(mode="json")
                            if getattr(verdict, "early_consensus", None) is not None else None),
        "cost_usd": verdict.cost_usd,
        "budget_limited": verdict.budget_limited,
    }


def _usage(verdict: Verdict) -> dict[str, int]:
    u = verdict.usage
    return {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens, "total_tokens": u.total_tokens}


def completion(verdict: Verdict, model: str, created: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{verdict.run_id}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": verdict.answer, "refusal": None},
            "finish_reason": "stop",
            "logprobs": None,
        }],
        "usage": _usage(verdict),
        "system_fingerprint": None,
        "manyminds": extension(verdict),
    }


def _pieces(text: str, size: int = 24) -> list[str]:
    """The answer in chunks of about `size` characters, cut after whitespace, so the joined
    chunks are the answer exactly."""
    words = re.findall(r"\S+\s*|\s+", text)
    chunks, current = [], ""
    for w in words:
        current += w
        if len(current) >= size:
            chunks.append(current)
            current = ""
    if current:
        chunks.append(current)
    return chunks


def _chunk(base: dict[str, Any], delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
    doc = {**base, "choices": choices, **extra}
    return f"data: {json.dumps(doc, ensure_ascii=False)}\n\n".encode()


@router.get("/v1/models", response_model=ModelList, responses=OPENAI_ERRORS, summary="List the councils as models")
async def list_models(request: Request) -> dict[str, Any]:
    state = request.app.state.mm
    return {"object": "list", "data": [_card(m, state) for m in ["council"] + [f"council/{n}" for n in sorted(state.settings.councils)]]}


@router.get("/v1/models/{model_id:path}", response_model=ModelCard, responses=OPENAI_ERRORS, summary="One council as a model")
async def get_model(model_id: str, request: Request) -> dict[str, Any]:
    state = request.app.state.mm
    council_name(model_id, state)
    return _card(model_id, state)


def _card(model_id: str, state: Any) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": state.started, "owned_by": "manyminds"}


@router.post(
    "/v1/chat/completions",
    response_model=None,
    summary="Ask a council (OpenAI chat completion)",
    responses={
        200: {"model": ChatCompletion, "content": {"text/event-stream": {"schema": {
                  "type": "object", "required": ["data"],
                  "properties": {"data": {"type": "string", "description": "a chat.completion.chunk as JSON, or [DONE]"}}}}},
              "description": "A chat.completion, or with `stream: true` an SSE stream of chat.completion.chunk ending with `data: [DONE]`."},
        **OPENAI_ERRORS,
    },
)
async def chat_completions(body: ChatRequest, request: Request) -> Any:
    state = request.app.state.mm
    name, effort = council_name(body.model, state)
    question = question_from(body.messages)
    if len(question) > MAX_QUESTION_CHARS:
        raise ApiError(400, "invalid_request_error", f"The question with its context is {len(question):,} characters long; "
                       f"the limit is {MAX_QUESTION_CHARS:,}.", param="messages", code="context_length_exceeded", headers=NO_RETRY)
    try:
        budget = body.manyminds.budget if body.manyminds else None
        run_request = AskRequest(question=question, council=name, effort=effort, budget=budget)
        run_request = run_request.check(state.settings, state.registry)
    except ManymindsError as exc:
        err = from_manyminds(exc, openai=True, param="messages")
        err.headers = NO_RETRY
        raise err from None
    from ..ids import new_ulid

    run_id, created = new_ulid(), int(time.time())
    task = state.start_quick(run_request, run_id)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            _stream(task, body.model, run_id, created, include_usage, state.config.sse_heartbeat_s),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Manyminds-Run-Id": run_id},
        )
    try:
        # Shielded: a client that hangs up does not cancel the run, which is stored anyway.
        verdict = await asyncio.shield(task)
    except ManymindsError as exc:
        err = from_manyminds(exc, openai=True)
        err.headers = NO_RETRY
        raise err from None
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # this request is being torn down, not the run
        # The run was cancelled (POST /api/runs/{id}/cancel, or the server is stopping).
        raise ApiError(409, "invalid_request_error", f"Run {run_id} was cancelled before it finished.",
                       code="run_cancelled", headers=NO_RETRY, run_id=run_id) from None
    return JSONResponse(completion(verdict, body.model, created), headers={"X-Manyminds-Run-Id": run_id})


async def _stream(task: asyncio.Task, model: str, run_id: str, created: int, include_usage: bool, heartbeat_s: float):  # noqa: ANN202
    base = {"id": f"chatcmpl-{run_id}", "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": None}
    yield _chunk(base, {"role": "assistant", "content": ""})
    while not task.done():
        # asyncio.wait does not cancel the task when this stream is closed by the client.
        await asyncio.wait([task], timeout=heartbeat_s)
        if not task.done():
            yield HEARTBEAT_COMMENT
    if task.cancelled() or task.exception() is not None:
        exc = None if task.cancelled() else task.exception()
        if isinstance(exc, ManymindsError):
            error = from_manyminds(exc, openai=True).body()
        else:
            error = {"error": {"type": "server_error", "message": "The run was cancelled." if task.cancelled() else "Internal error.",
                               "param": None, "code": None, "run_id": run_id}}
        yield f"data: {json.dumps(error, ensure_ascii=False)}\n\n".encode()
        yield b"data: [DONE]\n\n"
        return
    verdict: Verdict = task.result()
    for piece in _pieces(verdict.answer):
        yield _chunk(base, {"content": piece})
    ext = extension(verdict)
    if include_usage:
        # OpenAI's shape: the finish chunk, then one chunk with no choices and the usage.
        yield _chunk(base, {}, "stop")
        yield _chunk(base, None, usage=_usage(verdict), manyminds=ext)
    else:
        yield _chunk(base, {}, "stop", usage=_usage(verdict), manyminds=ext)
    yield b"data: [DONE]\n\n"
