"""Any OpenAI-compatible endpoint: OpenAI itself, OpenRouter, Gemini, Perplexity, Groq,
DeepSeek, and local servers (Ollama, vLLM, llama.cpp), plus the extra endpoints in the
settings file.

One `OpenAICompatModel` class talks to all of them through the official `openai` SDK. The SDK
is built with `max_retries=0`: retries belong to `retry.call_with_retries`, so each one is
visible and every provider is retried the same way. Each SDK failure is mapped to exactly one
of our errors (see `map_sdk_error`), and the API key is scrubbed from every message we raise.

The local provider subclasses `OpenAICompatModel`; it uses the hooks `_request_extras` and
`_client_kwargs`, and the raw-prompt twins `complete_prompt` / `stream_prompt` (the legacy
`/v1/completions` endpoint, for a base model without a chat template).
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib
import json
import os
import ssl
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, AsyncIterator, Literal, Mapping

import pydantic

from ..config import keys_path, resolve_key
from ..errors import BadResponse, MissingKey, ModelError, ModelTimeout, RateLimited, ServerError
from .base import Chunk, Completion, FinishReason, Message, Model, ModelOptions, Timer, Usage

if TYPE_CHECKING:
    from .registry import Registry

Endpoint = Literal["chat", "completions"]

# Sent as the bearer token to endpoints that need no key. Passing *something* matters: given
# None, the SDK would fall back to $OPENAI_API_KEY and send a real OpenAI key to, say, Ollama.
NO_KEY = "no-key"
_MAX_DETAIL = 300  # characters of a server's error text worth keeping in a message


# --- error mapping (shared with anthropic.py) -------------------------------------------


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


# --- the model --------------------------------------------------------------------------


class OpenAICompatModel(Model):
    """A model behind an OpenAI-compatible `/v1/chat/completions` endpoint."""

    supports_json = True
    supports_stream = True
    # Whether to send `stream_options={"include_usage": True}`; a server that rejects it can
    # be served by a subclass that turns this off (usage is then estimated).
    send_stream_options = True

    def __init__(
        self,
        model_id: str,
        *,
        provider: str,
        base_url: str,
        api_key: str | None,
        key_env_var: str | None = None,
        needs_key: bool = True,
        context_window: int | None = None,
        timeout: float = 600.0,
        supports_json: bool = True,
        max_tokens_field: str = "max_tokens",
        input_price_per_mtok: float | None = None,
        output_price_per_mtok: float | None = None,
    ) -> None:
        super().__init__(model_id, context_window=context_window)
        self.provider = provider
        self.base_url = base_url
        self.key_env_var = key_env_var
        self.needs_key = needs_key
        self.timeout = timeout
        self.supports_json = supports_json
        # OpenAI's newer models only accept `max_completion_tokens`; most others `max_tokens`.
        self.max_tokens_field = max_tokens_field
        self.input_price_per_mtok = input_price_per_mtok
        self.output_price_per_mtok = output_price_per_mtok
        self._api_key = api_key or None
        self._secret: str | None = self._api_key
        self._client: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

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
        return True, "ready"

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
    def _client_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments for `openai.AsyncOpenAI` (e.g. `default_headers`)."""
        return {}

    def _get_client(self) -> Any:
        """The SDK client for the running event loop, built on first use.

        A connection pool belongs to one loop; the sync API runs a fresh loop per call, so a
        client from a finished loop is dropped, not reused.
        """
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            import openai

            key = self._require_key()
            self._secret = key
            self._client = openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=key or NO_KEY,
                max_retries=0,
                timeout=self.timeout,
                **self._client_kwargs(),
            )
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
        import openai

        return map_sdk_error(
            exc,
            openai,
            provider=self.provider,
            model=self.name,
            secret=self._secret,
            timeout=self.timeout,
            key_help=self._key_help() if self.needs_key else "",
        )

    def _errors(self) -> tuple[type[BaseException], ...]:
        import openai

        return sdk_errors(openai, openai.OpenAIError)

    def _bad(self, cause: str) -> BadResponse:
        return BadResponse(cause, provider=self.provider, model=self.name)

    # request building -------------------------------------------------------------------
    def _request_extras(self, options: ModelOptions, *, endpoint: Endpoint) -> dict[str, Any]:
        """Provider-specific body fields (sent as `extra_body`), e.g. llama.cpp's
        `cache_prompt` or a JSON grammar for the raw-prompt endpoint. None by default."""
        return {}

    def _sampling(self, options: ModelOptions) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for name in ("temperature", "top_p", "seed", "stop"):
            value = getattr(options, name)
            if value is not None:
                params[name] = value
        return params

    def _chat_params(self, messages: list[Message], options: ModelOptions, *, stream: bool) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model_id,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            **self._sampling(options),
        }
        if options.max_tokens is not None:
            params[self.max_tokens_field] = options.max_tokens
        if options.json_schema is not None and self.supports_json:
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": options.json_schema, "strict": True},
            }
        return self._finish_params(params, options, endpoint="chat", stream=stream)

    def _prompt_params(self, prompt: str, options: ModelOptions, *, stream: bool) -> dict[str, Any]:
        # The legacy endpoint has no response_format: a subclass that can constrain output
        # (llama.cpp's `json_schema`) adds it through `_request_extras`.
        params: dict[str, Any] = {"model": self.model_id, "prompt": prompt, **self._sampling(options)}
        if options.max_tokens is not None:
            params["max_tokens"] = options.max_tokens
        return self._finish_params(params, options, endpoint="completions", stream=stream)

    def _finish_params(
        self, params: dict[str, Any], options: ModelOptions, *, endpoint: Endpoint, stream: bool
    ) -> dict[str, Any]:
        extras = self._request_extras(options, endpoint=endpoint)
        if extras:
            params["extra_body"] = extras
        if stream:
            params["stream"] = True
            if self.send_stream_options:
                params["stream_options"] = {"include_usage": True}
        return params

    # response parsing -------------------------------------------------------------------
    def _estimate_input(self, texts: list[str]) -> int:
        return sum(self.count_tokens(t) for t in texts)

    def _usage(self, raw: Any, input_estimate: int, text: str) -> tuple[Usage, bool]:
        prompt = getattr(raw, "prompt_tokens", None)
        completion = getattr(raw, "completion_tokens", None)
        if isinstance(prompt, int) and isinstance(completion, int):
            return Usage(prompt, completion), False
        return Usage(input_estimate, self.count_tokens(text) if text else 0), True

    def _choices(self, resp: Any) -> list[Any]:
        if isinstance(resp, (str, bytes)):
            # The SDK hands back the body as text when it is not JSON.
            snippet = scrub(str(resp), self._secret)[:80]  # scrub first: a cut could split the key
            raise self._bad(f"the server answered with a body that is not JSON: {snippet!r}")
        choices = getattr(resp, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise self._bad("the response holds no choices")
        return choices

    def _completion(self, resp: Any, endpoint: Endpoint, input_estimate: int, timer: Timer) -> Completion:
        choice = self._choices(resp)[0]
        if endpoint == "chat":
            message = getattr(choice, "message", None)
            if message is None:
                raise self._bad("the first choice holds no message")
            text = getattr(message, "content", None) or getattr(message, "refusal", None) or ""
        else:
            text = getattr(choice, "text", None) or ""
        if not isinstance(text, str):
            raise self._bad(f"the answer is a {type(text).__name__}, not text")
        usage, estimated = self._usage(getattr(resp, "usage", None), input_estimate, text)
        return Completion(
            text=text,
            usage=usage,
            latency_s=timer.elapsed,
            finish_reason=map_finish_reason(getattr(choice, "finish_reason", None)),
            model=self.name,
            usage_estimated=estimated,
        )

    # calls ------------------------------------------------------------------------------
    async def _create(self, endpoint: Endpoint, params: dict[str, Any]) -> Any:
        client = self._get_client()
        api = client.chat.completions if endpoint == "chat" else client.completions
        try:
            return await api.create(**params)
        except self._errors() as exc:
            mapped = self._map_error(exc)
        # Raised outside the handler so that no `__context__` links to the SDK's exception,
        # whose request still carries the Authorization header.
        raise mapped

    async def _complete(self, endpoint: Endpoint, params: dict[str, Any], input_estimate: int) -> Completion:
        timer = Timer()
        resp = await self._create(endpoint, params)
        return self._completion(resp, endpoint, input_estimate, timer)

    async def _stream(self, endpoint: Endpoint, params: dict[str, Any], input_estimate: int) -> AsyncIterator[Chunk]:
        timer = Timer()
        sdk_stream = await self._create(endpoint, params)
        parts: list[str] = []
        raw_usage: Any = None
        finish: str | None = None
        events = choices_seen = 0
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
                events += 1
                if getattr(event, "usage", None) is not None:
                    raw_usage = event.usage
                piece = ""
                for choice in getattr(event, "choices", None) or []:
                    if (getattr(choice, "index", 0) or 0) != 0:
                        continue  # n > 1 is never asked for; ignore stray choices
                    choices_seen += 1
                    if endpoint == "chat":
                        delta = getattr(choice, "delta", None)
                        piece += (getattr(delta, "content", None) or "") if delta is not None else ""
                    else:
                        piece += getattr(choice, "text", None) or ""
                    finish = getattr(choice, "finish_reason", None) or finish
                if piece:
                    parts.append(piece)
                    yield Chunk(delta=piece)  # outside the try: a consumer's exit is not ours to map
        finally:
            await sdk_stream.close()
        if not events:
            raise self._bad("the stream carried no events (a non-streaming or non-OpenAI answer?)")
        if not choices_seen:
            raise self._bad("the stream held no choices")
        text = "".join(parts)
        usage, estimated = self._usage(raw_usage, input_estimate, text)
        yield Chunk(
            completion=Completion(
                text=text,
                usage=usage,
                latency_s=timer.elapsed,
                finish_reason=map_finish_reason(finish),
                model=self.name,
                usage_estimated=estimated,
            )
        )

    async def complete(self, messages: list[Message], options: ModelOptions | None = None) -> Completion:
        options = options or ModelOptions()
        params = self._chat_params(messages, options, stream=False)
        return await self._complete("chat", params, self._estimate_input([m.content for m in messages]))

    async def stream(self, messages: list[Message], options: ModelOptions | None = None) -> AsyncIterator[Chunk]:
        options = options or ModelOptions()
        params = self._chat_params(messages, options, stream=True)
        async for chunk in self._stream("chat", params, self._estimate_input([m.content for m in messages])):
            yield chunk

    async def complete_prompt(self, prompt: str, options: ModelOptions | None = None) -> Completion:
        """Complete a raw prompt through the legacy `/completions` endpoint (no chat template)."""
        options = options or ModelOptions()
        params = self._prompt_params(prompt, options, stream=False)
        return await self._complete("completions", params, self._estimate_input([prompt]))

    async def stream_prompt(self, prompt: str, options: ModelOptions | None = None) -> AsyncIterator[Chunk]:
        """The streaming twin of `complete_prompt`; the last chunk carries the `Completion`."""
        options = options or ModelOptions()
        params = self._prompt_params(prompt, options, stream=True)
        async for chunk in self._stream("completions", params, self._estimate_input([prompt])):
            yield chunk


# --- providers --------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltinProvider:
    name: str
    base_url: str
    key_env: str | None
    description: str
    # model id -> (input USD/Mtok, output USD/Mtok, context window); None where unknown
    models: dict[str, tuple[float | None, float | None, int | None]] = field(default_factory=dict)
    needs_key: bool = True
    max_concurrency: int = 8
    supports_json: bool = True
    max_tokens_field: str = "max_tokens"
    # Prices for ids not in `models` (local servers cost nothing per token).
    default_price: tuple[float, float] | None = None

    @property
    def base_url_env(self) -> str:
        return f"{self.name.upper().replace('-', '_')}_BASE_URL"


# Prices as published by each provider (USD per million tokens, standard tier); they drift,
# so unknown or unlisted models stay None ("unknown"), never 0.
BUILTIN_PROVIDERS: list[BuiltinProvider] = [
    BuiltinProvider(
        "openai", "https://api.openai.com/v1", "OPENAI_API_KEY", "OpenAI",
        {"gpt-4o-mini": (0.15, 0.60, 128_000), "gpt-4o": (2.50, 10.00, 128_000),
         "gpt-4.1-mini": (0.40, 1.60, 1_047_576), "gpt-4.1-nano": (0.10, 0.40, 1_047_576),
         "gpt-4.1": (2.00, 8.00, 1_047_576)},
        max_tokens_field="max_completion_tokens",
    ),
    BuiltinProvider(
        "openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", "OpenRouter (many vendors, one key)",
        {"openai/gpt-4o-mini": (0.15, 0.60, 128_000), "google/gemini-2.5-flash": (0.30, 2.50, 1_048_576),
         "anthropic/claude-sonnet-4": (3.00, 15.00, 200_000),
         "meta-llama/llama-3.3-70b-instruct": (None, None, 131_072)},
    ),
    BuiltinProvider(
        "gemini", "https://generativelanguage.googleapis.com/v1beta/openai/", "GEMINI_API_KEY",
        "Google Gemini (OpenAI-compatible endpoint)",
        {"gemini-2.5-flash": (0.30, 2.50, 1_048_576), "gemini-2.5-flash-lite": (0.10, 0.40, 1_048_576),
         "gemini-2.5-pro": (1.25, 10.00, 1_048_576)},
        max_concurrency=4,
    ),
    BuiltinProvider(
        "perplexity", "https://api.perplexity.ai", "PERPLEXITY_API_KEY", "Perplexity (answers with web search)",
        {"sonar": (1.00, 1.00, 127_072), "sonar-pro": (3.00, 15.00, 200_000)},
        max_concurrency=4,
    ),
    BuiltinProvider(
        "groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY", "Groq",
        {"llama-3.1-8b-instant": (0.05, 0.08, 131_072), "llama-3.3-70b-versatile": (0.59, 0.79, 131_072)},
        max_concurrency=4,
    ),
    BuiltinProvider(
        "deepseek", "https://api.deepseek.com", "DEEPSEEK_API_KEY", "DeepSeek",
        {"deepseek-chat": (None, None, 128_000), "deepseek-reasoner": (None, None, 128_000)},
        max_concurrency=4,
        supports_json=False,  # json_object only, no json_schema: the schema goes in the prompt
    ),
    BuiltinProvider(
        "ollama", "http://127.0.0.1:11434/v1", None, "Ollama on this machine",
        {"llama3.2": (0.0, 0.0, None), "qwen2.5": (0.0, 0.0, None)},
        needs_key=False, max_concurrency=2, default_price=(0.0, 0.0),
    ),
    BuiltinProvider(
        "vllm", "http://127.0.0.1:8000/v1", None, "a vLLM server (VLLM_BASE_URL)",
        {"Qwen/Qwen2.5-7B-Instruct": (0.0, 0.0, 32_768)},
        needs_key=False, max_concurrency=16, default_price=(0.0, 0.0),
    ),
    BuiltinProvider(
        "llamacpp", "http://127.0.0.1:8080/v1", None, "a llama.cpp server (llama-server)",
        {"default": (0.0, 0.0, None)},
        needs_key=False, max_concurrency=2, default_price=(0.0, 0.0),
    ),
]  # fmt: skip


def _builtin_factory(spec: BuiltinProvider):  # noqa: ANN202 - a ModelFactory
    def factory(model_id: str, key: str | None = None, settings: Any = None) -> OpenAICompatModel:
        in_price, out_price, window = spec.models.get(model_id, (*(spec.default_price or (None, None)), None))
        return OpenAICompatModel(
            model_id,
            provider=spec.name,
            base_url=os.environ.get(spec.base_url_env) or spec.base_url,
            api_key=resolve_key(spec.name, key, spec.key_env),
            key_env_var=spec.key_env,
            needs_key=spec.needs_key,
            context_window=window,
            supports_json=spec.supports_json,
            max_tokens_field=spec.max_tokens_field,
            input_price_per_mtok=in_price,
            output_price_per_mtok=out_price,
        )

    return factory


def _custom_factory(name: str, ps: Any):  # noqa: ANN202 - a ModelFactory; ps: ProviderSettings
    def factory(model_id: str, key: str | None = None, settings: Any = None) -> OpenAICompatModel:
        return OpenAICompatModel(
            model_id,
            provider=name,
            base_url=ps.base_url,
            api_key=resolve_key(name, key, ps.key_env),
            key_env_var=ps.key_env,
            needs_key=ps.needs_key,
            context_window=ps.context_window,
        )

    return factory


def register(registry: "Registry") -> None:
    from .registry import ProviderSpec

    for spec in BUILTIN_PROVIDERS:
        registry.add_provider(
            ProviderSpec(
                name=spec.name,
                factory=_builtin_factory(spec),
                description=spec.description,
                known_models=list(spec.models),
                accepts_any_model=True,
                key_env_var=spec.key_env,
                needs_key=spec.needs_key,
                max_concurrency=spec.max_concurrency,
            )
        )
    # Endpoints from the settings file; one named like a built-in replaces it.
    for name, ps in registry.settings.providers.items():
        registry.add_provider(
            ProviderSpec(
                name=name,
                factory=_custom_factory(name, ps),
                description=f"OpenAI-compatible endpoint {ps.base_url}",
                known_models=[],
                accepts_any_model=True,
                key_env_var=ps.key_env,
                needs_key=ps.needs_key,
                max_concurrency=ps.max_concurrency,
            )
        )


__all__ = [
    "BUILTIN_PROVIDERS",
    "BuiltinProvider",
    "NO_KEY",
    "OpenAICompatModel",
    "error_for_status",
    "map_finish_reason",
    "map_sdk_error",
    "parse_retry_after",
    "register",
    "scrub",
    "sdk_errors",
]
