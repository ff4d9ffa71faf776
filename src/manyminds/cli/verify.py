"""`manyminds verify FILE|-`: fact-check a text claim by claim, stored as a run."""

from __future__ import annotations

import sys

import click

from .common import INTERRUPTED, decode_utf8, echo_json, fail, run_or_fail, stdout_is_terminal

VERDICT_STYLE = {"supported": "green", "refuted": "red", "uncertain": "yellow", "unsupported": "dim"}


def read_text(source: str) -> str:
    """The text from a file, or from stdin for `-`. UTF-8 only: other bytes are refused with
    their position, not guessed at (as `ask` does with its question)."""
    from ..errors import InputError

    if source == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError("No text on stdin. Usage: manyminds verify FILE (or pipe the text: … | manyminds verify -)")
        data, where = sys.stdin.buffer.read(), "on stdin"
    else:
        try:
            with open(source, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            raise InputError(f"No such file: {source}") from None
        except IsADirectoryError:
            raise InputError(f"{source} is a directory, not a text file.") from None
        except OSError as exc:
            raise InputError(f"Cannot read {source}: {exc.strerror or exc}") from None
        where = f"in {source}"
    return decode_utf8(data, f"The text {where}")


@click.command()
@click.argument("source", metavar="FILE|-")
@click.option("--collection", help="Check the claims against this document collection (manyminds docs add).")
@click.option("-q", "--question", help="The question the text answers (makes short answers checkable).")
@click.option("-c", "--council", "council_name", help="Council from the settings file (default: the default council).")
@click.option("-m", "--model", "models", multiple=True, help="Vote with these models instead of a council (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-store", is_flag=True, help="Do not store the run in the database.")
@click.option("--timeout", type=click.FloatRange(min=0.1), help="Seconds each member may take (overrides settings).")
def verify(source, collection, question, council_name, models, as_json, no_store, timeout) -> None:  # noqa: ANN001
    """Fact-check the text in FILE (or stdin, with -) claim by claim.

    The text is split into claims; every member votes true, false or unsure on each (the text
    is data to them, its author unknown); with --collection each claim is looked up in your
    documents. Each claim gets a verdict — supported, refuted, unsupported or uncertain — with
    the votes and the quoted evidence. The run is stored (strategy "verify").
    """
    from ..api import open_recorder, record_failure
    from ..errors import ManymindsError

    try:
        text = read_text(source)
    except ManymindsError as exc:
        received = getattr(exc, "received", None) or source
        record_failure(open_recorder(not no_store), received, council_name or "default", exc, strategy="verify")
        fail(exc, as_json=as_json)

    from ..api import averify

    report = run_or_fail(
        averify(text, council=council_name, models=list(models) or None, collection=collection, question=question,
                store=not no_store, timeout=timeout),
        as_json=as_json, interrupted=INTERRUPTED,
    )  # fmt: skip

    if as_json:
        echo_json(report.model_dump(mode="json"))
    elif stdout_is_terminal():
        from rich.console import Console

        Console().print(render_report(report))
    else:
        click.echo(plain_report(report))


def plain_report(report) -> str:  # noqa: ANN001
    """The report as plain text, for pipes and files."""
    lines = [f"Verdict: {report.verdict} (score {report.score:.2f})", f"Summary: {report.summary}", "Claims:"]
    for c in report.claims:
        votes = ", ".join(f"{m}={v}" for m, v in c.votes.items()) or "no votes"
        lines.append(f"  {c.id} [{c.verdict}] {c.text}")
        lines.append(f"      votes: {votes}; score {c.score:.2f}; evidence: {c.evidence_verdict}")
        for e in c.evidence:
            lines.append(f"      {e.verdict}: {e.document} ({e.location}): \"{e.quote}\"")
    from .render import plain_footer

    lines += plain_footer(report)
    return "\n".join(lines)


def render_report(report):  # noqa: ANN001, ANN201
    """The report for a terminal: one row per claim, coloured by verdict."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"Verdict: {report.verdict} · score {report.score:.2f}", show_lines=True)
    table.add_column("claim")
    table.add_column("verdict")
    table.add_column("votes")
    table.add_column("evidence")
    for c in report.claims:
        votes = "\n".join(f"{m}: {v}" for m, v in c.votes.items()) or "—"
        evidence = "\n".join(f"{e.verdict}: {e.document} ({e.location})\n“{e.quote[:160]}”" for e in c.evidence) or c.evidence_verdict
        table.add_row(f"{c.id} {c.text}", Text(c.verdict, style=VERDICT_STYLE.get(c.verdict, "")), votes, evidence)
    from .render import run_summary

    footer = Text(f"{report.summary} · {run_summary(report, ' · ')}", style="dim")
    parts = [table, footer]
    parts += [Text(f"⚠ {w}", style="yellow") for w in report.warnings]
    return Group(*parts)
