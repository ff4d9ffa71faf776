"""`ScriptedModel`: a deterministic model for fast orchestration tests — ours and users'.

It answers from a script instead of a network: a fixed string, a mapping from a substring of the
last user message to an answer, a callable, or a list consumed in order. It can also be told to
wait, fail or stream in pieces, so timeouts, retries and quorum logic can be tested without
servers, and to attach token logprobs (`logprobs=`) so the member signals can be. It is registered as the `scripted` provider: `scripted/echo` repeats the question,
`scripted/NAME` answers from a script registered with `ScriptedModel.register_script`.
"""

from __future__ import annotations

import asyncio
import re
from typing import AsyncIterator, Callable, ClassVar, Sequence, Union

from ..errors import ModelError
from ..models.base import Chunk, Completion, Message, Model, ModelOptions, Timer, TokenLogprob, Usage

Script = Union[str, dict[str, str], Callable[[list[Message]], str], list[Union[str, Exception]], Exception]
# Values for the answer's "tokens" (its whitespace-separated words, spaces attached), the last
# value repeated; or a function of the answer text returning them.
Logprobs = Union[Sequence[float], Callable[[str], Sequence[float]]]


class ScriptedModel(Model):
    provider = "scripted"
    supports_json = True
    supports_stream = True

    scripts: ClassVar[dict[str, Script]] = {}

    def __init__(
        self,
        model_id: str = "echo",
        script: Script | None = None,
        *,
        delay: float = 0.0,
        chunk_size: int = 0,
        context_window: int | None = 8192,
        logprobs: Logprobs | None = None,
    ) -> None:
        super().__init__(model_id, context_window=context_window)
        self.script = script if script is not None else self.scripts.get(model_id)
        self.delay = delay
        self.chunk_size = chunk_size  # >0: stream in pieces of this many characters
        self.calls: list[list[Message]] = []
        # Like a real endpoint, logprobs are attached only when the call asks for them.
        self.logprobs = logprobs
        self.supports_logprobs = logprobs is not None

    @classmethod
    def register_script(cls, model_id: str, script: Script) -> None:
        cls.scripts[model_id] = script

    def _answer(self, messages: list[Message]) -> str:
        script = self.script
        last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        if script is None:
            return last_user
        if isinstance(script, Exception):
            raise script
        if isinstance(script, str):
            return script
        if isinstance(script, dict):
            for needle, answer in script.items():
                if needle in last_user:
                    return answer
            return script.get("*", "I don't know.")
        if isinstance(script, list):
            if not script:
                raise ModelError("script exhausted", provider=self.provider, model=self.name)
            item = script.pop(0)
            if isinstance(item, Exception):
                raise item
            return item
        return script(messages)

    async def complete(self, messages: list[Message], options: ModelOptions | None = None) -> Completion:
        timer = Timer()
        self.calls.append(list(messages))
        if self.delay:
            await asyncio.sleep(self.delay)
        text = self._answer(messages)
        finish = "stop"
        if options and options.max_tokens is not None and self.count_tokens(text) > options.max_tokens:
            text, finish = text[: options.max_tokens * 4], "length"
        usage = Usage(sum(self.count_tokens(m.content) for m in messages), self.count_tokens(text))
        completion = Completion(text=text, usage=usage, latency_s=timer.elapsed, finish_reason=finish, model=self.name)
        if self.logprobs is not None and options is not None and options.logprobs:
            completion.logprobs = self._token_logprobs(text)
        return completion

    def _token_logprobs(self, text: str) -> list[TokenLogprob]:
        values = list(self.logprobs(text) if callable(self.logprobs) else self.logprobs)
        tokens = re.findall(r"\s*\S+\s*", text) or [text]
        if not values:
            return []
        return [TokenLogprob(t, float(values[min(i, len(values) - 1)])) for i, t in enumerate(tokens)]

    async def stream(self, messages: list[Message], options: ModelOptions | None = None) -> AsyncIterator[Chunk]:
        completion = await self.complete(messages, options)
        size = self.chunk_size or len(completion.text) or 1
        text = completion.text
        for i in range(0, len(text), size):
            yield Chunk(delta=text[i : i + size])
            await asyncio.sleep(0)
        yield Chunk(completion=completion)


def register(registry) -> None:  # noqa: ANN001 - the plugin hook signature
    from ..models.registry import ProviderSpec

    registry.add_provider(
        ProviderSpec(
            name="scripted",
            factory=lambda model_id, key=None, settings=None: ScriptedModel(model_id),
            description="Deterministic scripted answers for tests (no network).",
            known_models=["echo"],
            accepts_any_model=True,
        )
    )


__all__ = ["Script", "ScriptedModel", "register"]
