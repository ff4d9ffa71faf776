"""The run API: create a run, get it, list and search runs, follow one live, cancel it.

    POST /api/runs                  {"question", "council"?, "models"?, "strategy"?, "tier"?} → 202 {id, url, events_url}
    GET  /api/runs?search=&status=&limit=&offset=
    GET  /api/runs/{id}             `manyminds runs export ID` + "job"
    GET  /api/runs/{id}/events      text/event-stream of the pipeline's own events
    POST /api/runs/{id}/cancel
    GET  /api/councils
    GET  /api/roles

A run is known from three places, in this order: the broker (a quick run of this process that
may not have written its row yet), the `runs` table, and the `jobs` table (a deep run still
queued has no run row). Ids may be given as a unique prefix, as on the command line.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, AsyncIterator, Literal, get_args

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ..council_view import councils_view, roles_view
from ..errors import InputError, ManymindsError
from ..pipeline.council import MAX_QUESTION_CHARS
from ..pipeline.events import Event, EventKind
from ..ids import ulid_datetime
from ..store import export_run, list_runs, resolve_run_id
from ..strategies.base import STRATEGIES
from ..store.db import from_json, now_iso
from .errors import ApiError, from_manyminds
from .events import HEARTBEAT_COMMENT, sse_message
from ..jobs.queue import (
    CANCELLED_ERROR,
    FINISHED,
    cancel_job,
    find_job,
    get_job,
    job_statuses,
    list_jobs,
    submit_job,
)
from ..budget import Budget
from ..request import AskRequest
from .schemas import (
    API_ERRORS,
    CouncilList,
    RoleList,
    Job,
    RunCreated,
    RunDocument,
    RunList,
    _errors,
)

router = APIRouter(prefix="/api", tags=["Runs"])

# The id of an event synthesised from the database (the run finished before this process
# knew it): above any live id, so a client that got it and reconnects is told to stop (204).
SYNTHESIZED_FINAL_ID = 2**31 - 1
DB_POLL_S = 1.0

# Built from the registry of strategies, so the OpenAPI document lists exactly what is valid.
StrategyName = Literal[tuple(STRATEGIES)]  # type: ignore[valid-type]

# One SSE message, as the OpenAPI document describes each event of the stream.
SSE_EVENT_SCHEMA = {
    "type": "object",
    "required": ["event", "id", "data"],
    "properties": {
        "event": {"type": "string", "enum": list(get_args(EventKind))},
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "description": "Event.to_dict(): {kind, run_id, stage, member, data, ts}"},
    },
}


class RunRequest(BaseModel):
    # strict: JSON `true` is not a min_confidence of 1.0, nor `1` a no_memory, as the schema says
    model_config = ConfigDict(extra="forbid", strict=True)
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    council: str | None = Field(default=None, min_length=1, max_length=256, description="A council from the settings (default: the default council).")
    models: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = Field(
        default=None, min_length=1, max_length=32, description='Ask these models (e.g. "openai/gpt-4o-mini") instead of a council.')
    strategy: StrategyName | None = Field(default=None, description='Default "council" (quick) or "deep" (deep).')
    tier: Literal["quick", "deep"] = Field(default="quick", description="quick: runs now in the server; deep: a queued background job.")
    no_memory: bool = Field(default=False, description="Ask without the personal memory.")
    profile: str | None = Field(default=None, min_length=1, max_length=64, description="The memory profile to draw on.")
    min_confidence: float | None = Field(
        default=None, gt=0, le=1,
        description='Below this calibrated confidence the verdict answers "not sure" and lists the competing answers.')
    effort: Literal["quick", "standard", "deep", "overnight", "auto"] | None = Field(
        default=None, description="How much work (docs/effort.md): runs the strategy 'tier:EFFORT'; overnight is always queued.")
    budget: Budget | None = Field(default=None, description="max_cost (USD), max_tokens, max_seconds: the run stops cleanly at one (each > 0).")

    def to_request(self) -> AskRequest:
        """The wire format (tighter limits, for the OpenAPI document) as the request every
        entry point runs."""
        return AskRequest.model_validate(self.model_dump())


def _state(request: Request) -> Any:
    return request.app.state.mm


def resolve(state: Any, id_or_prefix: str) -> str:
    """The full run id, from the broker, the runs table or the jobs table; 404 or 400."""
    if state.broker.get(id_or_prefix) is not None:
        return id_or_prefix
    db = state.db()
    try:
        return resolve_run_id(db, id_or_prefix)
    except InputError as exc:
        job = find_job(db, id_or_prefix)
        if job is not None:
            return job["run_id"]
        status = 400 if "ambiguous" in str(exc) else 404
        raise ApiError(status, "NotFound" if status == 404 else "AmbiguousId", str(exc), param="id") from None


def run_document(state: Any, run_id: str) -> dict[str, Any]:
    """The export document (or one with the same keys for a run that has no row yet) + job."""
    db = state.db()
    job = get_job(db, run_id)
    try:
        doc = export_run(db, run_id)
    except InputError:
        doc = _pending_document(state, run_id, job)
    doc["job"] = job
    return doc


def _pending_document(state: Any, run_id: str, job: dict[str, Any] | None) -> dict[str, Any]:
    channel = state.broker.get(run_id)
    meta = dict(channel.meta) if channel else {}
    request = (job or {}).get("request") or {}
    if job is not None:
        status = {"queued": "queued", "cancelled": "cancelled", "failed": "failed"}.get(job["status"], "running")
    else:
        status = "running"
    created = (job or {}).get("created_at") or now_iso(ulid_datetime(run_id))  # a ULID says when it was made
    return {
        "id": run_id, "created_at": created, "updated_at": (job or {}).get("updated_at") or created,
        "finished_at": (job or {}).get("finished_at"), "status": status,
        "question": request.get("question") or meta.get("question") or "",
        "council": request.get("council") or meta.get("council"), "strategy": request.get("strategy") or meta.get("strategy"),
        "seats": None, "settings": None, "error": (job or {}).get("error"), "answer": None, "short_answer": None,
        "confidence": None, "verdict": None, "cost_usd": None, "seconds": None, "pid": None, "hostname": None,
        "version": None, "members_ok": 0, "members_total": 0,
        "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0},
        "members": [], "stages": [], "timings": {},
    }


# --- routes ---------------------------------------------------------------------------------


@router.get("/councils", response_model=CouncilList, response_model_exclude_none=True, responses=API_ERRORS,
            summary="The councils in the settings")
async def councils(request: Request) -> dict[str, Any]:
    """Each member's role fields appear only when it has a role (`role_topics` absent: every topic)."""
    return councils_view(_state(request).settings)


@router.get("/roles", response_model=RoleList, responses=API_ERRORS, summary="The roles members can have")
async def roles_list(request: Request) -> dict[str, Any]:
    return roles_view(_state(request).settings)


@router.post("/runs", status_code=202, response_model=RunCreated, responses=API_ERRORS, summary="Start a run")
async def create_run(body: RunRequest, request: Request) -> JSONResponse:
    """Answers at once with the run's id. A quick run starts in the server now; a deep run is
    queued for a worker (`manyminds serve` runs one). Nothing is stored for a refused request."""
    state = _state(request)
    from ..ids import new_ulid

    try:
        run_request = body.to_request().check(state.settings, state.registry)
        run_id = new_ulid()
        queued = run_request.tier == "deep"  # asked for, or an overnight effort
        if queued:
            submit_job(state.db(), run_request, settings=state.settings, run_id=run_id, registry=state.registry)
            if state.worker is not None:
                state.worker.wake()
        else:
            state.start_quick(run_request, run_id)
    except ManymindsError as exc:
        raise from_manyminds(exc) from None
    url = f"/api/runs/{run_id}"
    doc = {"id": run_id, "status": "queued" if queued else "running", "tier": run_request.tier,
           "url": url, "events_url": f"{url}/events"}
    return JSONResponse(doc, status_code=202, headers={"Location": url})


@router.get("/runs", response_model=RunList, responses=API_ERRORS, summary="List and search runs")
async def runs_list(
    request: Request,
    search: str | None = Query(default=None, max_length=500, description="Words (or word prefixes) in the question or answer."),
    status: Literal["running", "complete", "incomplete", "failed", "queued"] | None = Query(default=None),
    limit: int = Query(default=20, ge=1, le=500),
    offset: int = Query(default=0, ge=0, le=1_000_000),
) -> dict[str, Any]:
    state = _state(request)
    db = state.db()
    pending: list[dict[str, Any]] = []
    if status in (None, "queued"):
        # Deep runs whose row does not exist yet (queued), newest first, ahead of the stored runs.
        pending = [_pending_summary(state, j) for j in list_jobs(db, without_run=True, status=("queued", "running"), search=search, limit=500)]
    rows: list[dict[str, Any]] = []
    if status != "queued":
        wanted = offset + limit + 1 - len(pending)
        if wanted > 0:
            rows = list_runs(db, limit=wanted, status=status, search=search)
    page = (pending + rows)[offset: offset + limit + 1]
    more = len(page) > limit
    page = page[:limit]
    jobs = job_statuses(db, [r["id"] for r in page])
    for row in page:
        row.setdefault("job", jobs.get(row["id"]))
    return {"runs": page, "limit": limit, "offset": offset, "next_offset": offset + limit if more else None}


def _pending_summary(state: Any, job: dict[str, Any]) -> dict[str, Any]:
    doc = _pending_document(state, job["run_id"], job)
    for key in ("members", "stages", "timings", "seats", "settings", "verdict", "version"):
        doc.pop(key, None)
    doc["job"] = {"status": job["status"], "progress": job["progress"]}
    return doc


@router.get("/runs/{run_id}", response_model=None, responses={200: {"model": RunDocument}, **API_ERRORS}, summary="One run")
async def run_get(run_id: str, request: Request) -> JSONResponse:
    state = _state(request)
    return JSONResponse(run_document(state, resolve(state, run_id)))


@router.post("/runs/{run_id}/cancel", response_model=Job, responses={**API_ERRORS, **_errors(409)}, summary="Cancel a run")
async def run_cancel(run_id: str, request: Request) -> dict[str, Any]:
    """Cancels a queued or running deep job, or a quick run running in this server."""
    state = _state(request)
    rid = resolve(state, run_id)
    db = state.db()
    job = get_job(db, rid)
    if job is not None:
        if job["status"] in FINISHED:
            raise ApiError(409, "AlreadyFinished", f"Run {rid} has already finished ({job['status']}).", code="already_finished", job=job)
        if state.worker is not None and rid in state.worker.running():
            await state.worker.cancel(rid)
        else:
            try:
                cancel_job(db, rid)
            except ManymindsError as exc:
                raise from_manyminds(exc) from None
        return get_job(db, rid)  # type: ignore[return-value]
    if await state.cancel_quick(rid):
        return {"run_id": rid, "status": "cancelled", "tier": "quick", "progress": None, "attempts": 1,
                "cancel_requested": True, "error": CANCELLED_ERROR}
    doc = run_document(state, rid)
    if doc["status"] == "running":
        raise ApiError(409, "NotCancellable", f"Run {rid} is running in another process (e.g. `manyminds ask`); only that process can stop it.",
                       code="not_in_this_server")
    raise ApiError(409, "AlreadyFinished", f"Run {rid} has already finished ({doc['status']}).", code="already_finished")


@router.get(
    "/runs/{run_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
              "description": "`event: <kind>`, `id: <n>`, `data: <Event JSON>` messages, ending after `verdict` or `run_failed`."},
        204: {"description": "The run has finished and the client has had its final event (Last-Event-ID): stop reconnecting."},
        **API_ERRORS,
    },
    summary="Follow a run live (SSE)",
)
async def run_events(
    run_id: str,
    request: Request,
    last_event_id: str | None = Header(default=None, alias="Last-Event-ID", max_length=32),
) -> Response:
    """Replays a run of this process from its first event (or after `Last-Event-ID`), then live.
    A run that finished before this process knew it gets one synthesised `verdict` or
    `run_failed`. Keep-alive comments every ~15 s."""
    state = _state(request)
    rid = resolve(state, run_id)
    after = _event_id(last_event_id)
    channel = state.broker.get(rid)
    if after >= SYNTHESIZED_FINAL_ID or (channel is not None and channel.done and after >= channel.last_id):
        return Response(status_code=204)
    stream = _follow(state, rid, after)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


def _event_id(value: str | None) -> int:
    """The id after which to resume. Ids this server never sends (not an integer) replay the
    run from its start, as a first connection would: the client then misses nothing."""
    try:
        return max(0, int((value or "0").strip()))
    except ValueError:
        return 0


async def _follow(state: Any, run_id: str, after: int) -> AsyncIterator[bytes]:
    heartbeat = state.config.sse_heartbeat_s
    channel = state.broker.get(run_id)
    if channel is None:
        # Not (yet) in this process: wait on the database until the run finishes here or
        # elsewhere, or until a worker of this process picks it up and it goes live.
        quiet = 0.0
        while True:
            final = _final_from_db(state, run_id)
            if final is not None:
                yield sse_message(final.kind, SYNTHESIZED_FINAL_ID, final.to_dict())
                return
            channel = state.broker.get(run_id)
            if channel is not None:
                break
            await asyncio.sleep(DB_POLL_S)
            quiet += DB_POLL_S
            if quiet >= heartbeat:
                quiet = 0.0
                yield HEARTBEAT_COMMENT
    async for item in channel.follow(after, heartbeat):
        if item is None:
            yield HEARTBEAT_COMMENT
        else:
            n, event = item
            yield sse_message(event["kind"], n, event)
    if channel.done and channel.final is None:
        # Ended without a final event (cancelled, or the server is stopping): say how.
        final = _final_from_db(state, run_id)
        if final is not None:
            yield sse_message(final.kind, SYNTHESIZED_FINAL_ID, final.to_dict())


def _final_from_db(state: Any, run_id: str) -> Event | None:
    """The run's final event rebuilt from the database, or None while it is not finished."""
    db = state.db()
    job = get_job(db, run_id)
    row = db.execute("SELECT status, verdict, error FROM runs WHERE id = ?", [run_id]).fetchone()
    if job is not None and job["status"] not in FINISHED:
        return None  # queued, or running (perhaps an attempt being restarted): not final
    if row is not None and row[0] == "complete":
        return Event("verdict", run_id=run_id, data=from_json(row[1]) or {}, ts=time.time())
    if job is not None:
        return Event("run_failed", run_id=run_id, data=job["error"] or (from_json(row[2]) if row else None) or {}, ts=time.time())
    if row is None or row[0] == "running":
        return None
    return Event("run_failed", run_id=run_id, data=from_json(row[2]) or {"type": "RunIncomplete", "message": row[0]}, ts=time.time())
