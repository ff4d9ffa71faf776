"""`manyminds memory`: the personal memory — add, list, search, forget, export — per profile.

Memories live in the run store. The profile is `--profile`, else `$MANYMINDS_PROFILE`, else
`[memory] profile` in settings.toml, else "default". Results go to stdout (`--json` for the same
data as JSON), errors to stderr with a non-zero exit.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from .common import decode_utf8, echo_json, fail

PROFILE_HELP = "Memory profile (default: $MANYMINDS_PROFILE, else [memory] profile, else 'default')."


def _open(profile: str | None, as_json: bool) -> tuple[Any, str]:
    """(the memory store, the profile), or exit with the error."""
    from ..config import load_settings
    from ..errors import ManymindsError
    from ..memory.store import MemoryStore, resolve_profile
    from ..store import open_db

    try:
        name = resolve_profile(profile, load_settings())
        return MemoryStore(open_db()), name
    except ManymindsError as exc:
        fail(exc, as_json=as_json)


def _read_text(words: tuple[str, ...]) -> str:
    from ..errors import InputError

    if words and words != ("-",):
        return " ".join(words)
    if sys.stdin is None or sys.stdin.isatty():
        raise InputError('No memory given. Usage: manyminds memory add "I am vegetarian." (or pipe it on stdin)')
    return decode_utf8(sys.stdin.buffer.read(), "The memory on stdin")


@click.group()
def memory() -> None:
    """Notes about you that questions draw on (shown to models as quoted data, never as instructions)."""


@memory.command("add")
@click.argument("text", nargs=-1)
@click.option("--profile", help=PROFILE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the stored memory as JSON.")
def memory_add(text: tuple[str, ...], profile: str | None, as_json: bool) -> None:
    """Save TEXT (or stdin) as a memory. At most 2,000 characters; stored exactly as given."""
    from ..errors import ManymindsError

    try:
        body = _read_text(text)
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    store, name = _open(profile, as_json)
    try:
        saved = store.add(name, body, source="cli")
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        echo_json(saved.model_dump())
    else:
        click.echo(f"Saved memory {saved.id} in profile {name!r}.")


@memory.command("list")
@click.option("--profile", help=PROFILE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the memories as JSON.")
def memory_list(profile: str | None, as_json: bool) -> None:
    """List the profile's memories, oldest first."""
    store, name = _open(profile, as_json)
    items = store.list(name)
    if as_json:
        echo_json({"profile": name, "memories": [m.model_dump() for m in items]})
        return
    if not items:
        click.echo(f'No memories in profile {name!r}. Add one with: manyminds memory add "…"')
        return
    for m in items:
        click.echo(f"{m.id}  {m.created_at[:10]}  {_one_line(m.text)}")


@memory.command("search")
@click.argument("query", nargs=-1, required=True)
@click.option("--profile", help=PROFILE_HELP)
@click.option("-k", "--top", "k", type=click.IntRange(min=1, max=100), default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the matches as JSON.")
def memory_search(query: tuple[str, ...], profile: str | None, k: int, as_json: bool) -> None:
    """The memories closest in meaning to QUERY, with their cosine similarity (what a question
    would draw on: those at or above [memory] min_score)."""
    from ..errors import ManymindsError

    store, name = _open(profile, as_json)
    try:
        hits = store.search(name, " ".join(query), k=k)
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        echo_json({"profile": name, "matches": [h.model_dump() for h in hits]})
        return
    for h in hits:
        click.echo(f"{h.score:.3f}  {h.id}  {_one_line(h.text)}")


@memory.command("forget")
@click.argument("memory_id", required=False)
@click.option("--all", "everything", is_flag=True, help="Forget every memory of the profile.")
@click.option("--profile", help=PROFILE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print what was forgotten as JSON.")
def memory_forget(memory_id: str | None, everything: bool, profile: str | None, as_json: bool) -> None:
    """Delete the memory MEMORY_ID (or, with --all, every memory of the profile) for good: the
    row, its vector and its full-text entries."""
    from ..errors import InputError, ManymindsError

    if bool(memory_id) == everything:
        fail(InputError("Give a memory id or --all (not both): manyminds memory forget ID | --all"), as_json=as_json)
    store, name = _open(profile, as_json)
    try:
        if everything:
            count = store.forget_all(name)
            result: dict[str, Any] = {"profile": name, "forgotten": count}
            message = f"Forgot {count} memories of profile {name!r}."
        else:
            gone = store.forget(name, memory_id)
            result = {"profile": name, "forgotten": 1, "id": gone.id}
            message = f"Forgot memory {gone.id}."
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        echo_json(result)
    else:
        click.echo(message)


@memory.command("export")
@click.option("--profile", help=PROFILE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Export as JSON (id, text, source, created_at of each).")
def memory_export(profile: str | None, as_json: bool) -> None:
    """Print every memory of the profile: one per paragraph as text, or a JSON document."""
    from ..store.db import now_iso

    store, name = _open(profile, as_json)
    items = store.list(name)
    if as_json:
        echo_json({"profile": name, "exported_at": now_iso(), "memories": [m.model_dump() for m in items]})
        return
    click.echo("\n\n".join(m.text for m in items))


def _one_line(text: str, width: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
