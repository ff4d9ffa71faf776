"""A fault-injecting, OpenAI-compatible (and Anthropic-compatible) server on 127.0.0.1.

Tests and benchmarks point real SDK clients at it, so the whole path — SDK, HTTP, our error
mapping, retries, concurrency caps — is exercised without a real provider:

    with FakeOpenAIServer({"slow": Behaviour(latency=2.0, text="Paris")}) as server:
        server.queue("429", "429", model="flaky")      # 429 twice, then the normal answer
        model = OpenAICompatModel("slow", provider="fake", base_url=server.base_url, api_key="k")

Routes (any path prefix; the suffix decides): `POST …/chat/completions` (JSON or SSE with
`data: [DONE]`), `POST …/completions` (the legacy raw-prompt endpoint), `POST …/messages`
(Anthropic format, JSON or SSE) and `GET …/models`.

What a request gets is chosen, in order, from: the queue for its model, the queue for any
model, `behaviours[model]`, then `default`. A `Behaviour` sets the answer text (a string or a
function of the request body; by default the last user message is echoed), the latency before
the first byte, a per-token delay for streams, an HTTP error status (with `Retry-After`), or a
transport fault: `garbage` (200 with an HTML body), `bad_json` (200, JSON content type, broken
JSON), `truncated` (a `Content-Length` larger than what is sent, then close; in a stream, the
connection closes halfway), `drop` (close without answering), `empty_choices` (no choices, or
for Anthropic no content). Wherever a behaviour is expected, a shorthand works too: `"429"`
(with `Retry-After: 1`), `"500"` or any status, or a fault's name.

"Tokens" here are whitespace-separated words: usage counts them, `max_tokens` cuts at them
(finish reason `length`), and streams send one per chunk.

Token logprobs are sent when the request asks for them (`logprobs: true` on chat, a count on
the legacy endpoint), one per "token", in OpenAI's shapes: `choices[].logprobs.content[]` on
chat and `tokens` / `token_logprobs` / `top_logprobs` / `text_offset` on the legacy endpoint
(llama.cpp uses the chat shape on both; tests/test_logprobs_local.py covers that one), per
chunk in streams. `Behaviour.logprobs` sets the values, turns them off, or breaks them.

Each connection is served by its own thread (`ThreadingHTTPServer`), so latencies of
concurrent requests overlap; `max_concurrent` records the peak number of requests in flight.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Literal, Union

from .fake_logprobs import DEFAULT_LOGPROB, LogprobSource, logprobs_payload

Fault = Literal["garbage", "bad_json", "truncated", "drop", "empty_choices"]
TextSource = Union[str, Callable[[dict[str, Any]], str], None]

_GARBAGE = b"<html><body>502 Bad Gateway (not JSON)</body></html>"


@dataclass(frozen=True)
class Behaviour:
    """How the server answers one request."""

    text: TextSource = None  # None: echo the last user message (or the raw prompt)
    latency: float = 0.0  # seconds before the first byte
    token_delay: float = 0.0  # seconds between streamed tokens
    status: int = 200  # anything else: an error body in the provider's format
    retry_after: str | float | None = None  # `Retry-After` header value (seconds or HTTP date)
    fault: Fault | None = None
    finish_reason: str | None = None  # override; default "stop", or "length" when cut by max_tokens
    usage: bool = True  # report usage (in streams: only when asked via stream_options)
    # Message of an error body (or the body of `garbage` / `bad_json`). "{auth}" is replaced by
    # the Authorization / x-api-key value the request carried, to check that clients scrub a
    # key a server echoes back.
    error_message: str | None = None
    logprobs: LogprobSource = None  # see LogprobSource; only sent when the request asks

    # shorthands -------------------------------------------------------------------------
    @classmethod
    def rate_limited(cls, retry_after: str | float | None = 1, **kw: Any) -> "Behaviour":
        return cls(status=429, retry_after=retry_after, **kw)

    @classmethod
    def error(cls, status: int = 500, message: str | None = None, **kw: Any) -> "Behaviour":
        return cls(status=status, error_message=message, **kw)

    @classmethod
    def failing(cls, fault: Fault, **kw: Any) -> "Behaviour":
        return cls(fault=fault, **kw)

    @classmethod
    def parse(cls, spec: "Behaviour | str | int") -> "Behaviour":
        """`"429"` / `429`, `"500"`, any status, or a fault name → a `Behaviour`."""
        if isinstance(spec, Behaviour):
            return spec
        if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
            status = int(spec)
            return cls.rate_limited() if status == 429 else cls.error(status)
        if spec in ("garbage", "bad_json", "truncated", "drop", "empty_choices"):
            return cls(fault=spec)  # type: ignore[arg-type]
        raise ValueError(f"unknown behaviour {spec!r}")


BehaviourSpec = Union[Behaviour, str, int]


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any
    model: str | None
    behaviour: Behaviour | None = None
    started: float = field(default_factory=time.perf_counter)
    ended: float | None = None

    @property
    def stream(self) -> bool:
        return isinstance(self.body, dict) and bool(self.body.get("stream"))


class FakeOpenAIServer:
    def __init__(
        self,
        behaviours: dict[str, BehaviourSpec] | None = None,
        *,
        default: BehaviourSpec | None = None,
        models: list[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.behaviours: dict[str, Behaviour] = {k: Behaviour.parse(v) for k, v in (behaviours or {}).items()}
        self.default = Behaviour.parse(default) if default is not None else Behaviour()
        self.models = list(models or [])
        self.host, self._port = host, port
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_concurrent = 0
        self._queues: dict[str | None, deque[Behaviour]] = {}
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle --------------------------------------------------------------------------
    def start(self) -> "FakeOpenAIServer":
        if self._httpd is not None:
            return self
        self._httpd = _Server((self.host, self._port), _Handler)
        self._httpd.fake = self
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_all_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def root_url(self) -> str:
        """`http://127.0.0.1:PORT` — the Anthropic SDK's base URL (it adds `/v1/messages`)."""
        return f"http://{self.host}:{self._port}"

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1` — the OpenAI SDK's base URL."""
        return f"{self.root_url}/v1"

    # programming ------------------------------------------------------------------------
    def set_behaviour(self, model: str, behaviour: BehaviourSpec) -> None:
        with self._lock:
            self.behaviours[model] = Behaviour.parse(behaviour)

    def queue(self, *behaviours: BehaviourSpec, model: str | None = None) -> None:
        """Answer the next requests (for `model`, or for any model) with these, in order."""
        with self._lock:
            self._queues.setdefault(model, deque()).extend(Behaviour.parse(b) for b in behaviours)

    def reset(self) -> None:
        """Forget recorded requests, the concurrency peak and queued behaviours."""
        with self._lock:
            self.requests.clear()
            self._queues.clear()
            self.max_concurrent = self.in_flight

    def requests_for(self, model: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.model == model]

    def _choose(self, model: str | None) -> Behaviour:
        with self._lock:
            for key in (model, None):
                q = self._queues.get(key)
                if q:
                    return q.popleft()
            if model is not None and model in self.behaviours:
                return self.behaviours[model]
            return self.default

    def _enter(self, rec: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(rec)
            self.in_flight += 1
            self.max_concurrent = max(self.max_concurrent, self.in_flight)

    def _leave(self, rec: RecordedRequest) -> None:
        with self._lock:
            self.in_flight -= 1
            rec.ended = time.perf_counter()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The default backlog of 5 makes the kernel drop SYNs when 50 clients connect at once,
    # and a dropped SYN is retried a second later: concurrency would look serialised.
    request_queue_size = 256
    fake: FakeOpenAIServer

    def __init__(self, *args: Any, **kw: Any) -> None:
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(*args, **kw)

    def track(self, conn: socket.socket, alive: bool) -> None:
        with self._conns_lock:
            (self._conns.add if alive else self._conns.discard)(conn)

    def close_all_connections(self) -> None:
        # Keep-alive connections otherwise outlive `stop()` in their daemon threads.
        with self._conns_lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            _shutdown(conn)


def _shutdown(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the peer


def _words(text: str) -> list[str]:
    """Split into "tokens" that concatenate back to the text."""
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def _count(text: str) -> int:
    return len(text.split())


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real providers do
    server: _Server
    timeout = 30  # an idle keep-alive connection frees its thread after this

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # tests would drown in access logs

    @property
    def fake(self) -> FakeOpenAIServer:
        return self.server.fake

    # routing ----------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?")[0].rstrip("/")
        if path.endswith("/models"):
            ids = sorted(set(self.fake.models) | set(self.fake.behaviours))
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "loopback"} for m in ids]
            self._json(200, {"object": "list", "data": data})
        else:
            self._json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?")[0].rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            self._json(400, {"error": {"message": "request body is not JSON", "type": "invalid_request_error"}})
            return
        if path.endswith("/chat/completions"):
            kind = "chat"
        elif path.endswith("/completions"):
            kind = "completions"
        elif path.endswith("/messages"):
            kind = "anthropic"
        else:
            self._json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})
            return
        model = body.get("model") if isinstance(body, dict) else None
        rec = RecordedRequest("POST", path, {k.lower(): v for k, v in self.headers.items()}, body, model)
        self.fake._enter(rec)
        try:
            rec.behaviour = behaviour = self.fake._choose(model)
            self._answer(kind, body, behaviour)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away (e.g. its timeout); not our error
        finally:
            self.fake._leave(rec)

    # answering --------------------------------------------------------------------------
    def _answer(self, kind: str, body: dict[str, Any], b: Behaviour) -> None:
        if b.latency:
            time.sleep(b.latency)
        if b.fault == "drop":
            self.close_connection = True
            _shutdown(self.connection)
            return
        if b.status != 200:
            self._error(kind, b)
            return
        if b.fault in ("garbage", "bad_json"):
            data = self._echo(b.error_message).encode() if b.error_message else _GARBAGE
            if b.fault == "bad_json":
                data = b'{"id": "cmpl-loopback", "choices": [' + data
            self._raw(200, data, "text/html" if b.fault == "garbage" else "application/json")
            return
        text, finish = self._text(kind, body, b)
        prompt_tokens = self._prompt_tokens(kind, body)
        if body.get("stream"):
            self._stream(kind, body, b, text, finish, prompt_tokens)
            return
        payload = self._payload(kind, body, b, text, finish, prompt_tokens)
        data = json.dumps(payload).encode()
        if b.fault == "truncated":
            self._truncated(data)
            return
        self._raw(200, data, "application/json")

    def _text(self, kind: str, body: dict[str, Any], b: Behaviour) -> tuple[str, str]:
        if callable(b.text):
            text = b.text(body)
        elif b.text is not None:
            text = b.text
        elif kind == "completions":
            text = _content_text(body.get("prompt", ""))
        else:
            users = [m for m in body.get("messages", []) if isinstance(m, dict) and m.get("role") == "user"]
            text = _content_text(users[-1].get("content")) if users else ""
        finish = "stop"
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(limit, int) and _count(text) > limit:
            text, finish = "".join(_words(text)[:limit]).rstrip(), "length"
        return text, b.finish_reason or finish

    @staticmethod
    def _prompt_tokens(kind: str, body: dict[str, Any]) -> int:
        if kind == "completions":
            return _count(_content_text(body.get("prompt", "")))
        n = sum(_count(_content_text(m.get("content"))) for m in body.get("messages", []) if isinstance(m, dict))
        if kind == "anthropic":
            n += _count(_content_text(body.get("system", "")))
        return n

    def _payload(
        self, kind: str, body: dict[str, Any], b: Behaviour, text: str, finish: str, prompt_tokens: int
    ) -> dict[str, Any]:
        model = body.get("model", "")
        n_out = _count(text)
        if kind == "anthropic":
            stop = {"stop": "end_turn", "length": "max_tokens"}.get(finish, finish)
            return {
                "id": "msg_loopback",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [] if b.fault == "empty_choices" else [{"type": "text", "text": text}],
                "stop_reason": None if b.fault == "empty_choices" else stop,
                "stop_sequence": None,
                "usage": {"input_tokens": prompt_tokens, "output_tokens": n_out},
            }
        logprobs = logprobs_payload(kind, body, b.logprobs, _words(text), 0)
        if kind == "chat":
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
            }
            if logprobs is not None:
                choice["logprobs"] = logprobs
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": logprobs}
            obj = "text_completion"
        payload: dict[str, Any] = {
            "id": "cmpl-loopback",
            "object": obj,
            "created": int(time.time()),
            "model": model,
            "choices": [] if b.fault == "empty_choices" else [choice],
        }
        if b.usage:
            payload["usage"] = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": n_out,
                "total_tokens": prompt_tokens + n_out,
            }
        return payload

    def _error(self, kind: str, b: Behaviour) -> None:
        message = self._echo(b.error_message or _DEFAULT_ERRORS.get(b.status, f"HTTP {b.status}"))
        etype = _ERROR_TYPES.get(b.status, "api_error")
        if kind == "anthropic":
            payload: dict[str, Any] = {"type": "error", "error": {"type": etype, "message": message}}
        else:
            payload = {"error": {"message": message, "type": etype, "code": str(b.status)}}
        headers = {}
        if b.retry_after is not None:
            headers["Retry-After"] = str(b.retry_after)
        # Ask SDKs not to retry on their own (ours are built with max_retries=0 anyway).
        headers["x-should-retry"] = "false"
        self._raw(b.status, json.dumps(payload).encode(), "application/json", headers)

    # streaming --------------------------------------------------------------------------
    def _stream(
        self, kind: str, body: dict[str, Any], b: Behaviour, text: str, finish: str, prompt_tokens: int
    ) -> None:
        events = list(self._events(kind, body, b, text, finish, prompt_tokens))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        cut = len(events) // 2 if b.fault == "truncated" else None
        for i, event in enumerate(events):
            if cut is not None and i == cut:
                # Close mid-stream without the terminating chunk: a truncated body.
                self.close_connection = True
                _shutdown(self.connection)
                return
            if i and b.token_delay:
                time.sleep(b.token_delay)
            self._chunk(event.encode())
        self._chunk(b"")

    def _events(
        self, kind: str, body: dict[str, Any], b: Behaviour, text: str, finish: str, prompt_tokens: int
    ) -> Any:
        model = body.get("model", "")
        words = [] if b.fault == "empty_choices" else _words(text)
        n_out = _count(text)
        if kind == "anthropic":
            stop = {"stop": "end_turn", "length": "max_tokens"}.get(finish, finish)

            def ev(name: str, data: dict[str, Any]) -> str:
                return f"event: {name}\ndata: {json.dumps(data)}\n\n"

            message = {
                "id": "msg_loopback", "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": prompt_tokens, "output_tokens": 1},
            }  # fmt: skip
            yield ev("message_start", {"type": "message_start", "message": message})
            if b.fault == "empty_choices":  # a message with no content and no stop reason
                yield ev("message_stop", {"type": "message_stop"})
                return
            yield ev("content_block_start", {"type": "content_block_start", "index": 0,
                                             "content_block": {"type": "text", "text": ""}})  # fmt: skip
            for w in words:
                yield ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                 "delta": {"type": "text_delta", "text": w}})  # fmt: skip
            yield ev("content_block_stop", {"type": "content_block_stop", "index": 0})
            yield ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                       "usage": {"output_tokens": n_out}})  # fmt: skip
            yield ev("message_stop", {"type": "message_stop"})
            return
        obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
        base = {"id": "cmpl-loopback", "object": obj, "created": int(time.time()), "model": model}

        def choice(piece: str | None, fin: str | None, position: int = 0) -> dict[str, Any]:
            logprobs = logprobs_payload(kind, body, b.logprobs, [piece], position) if piece is not None else None
            if kind == "chat":
                delta = {"content": piece} if piece is not None else {}
                out = {"index": 0, "delta": delta, "finish_reason": fin}
                if logprobs is not None:
                    out["logprobs"] = logprobs
                return out
            return {"index": 0, "text": piece or "", "finish_reason": fin, "logprobs": logprobs}

        def data(obj_: dict[str, Any]) -> str:
            return f"data: {json.dumps(obj_)}\n\n"

        if kind == "chat" and b.fault != "empty_choices":
            yield data({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                              "finish_reason": None}]})  # fmt: skip
        for i, w in enumerate(words):
            yield data({**base, "choices": [choice(w, None, i)]})
        if b.fault != "empty_choices":
            yield data({**base, "choices": [choice(None, finish)]})
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if b.usage and include_usage:
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n_out, "total_tokens": prompt_tokens + n_out}
            yield data({**base, "choices": [], "usage": usage})
        yield "data: [DONE]\n\n"

    # low level --------------------------------------------------------------------------
    def _echo(self, template: str) -> str:
        auth = self.headers.get("Authorization") or self.headers.get("x-api-key") or ""
        return template.replace("{auth}", auth)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _raw(self, status: int, data: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _json(self, status: int, payload: Any) -> None:
        self._raw(status, json.dumps(payload).encode(), "application/json")

    def _truncated(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data) + 64))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True
        _shutdown(self.connection)


_DEFAULT_ERRORS = {
    400: "bad request",
    401: "Incorrect API key provided.",
    403: "permission denied",
    404: "The model does not exist or you do not have access to it.",
    429: "Rate limit reached; try again later.",
    500: "The server had an error while processing your request.",
    503: "The engine is currently overloaded.",
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


__all__ = ["DEFAULT_LOGPROB", "Behaviour", "FakeOpenAIServer", "Fault", "LogprobSource", "RecordedRequest"]
