"""The `local` provider: small GGUF models shipped inside PyPI packages, run on this machine.

`LocalModel` is an `OpenAICompatModel` whose endpoint is a llama.cpp server that
`server.py` starts on first call (one per model file, shared by every call in the process).

Two kinds of model sit behind it:
  * chat models (SmolLM2 Instruct) go through /v1/chat/completions and their chat template;
  * base models (Gemma 3 270M) have no chat template, so the messages are rendered into a
    plain completion prompt — `Question: …\\nAnswer:` — and sent to /v1/completions with stop
    sequences that end the answer at the next question or blank line.

Asked for JSON (`options.json_schema`), both kinds are constrained by a grammar we build from
the schema (`json_grammar`: compact JSON, no extra keys) and send as llama.cpp's `grammar`
field, on either endpoint, instead of `response_format`. The grammar ends the answer, so a base
model's stop sequences are dropped. It guarantees the shape, not the sense: expect
`{"answer": ""}`, nonsense values, or a string cut at `max_tokens` (then the JSON is
unterminated — callers must parse tolerantly).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any, AsyncIterator

from ..base import Chunk, Completion, Message, ModelOptions
from ..openai_compat import Endpoint, OpenAICompatModel
from .catalog import LOCAL_MODELS, LocalModelSpec, get_spec
from .install import model_status
from .server import get_server, running_servers

if TYPE_CHECKING:
    from ..registry import Registry

PROVIDER = "local"
# Stop a base model's answer at the next question it invents or at a blank line: without
# them Gemma goes on writing "Question: … Answer: …" pairs until max_tokens.
BASE_STOPS = ["\nQuestion:", "\n\n"]
# Without a limit llama.cpp generates until the slot's context is full.
DEFAULT_MAX_TOKENS = {True: 512, False: 256}  # chat model, base model
_PLACEHOLDER_URL = "http://127.0.0.1:0/v1"  # replaced by the real server's URL on first call


def render_prompt(messages: list[Message]) -> str:
    """Messages → a completion prompt for a base model.

    System text first, then each user turn as `Question: …` followed by `Answer:`; earlier
    assistant turns fill in their answers. A trailing assistant message is a prefix the model
    continues.
    """
    system = "\n".join(m.content.strip() for m in messages if m.role == "system" and m.content.strip())
    parts: list[str] = [system + "\n\n"] if system else []
    turns = [m for m in messages if m.role != "system"]
    for i, m in enumerate(turns):
        text = m.content.strip()
        if m.role == "user":
            parts.append(f"Question: {text}\nAnswer:")
        elif i == len(turns) - 1:
            parts.append(f" {text}")  # continue this answer
        else:
            parts.append(f" {text}\n")
    if not turns:
        parts.append("Answer:")
    return "".join(parts)


_PIECES = re.compile(r"[A-Za-z]+| +|[^\x00-\x7f]+|.", re.DOTALL)


def _case_changes(word: str) -> int:
    """Case changes inside a run of letters, a capitalised word's first letter excepted:
    tokenizers split `aGVsbG8` or `pNI` (base64, identifiers, gibberish) at each of them."""
    changes = sum(1 for a, b in zip(word, word[1:]) if a.isupper() != b.isupper())
    if len(word) > 1 and word[0].isupper() and word[1].islower():
        changes -= 1
    return changes


def estimate_tokens(text: str) -> int:
    """A deliberately high token count for when no tokenizer is at hand.

    Measured on both models' tokenizers: a common English word is one token with the space
    before it, longer words take a token per 3–5 letters, every digit is a token of its own,
    punctuation is about one token per character, other spaces cost tokens too, and text
    outside ASCII can cost a token per byte. So we count: one token per run of up to 5 ASCII
    letters, one per 4 letters in longer runs, one per change of case inside a run (so hashes,
    base64 and gibberish are not undercounted); one per digit, punctuation mark, control
    character and non-ASCII byte; one per run of spaces that is not a lone space before a word
    (plus one per 4 more spaces); one for the BOS token; then 10 % more. That is ~10 % above
    the truth on prose, ~50 % on code, up to 5x on other scripts, and never below it on the
    texts in tests/test_local.py (random characters, base64, hashes and URLs included). A long
    run of one repeated letter is the known exception.
    """
    count = 1
    for match in _PIECES.finditer(text):
        piece = match.group()
        first = piece[0]
        if first == " ":
            lone_before_word = len(piece) == 1 and text[match.end() : match.end() + 1].isalpha()
            count += 0 if lone_before_word else 1 + len(piece) // 4
        elif not first.isascii():
            count += len(piece.encode("utf-8"))
        elif first.isalpha():
            count += (1 if len(piece) <= 5 else (len(piece) + 3) // 4) + _case_changes(piece)
        else:
            count += 1
    return count + count // 10  # margin: plain English prose comes out nearly exact otherwise


def tighten_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of `schema` in which objects that list their properties allow no others.

    JSON Schema allows extra keys by default, and a grammar built from it lets a tiny model
    wander off into `"answer_type": …, "answer_id": …` until max_tokens (seen with Gemma).
    """
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {name: tighten_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = tighten_schema(value)
        elif key in ("anyOf", "oneOf", "prefixItems") and isinstance(value, list):
            out[key] = [tighten_schema(sub) for sub in value]
        else:
            # `allOf` and `not` are left alone: closing the parts of an intersection makes it
            # unsatisfiable, and closing a negation widens it.
            out[key] = value
    open_keys = ("additionalProperties", "patternProperties", "unevaluatedProperties", "allOf")
    if "properties" in out and not any(k in out for k in open_keys):
        out["additionalProperties"] = False
    return out


@lru_cache(maxsize=64)
def _grammar_for(schema_json: str) -> str:
    import xllamacpp  # the runtime's own converter (llguidance); imports in ~30 ms, logs nothing

    return xllamacpp.json_schema_to_grammar(schema_json)


def json_grammar(schema: dict[str, Any]) -> str:
    """A llama.cpp grammar for `schema`, with compact JSON.

    With flexible whitespace (llama.cpp's default for `json_schema` and `response_format`)
    Gemma answered `{ \\n \\n \\n …` until max_tokens on 5 of 8 questions and SmolLM2 put
    newlines around every colon. `x-guidance` is llguidance's switch for the separators; a
    build without llguidance ignores it.
    """
    compact = dict(tighten_schema(schema))
    compact.setdefault("x-guidance", {"whitespace_flexible": False, "key_separator": ": ", "item_separator": ", "})
    return _grammar_for(json.dumps(compact, sort_keys=False))


class LocalModel(OpenAICompatModel):
    """A bundled GGUF model served by a local llama.cpp server."""

    supports_json = True
    supports_stream = True
    supports_logprobs = True  # llama.cpp returns them on both endpoints (see models/logprobs.py)
    needs_key = False

    def __init__(self, model_id: str, *, timeout: float = 600.0) -> None:
        self.spec: LocalModelSpec = get_spec(model_id)
        super().__init__(
            model_id,
            provider=PROVIDER,
            base_url=_PLACEHOLDER_URL,
            api_key=None,
            needs_key=False,
            context_window=self.spec.ctx_per_slot,
            timeout=timeout,
            supports_json=True,
        )

    @property
    def is_chat(self) -> bool:
        return self.spec.chat

    def availability(self) -> tuple[bool, str]:
        return model_status(self.model_id)

    # connection -------------------------------------------------------------------------
    async def _connect(self) -> None:
        """Start (or find) the server and point the client at it. A server that died and was
        restarted has a new port and key, so a stale client is dropped."""
        server = await get_server(self.model_id)
        if server.base_url != self.base_url or server.api_key != self._api_key:
            if self._client is not None:
                await self.aclose()
            self.base_url = server.base_url
            self._api_key = server.api_key
            self._secret = server.api_key

    def _client_kwargs(self) -> dict[str, Any]:
        import openai

        return {
            # Loopback only: an HTTP(S)_PROXY in the environment must not capture these calls.
            "http_client": openai.DefaultAsyncHttpxClient(trust_env=False),
            # No keep-alive: llama.cpp's server sometimes closes an idle connection just as the
            # client reuses it (seen: 7 of 100 "stream, then complete" pairs failed with "Server
            # disconnected without sending a response"). A fresh loopback connection costs ~0.1 ms.
            "default_headers": {"Connection": "close"},
        }

    # request building -------------------------------------------------------------------
    def _request_extras(self, options: ModelOptions, *, endpoint: Endpoint) -> dict[str, Any]:
        extras: dict[str, Any] = {"cache_prompt": True}  # reuse a shared prefix (system prompt)
        if options.json_schema is not None:
            extras["grammar"] = json_grammar(options.json_schema)
        return extras

    def _chat_params(self, messages: list[Message], options: ModelOptions, *, stream: bool) -> dict[str, Any]:
        params = super()._chat_params(messages, options, stream=stream)
        # llama.cpp builds response_format's grammar with flexible whitespace, which these
        # small models fill with endless newlines; our grammar (in extra_body) replaces it.
        params.pop("response_format", None)
        return params

    def _with_limit(self, options: ModelOptions | None) -> ModelOptions:
        return ModelOptions(max_tokens=DEFAULT_MAX_TOKENS[self.is_chat]).merged(options)

    def _with_stops(self, options: ModelOptions) -> ModelOptions:
        if options.json_schema is not None:
            return options
        stops = list(options.stop or [])
        return options.model_copy(update={"stop": stops + [s for s in BASE_STOPS if s not in stops]})

    # calls ------------------------------------------------------------------------------
    async def complete(self, messages: list[Message], options: ModelOptions | None = None) -> Completion:
        if self.is_chat:
            await self._connect()
            return await super().complete(messages, self._with_limit(options))
        options = self._with_stops(self._with_limit(options))
        completion = await self.complete_prompt(render_prompt(messages), options)
        # "Answer:" is followed by a space the model writes itself; it is not part of the answer.
        completion.text = completion.text.lstrip()
        return completion

    async def stream(self, messages: list[Message], options: ModelOptions | None = None) -> AsyncIterator[Chunk]:
        if self.is_chat:
            await self._connect()
            async for chunk in super().stream(messages, self._with_limit(options)):
                yield chunk
            return
        options = self._with_stops(self._with_limit(options))
        started = False
        parts: list[str] = []
        async for chunk in self.stream_prompt(render_prompt(messages), options):
            if chunk.completion is not None:
                # Keep "the deltas join to the final text" true after the leading-space strip.
                chunk.completion.text = "".join(parts)
                yield chunk
                continue
            delta = chunk.delta if started else chunk.delta.lstrip()
            if delta:
                started = True
                parts.append(delta)
                yield Chunk(delta=delta)

    async def complete_prompt(self, prompt: str, options: ModelOptions | None = None) -> Completion:
        """A raw prompt, sent as is (no stop sequences added; works for chat models too)."""
        await self._connect()
        return await super().complete_prompt(prompt, self._with_limit(options))

    async def stream_prompt(self, prompt: str, options: ModelOptions | None = None) -> AsyncIterator[Chunk]:
        await self._connect()
        async for chunk in super().stream_prompt(prompt, self._with_limit(options)):
            yield chunk

    def count_tokens(self, text: str) -> int:
        """Exact, from the server's tokenizer, when this model's server is already running;
        otherwise a conservative estimate. Never starts a server just to count."""
        server = running_servers().get(self.model_id)
        if server is not None:
            exact = _tokenize_count(server.url, server.api_key, text)
            if exact is not None:
                return exact
        return estimate_tokens(text)


@lru_cache(maxsize=512)
def _tokenize_count(url: str, api_key: str | None, text: str) -> int | None:
    """Token count from llama.cpp's /tokenize (a loopback call of about a millisecond; the
    tokenizer runs in the HTTP thread, not in a generation slot). None if it fails."""
    import http.client

    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=2.0)
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        conn.request("POST", "/tokenize", json.dumps({"content": text, "add_special": True}), headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            return None
        tokens = json.loads(body).get("tokens")
        return len(tokens) if isinstance(tokens, list) else None
    except (OSError, ValueError):
        return None
    finally:
        conn.close()


def _factory(model_id: str, key: str | None = None, settings: Any = None) -> LocalModel:
    return LocalModel(model_id)


def register(registry: "Registry") -> None:
    from ..registry import ProviderSpec

    registry.add_provider(
        ProviderSpec(
            name=PROVIDER,
            factory=_factory,
            description="bundled small models, run on this machine (no key, no network)",
            known_models=list(LOCAL_MODELS),
            accepts_any_model=False,
            needs_key=False,
            # One request per server slot (the cap is per provider, so all servers' slots);
            # more would only queue inside llama.cpp.
            max_concurrency=sum(spec.n_parallel for spec in LOCAL_MODELS.values()),
        )
    )
    registry.add_alias("smollm2", "local/smollm2")
    registry.add_alias("gemma3", "local/gemma3-270m")


__all__ = ["BASE_STOPS", "LocalModel", "estimate_tokens", "register", "render_prompt"]
