"""A council: its members with their models, the chair, and the rules; and the check every
question passes before any model sees it. The run itself is in run.py."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..config import CouncilSettings, MemberSettings
from ..errors import InputError
from ..models.base import Model
from ..models.registry import Registry
from ..models.retry import ProviderLimiter
from ..models.wrappers import Retrying, ModelWrapper, wrap_for_council
from ..roles import member_role, role_view
from .stages.fanout import Member

MAX_QUESTION_CHARS = 100_000


def validate_question(question: str) -> str:
    if not isinstance(question, str):
        raise InputError(f"The question must be text, not {type(question).__name__}.")
    if not question.strip():
        raise InputError("The question is empty. Ask something, e.g. manyminds ask \"Who wrote Hamlet?\"")
    if len(question) > MAX_QUESTION_CHARS:
        raise InputError(
            f"The question is {len(question):,} characters long; the limit is {MAX_QUESTION_CHARS:,}."
        )
    if "\x00" in question:
        raise InputError("The question contains a NUL character.")
    return question.strip()


@dataclass
class Council:
    """A resolved council: members with their models, the chair, and the rules.

    Building one wraps every model once (models/wrappers.py): retries with the council's
    `retries`, and a per-provider cap held through `limiter`, which every model of the council
    shares — so the chair and the side calls of later stages are capped and retried exactly
    like the members. Copies (`dataclasses.replace`, e.g. with other weights) keep the wrappers
    and the limiter."""

    name: str
    settings: CouncilSettings
    members: list[Member]
    chair_name: str
    chair_model: Model
    _extra_models: list[Model] = field(default_factory=list)
    limiter: ProviderLimiter = field(default_factory=ProviderLimiter)

    def __post_init__(self) -> None:
        wrapped: dict[int, Model] = {}  # a seat that chairs keeps one wrapped model

        def wrap(model: Model, cap: int) -> Model:
            if _is_wrapped(model):
                return model
            if id(model) not in wrapped:
                wrapped[id(model)] = wrap_for_council(model, limiter=self.limiter, limit=cap, retries=self.settings.retries)
            return wrapped[id(model)]

        self.members = [m if _is_wrapped(m.model) else replace(m, model=wrap(m.model, m.max_concurrency)) for m in self.members]
        cap = next((m.max_concurrency for m in self.members if m.model.provider == self.chair_model.provider),
                   self.settings.max_concurrency_per_provider)
        self.chair_model = wrap(self.chair_model, cap)

    @classmethod
    def build(
        cls, name: str, settings: CouncilSettings, registry: Registry, keys: dict[str, str] | None = None
    ) -> "Council":
        """Resolve every member's model. `keys` maps provider → API key and wins over the
        environment and the key file."""
        keys = keys or {}

        def model_for(ref: str) -> Model:
            provider, _ = registry.split(ref)
            return registry.get_model(ref, key=keys.get(provider))

        members = []
        for ms in settings.members:
            # Resolved when the settings loaded (user roles); else here, against the shipped ones.
            role = member_role(ms, f"member {ms.name!r} of council {name!r}")
            model = model_for(ms.model)
            spec = registry.providers[model.provider]
            cap = min(spec.max_concurrency, settings.max_concurrency_per_provider)
            seat = ms
            if role is not None:  # the role's prompt (with its refusal rule) before the member's own
                seat = ms.model_copy(update={"system": role.system_prompt(ms.system)})
                seat._role = role
            members.append(Member(settings=seat, model=model, max_concurrency=cap, role=role))
        chair_ref = settings.chair or settings.members[0].name
        seat = next((m for m in members if m.name == chair_ref), None)
        if seat is not None:
            chair_name, chair_model, extra = seat.name, seat.model, []
        else:
            chair_model = model_for(chair_ref)
            chair_name, extra = f"chair ({chair_model.name})", [chair_model]
        return cls(name, settings, members, chair_name, chair_model, extra)

    @classmethod
    def from_models(
        cls, names: list[str], registry: Registry, base: CouncilSettings | None = None, keys: dict[str, str] | None = None
    ) -> "Council":
        """An ad-hoc council from model names (`manyminds ask -m A -m B`)."""
        seen: dict[str, int] = {}
        members = []
        for raw in names:
            canonical = registry.canonical(raw)
            seen[canonical] = seen.get(canonical, 0) + 1
            label = canonical if seen[canonical] == 1 else f"{canonical}#{seen[canonical]}"
            members.append(MemberSettings(name=label, model=canonical, temperature=0.0, max_tokens=400))
        template = base or CouncilSettings(members=members)
        settings = template.model_copy(
            update={"members": members, "chair": members[0].name, "quorum": min(template.quorum, len(members))}
        )
        return cls.build("ad-hoc", settings, registry, keys)

    @property
    def weights(self) -> dict[str, float]:
        return {m.name: m.weight for m in self.members}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "members": [
                {"name": m.name, "model": m.model.name, **m.settings.model_dump(exclude={"name", "model"}, exclude_none=True),
                 **role_view(m.role)}
                for m in self.members
            ],
            "chair": {"member": self.chair_name, "model": self.chair_model.name},
            "quorum": self.settings.quorum,
            "timeout": self.settings.timeout,
            "retries": self.settings.retries,
            **({"guardrails": self.settings.guardrails.model_dump()} if self.settings.guardrails else {}),
        }

    def share_limiter(self, limiter: ProviderLimiter) -> "Council":
        """Count this council's calls against `limiter` (another council's, a batch's, or a
        cluster-wide one): every `Limited` wrapper of its members, chair and extra models."""
        from ..models.wrappers import Limited
        for model in [m.model for m in self.members] + [self.chair_model] + list(self._extra_models):
            while isinstance(model, ModelWrapper):
                if isinstance(model, Limited):
                    model.limiter = limiter
                model = model.inner
        self.limiter = limiter
        return self

    async def aclose(self) -> None:
        for model in [m.model for m in self.members] + self._extra_models:
            await model.aclose()


def _is_wrapped(model: Model) -> bool:
    """Whether the council's wrappers are already on `model` (under any others, e.g. a cache)."""
    while isinstance(model, ModelWrapper):
        if isinstance(model, Retrying):
            return True
        model = model.inner
    return False
