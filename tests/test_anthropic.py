"""AnthropicModel against the loopback server's `/v1/messages` route."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("anthropic")

from manyminds.config import Settings  # noqa: E402
from manyminds.errors import BadResponse, ModelError, ModelTimeout, RateLimited, ServerError  # noqa: E402
from manyminds.models.anthropic import AnthropicModel, register, to_anthropic_messages  # noqa: E402
from manyminds.models.base import Message, ModelOptions, Usage  # noqa: E402
from manyminds.models.registry import Registry  # noqa: E402
from manyminds.models.retry import call_with_retries  # noqa: E402
from manyminds.testing import Behaviour  # noqa: E402

KEY = "sk-ant-test-0123456789"
LEAKY_KEY = "sk-ant-LEAKCHECK-5d1e0b7c9a"
Q = [Message(role="system", content="Be brief."), Message(role="user", content="What is the capital of France?")]


@pytest.fixture(autouse=True)
def no_sdk_credentials(monkeypatch):
    # conftest clears ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL; the SDK would read these too.
    for var in ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_PROFILE"):
        monkeypatch.delenv(var, raising=False)


def sent_key(req) -> str:
    # This SDK sends the key as a bearer token; older ones used `x-api-key`. Accept either.
    return req.headers.get("x-api-key") or req.headers["authorization"].removeprefix("Bearer ")


@pytest.fixture
def make(server, closing):
    """Builds models on the test's server (conftest's `server`, `closing`)."""

    def build(model_id: str = "claude-test", **kw) -> AnthropicModel:
        kw.setdefault("api_key", KEY)
        return closing(AnthropicModel(model_id, base_url=server.root_url, **kw))

    return build


async def test_complete(server, make):
    model = make()
    c = await model.complete(Q, ModelOptions(temperature=0.3, stop=["END"]))
    await model.aclose()
    assert c.text == "Paris is the capital of France."
    assert (c.finish_reason, c.model, c.usage_estimated) == ("stop", "anthropic/claude-test", False)
    assert (c.usage.input_tokens, c.usage.output_tokens) == (8, 6)
    req = server.requests[-1]
    assert req.path == "/v1/messages"
    assert sent_key(req) == KEY
    assert req.body["system"] == "Be brief."
    assert req.body["messages"] == [{"role": "user", "content": "What is the capital of France?"}]
    assert req.body["max_tokens"] == 4096  # required by the API; our default
    assert req.body["temperature"] == 0.3 and req.body["stop_sequences"] == ["END"]


async def test_stream(server, make, collect):
    deltas, final = await collect(make().stream(Q))
    assert len(deltas) == 6 and "".join(deltas) == final.text == "Paris is the capital of France."
    assert (final.usage.input_tokens, final.usage.output_tokens) == (8, 6)
    assert final.finish_reason == "stop" and not final.usage_estimated
    assert server.requests[-1].body["stream"] is True


async def test_finish_reason_length(server, make, collect):
    model = make()
    c = await model.complete(Q, ModelOptions(max_tokens=2))
    assert (c.text, c.finish_reason) == ("Paris is", "length")
    _, final = await collect(model.stream(Q, ModelOptions(max_tokens=3)))
    assert (final.text, final.finish_reason, final.usage.output_tokens) == ("Paris is the", "length", 3)


async def test_json_schema_goes_to_output_config(server, make):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    await make().complete(Q, ModelOptions(json_schema=schema))
    assert server.requests[-1].body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


def test_message_conversion_merges_turns():
    system, turns = to_anthropic_messages(
        [Message(role="system", content="A"), Message(role="user", content="x"), Message(role="user", content="y"),
         Message(role="system", content="B"), Message(role="assistant", content="z")]  # fmt: skip
    )
    assert system == "A\n\nB"
    assert turns == [{"role": "user", "content": "x\n\ny"}, {"role": "assistant", "content": "z"}]


FAULTS = [
    ("429", RateLimited, "rate limited (HTTP 429)"),
    (Behaviour.error(500), ServerError, "server error (HTTP 500)"),
    (Behaviour.error(529, "Overloaded"), ServerError, "server error (HTTP 529)"),
    ("drop", ServerError, "connection failed"),
    ("truncated", ServerError, "connection failed"),
    ("garbage", BadResponse, ""),
    ("bad_json", BadResponse, ""),
    ("empty_choices", BadResponse, "no content"),
    (Behaviour.error(401), ModelError, "authentication failed (HTTP 401)"),
    (Behaviour.error(403), ModelError, "authentication failed (HTTP 403)"),
    (Behaviour.error(404), ModelError, "model not found"),
]


@pytest.mark.parametrize("fault,error,text", FAULTS, ids=[str(f[0])[:20] for f in FAULTS])
async def test_fault_mapping(server, fault, error, text, make, failure):
    server.queue(fault)
    err = await failure(make(), Q)  # also: retryable as its type says, no link to the SDK's error
    assert type(err) is error and text in err.cause
    assert (err.provider, err.model) == ("anthropic", "anthropic/claude-test")
    assert "anthropic/claude-test via anthropic" in str(err)


async def test_rate_limit_retry_after(server, make):
    server.queue(Behaviour.rate_limited(retry_after=4))
    with pytest.raises(RateLimited) as info:
        await make().complete(Q)
    assert info.value.retry_after == 4.0


async def test_retries_through_faults(server, make):
    server.queue("500", "drop", Behaviour.rate_limited(retry_after=0.05))
    model = make()
    c = await call_with_retries(lambda: model.complete(Q), retries=3, base_delay=0.01, max_delay=0.1)
    assert c.text.startswith("Paris") and len(server.requests) == 4


async def test_timeout(server, make):
    server.set_behaviour("slow", Behaviour(latency=2.0))
    with pytest.raises(ModelTimeout):
        await make("slow", timeout=0.3).complete(Q)


@pytest.mark.parametrize(
    "behaviour",
    [
        Behaviour.error(401, "invalid credentials: {auth}"),
        Behaviour.error(500, "failed for {auth}"),
        Behaviour.failing("garbage", error_message="{auth}"),
    ],
    ids=["401", "500", "garbage"],
)
async def test_key_never_leaks(server, behaviour, make, failure, shown):
    server.queue(behaviour)
    model = make(api_key=LEAKY_KEY)
    err = await failure(model, Q)
    assert sent_key(server.requests[-1]) == LEAKY_KEY
    for text in shown(err, model):
        assert LEAKY_KEY[:16] not in text  # not even in part


def _registry() -> Registry:
    reg = Registry(Settings())
    register(reg)
    return reg


async def test_key_precedence_and_base_url_env(server, monkeypatch, key_precedence):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.root_url)
    await key_precedence(_registry(), "anthropic/claude-haiku-4-5", "ANTHROPIC_API_KEY",
                         lambda: sent_key(server.requests[-1]))  # fmt: skip


async def test_missing_key(server, monkeypatch, missing_key):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.root_url)
    await missing_key(_registry(), "anthropic/claude-sonnet-4-5", "ANTHROPIC_API_KEY")
    assert server.requests == []


def test_registration_and_prices():
    reg = _registry()
    spec = reg.providers["anthropic"]
    assert spec.accepts_any_model and spec.needs_key and spec.key_env_var == "ANTHROPIC_API_KEY"
    model = reg.get_model("anthropic/claude-sonnet-4-5")
    assert model.cost_usd(Usage(1_000_000, 1_000_000)) == pytest.approx(18.0)
    assert reg.get_model("anthropic/claude-unknown").cost_usd(Usage(1, 1)) is None


def test_missing_sdk_gives_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "anthropic", None)  # as if the extra were not installed
    with pytest.raises(ImportError):
        register(Registry(Settings()))
