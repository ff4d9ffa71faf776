"""OpenAICompatModel against the loopback server: answers, streams, every fault mapped to one
of our errors, keys (precedence, missing, never leaked) and the provider registrations."""

from __future__ import annotations

import asyncio
import email.utils
import time

import httpx
import pytest

from manyminds.config import ProviderSettings, Settings, save_key
from manyminds.errors import BadResponse, ModelError, ModelTimeout, RateLimited, ServerError
from manyminds.models.base import Message, ModelOptions
from manyminds.models.openai_compat import (
    NO_KEY,
    OpenAICompatModel,
    map_finish_reason,
    parse_retry_after,
    register,
    scrub,
)
from manyminds.models.registry import Registry
from manyminds.testing import Behaviour, FakeOpenAIServer

KEY = "sk-test-key-0123456789"
LEAKY_KEY = "sk-LEAKCHECK-7f3a9c21e8d54b6a"
Q = [Message(role="system", content="Be brief."), Message(role="user", content="What is the capital of France?")]


@pytest.fixture(autouse=True)
def no_base_urls(monkeypatch):
    # conftest clears the keys and OPENAI_BASE_URL; these would move built-in providers too.
    for var in ("OLLAMA_BASE_URL", "VLLM_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def make(server, closing):
    """Builds models on the test's server (conftest's `server`, `closing`)."""

    def build(model_id: str = "m", **kw) -> OpenAICompatModel:
        kw.setdefault("api_key", KEY)
        return closing(OpenAICompatModel(model_id, provider="fake", base_url=server.base_url, **kw))

    return build


# --- success ----------------------------------------------------------------------------


async def test_complete(server, make):
    model = make()
    c = await model.complete(Q, ModelOptions(temperature=0.2, seed=7, stop=["\n\n"]))
    await model.aclose()
    assert c.text == "Paris is the capital of France."
    assert c.finish_reason == "stop"
    assert c.model == "fake/m"
    assert (c.usage.input_tokens, c.usage.output_tokens) == (8, 6)
    assert not c.usage_estimated
    assert c.latency_s > 0
    req = server.requests[-1]
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert req.body["temperature"] == 0.2 and req.body["seed"] == 7 and req.body["stop"] == ["\n\n"]
    assert "response_format" not in req.body and "stream" not in req.body


async def test_stream(server, make, collect):
    model = make()
    deltas, final = await collect(model.stream(Q))
    assert len(deltas) == 6
    assert "".join(deltas) == final.text == "Paris is the capital of France."
    assert (final.usage.input_tokens, final.usage.output_tokens) == (8, 6)
    assert not final.usage_estimated and final.finish_reason == "stop"
    body = server.requests[-1].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_finish_reason_length(server, make, collect):
    model = make()
    c = await model.complete(Q, ModelOptions(max_tokens=2))
    assert (c.text, c.finish_reason) == ("Paris is", "length")
    assert server.requests[-1].body["max_tokens"] == 2
    _, final = await collect(model.stream(Q, ModelOptions(max_tokens=3)))
    assert (final.text, final.finish_reason, final.usage.output_tokens) == ("Paris is the", "length", 3)


async def test_max_tokens_field_for_openai(server, make):
    model = make(max_tokens_field="max_completion_tokens")
    await model.complete(Q, ModelOptions(max_tokens=5))
    body = server.requests[-1].body
    assert body["max_completion_tokens"] == 5 and "max_tokens" not in body


async def test_usage_estimated_when_server_sends_none(server, make, collect):
    server.set_behaviour("nousage", Behaviour(text="one two three four", usage=False))
    model = make("nousage")
    c = await model.complete(Q)
    assert c.usage_estimated and c.usage.input_tokens > 0 and c.usage.output_tokens == model.count_tokens(c.text)
    _, final = await collect(model.stream(Q))
    assert final.usage_estimated and final.text == "one two three four"


async def test_text_as_function_of_request(server, make):
    server.set_behaviour("echo", Behaviour(text=lambda body: body["messages"][-1]["content"].upper()))
    c = await make("echo").complete(Q)
    assert c.text == "WHAT IS THE CAPITAL OF FRANCE?"


async def test_complete_prompt_and_stream_prompt(server, make, collect):
    server.set_behaviour("base", Behaviour(text=None))  # echo the prompt
    model = make("base")
    c = await model.complete_prompt("Once upon a time", ModelOptions(max_tokens=3, temperature=0.0))
    assert (c.text, c.finish_reason) == ("Once upon a", "length")
    req = server.requests[-1]
    assert req.path == "/v1/completions"
    assert req.body["prompt"] == "Once upon a time" and req.body["max_tokens"] == 3
    deltas, final = await collect(model.stream_prompt("Once upon a time"))
    assert "".join(deltas) == final.text == "Once upon a time"
    assert final.usage.output_tokens == 4 and not final.usage_estimated


async def test_subclass_hook_request_extras(server):
    class Local(OpenAICompatModel):
        def _request_extras(self, options, *, endpoint):
            return {"cache_prompt": True, "endpoint": endpoint}

    model = Local("m", provider="local", base_url=server.base_url, api_key=None, needs_key=False)
    await model.complete(Q)
    await model.complete_prompt("hi")
    await model.aclose()
    assert [r.body["endpoint"] for r in server.requests] == ["chat", "completions"]
    assert all(r.body["cache_prompt"] is True for r in server.requests)


async def test_json_schema_becomes_response_format(server, make):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
              "additionalProperties": False}  # fmt: skip
    await make().complete(Q, ModelOptions(json_schema=schema))
    assert server.requests[-1].body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }
    await make(supports_json=False).complete(Q, ModelOptions(json_schema=schema))
    assert "response_format" not in server.requests[-1].body


async def test_concurrent_requests_overlap(server, make):
    server.set_behaviour("slow", Behaviour(latency=0.5, text="ok"))
    model = make("slow")
    await make().complete(Q)  # import and connect once, outside the measurement
    start = time.perf_counter()
    results = await asyncio.gather(*(model.complete(Q) for _ in range(50)))
    elapsed = time.perf_counter() - start
    assert all(r.text == "ok" for r in results)
    assert server.max_concurrent == 50
    assert elapsed < 2.0  # serialised, it would take 25 s


def test_client_per_event_loop(server):
    # The sync API runs a fresh loop per call; a client bound to a closed loop must not be reused.
    model = OpenAICompatModel("m", provider="fake", base_url=server.base_url, api_key=KEY)

    async def once() -> str:
        try:
            return (await model.complete(Q)).text
        finally:
            await model.aclose()

    assert asyncio.run(once()).startswith("Paris")
    assert asyncio.run(once()).startswith("Paris")


async def test_aclose_twice(server, make):
    model = make()
    await model.complete(Q)
    await model.aclose()
    await model.aclose()


async def test_loopback_queue_order(server, make):
    server.set_behaviour("a", Behaviour(text="a-normal"))
    server.queue(Behaviour(text="any-1"), Behaviour(text="any-2"))
    server.queue(Behaviour(text="a-1"), model="a")
    got = [(await make(m).complete(Q)).text for m in ("a", "a", "b", "a", "b")]
    # the model's own queue first, then the shared one, then its behaviour, then the default
    assert got == ["a-1", "any-1", "any-2", "a-normal", "Paris is the capital of France."]
    assert [r.model for r in server.requests_for("b")] == ["b", "b"]
    with pytest.raises(ValueError):
        Behaviour.parse("explode")


async def test_models_route(server):
    server.set_behaviour("listed", Behaviour())
    async with httpx.AsyncClient() as client:
        data = (await client.get(f"{server.base_url}/models")).json()
    assert "listed" in [m["id"] for m in data["data"]]


# --- faults -----------------------------------------------------------------------------

FAULTS = [
    ("429", RateLimited, "rate limited (HTTP 429)"),
    (Behaviour.error(500), ServerError, "server error (HTTP 500)"),
    (Behaviour.error(503), ServerError, "server error (HTTP 503)"),
    ("drop", ServerError, "connection failed"),
    ("truncated", ServerError, "connection failed"),
    ("garbage", BadResponse, ""),
    ("bad_json", BadResponse, ""),
    ("empty_choices", BadResponse, "no choices"),
    (Behaviour.error(401), ModelError, "authentication failed (HTTP 401)"),
    (Behaviour.error(403), ModelError, "authentication failed (HTTP 403)"),
    (Behaviour.error(404), ModelError, "model not found"),
    (Behaviour.error(400), ModelError, "request rejected (HTTP 400)"),
]


@pytest.mark.parametrize("fault,error,text", FAULTS, ids=[str(f[0])[:20] for f in FAULTS])
async def test_fault_mapping(server, fault, error, text, make, failure):
    server.queue(fault)
    err = await failure(make(), Q)  # also: retryable as its type says, no link to the SDK's error
    assert type(err) is error
    assert text in err.cause
    assert (err.provider, err.model) == ("fake", "fake/m")
    assert "fake/m via fake" in str(err)


async def test_rate_limit_retry_after_seconds_and_date(server, make):
    server.queue(Behaviour.rate_limited(retry_after=7))
    with pytest.raises(RateLimited) as info:
        await make().complete(Q)
    assert info.value.retry_after == 7.0 and info.value.status_code == 429
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    server.queue(Behaviour.rate_limited(retry_after=date))
    with pytest.raises(RateLimited) as info:
        await make().complete(Q)
    assert 25 <= info.value.retry_after <= 31


def test_parse_retry_after():
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None and parse_retry_after(None) is None


def test_finish_reason_mapping():
    assert [map_finish_reason(r) for r in ("stop", "length", "content_filter", "tool_calls", None)] == [
        "stop", "length", "other", "other", "stop"]  # fmt: skip


async def test_timeout(server, make):
    server.set_behaviour("slow", Behaviour(latency=2.0))
    model = make("slow", timeout=0.3)
    start = time.perf_counter()
    with pytest.raises(ModelTimeout) as info:
        await model.complete(Q)
    assert time.perf_counter() - start < 1.5
    assert "timeout" in info.value.cause and info.value.provider == "fake"
    assert not info.value.retryable


async def test_connection_refused_is_retryable_server_error():
    with FakeOpenAIServer() as srv:
        url = srv.base_url
    model = OpenAICompatModel("m", provider="fake", base_url=url, api_key=KEY)
    with pytest.raises(ServerError) as info:
        await model.complete(Q)
    await model.aclose()
    assert "connection failed" in info.value.cause and info.value.retryable


# --- keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "behaviour",
    [
        Behaviour.error(401, "Incorrect API key provided: {auth}"),
        Behaviour.error(500, "internal error while serving {auth}"),
        Behaviour.failing("garbage", error_message="<pre>{auth}</pre>"),
        Behaviour.failing("garbage", error_message="x" * 55 + "{auth}"),  # the key straddles a cut
        Behaviour.failing("bad_json", error_message="{auth}"),
        Behaviour.rate_limited(1, error_message="slow down, {auth}"),
    ],
    ids=["401", "500", "garbage", "garbage-cut", "bad_json", "429"],
)
async def test_key_never_leaks(server, behaviour, make, failure, shown):
    server.queue(behaviour)
    model = make(api_key=LEAKY_KEY)
    err = await failure(model, Q)
    assert server.requests[-1].headers["authorization"] == f"Bearer {LEAKY_KEY}"  # it was sent…
    for text in shown(err, model):
        assert LEAKY_KEY[:16] not in text  # …and never shown, not even in part
    if behaviour.status in (401, 500, 429):
        assert "***" in err.cause  # the echoed key was scrubbed, the rest kept


def test_scrub():
    assert scrub("key sk-1 and sk-1 again", "sk-1") == "key *** and *** again"
    assert scrub("no-key stays", NO_KEY, None) == "no-key stays"


def _registry(settings: Settings | None = None) -> Registry:
    reg = Registry(settings or Settings())
    register(reg)
    return reg


async def test_key_precedence(server, monkeypatch, key_precedence):
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)

    def key_sent() -> str:
        return server.requests[-1].headers["authorization"].removeprefix("Bearer ")

    await key_precedence(_registry(), "openai/gpt-4o-mini", "OPENAI_API_KEY", key_sent)


async def test_missing_key(server, monkeypatch, missing_key):
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    model = await missing_key(_registry(), "openai/gpt-4o-mini", "OPENAI_API_KEY")
    assert server.requests == []
    # A key saved after the model was built is picked up.
    save_key("openai", "late-key")
    assert model.availability() == (True, "ready (key found)")
    await model.complete(Q)
    await model.aclose()
    assert server.requests[-1].headers["authorization"] == "Bearer late-key"


async def test_keyless_provider_never_sends_openai_key(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-openai-key")
    monkeypatch.setenv("OLLAMA_BASE_URL", server.base_url)
    model = _registry().get_model("ollama/llama3.2")
    assert model.availability() == (True, f"ready (server answering at {server.base_url})")
    await model.complete(Q)
    await model.aclose()
    assert server.requests[-1].headers["authorization"] == f"Bearer {NO_KEY}"


# --- registration -----------------------------------------------------------------------


def test_register_builtin_providers(monkeypatch):
    monkeypatch.setenv("VLLM_BASE_URL", "http://127.0.0.1:9999/v1")
    reg = _registry()
    expected = {
        "openai": "https://api.openai.com/v1",
        "openrouter": "https://openrouter.ai/api/v1",
        "gemini": "https://generativelanguage.googleapis.com/v1beta/openai/",
        "perplexity": "https://api.perplexity.ai",
        "groq": "https://api.groq.com/openai/v1",
        "deepseek": "https://api.deepseek.com",
        "ollama": "http://127.0.0.1:11434/v1",
        "vllm": "http://127.0.0.1:9999/v1",
        "llamacpp": "http://127.0.0.1:8080/v1",
    }
    for name, url in expected.items():
        spec = reg.providers[name]
        assert spec.accepts_any_model and spec.known_models
        model = reg.get_model(f"{name}/{spec.known_models[0]}")
        assert model.base_url == url and model.provider == name
    assert reg.providers["gemini"].key_env_var == "GEMINI_API_KEY" and reg.providers["gemini"].needs_key
    assert not reg.providers["ollama"].needs_key
    assert "gemini/gemini-2.5-flash" in reg.all_names() and "openai/gpt-4.1-mini" in reg.all_names()
    # Any id is accepted; a well-known one has a price, an unknown one does not.
    from manyminds.models.base import Usage

    assert reg.get_model("openai/gpt-4o-mini").cost_usd(Usage(1_000_000, 1_000_000)) == pytest.approx(0.75)
    assert reg.get_model("openai/some-future-model").cost_usd(Usage(10, 10)) is None
    assert reg.get_model("ollama/anything:8b").cost_usd(Usage(10, 10)) == 0.0
    name = "openrouter/meta-llama/llama-3.3-70b-instruct"
    assert reg.canonical(name) == name
    infos = {i.name: i for i in reg.list_models()}
    assert infos["openai/gpt-4o-mini"].usable is False and "OPENAI_API_KEY" in infos["openai/gpt-4o-mini"].reason
    assert "answering at http://127.0.0.1:11434/v1" in infos["ollama/llama3.2"].reason  # probed, not assumed


async def test_custom_provider_from_settings(server, monkeypatch):
    settings = Settings(
        providers={
            "corp": ProviderSettings(base_url=server.base_url, key_env="CORP_KEY", needs_key=True,
                                     max_concurrency=3, context_window=32768)  # fmt: skip
        }
    )
    reg = _registry(settings)
    spec = reg.providers["corp"]
    assert spec.accepts_any_model and spec.max_concurrency == 3 and spec.key_env_var == "CORP_KEY"
    model = reg.get_model("corp/my-model:7b")
    assert model.context_window == 32768
    assert model.availability() == (False, "missing key: set CORP_KEY or run `manyminds keys set corp`")
    monkeypatch.setenv("CORP_KEY", "corp-secret")
    model = reg.get_model("corp/my-model:7b")
    c = await model.complete(Q)
    await model.aclose()
    assert c.model == "corp/my-model:7b"
    assert server.requests[-1].body["model"] == "my-model:7b"
    assert server.requests[-1].headers["authorization"] == "Bearer corp-secret"


def test_keyless_endpoint_with_no_server_is_not_usable(monkeypatch):
    import socket

    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("OLLAMA_BASE_URL", f"http://127.0.0.1:{port}/v1")
    usable, why = _registry().get_model("ollama/llama3.2").availability()
    assert usable is False and why == f"no server answering at http://127.0.0.1:{port}/v1"
    monkeypatch.setenv("OLLAMA_BASE_URL", "https://ollama.example.com/v1")
    assert _registry().get_model("ollama/llama3.2").availability() == (
        True, "no key needed; https://ollama.example.com/v1 not checked")
