"""The memory API: the personal memory of a profile — list, add, forget.

    GET    /api/memory?profile=          {profile, memories: [{id, profile, text, source, created_at}]}
    POST   /api/memory                   {"text", "profile"?} → 201 the stored memory
    DELETE /api/memory/{id}?profile=     {profile, forgotten: 1, id}; 404 for an id the profile lacks

The profile defaults as on the command line: `$MANYMINDS_PROFILE` of the server, else
`[memory] profile`, else "default". Text limits and checks are `memory/store.py`'s (422 with the
precise reason). Embedding a new memory runs off the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ..errors import ManymindsError
from ..memory.store import MAX_MEMORY_CHARS, Memory, MemoryStore, UnknownMemory, resolve_profile
from .errors import ApiError, from_manyminds
from .schemas import API_ERRORS

router = APIRouter(prefix="/api", tags=["Memory"])

ProfileQuery = Query(default=None, max_length=64, description="The memory profile (default: the server's).")


class MemoryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(description=f"The note, at most {MAX_MEMORY_CHARS:,} characters once stripped; stored as data.")
    profile: str | None = Field(default=None, max_length=64, description="The memory profile (default: the server's).")


class MemoryList(BaseModel):
    profile: str
    memories: list[Memory]


class MemoryForgotten(BaseModel):
    profile: str
    forgotten: int
    id: str


def _store(request: Request, profile: str | None) -> tuple[MemoryStore, str]:
    state = request.app.state.mm
    try:
        return MemoryStore(state.db()), resolve_profile(profile, state.settings)
    except ManymindsError as exc:
        raise from_manyminds(exc, param="profile") from None


@router.get("/memory", response_model=MemoryList, responses=API_ERRORS, summary="The profile's memories")
async def memory_list(request: Request, profile: str | None = ProfileQuery) -> dict[str, Any]:
    store, name = _store(request, profile)
    return {"profile": name, "memories": store.list(name)}


@router.post("/memory", status_code=201, response_model=Memory, responses=API_ERRORS, summary="Save a memory")
async def memory_add(body: MemoryCreate, request: Request) -> JSONResponse:
    state = request.app.state.mm

    def add() -> Memory:
        # state.db() is per thread: this worker thread gets a connection of its own.
        return MemoryStore(state.db()).add(resolve_profile(body.profile, state.settings), body.text, source="api")

    try:
        saved = await asyncio.to_thread(add)
    except ManymindsError as exc:
        raise from_manyminds(exc, param="text") from None
    return JSONResponse(saved.model_dump(), status_code=201)


@router.delete("/memory/{memory_id}", response_model=MemoryForgotten, responses=API_ERRORS, summary="Forget a memory")
async def memory_forget(memory_id: str, request: Request, profile: str | None = ProfileQuery) -> dict[str, Any]:
    store, name = _store(request, profile)
    try:
        gone = store.forget(name, memory_id)
    except UnknownMemory as exc:
        raise ApiError(404, "NotFound", str(exc), param="id") from None
    return {"profile": name, "forgotten": 1, "id": gone.id}
