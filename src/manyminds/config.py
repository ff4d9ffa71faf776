"""The user dir, the settings file and keys.

The user dir is `$MANYMINDS_HOME`, or `~/.manyminds`. It holds `settings.toml` (councils,
aliases, extra endpoints), `keys.json` (API keys, written with mode 0600), `manyminds.db`
(the run store) and `cache/` (assembled local model files; `$MANYMINDS_CACHE` overrides it so
tests with a throw-away home can share one copy).

Settings are passed into the pipeline explicitly; nothing below the CLI and the public API reads
this module's globals.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from .errors import ConfigError
from .guardrails import GuardrailSettings
from .roles import RoleSpec, resolve_role

SETTINGS_FILE = "settings.toml"
KEYS_FILE = "keys.json"
DB_FILE = "manyminds.db"


def user_dir() -> Path:
    env = os.environ.get("MANYMINDS_HOME")
    path = Path(env).expanduser() if env else Path.home() / ".manyminds"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    env = os.environ.get("MANYMINDS_CACHE")
    path = Path(env).expanduser() if env else user_dir() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def db_path() -> Path:
    env = os.environ.get("MANYMINDS_DB")
    return Path(env).expanduser() if env else user_dir() / DB_FILE


# --- settings ---------------------------------------------------------------------------


class MemberSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    model: str
    system: str | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, gt=0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = None
    timeout: float | None = Field(default=None, gt=0)  # overrides the council's
    weight: float = Field(default=1.0, gt=0)  # how much this member's vote counts
    # Ask the member to end its answer with "Confidence: NN%" (the line is parsed into the
    # member's signals and removed from its text). Meant for chat models: a base model's stop
    # sequences end its answer at the first blank line, so it rarely gets there.
    ask_confidence: bool = False
    # A role (roles.py): a shipped or [roles.NAME] name, or an inline table of role fields.
    role: str | dict[str, Any] | None = None
    _role: Any = PrivateAttr(default=None)  # the resolved Role, set when the settings load


class ProviderSettings(BaseModel):
    """An extra OpenAI-compatible endpoint, usable as `NAME/model-id`."""

    model_config = ConfigDict(extra="forbid")
    base_url: str
    key_env: str | None = None  # environment variable holding its key, if it needs one
    needs_key: bool = False
    max_concurrency: int = Field(default=4, gt=0)
    context_window: int | None = None


class SearchSettings(BaseModel):
    """A web search service used as evidence, `[search.NAME]`. `provider` names the
    implementation (`http`, the generic JSON one, or a plugin's); the remaining keys are that
    implementation's options and are checked by it (`manyminds.evidence.search`)."""

    model_config = ConfigDict(extra="allow")
    provider: str = "http"
    url: str | None = None
    key_env: str | None = None  # environment variable holding its key, if it needs one


class PriceSettings(BaseModel):
    """`[prices."provider/model"]` (or `"provider/*"`): USD per million tokens. Wins over the
    table shipped in the package (data/prices.json)."""

    model_config = ConfigDict(extra="forbid")
    input: float = Field(ge=0)
    output: float = Field(ge=0)


class CouncilSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    members: list[MemberSettings]
    chair: str | None = None  # a member name or a model name; default: the first member
    chair_system: str | None = None
    chair_max_tokens: int = 300
    quorum: int = Field(default=1, ge=1)
    timeout: float = Field(default=120.0, gt=0)  # seconds per member call
    retries: int = Field(default=2, ge=0)
    max_concurrency_per_provider: int = Field(default=8, gt=0)
    short_answer: str = Field(default="auto", pattern="^(auto|model|heuristic)$")
    # Names that count as the same answer when comparing, e.g. {"USA": ["United States", "US"]}.
    answer_aliases: dict[str, list[str]] = Field(default_factory=dict)
    guardrails: GuardrailSettings | None = None  # topics refused or answered with a warning

    @model_validator(mode="after")
    def _check(self) -> "CouncilSettings":
        if not self.members:
            raise ValueError("a council needs at least one member")
        names = [m.name for m in self.members]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"member names must be unique; repeated: {', '.join(dupes)}")
        if self.quorum > len(self.members):
            raise ValueError(f"quorum {self.quorum} is larger than the {len(self.members)} members")
        return self

    def member(self, name: str) -> MemberSettings | None:
        return next((m for m in self.members if m.name == name), None)


class MemorySettings(BaseModel):
    """`[memory]`: the personal memory (manyminds.memory). Memories go only to the members whose
    provider may receive them: the bundled local models (`local/…`) when `share_local`, and the
    providers named in `share_with` (e.g. ["openai"]); every other member gets the question alone."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True  # false: no question is given memories (they can still be managed)
    profile: str = "default"  # the profile used unless --profile or $MANYMINDS_PROFILE names one
    share_with: list[str] = Field(default_factory=list)  # remote providers allowed to receive memories
    share_local: bool = True  # the bundled local models (provider "local") receive memories
    top_k: int = Field(default=3, ge=1, le=20)  # at most this many memories per question
    min_score: float = Field(default=0.3, ge=-1.0, le=1.0)  # cosine similarity a memory needs to be used


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default_council: str = "local"
    councils: dict[str, CouncilSettings] = Field(default_factory=dict)
    aliases: dict[str, str] = Field(default_factory=dict)
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    search: dict[str, SearchSettings] = Field(default_factory=dict)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    roles: dict[str, RoleSpec] = Field(default_factory=dict)  # added to (or replacing) the shipped roles
    prices: dict[str, PriceSettings] = Field(default_factory=dict)

    def council(self, name: str | None = None) -> tuple[str, CouncilSettings]:
        name = name or self.default_council
        if name not in self.councils:
            known = ", ".join(sorted(self.councils)) or "none"
            raise ConfigError(f"Unknown council {name!r}. Known councils: {known}.")
        return name, self.councils[name]


LOCAL_MEMBER_SYSTEM = "Answer in one short sentence."
LOCAL_SKEPTIC_SYSTEM = (
    "You are a careful fact-checker. Give only the answer itself in a few words, with no explanation."
)


def default_local_council() -> CouncilSettings:
    """The embedded council: two different small local models, and one of them with another
    prompt, so that a question shows real disagreement with no keys and no network."""
    return CouncilSettings(
        members=[
            MemberSettings(
                name="smollm2", model="local/smollm2", system=LOCAL_MEMBER_SYSTEM, temperature=0.0, max_tokens=64
            ),
            MemberSettings(name="gemma3", model="local/gemma3-270m", temperature=0.0, max_tokens=48),
            MemberSettings(
                name="smollm2-terse", model="local/smollm2", system=LOCAL_SKEPTIC_SYSTEM, temperature=0.0, max_tokens=48
            ),
        ],
        chair="smollm2",
        quorum=2,
        timeout=120.0,
        # On 36 real answers of this council to 12 factual questions, the heuristic extractor
        # kept the right answer exactly as often as asking the models to extract it (24 of 24),
        # and costs no calls: the compare stage drops from about a second to nothing.
        short_answer="heuristic",
    )


def local_plus_council() -> CouncilSettings:
    """The optional stronger embedded council (`manyminds install-local --tier plus`): the two
    Qwen2.5-Coder Instruct models and SmolLM2, so two families answer; the 1.5B model chairs.
    Not the default: it needs 1.6 GB more and is several times slower (docs/local-models.md)."""
    return CouncilSettings(
        members=[
            MemberSettings(
                name="qwen-1.5b", model="local/qwen2.5-coder-1.5b", system=LOCAL_MEMBER_SYSTEM, temperature=0.0,
                max_tokens=64,
            ),
            MemberSettings(
                name="qwen-0.5b", model="local/qwen2.5-coder-0.5b", system=LOCAL_MEMBER_SYSTEM, temperature=0.0,
                max_tokens=64,
            ),
            MemberSettings(
                name="smollm2", model="local/smollm2", system=LOCAL_MEMBER_SYSTEM, temperature=0.0, max_tokens=64
            ),
        ],
        chair="qwen-1.5b",
        quorum=2,
        timeout=180.0,
        short_answer="heuristic",
    )


def load_settings(path: Path | None = None) -> Settings:
    """Read the settings file; the embedded `local` council is always present unless redefined,
    and so is the optional `local-plus` (whose models need `manyminds install-local --tier plus`)."""
    path = path or user_dir() / SETTINGS_FILE
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"Cannot read settings file {path}: {exc}") from None
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(f"Invalid settings in {path}:\n{_validation_text(exc)}") from None
    settings.councils.setdefault("local", default_local_council())
    settings.councils.setdefault("local-plus", local_plus_council())
    resolve_member_roles(settings)
    if settings.default_council not in settings.councils:
        raise ConfigError(
            f"default_council {settings.default_council!r} in {path} is not defined; "
            f"known councils: {', '.join(sorted(settings.councils))}."
        )
    return settings


def resolve_member_roles(settings: Settings) -> None:
    """Resolve every member's role now, so an unknown or broken role fails at load time with
    the member and the council named (and `Council.build` finds user-defined roles)."""
    for council_name, council in settings.councils.items():
        for member in council.members:
            where = f"member {member.name!r} of council {council_name!r}"
            member._role = resolve_role(member.role, where, settings.roles)


def _validation_text(exc: ValidationError) -> str:
    return "\n".join(
        f"  {'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
    )


# --- keys -------------------------------------------------------------------------------


def keys_path() -> Path:
    return user_dir() / KEYS_FILE


def read_key_file() -> dict[str, str]:
    path = keys_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read key file {path}: {exc.__class__.__name__}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Key file {path} must hold a JSON object of provider: key")
    return {str(k): str(v) for k, v in data.items()}


def save_key(provider: str, key: str) -> Path:
    path = keys_path()
    keys = read_key_file()
    keys[provider] = key
    path.write_text(json.dumps(keys, indent=2), encoding="utf-8")
    path.chmod(0o600)
    return path


def resolve_key(provider: str, explicit: str | None = None, env_var: str | None = None) -> str | None:
    """Explicit argument > environment variable > key file."""
    if explicit:
        return explicit
    if env_var and os.environ.get(env_var):
        return os.environ[env_var]
    return read_key_file().get(provider)
