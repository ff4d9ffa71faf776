"""Roles: a member's speciality and its boundaries.

A role has a domain (one line for people), a system prompt, the topics it may answer and the
topics it must refuse (topics.py patterns), and a kind: `answer` (a specialist that answers
questions in its domain) or `critic` (answers nothing; reviews the others' answers and scores
them, pipeline/specialists.py). Roles ship in the package (data/roles.toml: fact-checker,
critic, maths, health-with-caution); `[roles.NAME]` in settings.toml adds or replaces one; a
member names one (`role = "maths"`) or writes its own inline (`role = {system = "…", …}`).

The rules a role must satisfy are checked when the settings load, and again when a council is
built from settings made in code: a role needs a system prompt; `topics`, when given, must not
be empty (leave it out for a role that answers every question — an empty list would skip the
member on every question, which is never what was meant); every pattern must compile.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .topics import TopicPatternError, check_topics, first_match

RoleKind = Literal["answer", "critic"]

# What a specialist says when a question touches what it must refuse; the answer check
# recognises it (pipeline/specialists.py).
DECLINE_TEXT = "I cannot help with that."


class RoleSpec(BaseModel):
    """A role as written in roles.toml or settings.toml."""

    model_config = ConfigDict(extra="forbid")
    domain: str = ""
    kind: RoleKind = "answer"
    system: str | None = None
    topics: list[str] | None = None  # None: every question is in the role's domain
    refuse: list[str] = Field(default_factory=list)
    warning: str | None = None  # added to the verdict's warnings when this specialist speaks

    @field_validator("topics", "refuse")
    @classmethod
    def _patterns(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        try:
            return check_topics(value)
        except TopicPatternError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _check(self) -> "RoleSpec":
        if not (self.system or "").strip():
            raise ValueError("the role has no system prompt (`system`); every role needs one")
        if self.topics is not None and not self.topics:
            raise ValueError(
                "`topics` is empty, so no question would ever reach this member; list the topics it may "
                "answer, or leave `topics` out for a role that answers every question"
            )
        return self


class Role(BaseModel):
    """A resolved role: its name (`inline` for one written in the member) and its spec."""

    name: str
    source: Literal["shipped", "settings", "inline"]
    spec: RoleSpec

    @property
    def is_critic(self) -> bool:
        return self.spec.kind == "critic"

    def in_domain(self, question: str) -> tuple[bool, str]:
        """(whether the question is for this role, why) — the reason names the matched pattern."""
        refused = first_match(self.spec.refuse, question)
        if refused is not None:
            return False, f"the question touches '{refused}', which role '{self.name}' must refuse"
        if self.spec.topics is None:
            return True, f"role '{self.name}' answers every topic"
        hit = first_match(self.spec.topics, question)
        if hit is None:
            return False, f"the question matches none of role '{self.name}''s topics"
        return True, f"the question matches topic '{hit}'"

    def system_prompt(self, own: str | None = None) -> str:
        """The role's prompt, its refusal rule, then the member's own `system` if it has one."""
        parts = [self.spec.system.strip()]  # type: ignore[union-attr] - checked: every role has one
        if self.spec.refuse:
            listed = ", ".join(_plain(self.spec.refuse))
            parts.append(
                f"You must refuse anything about: {listed}. If the question asks for that, reply exactly: {DECLINE_TEXT}"
            )
        if own and own.strip():
            parts.append(own.strip())
        return "\n\n".join(parts)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, **self.spec.model_dump()}


def _plain(patterns: list[str]) -> list[str]:
    # Regular expressions mean nothing to a model: the prompt lists only the plain words.
    return [p for p in patterns if not p.startswith("re:")] or ["the topics this role refuses"]


@lru_cache(maxsize=1)
def _shipped_raw() -> dict[str, Any]:
    text = resources.files("manyminds").joinpath("data/roles.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def shipped_roles() -> dict[str, RoleSpec]:
    return {name: RoleSpec(**spec) for name, spec in _shipped_raw().items()}


def known_roles(user: dict[str, RoleSpec] | None = None) -> dict[str, Role]:
    """Every role by name: the shipped ones, replaced or added to by the settings' `[roles]`."""
    out = {name: Role(name=name, source="shipped", spec=spec) for name, spec in shipped_roles().items()}
    for name, spec in (user or {}).items():
        out[name] = Role(name=name, source="settings", spec=spec)
    return out


def unknown_role(name: str, where: str, known: dict[str, Role]) -> ConfigError:
    return ConfigError(
        f"Unknown role {name!r} for {where}. Known roles: {', '.join(sorted(known))}. "
        "Define it under [roles.NAME] in settings.toml, or run `manyminds roles` to list them."
    )


def resolve_role(value: "str | RoleSpec | dict | None", where: str, user: dict[str, RoleSpec] | None = None) -> Role | None:
    """The member's role: a name (shipped or from the settings) or an inline spec; None: no role."""
    if value is None:
        return None
    if isinstance(value, str):
        known = known_roles(user)
        if value not in known:
            raise unknown_role(value, where, known)
        return known[value]
    try:
        spec = value if isinstance(value, RoleSpec) else RoleSpec(**value)
    except ValidationError as exc:
        raise ConfigError(f"Invalid inline role for {where}: {exc.errors()[0]['msg']}") from None
    return Role(name="inline", source="inline", spec=spec)


def role_label(value: "str | RoleSpec | dict | None") -> str | None:
    """How a member's role is shown in a council view: its name, `inline`, or None."""
    if value is None:
        return None
    return value if isinstance(value, str) else "inline"


def role_view(role: Role | None) -> dict[str, Any]:
    """A member's role as council views show it (CLI, server, web page, MCP): name, kind,
    domain, topics (None: every topic), refusals. Empty for a member without a role."""
    if role is None:
        return {}
    return {"role": role.name, "role_kind": role.spec.kind, "role_domain": role.spec.domain,
            "role_topics": role.spec.topics, "role_refuse": role.spec.refuse}


def member_role(member: Any, where: str, user: dict[str, RoleSpec] | None = None) -> Role | None:
    """The resolved role of a `MemberSettings` (resolved at settings load, else now)."""
    return getattr(member, "_role", None) or resolve_role(member.role, where, user)
