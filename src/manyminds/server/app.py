"""The FastAPI app: `create_app(...)` builds one, `manyminds serve` runs it with uvicorn.

    app = create_app(settings, db_path=path, token="s3cret", worker=True)

Routes: `/healthz`, `/` and `/static/*` (the web page, when `server/static/` exists), the
OpenAI-compatible `/v1/*` (openai_routes.py), the run API `/api/*` (runs_api.py), the memory
API `/api/memory` (memory_api.py), and
`/openapi.json` + `/docs`. Middleware (middleware.py), outermost first: access log, CORS (only
when origins are configured: closed by default), token auth (when a token is configured), body
size limit. Errors of every kind leave as `{"error": {"type", "message", "param", "code", …}}`
(errors.py), including FastAPI's own validation errors, whose field details are kept.
"""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import Settings, load_settings
from ..config import db_path as default_db_path
from ..errors import ManymindsError
from .errors import ApiError, error_body, from_manyminds
from .middleware import AccessLog, BodyLimit, TokenAuth
from .schemas import API_ERRORS, Health
from .state import DEFAULT_MAX_BODY, ServerConfig, ServerState

log = logging.getLogger("manyminds.server")

STATIC_DIR = Path(__file__).parent / "static"


def create_app(
    settings: Settings | None = None,
    *,
    db_path: str | Path | None = None,
    token: str | None = None,
    cors_origins: list[str] | tuple[str, ...] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY,
    worker: bool = False,
    static_dir: str | Path | None = None,
    **options: Any,
) -> FastAPI:
    """A server app. `settings` default: the settings file; `db_path` default: the user dir's
    database; `token` default: `$MANYMINDS_TOKEN` (pass "" for none); `worker` runs the
    deep-run worker in the app's event loop. Other `ServerConfig` fields (e.g.
    `sse_heartbeat_s`, `max_concurrent_runs`, `worker_stale_after_s`) go in `options`."""
    from ..version import __version__

    known = {f.name for f in fields(ServerConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"create_app() got unknown options: {', '.join(unknown)}")
    if token is None:
        token = os.environ.get("MANYMINDS_TOKEN") or None
    config = ServerConfig(
        token=token or None, cors_origins=list(cors_origins), max_body_bytes=max_body_bytes, worker=worker,
        static_dir=Path(static_dir) if static_dir else STATIC_DIR, **options,
    )
    state = ServerState(settings or load_settings(), Path(db_path) if db_path else default_db_path(), config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.start()
        log.info("server started", extra={"db": str(state.db_path), "worker": config.worker, "auth": bool(config.token)})
        try:
            yield
        finally:
            await state.stop()
            log.info("server stopped")

    app = FastAPI(
        title="manyminds",
        version=__version__ or "0",
        description="Ask a council of models; get one answer with a measured confidence and the dissent.",
        lifespan=lifespan,
    )
    app.state.mm = state
    _add_error_handlers(app)
    _add_base_routes(app, state, __version__ or "0")
    from .openai_routes import router as openai_router
    from .memory_api import router as memory_router
    from .runs_api import router as runs_router

    app.include_router(openai_router)
    app.include_router(runs_router)
    app.include_router(memory_router)
    _finish_openapi(app, state)

    # Added innermost first: the last one added sees the request first.
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    if config.token:
        app.add_middleware(TokenAuth, token=config.token)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=config.cors_origins, allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"], expose_headers=["X-Request-ID", "Location"],
        )
    app.add_middleware(AccessLog)
    return app


def _add_base_routes(app: FastAPI, state: ServerState, version: str) -> None:
    @app.get("/healthz", response_model=Health, tags=["Server"], summary="Liveness (no token needed)")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "version": version}

    static = state.config.static_dir

    @app.get("/", include_in_schema=False)
    async def index() -> Any:
        page = static / "index.html" if static else None
        if page is None or not page.is_file():
            raise ApiError(404, "NotFound", "The web page is not installed in this build; the API is under /api and /v1.")
        # A second line of defence behind the page's own escaping: no inline or foreign scripts.
        csp = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"
        return FileResponse(page, media_type="text/html", headers={"Content-Security-Policy": csp})

    if static is not None and static.is_dir():
        from fastapi.staticfiles import StaticFiles

        app.mount("/static", StaticFiles(directory=static), name="static")


def _add_error_handlers(app: FastAPI) -> None:
    def openai_style(request: Request) -> bool:
        return request.url.path.startswith("/v1/")

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(ManymindsError)
    async def manyminds_error(request: Request, exc: ManymindsError) -> JSONResponse:
        err = from_manyminds(exc, openai=openai_style(request))
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors]
        bad_json = next((e for e in errors if e.get("type") == "json_invalid"), None)
        if bad_json is not None:
            # Not JSON at all: a malformed request (400), not an invalid one (422).
            where = bad_json.get("loc", ("body", "?"))[-1]
            reason = (bad_json.get("ctx") or {}).get("error", "JSON decode error")
            return JSONResponse(
                error_body("invalid_request_error" if openai_style(request) else "InvalidJSON",
                           f"The request body is not valid JSON: {reason} (at character {where}).", code="invalid_json",
                           details=details),
                status_code=400,
            )
        content_type = request.headers.get("content-type", "")
        if details and details[0]["loc"] == ["body"] and "json" not in content_type.lower() and request.method == "POST":
            # FastAPI leaves a body it was not told is JSON as bytes; say what it expected.
            return JSONResponse(
                error_body("invalid_request_error" if openai_style(request) else "UnsupportedMediaType",
                           f"The body must be a JSON object sent with Content-Type: application/json "
                           f"(got {content_type or 'no Content-Type'}).", code="unsupported_media_type", details=details),
                status_code=400,
            )
        summary = "; ".join(f"{'.'.join(str(p) for p in d['loc'])}: {d['msg']}" for d in details[:5])
        first = details[0]["loc"] if details else []
        param = ".".join(str(p) for p in first[1:]) if len(first) > 1 else None
        return JSONResponse(
            error_body("invalid_request_error" if openai_style(request) else "ValidationError",
                       f"Invalid request: {summary}", param=param, code="validation_error", details=details),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        names = {404: "NotFound", 405: "MethodNotAllowed"}
        message = {404: f"No route {request.url.path}.", 405: f"Method {request.method} is not allowed on {request.url.path}."}.get(
            exc.status_code, str(exc.detail))
        kind = ("invalid_request_error" if openai_style(request) else names.get(exc.status_code, "HTTPError"))
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Starlette names the methods of the first route that matched the path only; a
            # path served by several routes (GET and POST /api/runs) allows all of theirs.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return JSONResponse(error_body(kind, message), status_code=exc.status_code, headers=headers or None)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug: logged with its traceback; the client gets the request id, not the details.
        request_id = request.scope.get("state", {}).get("request_id")
        log.error("unhandled error", exc_info=exc, extra={"path": request.url.path, "request_id": request_id})
        return JSONResponse(
            error_body("server_error" if openai_style(request) else "InternalError",
                       f"Internal server error (request {request_id}); see the server log.", request_id=request_id),
            status_code=500,
        )


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        regex, route_methods = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and route_methods and regex.match(request.url.path):
            methods |= set(route_methods)
    return sorted(methods)


def _finish_openapi(app: FastAPI, state: ServerState) -> None:
    """Complete the generated document with what only this server knows: the councils it has
    (so `council` and the /v1 `model` are enums, and a generated client or a fuzzer reaches
    real runs), and, when a token is configured, that every operation but /healthz needs it."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemas = schema.get("components", {}).get("schemas", {})
        councils = sorted(state.settings.councils)
        _set_enum(schemas.get("RunRequest", {}).get("properties", {}).get("council"), councils)
        _set_enum(schemas.get("ChatRequest", {}).get("properties", {}).get("model"), ["council"] + [f"council/{c}" for c in councils])
        if state.config.token:
            schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearerAuth"] = {
                "type": "http", "scheme": "bearer",
                "description": "`Authorization: Bearer <token>`; GET routes also accept `?token=`.",
            }
            for path, ops in schema.get("paths", {}).items():
                if path != "/healthz":
                    for op in ops.values():
                        op["security"] = [{"bearerAuth": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _set_enum(prop: dict[str, Any] | None, values: list[str]) -> None:
    """Put `enum` on the string branch of a property (`str` or `str | None`)."""
    if not prop:
        return
    for branch in prop.get("anyOf", [prop]):
        if branch.get("type") == "string":
            branch["enum"] = values


__all__ = ["API_ERRORS", "create_app"]
