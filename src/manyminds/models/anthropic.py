"""Anthropic's Claude models, through the `anthropic` SDK (the optional extra
`manyminds[anthropic]`).

The SDK is imported inside functions: without it, `register` raises ImportError, which the
registry records as the reason the provider is missing, and nothing else breaks. Errors,
retries (none in the SDK; ours in `retry.py`), key handling and scrubbing work exactly as in
`openai_compat`, whose helpers this module reuses.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any, AsyncIterator

from ..config import keys_path, resolve_key
from ..errors import BadResponse, MissingKey, ModelError
from .base import Chunk, Completion, Message, Model, ModelOptions, Timer, Usage
from .openai_compat import map_finish_reason, map_sdk_error, scrub, sdk_errors

if TYPE_CHECKING:
    from .registry import Registry

PROVIDER = "anthropic"
KEY_ENV = "ANTHROPIC_API_KEY"
BASE_URL_ENV = "ANTHROPIC_BASE_URL"
# The Messages API requires max_tokens; used when the caller sets none.
DEFAULT_MAX_TOKENS = 4096

# model id -> (input USD/Mtok, output USD/Mtok, context window), standard tier
KNOWN_MODELS: dict[str, tuple[float, float, int]] = {
    "claude-sonnet-4-5": (3.00, 15.00, 200_000),
    "claude-haiku-4-5": (1.00, 5.00, 200_000),
    "claude-opus-4-1": (15.00, 75.00, 200_000),
    "claude-sonnet-4-0": (3.00, 15.00, 200_000),
    "claude-3-5-haiku-latest": (0.80, 4.00, 200_000),
}


def to_anthropic_messages(messages: list[Message]) -> tuple[str | None, list[dict[str, str]]]:
    """Split out the system prompt (Anthropic takes it as `system=`) and merge consecutive
    turns of the same role, which the Messages API rejects."""
    system = [m.content for m in messages if m.role == "system"]
    turns: list[dict[str, str]] = []
    for m in messages:
        if m.role == "system":
            continue
        if turns and turns[-1]["role"] == m.role:
            turns[-1]["content"] += "\n\n" + m.content
        else:
            turns.append({"role": m.role, "content": m.content})
    return ("\n\n".join(system) if system else None), turns


class AnthropicModel(Model):
    provider = PROVIDER
    supports_json = True
    supports_stream = True
    needs_key = True
    key_env_var = KEY_ENV

    def __init__(
        self,
        model_id: str,
        *,
        api_key: str | None,
        base_url: str | None = None,
        context_window: int | None = None,
        timeout: float = 600.0,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        input_price_per_mtok: float | None = None,
        output_price_per_mtok: float | None = None,
    ) -> None:
        super().__init__(model_id, context_window=context_window)
        self.base_url = base_url
        self.timeout = timeout
        self.default_max_tokens = default_max_tokens
        self.input_price_per_mtok = input_price_per_mtok
        self.output_price_per_mtok = output_price_per_mtok
        self._api_key = api_key or None
        self._secret: str | None = self._api_key
        self._client: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    # keys -------------------------------------------------------------------------------
    def _key(self) -> str | None:
        return self._api_key or resolve_key(self.provider, None, self.key_env_var)

    def _key_help(self) -> str:
        return f"set {self.key_env_var} or run `manyminds keys set {self.provider}`"

    def availability(self) -> tuple[bool, str]:
        if not self._key():
            return False, f"missing key: {self._key_help()}"
        return True, "ready"

    # the client -------------------------------------------------------------------------
    def _get_client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            import anthropic

            key = self._key()
            if not key:
                raise MissingKey(
                    f"missing key: {self._key_help()} (it is saved in {keys_path()})",
                    provider=self.provider,
                    model=self.name,
                )
            self._secret = key
            # An explicit api_key stops the SDK from reading profiles or other env credentials.
            self._client = anthropic.AsyncAnthropic(
                api_key=key, base_url=self.base_url, max_retries=0, timeout=self.timeout
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

    def _map_error(self, exc: BaseException) -> ModelError:
        import anthropic

        return map_sdk_error(
            exc,
            anthropic,
            provider=self.provider,
            model=self.name,
            secret=self._secret,
            timeout=self.timeout,
            key_help=self._key_help(),
        )

    def _errors(self) -> tuple[type[BaseException], ...]:
        import anthropic

        return sdk_errors(anthropic, anthropic.AnthropicError)

    def _bad(self, cause: str) -> BadResponse:
        return BadResponse(cause, provider=self.provider, model=self.name)

    # requests ---------------------------------------------------------------------------
    def _params(self, messages: list[Message], options: ModelOptions, *, stream: bool) -> dict[str, Any]:
        system, turns = to_anthropic_messages(messages)
        params: dict[str, Any] = {
            "model": self.model_id,
            "messages": turns,
            "max_tokens": options.max_tokens or self.default_max_tokens,
        }
        if system:
            params["system"] = system
        if options.stop:
            params["stop_sequences"] = options.stop
        if options.json_schema is not None:
            params["output_config"] = {"format": {"type": "json_schema", "schema": options.json_schema}}
        # This SDK version has no typed temperature/top_p arguments; the API takes them in the
        # body. Anthropic has no seed.
        extra = {k: v for k, v in (("temperature", options.temperature), ("top_p", options.top_p)) if v is not None}
        if extra:
            params["extra_body"] = extra
        if stream:
            params["stream"] = True
        return params

    def _usage(self, raw: Any, input_estimate: int, text: str) -> tuple[Usage, bool]:
        out = getattr(raw, "output_tokens", None)
        if raw is None or not isinstance(out, int):
            return Usage(input_estimate, self.count_tokens(text) if text else 0), True
        # Cached prompt tokens are billed separately but are still input.
        fields = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        inp = sum(getattr(raw, f, None) or 0 for f in fields)
        return Usage(int(inp), out), False

    async def _create(self, params: dict[str, Any]) -> Any:
        client = self._get_client()
        try:
            return await client.messages.create(**params)
        except self._errors() as exc:
            mapped = self._map_error(exc)
        # Raised outside the handler so that no `__context__` links to the SDK's exception,
        # whose request still carries the key header.
        raise mapped

    async def complete(self, messages: list[Message], options: ModelOptions | None = None) -> Completion:
        options = options or ModelOptions()
        timer = Timer()
        resp = await self._create(self._params(messages, options, stream=False))
        if isinstance(resp, (str, bytes)):
            snippet = scrub(str(resp), self._secret)[:80]  # scrub first: a cut could split the key
            raise self._bad(f"the server answered with a body that is not JSON: {snippet!r}")
        content = getattr(resp, "content", None)
        if not isinstance(content, list) or (not content and getattr(resp, "stop_reason", None) is None):
            raise self._bad("the response holds no content")
        text = "".join(getattr(b, "text", "") or "" for b in content if getattr(b, "type", None) == "text")
        input_estimate = sum(self.count_tokens(m.content) for m in messages)
        usage, estimated = self._usage(getattr(resp, "usage", None), input_estimate, text)
        return Completion(
            text=text,
            usage=usage,
            latency_s=timer.elapsed,
            finish_reason=map_finish_reason(getattr(resp, "stop_reason", None)),
            model=self.name,
            usage_estimated=estimated,
        )

    async def stream(self, messages: list[Message], options: ModelOptions | None = None) -> AsyncIterator[Chunk]:
        options = options or ModelOptions()
        timer = Timer()
        sdk_stream = await self._create(self._params(messages, options, stream=True))
        parts: list[str] = []
        start_usage: Any = None
        output_tokens: int | None = None
        stop_reason: str | None = None
        started = False
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
                kind = getattr(event, "type", None)
                if kind == "message_start":
                    started = True
                    start_usage = getattr(event.message, "usage", None)
                elif kind == "content_block_delta":
                    delta = event.delta
                    if getattr(delta, "type", None) == "text_delta" and delta.text:
                        parts.append(delta.text)
                        yield Chunk(delta=delta.text)  # outside the inner try on purpose
                elif kind == "message_delta":
                    stop_reason = getattr(event.delta, "stop_reason", None) or stop_reason
                    out = getattr(event.usage, "output_tokens", None)
                    output_tokens = out if isinstance(out, int) else output_tokens
        finally:
            await sdk_stream.close()
        if not started:
            raise self._bad("the stream carried no message (a non-streaming or non-Anthropic answer?)")
        if not parts and stop_reason is None:
            raise self._bad("the stream held no content")
        text = "".join(parts)
        input_estimate = sum(self.count_tokens(m.content) for m in messages)
        if output_tokens is not None and start_usage is not None:
            usage, estimated = self._usage(start_usage, input_estimate, text)
            usage = Usage(usage.input_tokens, output_tokens)
        else:
            usage, estimated = self._usage(None, input_estimate, text)
        yield Chunk(
            completion=Completion(
                text=text,
                usage=usage,
                latency_s=timer.elapsed,
                finish_reason=map_finish_reason(stop_reason),
                model=self.name,
                usage_estimated=estimated,
            )
        )


def _factory(model_id: str, key: str | None = None, settings: Any = None) -> AnthropicModel:
    in_price, out_price, window = KNOWN_MODELS.get(model_id, (None, None, None))
    return AnthropicModel(
        model_id,
        api_key=resolve_key(PROVIDER, key, KEY_ENV),
        base_url=os.environ.get(BASE_URL_ENV) or None,
        context_window=window,
        input_price_per_mtok=in_price,
        output_price_per_mtok=out_price,
    )


def register(registry: "Registry") -> None:
    import anthropic  # noqa: F401 - without the extra, the registry records this ImportError

    from .registry import ProviderSpec

    registry.add_provider(
        ProviderSpec(
            name=PROVIDER,
            factory=_factory,
            description="Anthropic Claude (pip install 'manyminds[anthropic]')",
            known_models=list(KNOWN_MODELS),
            accepts_any_model=True,
            key_env_var=KEY_ENV,
            needs_key=True,
            max_concurrency=8,
        )
    )


__all__ = ["AnthropicModel", "KNOWN_MODELS", "register", "to_anthropic_messages"]
