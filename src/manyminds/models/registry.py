"""Model names → `Model` objects.

Names are `provider/model` or `provider:model`, split at the first separator only, so
`ollama/llama3:8b` and `openrouter/meta-llama/llama-3-8b` survive. Aliases come from the
settings file and from providers. Providers register through the entry-point group `manyminds`
— the built-in ones use the same hook a third-party plugin does: a `register(registry)` function.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Callable

from ..errors import ConfigError, UnknownModel
from .base import Model

if TYPE_CHECKING:
    from ..config import Settings

ENTRY_POINT_GROUP = "manyminds"

# factory(model_id, key=..., settings=...) -> Model
ModelFactory = Callable[..., Model]


@dataclass
class ProviderSpec:
    name: str
    factory: ModelFactory
    description: str = ""
    # Models listed by `manyminds models`. A provider that `accepts_any_model` (an
    # OpenAI-compatible endpoint) takes ids it has never heard of; the others reject them.
    known_models: list[str] = field(default_factory=list)
    accepts_any_model: bool = False
    key_env_var: str | None = None
    needs_key: bool = False
    max_concurrency: int = 8


@dataclass
class ModelInfo:
    name: str
    provider: str
    usable: bool
    reason: str
    aliases: list[str] = field(default_factory=list)


class Registry:
    def __init__(self, settings: "Settings | None" = None) -> None:
        from ..config import Settings

        self.settings = settings or Settings()
        self.providers: dict[str, ProviderSpec] = {}
        self.aliases: dict[str, str] = {}
        self.plugin_errors: dict[str, str] = {}

    # registration -------------------------------------------------------------------
    def add_provider(self, spec: ProviderSpec) -> None:
        self.providers[spec.name] = spec

    def add_alias(self, alias: str, target: str) -> None:
        self.aliases[alias] = target

    def load_plugins(self) -> "Registry":
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                register = ep.load()
                register(self)
            except ImportError as exc:
                # An optional extra (e.g. anthropic) that is not installed: list why, go on.
                self.plugin_errors[ep.name] = f"{exc.__class__.__name__}: {exc}"
        # Aliases from the settings file win over the providers' own.
        self.aliases.update(self.settings.aliases)
        return self

    # lookup -------------------------------------------------------------------------
    def split(self, name: str) -> tuple[str, str]:
        name = name.strip()
        seen: set[str] = set()
        while name in self.aliases and name not in seen:
            seen.add(name)
            name = self.aliases[name]
        cut = min((i for i in (name.find("/"), name.find(":")) if i > 0), default=-1)
        if cut < 0:
            raise UnknownModel(name, self._suggest(name))
        provider, model_id = name[:cut], name[cut + 1 :]
        if provider not in self.providers:
            raise UnknownModel(name, self._suggest(name))
        spec = self.providers[provider]
        if not model_id:
            raise UnknownModel(name, self._suggest(name))
        if not spec.accepts_any_model and model_id not in spec.known_models:
            raise UnknownModel(name, self._suggest(name))
        return provider, model_id

    def canonical(self, name: str) -> str:
        provider, model_id = self.split(name)
        return f"{provider}/{model_id}"

    def get_model(self, name: str, *, key: str | None = None) -> Model:
        provider, model_id = self.split(name)
        spec = self.providers[provider]
        try:
            model = spec.factory(model_id, key=key, settings=self.settings)
        except TypeError as exc:  # a plugin with the wrong factory signature
            raise ConfigError(f"Provider {provider!r} could not build {model_id!r}: {exc}") from None
        from .prices import apply_price

        return apply_price(model, self.settings)  # one price table for every provider (prices.py)

    def all_names(self) -> list[str]:
        names = [f"{p}/{m}" for p, spec in self.providers.items() for m in spec.known_models]
        return names + list(self.aliases)

    def _suggest(self, name: str) -> list[str]:
        candidates = self.all_names() + [f"{p}/" for p in self.providers]
        return difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)

    def list_models(self) -> list[ModelInfo]:
        out: list[ModelInfo] = []
        for provider, spec in sorted(self.providers.items()):
            for model_id in spec.known_models:
                name = f"{provider}/{model_id}"
                try:
                    usable, reason = spec.factory(model_id, key=None, settings=self.settings).availability()
                except Exception as exc:  # noqa: BLE001 - shown to the user as the reason
                    usable, reason = False, f"{exc.__class__.__name__}: {exc}"
                aliases = sorted(a for a, t in self.aliases.items() if t in (name, f"{provider}:{model_id}"))
                out.append(ModelInfo(name, provider, usable, reason, aliases))
        return out


def build_registry(settings: "Settings | None" = None) -> Registry:
    return Registry(settings).load_plugins()
