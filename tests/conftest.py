"""Every test gets a throw-away user dir, so nothing touches the real ~/.manyminds.

The local-model cache is shared across tests (and runs) so the Gemma file is assembled once per
machine: `MANYMINDS_CACHE` points at ~/.cache/manyminds-test unless already set.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_CACHE = Path(os.environ.get("MANYMINDS_TEST_CACHE", Path.home() / ".cache" / "manyminds-test"))


@pytest.fixture(autouse=True)
def manyminds_home(tmp_path, monkeypatch):
    home = tmp_path / "mmhome"
    home.mkdir()
    monkeypatch.setenv("MANYMINDS_HOME", str(home))
    monkeypatch.setenv("MANYMINDS_CACHE", str(SHARED_CACHE))
    monkeypatch.delenv("MANYMINDS_DB", raising=False)
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "OPENROUTER_API_KEY", "PERPLEXITY_API_KEY",
                "GROQ_API_KEY", "DEEPSEEK_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "OLLAMA_BASE_URL",
                "VLLM_BASE_URL", "LLAMACPP_BASE_URL", "GEMINI_BASE_URL", "OPENROUTER_BASE_URL", "GROQ_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    return home


# --- shared by the provider tests (test_openai_compat, test_anthropic, test_retry) -------------
# Fixtures rather than helper functions: conftest is not meant to be imported.


@pytest.fixture
def answer() -> str:
    """The text the `server` fixture answers with by default; a module may override it."""
    return "Paris is the capital of France."


@pytest.fixture
def server(answer):
    """A loopback server that speaks both the OpenAI and the Anthropic API."""
    from manyminds.testing import Behaviour, FakeOpenAIServer

    with FakeOpenAIServer(default=Behaviour(text=answer)) as srv:
        yield srv


@pytest.fixture
async def closing():
    """`closing(model)` returns the model and closes it (its connections) when the test ends."""
    models = []

    def keep(model):
        models.append(model)
        return model

    yield keep
    for model in models:
        await model.aclose()


@pytest.fixture
def collect():
    """`await collect(model.stream(...))` -> (the deltas, the final `Completion`)."""

    async def run(chunks):
        deltas, final = [], None
        async for chunk in chunks:
            if chunk.completion is not None:
                final = chunk.completion
            else:
                deltas.append(chunk.delta)
        return deltas, final

    return run


@pytest.fixture(params=["complete", "stream"])
def failure(request, collect):
    """`await failure(model, messages)`: the `ModelError` the call raises — through `complete`,
    and in the test's second run through `stream` — checked for what every mapped error holds."""
    from manyminds.errors import ModelError, RateLimited, ServerError

    async def run(model, messages):
        with pytest.raises(ModelError) as info:
            if request.param == "stream":
                await collect(model.stream(messages))
            else:
                await model.complete(messages)
        err = info.value
        # Raised outside the SDK's handler: a link to its exception would reach its request,
        # which holds the key.
        assert err.__context__ is None and err.__cause__ is None
        assert err.retryable == isinstance(err, (RateLimited, ServerError))
        return err

    return run


@pytest.fixture
def shown(caplog):
    """`shown(err, model)`: every text a user could see of a failure — the error in each form,
    the model's repr, the log (at DEBUG, from the start of the test) and the traceback."""
    import json
    import logging
    import traceback

    caplog.set_level(logging.DEBUG)

    def texts(err, model) -> list[str]:
        return [str(err), repr(err), err.cause, json.dumps(err.to_dict()), repr(model), caplog.text,
                "".join(traceback.format_exception(err))]  # fmt: skip

    return texts


@pytest.fixture
def key_precedence(monkeypatch):
    """`await key_precedence(registry, name, env_var, key_sent)` checks where `name`'s key comes
    from: the one passed to `get_model` beats `env_var`, which beats the key file. `key_sent()`
    reads the key of the server's last request."""
    from manyminds.config import save_key
    from manyminds.models.base import Message

    async def check(reg, name, env_var, key_sent):
        async def used(**kw) -> str:
            model = reg.get_model(name, **kw)
            await model.complete([Message(role="user", content="What is the capital of France?")])
            await model.aclose()
            return key_sent()

        save_key(name.split("/")[0], "key-from-file")
        assert await used() == "key-from-file"
        monkeypatch.setenv(env_var, "key-from-env")
        assert await used() == "key-from-env"
        assert await used(key="key-explicit") == "key-explicit"

    return check


@pytest.fixture
def missing_key():
    """`await missing_key(registry, name, env_var)`: the model `name`, without a key, says so and
    its call fails with `MissingKey`, naming `env_var`, the command that saves a key, the
    provider and the model. Returns the model."""
    from manyminds.errors import MissingKey
    from manyminds.models.base import Message

    async def check(reg, name, env_var):
        provider = name.split("/")[0]
        model = reg.get_model(name)
        assert model.availability() == (False, f"missing key: set {env_var} or run `manyminds keys set {provider}`")
        with pytest.raises(MissingKey) as info:
            await model.complete([Message(role="user", content="What is the capital of France?")])
        assert env_var in str(info.value) and f"`manyminds keys set {provider}`" in str(info.value)
        assert info.value.provider == provider and info.value.model == name
        return model

    return check
