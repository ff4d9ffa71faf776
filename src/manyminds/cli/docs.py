"""`manyminds docs`: local document collections used as evidence — add, list, search, remove.

The collections live in the run store (`manyminds.store.open_db()`), next to the runs that cite
them. Progress goes to stderr, results to stdout (`--json` for the same data as JSON).
"""

from __future__ import annotations

import sys

import click

from .common import echo_json, fail, stdout_is_terminal

COLLECTION_HELP = "The collection (default: 'default')."


@click.group()
def docs() -> None:
    """Manage local document collections used as evidence (text, Markdown, HTML, PDF)."""


@docs.command("add")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("-c", "--collection", default="default", show_default=True, help=COLLECTION_HELP)
@click.option("--max-size", "max_mb", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Skip files larger than this many MB (default 50).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def docs_add(paths: tuple[str, ...], collection: str, max_mb: float | None, quiet: bool, as_json: bool) -> None:
    """Index files and directories (recursively) into a collection.

    Adding a file again is cheap: unchanged files (same sha256) are left as they are, changed
    ones are re-indexed. Files that cannot be parsed are skipped and listed with the reason.
    Exits 1 if no file could be indexed.
    """
    from ..errors import ManymindsError
    from ..evidence.index import MAX_FILE_BYTES, DocumentIndex
    from ..evidence.records import AddProgress
    from ..store import open_db

    def progress(event: AddProgress) -> None:
        r = event.result
        detail = f"({r.chunks} chunks)" if r.status != "skipped" else f"— {r.reason}"
        click.echo(f"[{event.done}/{event.total}] {r.status}: {r.path} {detail}", err=True)

    try:
        index = DocumentIndex(open_db(), max_bytes=int(max_mb * 1024 * 1024) if max_mb else MAX_FILE_BYTES)
        report = index.add(collection, paths, on_progress=None if quiet else progress)
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        echo_json(report.to_dict())
    else:
        counts = report.to_dict()["counts"]
        click.echo(
            f"Collection {collection!r}: {counts['added']} added, {counts['updated']} updated, "
            f"{counts['unchanged']} unchanged, {counts['skipped']} skipped; "
            f"{report.chunks_indexed} chunks indexed."
        )
        for f in report.skipped:
            click.echo(f"  skipped {f.path}: {f.reason}")
    if not report.ok:
        if not report.files:
            click.echo("Error: no files found to index.", err=True)
        else:
            click.echo("Error: no file could be indexed.", err=True)
        sys.exit(1)


@docs.command("list")
@click.argument("collection", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def docs_list(collection: str | None, as_json: bool) -> None:
    """List the collections, or the documents of COLLECTION."""
    from ..errors import ManymindsError
    from ..evidence.index import DocumentIndex
    from ..store import open_db

    try:
        index = DocumentIndex(open_db())
        rows = index.documents(collection) if collection else index.collections()
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        echo_json(rows)
        return
    if collection:
        headers = ("path", "title", "kind", "pages", "chunks", "updated")
        cells = [(r["path"], r["title"] or "", r["kind"], str(r["pages"] or ""), str(r["chunks"]), r["updated_at"])
                 for r in rows]
    else:
        headers = ("collection", "documents", "chunks", "size", "updated")
        cells = [(r["name"], str(r["documents"]), str(r["chunks"]), _size(r["bytes"]), r["updated_at"]) for r in rows]
        if not rows:
            click.echo("No document collections yet. Add one with `manyminds docs add PATH…`.", err=True)
            return
    _table(headers, cells)


@docs.command("search")
@click.argument("query")
@click.option("-c", "--collection", default="default", show_default=True, help=COLLECTION_HELP)
@click.option("-k", "k", default=5, show_default=True, type=click.IntRange(min=1, max=100), help="How many passages.")
@click.option("--mode", type=click.Choice(["hybrid", "fts", "vector"]), default="hybrid", show_default=True,
              help="Words (fts), meaning (vector) or both fused.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def docs_search(query: str, collection: str, k: int, mode: str, as_json: bool) -> None:
    """Find the passages of a collection that best match QUERY."""
    from ..errors import ManymindsError
    from ..evidence.index import DocumentIndex
    from ..store import open_db

    try:
        passages = DocumentIndex(open_db()).search(collection, query, k=k, mode=mode)  # type: ignore[arg-type]
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        echo_json([p.to_dict() for p in passages])
        return
    if not passages:
        click.echo("No matching passages.", err=True)
        return
    for i, p in enumerate(passages, 1):
        head = f"[{i}] {p.document} — {p.location}"
        if p.title:
            head += f" — {p.title}"
        if stdout_is_terminal():
            from rich.console import Console
            from rich.markup import escape

            console = Console()
            console.print(f"[bold]{escape(head)}[/]  [dim]score {p.score:.4f}[/]")
            console.print(escape(_cut(p.text, 600)))
            console.print()
        else:
            click.echo(f"{head}\tscore {p.score:.4f}")
            click.echo(_cut(p.text, 600))
            click.echo()


@docs.command("remove")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("-c", "--collection", default="default", show_default=True, help=COLLECTION_HELP)
@click.option("--all", "remove_all", is_flag=True, help="Remove the whole collection.")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
def docs_remove(paths: tuple[str, ...], collection: str, remove_all: bool, as_json: bool) -> None:
    """Remove documents (files, or every document under a directory) from a collection, or with
    --all the collection itself."""
    from ..errors import InputError, ManymindsError
    from ..evidence.index import DocumentIndex
    from ..store import open_db

    try:
        if bool(paths) == remove_all:
            raise InputError("Name the documents to remove, or pass --all to remove the whole collection (not both).")
        index = DocumentIndex(open_db())
        totals = {"documents": 0, "chunks": 0}
        for target in paths or [None]:
            removed = index.remove(collection, target)
            totals = {key: totals[key] + removed[key] for key in totals}
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        echo_json({"collection": collection, "removed_collection": remove_all, **totals})
        return
    counts = f"{totals['documents']} documents, {totals['chunks']} chunks"
    if remove_all:
        click.echo(f"Removed the collection {collection!r} ({counts}).")
    else:
        click.echo(f"Removed {counts} from {collection!r}.")


# --- output helpers ------------------------------------------------------------------------


def _table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    if stdout_is_terminal():
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        table = Table(*headers)
        for row in rows:
            table.add_row(*(escape(cell) for cell in row))  # a path may contain "[...]"
        Console().print(table)
    else:
        for row in rows:
            click.echo("\t".join(row))


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _cut(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"
