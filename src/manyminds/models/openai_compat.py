"""Any OpenAI-compatible endpoint: OpenAI itself, OpenRouter, Gemini, Perplexity, Groq,
DeepSeek, and local servers (Ollama, vLLM, llama.cpp), plus the extra endpoints in the
settings file.

One `OpenAICompatModel` class talks to all of them through the official `openai` SDK. Keys,
the client per event loop, retries (none in the SDK) and the mapping of each SDK failure to
exactly one of our errors, with the key scrubbed, live in `sdk.py`, shared with `anthropic.py`;
its helpers are re-exported here for the modules and tests that import them from this one.

The local provider subclasses `OpenAICompatModel`; it uses the hooks `_request_extras` and
`_client_kwargs`, and the raw-prompt twins `complete_prompt` / `stream_prompt` (the legacy
`/v1/completions` endpoint, for a base model without a chat template).
"""

from __future__ import annotations

import os
from contextlib import aclosing
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, AsyncIterator, Literal

from ..config import resolve_key
from ..errors import ModelError
from .base import Chunk, Completion, Message, ModelOptions, Timer, Usage
from .logprobs import StreamLogprobs, parse_logprobs, trim_unspoken
from .sdk import (
    NO_KEY,
    SDKModel,
    error_for_status,
    map_finish_reason,
    map_sdk_error,
    parse_retry_after,
    scrub,
    sdk_errors,
)

if TYPE_CHECKING:
    from .registry import Registry

Endpoint = Literal["chat", "completions"]


# --- the model --------------------------------------------------------------------------


class OpenAICompatModel(SDKModel):
    """A model behind an OpenAI-compatible `/v1/chat/completions` endpoint."""

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
        supports_json: bool = True,
        max_tokens_field: str = "max_tokens",
        supports_logprobs: bool | None = None,
        **settings: Any,
    ) -> None:
        """`settings`: `context_window`, `timeout` and the prices, as `SDKModel` takes them."""
        super().__init__(model_id, api_key=api_key, base_url=base_url, **settings)
        self.provider = provider
        self.key_env_var = key_env_var
        self.needs_key = needs_key
        self.supports_json = supports_json
        # OpenAI's newer models only accept `max_completion_tokens`; most others `max_tokens`.
        self.max_tokens_field = max_tokens_field
        if supports_logprobs is not None:  # None: the class's own (a subclass may declare it)
            self.supports_logprobs = supports_logprobs

    # the client -------------------------------------------------------------------------
    def _sdk(self) -> tuple[ModuleType, type[BaseException]]:
        import openai

        return openai, openai.OpenAIError

    def _client_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments for `openai.AsyncOpenAI` (e.g. `default_headers`)."""
        return {}

    def _new_client(self, sdk: ModuleType, key: str | None) -> Any:
        return sdk.AsyncOpenAI(
            base_url=self.base_url,
            api_key=key or NO_KEY,
            max_retries=0,
            timeout=self.timeout,
            **self._client_kwargs(),
        )

    # request building -------------------------------------------------------------------
    def _request_extras(self, options: ModelOptions, *, endpoint: Endpoint) -> dict[str, Any]:
        """Provider-specific body fields (sent as `extra_body`), e.g. llama.cpp's
        `cache_prompt` or a JSON grammar for the raw-prompt endpoint. None by default."""
        return {}

    def _wants_logprobs(self, options: ModelOptions) -> bool:
        return bool(options.logprobs) and self.supports_logprobs

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
        if self._wants_logprobs(options):
            # top_logprobs=1, not 0: llama.cpp reads 0 as "no logprobs at all" and, without the
            # field, sends 20 alternatives per token. OpenAI accepts 0–20.
            params["logprobs"] = True
            params["top_logprobs"] = 1
        return self._finish_params(params, options, endpoint="chat", stream=stream)

    def _prompt_params(self, prompt: str, options: ModelOptions, *, stream: bool) -> dict[str, Any]:
        # The legacy endpoint has no response_format: a subclass that can constrain output
        # (llama.cpp's `json_schema`) adds it through `_request_extras`.
        params: dict[str, Any] = {"model": self.model_id, "prompt": prompt, **self._sampling(options)}
        if options.max_tokens is not None:
            params["max_tokens"] = options.max_tokens
        if self._wants_logprobs(options):
            params["logprobs"] = 1  # the legacy field is a count of alternatives; 0 means none on llama.cpp
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
    def _usage(self, raw: Any, input_estimate: int, text: str) -> tuple[Usage, bool]:
        prompt = getattr(raw, "prompt_tokens", None)
        completion = getattr(raw, "completion_tokens", None)
        if isinstance(prompt, int) and isinstance(completion, int):
            return Usage(prompt, completion), False
        return self._estimated_usage(input_estimate, text)

    def _choices(self, resp: Any) -> list[Any]:
        self._reject_text_body(resp)
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
        usage = self._usage(getattr(resp, "usage", None), input_estimate, text)
        completion = self._make_completion(text, usage, getattr(choice, "finish_reason", None), timer)
        # Trimmed as a stream's are (see trim_unspoken): streaming or not, the same signal.
        completion.logprobs = trim_unspoken(parse_logprobs(getattr(choice, "logprobs", None)))
        return completion

    # calls ------------------------------------------------------------------------------
    async def _create(self, endpoint: Endpoint, params: dict[str, Any]) -> Any:
        client = self._get_client()
        api = client.chat.completions if endpoint == "chat" else client.completions
        try:
            return await self._call(api.create, params)
        except ModelError as err:
            if not _rejects_logprobs(err, params):
                raise
        # Some models behind a provider that has them refuse the field (OpenAI's reasoning
        # models, some routes of a router): answer without, and stop asking this model.
        self.supports_logprobs = False
        params = {k: v for k, v in params.items() if k not in ("logprobs", "top_logprobs")}
        return await self._call(api.create, params)

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
        logprobs = StreamLogprobs()
        events = choices_seen = 0
        async with aclosing(self._events(sdk_stream)) as stream_events:
            async for event in stream_events:
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
                    logprobs.add(getattr(choice, "logprobs", None))
                if piece:
                    parts.append(piece)
                    yield Chunk(delta=piece)
        if not events:
            raise self._bad("the stream carried no events (a non-streaming or non-OpenAI answer?)")
        if not choices_seen:
            raise self._bad("the stream held no choices")
        text = "".join(parts)
        usage = self._usage(raw_usage, input_estimate, text)
        completion = self._make_completion(text, usage, finish, timer)
        completion.logprobs = logprobs.result()
        yield Chunk(completion=completion)

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


def _rejects_logprobs(err: ModelError, params: dict[str, Any]) -> bool:
    """A 400 that names the logprobs field, for a request that sent it."""
    if "logprobs" not in params or getattr(err, "status_code", None) != 400:
        return False
    return "logprob" in str(err).lower()


# --- providers --------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltinProvider:
    name: str
    base_url: str
    key_env: str | None
    description: str
    # model id -> context window (None where unknown). Prices are in data/prices.json (prices.py).
    models: dict[str, int | None] = field(default_factory=dict)
    needs_key: bool = True
    max_concurrency: int = 8
    supports_json: bool = True
    max_tokens_field: str = "max_tokens"
    # Whether the endpoint returns token logprobs when asked. Off where it is unknown or
    # differs per model behind the endpoint (a refusal is retried without them anyway).
    supports_logprobs: bool = False

    @property
    def base_url_env(self) -> str:
        return f"{self.name.upper().replace('-', '_')}_BASE_URL"


# The built-in endpoints. Prices per model are in data/prices.json (prices.py), not here;
# a model without an entry there has an unknown cost (None), never 0.
BUILTIN_PROVIDERS: list[BuiltinProvider] = [
    BuiltinProvider(
        "openai", "https://api.openai.com/v1", "OPENAI_API_KEY", "OpenAI",
        {"gpt-4o-mini": 128_000, "gpt-4o": 128_000,
         "gpt-4.1-mini": 1_047_576, "gpt-4.1-nano": 1_047_576,
         "gpt-4.1": 1_047_576},
        max_tokens_field="max_completion_tokens", supports_logprobs=True,
    ),
    BuiltinProvider(
        "openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", "OpenRouter (many vendors, one key)",
        {"openai/gpt-4o-mini": 128_000, "google/gemini-2.5-flash": 1_048_576,
         "anthropic/claude-sonnet-4": 200_000,
         "meta-llama/llama-3.3-70b-instruct": 131_072},
    ),
    BuiltinProvider(
        "gemini", "https://generativelanguage.googleapis.com/v1beta/openai/", "GEMINI_API_KEY",
        "Google Gemini (OpenAI-compatible endpoint)",
        {"gemini-2.5-flash": 1_048_576, "gemini-2.5-flash-lite": 1_048_576,
         "gemini-2.5-pro": 1_048_576},
        max_concurrency=4,
    ),
    BuiltinProvider(
        "perplexity", "https://api.perplexity.ai", "PERPLEXITY_API_KEY", "Perplexity (answers with web search)",
        {"sonar": 127_072, "sonar-pro": 200_000},
        max_concurrency=4,
    ),
    BuiltinProvider(
        "groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY", "Groq",
        {"llama-3.1-8b-instant": 131_072, "llama-3.3-70b-versatile": 131_072},
        max_concurrency=4,
    ),
    BuiltinProvider(
        "deepseek", "https://api.deepseek.com", "DEEPSEEK_API_KEY", "DeepSeek",
        {"deepseek-chat": 128_000, "deepseek-reasoner": 128_000},
        max_concurrency=4,
        supports_json=False,  # json_object only, no json_schema: the schema goes in the prompt
    ),
    BuiltinProvider(
        "ollama", "http://127.0.0.1:11434/v1", None, "Ollama on this machine",
        {"llama3.2": None, "qwen2.5": None},
        needs_key=False, max_concurrency=2,
    ),
    BuiltinProvider(
        "vllm", "http://127.0.0.1:8000/v1", None, "a vLLM server (VLLM_BASE_URL)",
        {"Qwen/Qwen2.5-7B-Instruct": 32_768},
        needs_key=False, max_concurrency=16, supports_logprobs=True,
    ),
    BuiltinProvider(
        "llamacpp", "http://127.0.0.1:8080/v1", None, "a llama.cpp server (llama-server)",
        {"default": None},
        needs_key=False, max_concurrency=2, supports_logprobs=True,
    ),
]  # fmt: skip


def _builtin_factory(spec: BuiltinProvider):  # noqa: ANN202 - a ModelFactory
    def factory(model_id: str, key: str | None = None, settings: Any = None) -> OpenAICompatModel:
        window = spec.models.get(model_id)
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
            supports_logprobs=spec.supports_logprobs,
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
