"""`manyminds roles`: the roles a member can have (shipped and from settings.toml), and one in full."""

from __future__ import annotations

import click

from .common import echo_json, fail


def _roles() -> dict:
    from ..config import load_settings
    from ..roles import known_roles

    return known_roles(load_settings().roles)


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def roles(ctx: click.Context, as_json: bool) -> None:
    """List the roles (shipped and from settings.toml). `roles show NAME` prints one in full."""
    if ctx.invoked_subcommand is not None:
        return
    from ..errors import ManymindsError

    try:
        known = _roles()
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        echo_json({"roles": [r.describe() for _, r in sorted(known.items())]})
        return
    for name, r in sorted(known.items()):
        topics = "every topic" if r.spec.topics is None else f"{len(r.spec.topics)} topics"
        click.echo(f"{name}\t{r.spec.kind}\t{r.source}\t{topics}\t{r.spec.domain}")


@roles.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def show(name: str, as_json: bool) -> None:
    """Show the role NAME: kind, domain, system prompt, topics, refusals, warning."""
    from ..errors import ManymindsError
    from ..roles import unknown_role

    try:
        known = _roles()
        if name not in known:
            raise unknown_role(name, "`roles show`", known)
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    role = known[name]
    if as_json:
        echo_json(role.describe())
        return
    s = role.spec
    click.echo(f"{name} ({s.kind}, {role.source})")
    click.echo(f"  domain: {s.domain}")
    click.echo(f"  system: {s.system}")
    click.echo(f"  topics: {', '.join(s.topics) if s.topics is not None else 'every topic'}")
    click.echo(f"  refuses: {', '.join(s.refuse) or 'nothing'}")
    if s.warning:
        click.echo(f"  warning: {s.warning}")
