"""Anthropic's Claude models, through the `anthropic` SDK (the optional extra
`manyminds[anthropic]`).

The SDK is imported inside functions: without it, `register` raises ImportError, which the
registry records as the reason the provider is missing, and nothing else breaks. Keys, the
client per event loop, retries (none in the SDK; ours in `retry.py`), error mapping and
scrubbing are `SDKModel`'s (`sdk.py`), the same as for `openai_compat`.
"""

from __future__ import annotations

import os
from contextlib import aclosing
from types import ModuleType
from typing import TYPE_CHECKING, Any, AsyncIterator

from ..config import resolve_key
from .base import Chunk, Completion, Message, ModelOptions, Timer, Usage
from .sdk import SDKModel

if TYPE_CHECKING:
    from .registry import Registry

PROVIDER = "anthropic"
KEY_ENV = "ANTHROPIC_API_KEY"
BASE_URL_ENV = "ANTHROPIC_BASE_URL"
# The Messages API requires max_tokens; used when the caller sets none.
DEFAULT_MAX_TOKENS = 4096

# model id -> context window. Prices are in data/prices.json (prices.py).
KNOWN_MODELS: dict[str, int] = {
    "claude-sonnet-4-5": 200_000,
    "claude-haiku-4-5": 200_000,
    "claude-opus-4-1": 200_000,
    "claude-sonnet-4-0": 200_000,
    "claude-3-5-haiku-latest": 200_000,
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


class AnthropicModel(SDKModel):
    provider = PROVIDER
    needs_key = True
    key_env_var = KEY_ENV

    def __init__(
        self, model_id: str, *, api_key: str | None, default_max_tokens: int = DEFAULT_MAX_TOKENS, **settings: Any
    ) -> None:
        """`settings`: `base_url`, `context_window`, `timeout` and the prices, as `SDKModel`
        takes them."""
        super().__init__(model_id, api_key=api_key, **settings)
        self.default_max_tokens = default_max_tokens

    # the client -------------------------------------------------------------------------
    def _sdk(self) -> tuple[ModuleType, type[BaseException]]:
        import anthropic

        return anthropic, anthropic.AnthropicError

    def _new_client(self, sdk: ModuleType, key: str | None) -> Any:
        # An explicit api_key stops the SDK from reading profiles or other env credentials.
        return sdk.AsyncAnthropic(api_key=key, base_url=self.base_url, max_retries=0, timeout=self.timeout)

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
            return self._estimated_usage(input_estimate, text)
        # Cached prompt tokens are billed separately but are still input.
        fields = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        inp = sum(getattr(raw, f, None) or 0 for f in fields)
        return Usage(int(inp), out), False

    async def _create(self, params: dict[str, Any]) -> Any:
        return await self._call(self._get_client().messages.create, params)

    async def complete(self, messages: list[Message], options: ModelOptions | None = None) -> Completion:
        options = options or ModelOptions()
        timer = Timer()
        resp = await self._create(self._params(messages, options, stream=False))
        self._reject_text_body(resp)
        content = getattr(resp, "content", None)
        if not isinstance(content, list) or (not content and getattr(resp, "stop_reason", None) is None):
            raise self._bad("the response holds no content")
        text = "".join(getattr(b, "text", "") or "" for b in content if getattr(b, "type", None) == "text")
        input_estimate = self._estimate_input([m.content for m in messages])
        usage = self._usage(getattr(resp, "usage", None), input_estimate, text)
        return self._make_completion(text, usage, getattr(resp, "stop_reason", None), timer)

    async def stream(self, messages: list[Message], options: ModelOptions | None = None) -> AsyncIterator[Chunk]:
        options = options or ModelOptions()
        timer = Timer()
        sdk_stream = await self._create(self._params(messages, options, stream=True))
        parts: list[str] = []
        start_usage: Any = None
        output_tokens: int | None = None
        stop_reason: str | None = None
        started = False
        async with aclosing(self._events(sdk_stream)) as events:
            async for event in events:
                kind = getattr(event, "type", None)
                if kind == "message_start":
                    started = True
                    start_usage = getattr(event.message, "usage", None)
                elif kind == "content_block_delta":
                    delta = event.delta
                    if getattr(delta, "type", None) == "text_delta" and delta.text:
                        parts.append(delta.text)
                        yield Chunk(delta=delta.text)
                elif kind == "message_delta":
                    stop_reason = getattr(event.delta, "stop_reason", None) or stop_reason
                    out = getattr(event.usage, "output_tokens", None)
                    output_tokens = out if isinstance(out, int) else output_tokens
        if not started:
            raise self._bad("the stream carried no message (a non-streaming or non-Anthropic answer?)")
        if not parts and stop_reason is None:
            raise self._bad("the stream held no content")
        text = "".join(parts)
        input_estimate = self._estimate_input([m.content for m in messages])
        if output_tokens is not None and start_usage is not None:
            usage, estimated = self._usage(start_usage, input_estimate, text)
            usage = Usage(usage.input_tokens, output_tokens)
        else:
            usage, estimated = self._usage(None, input_estimate, text)
        yield Chunk(completion=self._make_completion(text, (usage, estimated), stop_reason, timer))


def _factory(model_id: str, key: str | None = None, settings: Any = None) -> AnthropicModel:
    window = KNOWN_MODELS.get(model_id)
    return AnthropicModel(
        model_id,
        api_key=resolve_key(PROVIDER, key, KEY_ENV),
        base_url=os.environ.get(BASE_URL_ENV) or None,
        context_window=window,
    )


def register(registry: "Registry") -> None:
    # Whether the extra is installed, without importing the SDK: `import anthropic` costs
    # seconds on a busy machine and every registry build (every question) would pay it. The
    # SDK is imported when an Anthropic model is first called.
    import importlib.util

    if importlib.util.find_spec("anthropic") is None:
        raise ModuleNotFoundError("No module named 'anthropic'", name="anthropic")  # the registry records it

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
