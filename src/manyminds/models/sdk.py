"""What the providers built on an official SDK share (`openai` for `OpenAICompatModel`,
`anthropic` for `AnthropicModel`): key lookup, one SDK client per event loop, and the mapping
of every SDK failure to exactly one of our errors, with the API key scrubbed from its text.

The SDKs are built with `max_retries=0`: retries belong to `retry.call_with_retries`, so each
one is visible and every provider is retried the same way.

A subclass names its SDK (`_sdk`), builds its client (`_new_client`) and turns requests and
responses into that SDK's shapes; everything else lives here, once.
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib
import json
import ssl
import time
from abc import abstractmethod
from types import ModuleType
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping

import pydantic

from ..config import keys_path, resolve_key
from ..errors import BadResponse, MissingKey, ModelError, ModelTimeout, RateLimited, ServerError
from .base import Completion, FinishReason, Model, Timer, Usage

# Sent as the bearer token to endpoints that need no key. Passing *something* matters: given
# None, the SDK would fall back to $OPENAI_API_KEY and send a real OpenAI key to, say, Ollama.
NO_KEY = "no-key"
_MAX_DETAIL = 300  # characters of a server's error text worth keeping in a message


# --- error mapping ----------------------------------------------------------------------


def endpoint_status(base_url: str | None) -> tuple[bool, str]:
    """For a keyless endpoint (Ollama, vLLM, llama.cpp…) "usable now" means something answers:
    a server on this machine is probed with a quick TCP connect; a remote one is not contacted."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(base_url or "")
    host = parts.hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        return True, f"no key needed; {base_url} not checked"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True, f"ready (server answering at {base_url})"
    except OSError:
        return False, f"no server answering at {base_url}"


def scrub(text: str, *secrets: str | None) -> str:
    """`text` with every occurrence of each secret replaced by `***`."""
    for secret in secrets:
        if secret and secret != NO_KEY:
            text = text.replace(secret, "***")
    return text


def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds to wait, from `retry-after-ms` (OpenAI) or `Retry-After` (seconds or HTTP date)."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass  # fall through to Retry-After
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass  # not a number of seconds; maybe an HTTP date
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_for_status(
    status: int,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    provider: str,
    model: str,
    key_help: str = "",
) -> ModelError:
    """The error for an HTTP error status. `detail` must already be scrubbed."""
    kw: dict[str, Any] = {"provider": provider, "model": model, "status_code": status}
    tail = f": {detail}" if detail else ""
    if status == 429:
        retry_after = parse_retry_after(headers)
        wait = f" (retry after {retry_after:g} s)" if retry_after is not None else ""
        return RateLimited(f"rate limited (HTTP 429){wait}{tail}", retry_after=retry_after, **kw)
    if status in (401, 403):
        hint = f"; check the key ({key_help})" if key_help else ""
        return ModelError(f"authentication failed (HTTP {status}){hint}{tail}", **kw)
    if status == 404:
        return ModelError(f"model not found (HTTP 404){tail}", **kw)
    if status in (408, 409) or status >= 500:
        # 408/409 are transient on the providers' side (timeouts, lock contention): retry.
        return ServerError(f"server error (HTTP {status}){tail}", **kw)
    return ModelError(f"request rejected (HTTP {status}){tail}", **kw)


def _http_modules() -> list[ModuleType]:
    # SDK releases built on httpx2 and older ones on httpx: recognise the errors of both.
    modules = []
    for name in ("httpx2", "httpx"):
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            continue
    return modules


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the connection failed" when an SDK lets them through unwrapped
    (the Anthropic SDK does while a stream is read)."""
    import anyio

    http = tuple(m.TransportError for m in _http_modules())
    return (*http, anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError, ssl.SSLError)


def _timeout_errors() -> tuple[type[BaseException], ...]:
    return tuple(m.TimeoutException for m in _http_modules())


def sdk_errors(sdk: ModuleType, base: type[BaseException]) -> tuple[type[BaseException], ...]:
    """Everything a call through `sdk` may raise that `map_sdk_error` knows how to map."""
    return (base, *_transport_errors(), json.JSONDecodeError, pydantic.ValidationError)


def _root_cause(exc: BaseException) -> str:
    """`Name: message` of the innermost cause — "Connection error." alone helps nobody."""
    inner = exc
    seen = {id(inner)}
    while inner.__cause__ is not None and id(inner.__cause__) not in seen:
        inner = inner.__cause__
        seen.add(id(inner))
    text = str(inner) or type(inner).__name__
    return f"{type(inner).__name__}: {text}" if inner is not exc else text


def _status_detail(exc: Any) -> str:
    """The server's own words: `error.message` from the body if there is one."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"]
        if isinstance(err, str):
            return err
    return str(getattr(exc, "message", "") or exc)


def map_sdk_error(
    exc: BaseException,
    sdk: ModuleType,
    *,
    provider: str,
    model: str,
    secret: str | None,
    timeout: float,
    key_help: str = "",
) -> ModelError:
    """Map an exception from the `openai` or `anthropic` SDK (same class names) to ours.

    Order matters: a timeout is a connection error in both SDKs, and a response-validation
    error is an `APIError` without a status.
    """
    if isinstance(exc, ModelError):
        return exc
    kw: dict[str, Any] = {"provider": provider, "model": model}

    def clean(text: str) -> str:
        text = scrub(text, secret).strip()
        return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"

    if isinstance(exc, (sdk.APITimeoutError, *_timeout_errors())):
        return ModelTimeout(f"no response within {timeout:g} s (timeout)", **kw)
    if isinstance(exc, sdk.APIStatusError):
        return error_for_status(
            exc.status_code,
            clean(_status_detail(exc)),
            headers=exc.response.headers,
            key_help=key_help,
            **kw,
        )
    if isinstance(exc, (sdk.APIConnectionError, *_transport_errors())):
        return ServerError(f"connection failed: {clean(_root_cause(exc))}", **kw)
    if isinstance(exc, sdk.APIResponseValidationError):
        return BadResponse(f"unusable response: {clean(str(exc))}", **kw)
    if isinstance(exc, (json.JSONDecodeError, pydantic.ValidationError)):
        return BadResponse(f"unparseable response ({type(exc).__name__}): {clean(str(exc))}", **kw)
    if isinstance(exc, sdk.APIError):
        # An error event inside a 200 stream: the provider failed mid-answer; worth a retry.
        return ServerError(f"the provider reported an error: {clean(_status_detail(exc))}", **kw)
    return ModelError(f"{type(exc).__name__}: {clean(str(exc))}", **kw)


_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "eos": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
}


def map_finish_reason(reason: str | None) -> FinishReason:
    if reason is None:
        return "stop"  # some servers omit it on a normal end
    return _FINISH.get(reason, "other")


# --- the shared model -------------------------------------------------------------------


class SDKModel(Model):
    """A model called through an official SDK's async client.

    Subclasses set `provider`, `key_env_var` and `needs_key` (as class or instance attributes)
    and implement `_sdk`, `_new_client`, `complete` and `stream`; the SDK calls go through
    `_call` and `_events`, which map every failure to one of our errors.
    """

    supports_json = True
    supports_stream = True

    def __init__(
        self,
        model_id: str,
        *,
        api_key: str | None,
        base_url: str | None = None,
        context_window: int | None = None,
        timeout: float = 600.0,
        input_price_per_mtok: float | None = None,
        output_price_per_mtok: float | None = None,
    ) -> None:
        """`api_key` None: look the key up on each new client (see `_key`); `base_url` None:
        the SDK's default endpoint."""
        super().__init__(model_id, context_window=context_window)
        self.base_url = base_url
        self.timeout = timeout
        self.input_price_per_mtok = input_price_per_mtok
        self.output_price_per_mtok = output_price_per_mtok
        self._api_key = api_key or None
        # The key the live client was built with: the one to scrub from error text.
        self._secret: str | None = self._api_key
        self._client: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    # hooks ------------------------------------------------------------------------------
    @abstractmethod
    def _sdk(self) -> tuple[ModuleType, type[BaseException]]:
        """The SDK module and the root of its exception tree. Import it here, not at module
        level: it is slow to import, or (anthropic) an optional extra."""

    @abstractmethod
    def _new_client(self, sdk: ModuleType, key: str | None) -> Any:
        """A new async client of `sdk`, built with `max_retries=0` and `self.timeout`."""

    # keys -------------------------------------------------------------------------------
    def _key(self) -> str | None:
        if self._api_key:
            return self._api_key
        if self.needs_key:
            # Set after the model was built (`manyminds keys set`, an exported variable)?
            return resolve_key(self.provider, None, self.key_env_var)
        return None

    def _key_help(self) -> str:
        cmd = f"`manyminds keys set {self.provider}`"
        return f"set {self.key_env_var} or run {cmd}" if self.key_env_var else f"run {cmd}"

    def availability(self) -> tuple[bool, str]:
        if self.needs_key and not self._key():
            return False, f"missing key: {self._key_help()}"
        if not self.needs_key:
            return endpoint_status(self.base_url)
        return True, "ready (key found)"

    def _require_key(self) -> str | None:
        key = self._key()
        if self.needs_key and not key:
            raise MissingKey(
                f"missing key: {self._key_help()} (it is saved in {keys_path()})",
                provider=self.provider,
                model=self.name,
            )
        return key

    # the client -------------------------------------------------------------------------
    def _get_client(self) -> Any:
        """The SDK client for the running event loop, built on first use.

        A connection pool belongs to one loop; the sync API runs a fresh loop per call, so a
        client from a finished loop is dropped, not reused.
        """
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            sdk, _ = self._sdk()  # first: without the SDK, that is the error to see
            key = self._require_key()
            self._secret = key
            self._client = self._new_client(sdk, key)
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        loop, self._client_loop = self._client_loop, None
        if client is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            await client.close()

    # errors -----------------------------------------------------------------------------
    def _map_error(self, exc: BaseException) -> ModelError:
        sdk, _ = self._sdk()
        return map_sdk_error(
            exc,
            sdk,
            provider=self.provider,
            model=self.name,
            secret=self._secret,
            timeout=self.timeout,
            key_help=self._key_help() if self.needs_key else "",
        )

    def _errors(self) -> tuple[type[BaseException], ...]:
        return sdk_errors(*self._sdk())

    def _bad(self, cause: str) -> BadResponse:
        return BadResponse(cause, provider=self.provider, model=self.name)

    # calls ------------------------------------------------------------------------------
    async def _call(self, create: Callable[..., Awaitable[Any]], params: dict[str, Any]) -> Any:
        """`await create(**params)`, an SDK call, with its failure mapped to one of ours."""
        try:
            return await create(**params)
        except self._errors() as exc:
            mapped = self._map_error(exc)
        # Raised outside the handler so that no `__context__` links to the SDK's exception,
        # whose request still carries the key header.
        raise mapped

    async def _events(self, sdk_stream: Any) -> AsyncIterator[Any]:
        """The events of an SDK stream, each failure mapped to one of our errors; the stream
        is closed however the iteration ends. Iterate inside `contextlib.aclosing`, so that a
        consumer who stops early closes the stream at once, not when this is collected."""
        errors = self._errors()
        try:
            while True:
                failure: ModelError | None = None
                try:
                    event = await sdk_stream.__anext__()
                except StopAsyncIteration:
                    break
                except errors as exc:
                    failure = self._map_error(exc)
                if failure is not None:
                    raise failure  # outside the handler: no link to the SDK's exception
                yield event  # outside the try: a consumer's exit is not ours to map
        finally:
            await sdk_stream.close()

    # responses --------------------------------------------------------------------------
    def _reject_text_body(self, resp: Any) -> None:
        if isinstance(resp, (str, bytes)):
            # The SDK hands back the body as text when it is not JSON.
            snippet = scrub(str(resp), self._secret)[:80]  # scrub first: a cut could split the key
            raise self._bad(f"the server answered with a body that is not JSON: {snippet!r}")

    def _estimate_input(self, texts: list[str]) -> int:
        return sum(self.count_tokens(t) for t in texts)

    def _estimated_usage(self, input_estimate: int, text: str) -> tuple[Usage, bool]:
        """Usage counted locally, for when the provider reported none (flagged as estimated)."""
        return Usage(input_estimate, self.count_tokens(text) if text else 0), True

    def _make_completion(self, text: str, usage: tuple[Usage, bool], reason: str | None, timer: Timer) -> Completion:
        """The answer; `usage` as a subclass's `_usage` gives it (usage, whether estimated),
        `reason` the provider's own finish reason."""
        return Completion(
            text=text,
            usage=usage[0],
            latency_s=timer.elapsed,
            finish_reason=map_finish_reason(reason),
            model=self.name,
            usage_estimated=usage[1],
        )


__all__ = [
    "NO_KEY",
    "SDKModel",
    "error_for_status",
    "map_finish_reason",
    "map_sdk_error",
    "parse_retry_after",
    "scrub",
    "sdk_errors",
]
