"""ASGI middleware: bearer-token auth, the request body limit and the access log.

Plain ASGI rather than Starlette's BaseHTTPMiddleware: they sit in front of SSE streams, which
must pass through unbuffered, and they answer before the app reads a byte when they can.
The order, outermost first (app.py): access log → CORS (only when configured, so that browser
preflights are answered without a token) → auth → body limit → the app.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs

from .errors import OPENAI_TYPES, error_body

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("manyminds.server.access")

PUBLIC_PATHS = ("/healthz",)
# The web page's own files hold no data; every call they make needs the token. They must load
# without it: the page reads the token from the address fragment, which is never sent.
PUBLIC_PAGE_PATHS = ("/", "/index.html")
PUBLIC_PAGE_PREFIX = "/static/"


async def send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


def _error(scope: Scope, status: int, type_: str, message: str, code: str) -> dict[str, Any]:
    # /v1 routes speak OpenAI's error types, so its client raises the right exception class.
    kind = OPENAI_TYPES.get(status, type_) if scope.get("path", "").startswith("/v1/") else type_
    return error_body(kind, message, code=code)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key == name:
            return value.decode("latin-1")
    return None


class TokenAuth:
    """Every request but /healthz and the page's static files needs `Authorization: Bearer <token>`. GET and HEAD may send
    `?token=` instead: a page's EventSource and <script src> cannot set headers. Compared in
    constant time."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS or self._page(scope) or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"authorization")
        message = "Missing bearer token: send `Authorization: Bearer <token>`." if not given else "Invalid bearer token."
        await send_json(send, 401, _error(scope, 401, "Unauthorized", message, "invalid_token"),
                        {"www-authenticate": 'Bearer realm="manyminds"'})

    @staticmethod
    def _page(scope: Scope) -> bool:
        path = scope["path"]
        return scope["method"] in ("GET", "HEAD") and (path in PUBLIC_PAGE_PATHS or path.startswith(PUBLIC_PAGE_PREFIX))

    def _allowed(self, scope: Scope) -> bool:
        given = _header(scope, b"authorization")
        if given is not None:
            scheme, _, value = given.partition(" ")
            return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token)
        if scope["method"] in ("GET", "HEAD"):
            values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
            return bool(values) and hmac.compare_digest(values[-1].encode(), self.token)
        return False


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Refuse bodies over `max_bytes` with 413: at once when Content-Length says so, and while
    reading when a chunked body grows past it (the app never sees the rest)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None:
            if not length.strip().isdigit():
                await send_json(send, 400, _error(scope, 400, "BadRequest", "Invalid Content-Length header.", "bad_content_length"))
                return
            if int(length) > self.max_bytes:
                await self._too_large(scope, send)
                return
        received = 0
        started = exceeded = False

        async def limited() -> dict[str, Any]:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _TooLarge
            return message

        async def tracking(message: dict[str, Any]) -> None:
            nonlocal started
            if exceeded:
                # FastAPI turns any error while reading the body into its own 400 ("error
                # parsing the body"): answer with the 413 instead, once, and drop theirs.
                if not started:
                    started = True
                    await self._too_large(scope, send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, tracking)
        except _TooLarge:
            if not started:
                await self._too_large(scope, send)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        await send_json(send, 413, _error(scope, 413, "PayloadTooLarge",
                                          f"The request body is larger than the limit of {self.max_bytes:,} bytes.", "payload_too_large"))


class AccessLog:
    """One JSON log line per request: method, path (never the query string, which may hold
    ?token=), status, duration, and a request id that is also returned as X-Request-ID."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        status = 0

        async def tracking(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        finally:
            client = scope.get("client") or ("", 0)
            access_log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status or 500,
                    "ms": round((time.perf_counter() - start) * 1000, 1),
                    "client": client[0],
                    "request_id": request_id,
                },
            )
