"""What a council is made of, as the server's `GET /api/councils`, the web page and the MCP
`councils` tool show it: members with their models and roles, chair, quorum, guardrails.
Read from the settings alone: nothing is started or called."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .roles import known_roles, member_role, role_view

if TYPE_CHECKING:
    from .config import Settings


def councils_view(settings: "Settings") -> dict[str, Any]:
    out = []
    for name, c in sorted(settings.councils.items()):
        members = []
        for m in c.members:
            role = member_role(m, f"member {m.name!r} of council {name!r}", settings.roles)
            members.append({"name": m.name, "model": m.model, **role_view(role)})
        out.append({
            "name": name,
            "members": members,
            "chair": c.chair or c.members[0].name,
            "quorum": c.quorum,
            "guardrails": c.guardrails.model_dump() if c.guardrails else None,
        })
    return {"default": settings.default_council, "councils": out}


def roles_view(settings: "Settings") -> dict[str, Any]:
    return {"roles": [r.describe() for _, r in sorted(known_roles(settings.roles).items())]}
