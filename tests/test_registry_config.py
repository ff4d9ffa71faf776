"""Model names, aliases, plugins, the settings file, the user dir and key precedence."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

import manyminds
from manyminds.config import Settings, load_settings, resolve_key, save_key, user_dir
from manyminds.errors import ConfigError, UnknownModel
from manyminds.models.registry import ProviderSpec, Registry, build_registry
from manyminds.testing import Behaviour, FakeOpenAIServer, ScriptedModel


@pytest.fixture
def registry():
    return build_registry(Settings(aliases={"fast": "groq/llama-3.1-8b-instant", "loop": "fast"}))


@pytest.mark.parametrize(
    "name,expected",
    [
        ("openai/gpt-4o-mini", ("openai", "gpt-4o-mini")),
        ("openai:gpt-4o-mini", ("openai", "gpt-4o-mini")),
        # Only the first separator splits: the rest belongs to the model id.
        ("ollama/llama3:8b", ("ollama", "llama3:8b")),
        ("ollama:llama3:8b", ("ollama", "llama3:8b")),
        ("openrouter/meta-llama/llama-3-8b-instruct", ("openrouter", "meta-llama/llama-3-8b-instruct")),
        ("local/smollm2", ("local", "smollm2")),
        ("smollm2", ("local", "smollm2")),  # a provider's own alias
        ("fast", ("groq", "llama-3.1-8b-instant")),  # an alias from the settings file
        ("loop", ("groq", "llama-3.1-8b-instant")),  # aliases may chain
    ],
)
def test_names_split_at_the_first_separator(registry, name, expected):
    assert registry.split(name) == expected


@pytest.mark.parametrize(
    "name,suggestion",
    [("local/smolm2", "local/smollm2"), ("opanai/gpt-4o-mini", "openai/gpt-4o-mini"), ("gemma", "gemma3")],
)
def test_unknown_names_suggest_the_closest(registry, name, suggestion):
    with pytest.raises(UnknownModel) as info:
        registry.split(name)
    assert f"Did you mean '{suggestion}'" in str(info.value) or suggestion in info.value.suggestions
    assert "manyminds models" in str(info.value)


def test_closed_providers_reject_unknown_ids_open_ones_accept_them(registry):
    with pytest.raises(UnknownModel):
        registry.split("local/llama-70b")
    assert registry.split("openai/some-future-model") == ("openai", "some-future-model")


def test_plugins_register_through_the_entry_point_group(monkeypatch):
    def register(reg: Registry) -> None:
        reg.add_provider(ProviderSpec(name="acme", factory=lambda model_id, key=None, settings=None: ScriptedModel(model_id, "hi"),
                                      known_models=["rocket"]))
        reg.add_alias("rocket", "acme/rocket")

    def broken(reg: Registry) -> None:
        raise ImportError("No module named 'acme_sdk'")

    fake_eps = [SimpleNamespace(name="acme", load=lambda: register), SimpleNamespace(name="broken", load=lambda: broken)]
    monkeypatch.setattr("manyminds.models.registry.entry_points", lambda group: fake_eps if group == "manyminds" else [])
    reg = build_registry()
    assert reg.get_model("rocket").model_id == "rocket"
    assert "acme_sdk" in reg.plugin_errors["broken"]
    assert any(i.name == "acme/rocket" and i.usable for i in reg.list_models())


def test_builtin_providers_come_from_the_same_entry_points():
    reg = build_registry()
    assert {"openai", "openrouter", "gemini", "perplexity", "groq", "deepseek", "ollama", "vllm", "llamacpp",
            "local", "scripted", "anthropic"} <= set(reg.providers)


def test_list_models_says_why_a_model_is_unusable():
    infos = {i.name: i for i in build_registry().list_models()}
    assert infos["openai/gpt-4o-mini"].usable is False
    assert "OPENAI_API_KEY" in infos["openai/gpt-4o-mini"].reason
    assert infos["local/smollm2"].usable in (True, False)


def test_settings_file_defines_councils_and_keeps_the_local_one(manyminds_home):
    (manyminds_home / "settings.toml").write_text(
        """
default_council = "pair"
[aliases]
smol = "local/smollm2"
[councils.pair]
quorum = 2
chair = "b"
[[councils.pair.members]]
name = "a"
model = "smol"
temperature = 0.3
[[councils.pair.members]]
name = "b"
model = "gemma3"
weight = 2
"""
    )
    settings = load_settings()
    name, council = settings.council()
    assert name == "pair" and council.quorum == 2 and council.member("b").weight == 2
    assert "local" in settings.councils  # the embedded council stays available
    assert settings.aliases["smol"] == "local/smollm2"


@pytest.mark.parametrize(
    "text,message",
    [
        ("default_council = \n", "Cannot read settings file"),
        ("[councils.x]\nquorum = 3\n[[councils.x.members]]\nname = 'a'\nmodel = 'local/smollm2'\n", "quorum 3 is larger"),
        ("[councils.x]\n[[councils.x.members]]\nname = 'a'\nmodel = 'm'\n[[councils.x.members]]\nname = 'a'\nmodel = 'm'\n",
         "repeated: a"),
        ("[councils.x]\nmembers = []\n", "at least one member"),
        ("[councils.x]\ncolour = 'red'\n[[councils.x.members]]\nname = 'a'\nmodel = 'm'\n", "councils.x.colour"),
        ("default_council = 'nope'\n", "default_council 'nope'"),
    ],
)
def test_bad_settings_files_say_what_is_wrong(manyminds_home, text, message):
    (manyminds_home / "settings.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_unknown_council_lists_the_known_ones():
    with pytest.raises(ConfigError, match="Known councils: local"):
        load_settings().council("nope")


def test_user_dir_follows_manyminds_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MANYMINDS_HOME", str(tmp_path / "elsewhere"))
    assert user_dir() == tmp_path / "elsewhere" and user_dir().is_dir()


def test_key_precedence_argument_then_env_then_file(monkeypatch, manyminds_home):
    path = save_key("openai", "from-file")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert json.loads(path.read_text()) == {"openai": "from-file"}
    assert resolve_key("openai", None, "OPENAI_API_KEY") == "from-file"
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    assert resolve_key("openai", None, "OPENAI_API_KEY") == "from-env"
    assert resolve_key("openai", "from-argument", "OPENAI_API_KEY") == "from-argument"


def test_api_keys_argument_reaches_the_provider(manyminds_home, monkeypatch):
    """`manyminds.ask(..., keys={provider: key})` wins over the environment."""
    monkeypatch.setenv("LOOPKEY", "from-env")
    with FakeOpenAIServer({"m": Behaviour(text="Paris")}) as server:
        (manyminds_home / "settings.toml").write_text(
            f'[providers.loop]\nbase_url = "{server.base_url}"\nkey_env = "LOOPKEY"\nneeds_key = true\n'
        )
        verdict = manyminds.ask("Capital of France?", models=["loop/m"], keys={"loop": "from-argument"}, store=False)
        assert verdict.short_answer == "Paris"
        assert server.requests[0].headers["authorization"] == "Bearer from-argument"
