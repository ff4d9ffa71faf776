"""The model layer's contract: one async method that turns messages into a `Completion`,
plus a streaming twin. Providers subclass `Model`; everything above this layer (fan-out,
compare, synthesize) only ever sees these types.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ModelError
from .logprobs import TokenLogprob, from_pairs, to_pairs

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "error", "timeout", "other"]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    role: Role
    content: str


class ModelOptions(BaseModel):
    """Sampling and output options. Strict: an unknown field is a user error, not a silent no-op."""

    model_config = ConfigDict(extra="forbid")
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, gt=0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = None
    stop: list[str] | None = None
    # A JSON schema the answer must follow. Providers that support constrained output use it;
    # others get it described in the prompt and the caller parses tolerantly.
    json_schema: dict[str, Any] | None = None
    # Ask for per-token log-probabilities. A provider that cannot return them ignores it (the
    # completion's `logprobs` is then None). None, not False, by default: option dumps with
    # exclude_none (the eval call cache's key) stay as they were for calls that do not ask.
    logprobs: bool | None = None

    def merged(self, other: "ModelOptions | None") -> "ModelOptions":
        """`other`'s explicitly set fields win over ours."""
        if other is None:
            return self
        data = self.model_dump(exclude_none=True)
        data.update(other.model_dump(exclude_none=True))
        return ModelOptions(**data)


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens)

    def to_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass
class Completion:
    text: str
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    finish_reason: FinishReason = "stop"
    model: str = ""  # the provider/model that produced it
    # Usage was estimated locally (the provider reported none); kept so cost figures can say so.
    usage_estimated: bool = False
    # The generated tokens with their log-probabilities, when asked for and the endpoint
    # returned them; None when absent (never an empty stand-in: absent is not "certain").
    logprobs: list[TokenLogprob] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "usage": self.usage.to_dict(),
            "latency_s": round(self.latency_s, 4),
            "finish_reason": self.finish_reason,
            "model": self.model,
            "usage_estimated": self.usage_estimated,
            "logprobs": to_pairs(self.logprobs),  # [[token, logprob], ...] or None
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "Completion":
        """The inverse of `to_dict`; documents written before logprobs existed read as None."""
        usage = doc.get("usage") or {}
        return cls(
            text=doc["text"],
            usage=Usage(usage.get("input_tokens", 0), usage.get("output_tokens", 0)),
            latency_s=doc.get("latency_s", 0.0),
            finish_reason=doc.get("finish_reason", "stop"),
            model=doc.get("model", ""),
            usage_estimated=doc.get("usage_estimated", False),
            logprobs=from_pairs(doc.get("logprobs")),
        )


@dataclass
class Chunk:
    """One piece of a streamed answer. The last chunk carries the full `Completion`."""

    delta: str = ""
    completion: Completion | None = None


class Model(ABC):
    """A model reachable through one provider.

    Subclasses implement `complete`; `stream` has a default that yields the whole completion
    as one chunk, so a provider without streaming still works everywhere.
    """

    provider: str = ""
    supports_json: bool = False
    supports_stream: bool = False
    needs_key: bool = False
    key_env_var: str | None = None
    # Whether `ModelOptions.logprobs` is sent to the endpoint (and its answer parsed).
    supports_logprobs: bool = False
    # Prices in USD per million tokens, where known; None means "unknown", not "free".
    input_price_per_mtok: float | None = None
    output_price_per_mtok: float | None = None

    def __init__(self, model_id: str, *, context_window: int | None = None) -> None:
        self.model_id = model_id
        self.context_window = context_window

    @property
    def name(self) -> str:
        return f"{self.provider}/{self.model_id}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    @abstractmethod
    async def complete(self, messages: list[Message], options: ModelOptions | None = None) -> Completion:
        ...

    async def stream(self, messages: list[Message], options: ModelOptions | None = None) -> AsyncIterator[Chunk]:
        completion = await self.complete(messages, options)
        yield Chunk(delta=completion.text, completion=completion)

    def count_tokens(self, text: str) -> int:
        """A cheap estimate used for the context-length check before any call is made.

        Roughly 4 characters per token for English; providers with a real tokenizer override it.
        """
        return max(1, (len(text) + 3) // 4)

    def cost_usd(self, usage: Usage) -> float | None:
        if self.input_price_per_mtok is None or self.output_price_per_mtok is None:
            return None
        return (
            usage.input_tokens * self.input_price_per_mtok + usage.output_tokens * self.output_price_per_mtok
        ) / 1_000_000

    def availability(self) -> tuple[bool, str]:
        """Whether this model can be called now, and if not, why (missing key, missing package…)."""
        return True, "ready"

    async def aclose(self) -> None:
        """Release connections or local servers. Safe to call more than once."""


class Timer:
    """Monotonic stopwatch used by providers to fill `Completion.latency_s`."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


__all__ = [
    "Chunk",
    "Completion",
    "FinishReason",
    "Message",
    "Model",
    "ModelError",
    "ModelOptions",
    "Timer",
    "TokenLogprob",
    "Usage",
]
