"""`manyminds runs`: the stored runs — list, show, export."""

from __future__ import annotations

import click

from .common import echo_json, fail, stdout_is_terminal


@click.group()
def runs() -> None:
    """List, show and export stored runs."""


@runs.command("list")
@click.option("-n", "--limit", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--status", type=click.Choice(["queued", "running", "complete", "incomplete", "failed"]))
@click.option("-q", "--search", help="Only runs whose question contains this text.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def runs_list(limit: int, status: str | None, search: str | None, as_json: bool) -> None:
    """List the most recent runs; deep runs still waiting for a worker come first, as queued."""
    from ..jobs.queue import list_jobs
    from ..store import list_runs, open_db

    db = open_db()
    rows: list[dict] = []
    if status in (None, "queued"):
        # A queued deep run has no run row until a worker starts it: show it from its job.
        for job in list_jobs(db, without_run=True, status="queued", search=search, limit=limit):
            request = job.get("request") or {}
            rows.append({"id": job["run_id"], "created_at": job["created_at"], "status": "queued",
                         "question": request.get("question", ""), "council": request.get("council"),
                         "confidence": None, "answer": None, "job": job})  # fmt: skip
    if status != "queued":
        rows += list_runs(db, limit=max(limit - len(rows), 0), status=status, search=search) if len(rows) < limit else []
    if as_json:
        echo_json(rows)
        return
    if stdout_is_terminal():
        from rich.console import Console
        from rich.table import Table

        table = Table("id", "created", "status", "confidence", "cost", "question", "answer")
        for r in rows:
            conf = f"{r['confidence']:.0%}" if r.get("confidence") is not None else ""
            table.add_row(r["id"], r["created_at"], _status(r), conf, _cost(r), _cut(r["question"], 50),
                          _cut(r.get("short_answer") or r.get("answer") or "", 40))  # fmt: skip
        Console().print(table)
    else:
        for r in rows:
            conf = f"{r['confidence']:.2f}" if r.get("confidence") is not None else "-"
            click.echo(f"{r['id']}\t{r['created_at']}\t{_status(r)}\t{conf}\t{_cost(r)}\t{_cut(r['question'], 80)}")


def _cost(row: dict) -> str:
    """A run's cost: "$0.0012", "unknown" (a price missing), or "-" (nothing spent yet, queued)."""
    if row.get("cost_usd") is not None:
        return f"${row['cost_usd']:.4f}"
    spent = (row.get("usage") or {}).get("total_tokens") or row.get("total_tokens")
    return "unknown" if spent else "-"


def _status(row: dict) -> str:
    """The status, with the budget that stopped the run: "complete (budget: tokens)"."""
    limited = row.get("budget_limited")
    return f"{row['status']} (budget: {limited['budget']})" if isinstance(limited, dict) else row["status"]


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--report", is_flag=True, help="Print the run's markdown report (overnight runs write one).")
def runs_show(run_id: str, as_json: bool, report: bool) -> None:
    """Show one run (an id or a unique prefix of one)."""
    from ..errors import ManymindsError
    from ..pipeline.verdict import Verdict
    from ..store import export_run, open_db

    try:
        doc = export_run(open_db(), run_id)
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    if report:
        _print_report(doc, as_json)
        return
    if as_json:
        echo_json(doc)
        return
    verdict_doc = doc.get("verdict")
    if verdict_doc:
        verdict = Verdict(**verdict_doc)
        if stdout_is_terminal():
            from rich.console import Console

            from .render import render_verdict

            Console().print(f"[bold]{verdict.question}[/]")
            Console().print(render_verdict(verdict))
        else:
            from .render import plain_verdict

            click.echo(f"Question: {verdict.question}")
            click.echo(plain_verdict(verdict))
        return
    click.echo(f"Run {doc['id']} — {doc['status']}")
    click.echo(f"Question: {doc['question']}")
    if doc.get("error"):
        click.echo(f"Error: {doc['error'].get('message', doc['error'])}")
    for m in doc.get("members", []):
        detail = m.get("short_answer") or (m.get("error") or {}).get("message", "") or m.get("text", "")
        click.echo(f"  - {m['member']} ({m['model']}): {m['status']}: {_cut(detail, 200)}")


def _print_report(doc: dict, as_json: bool) -> None:
    from ..errors import InputError

    text = (doc.get("verdict") or {}).get("report")
    if not text:
        why = "it has not finished" if doc.get("status") != "complete" else "only overnight runs (--effort overnight) write one"
        fail(InputError(f"Run {doc['id']} has no report: {why}."), as_json=as_json)
    if as_json:
        echo_json({"id": doc["id"], "report": text})
    else:
        click.echo(text)


@runs.command("export")
@click.argument("run_id", required=False)
@click.option("--all", "export_everything", is_flag=True, help="Export every run (JSON lines).")
@click.option("--json", "as_json", is_flag=True, default=True, help="JSON output (the only format).")
def runs_export(run_id: str | None, export_everything: bool, as_json: bool) -> None:
    """Export a run (or --all runs) as JSON."""
    import json

    from ..errors import InputError, ManymindsError
    from ..store import export_run, list_runs, open_db

    db = open_db()
    try:
        if export_everything:
            for row in list_runs(db, limit=1_000_000):
                click.echo(json.dumps(export_run(db, row["id"]), ensure_ascii=False, default=str))
            return
        if not run_id:
            raise InputError("Name a run id (see `manyminds runs list`) or pass --all.")
        echo_json(export_run(db, run_id))
    except ManymindsError as exc:
        fail(exc, as_json=True)


@runs.command("wait")
@click.argument("run_id")
@click.option("--timeout", type=click.FloatRange(min=0), help="Give up after this many seconds (exit 124).")
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(min=0.05), help="Seconds between checks.")
@click.option("--json", "as_json", is_flag=True, help="Print {id, status, job, run} as JSON at the end.")
def runs_wait(run_id: str, timeout: float | None, interval: float, as_json: bool) -> None:
    """Wait for a run (e.g. from `ask --deep`) to finish, showing its progress on stderr.

    Exit 0 done, 3 failed, 1 cancelled or incomplete, 124 still running at --timeout.
    """
    import time

    from ..errors import InputError, ManymindsError
    from ..jobs.queue import WAIT_EXIT, find_job, live_workers, run_state
    from ..store import export_run, open_db, resolve_run_id

    db = open_db()
    try:
        try:
            full_id = resolve_run_id(db, run_id)
        except InputError:
            job = find_job(db, run_id)
            if job is None:
                raise
            full_id = job["run_id"]
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    started, shown = time.monotonic(), None
    while True:
        state = run_state(db, full_id)
        if state["final"]:
            break
        line = _progress_line(state, live_workers(db) if state["status"] == "queued" else None)
        if line != shown:
            click.echo(f"[{time.monotonic() - started:5.0f}s] {line}", err=True)
            shown = line
        if timeout is not None and time.monotonic() - started >= timeout:
            click.echo(f"Run {full_id} is still {state['status']} after {timeout:g}s.", err=True)
            if as_json:
                echo_json({"id": full_id, "status": state["status"], "job": state["job"], "run": None})
            raise SystemExit(124)
        time.sleep(interval)
    final = state["final"]
    doc = export_run(db, full_id) if state["run_status"] else None
    if as_json:
        echo_json({"id": full_id, "status": final, "job": state["job"], "run": doc})
    elif final == "done" and doc and doc.get("verdict"):
        from ..pipeline.verdict import Verdict
        from .render import plain_verdict

        click.echo(plain_verdict(Verdict(**doc["verdict"])))
    else:
        error = (state["job"] or {}).get("error") or (doc or {}).get("error") or {}
        click.echo(f"Run {full_id} {final}: {error.get('message', final)}", err=True)
    raise SystemExit(WAIT_EXIT[final])


def _progress_line(state: dict, workers: list | None) -> str:
    job = state["job"] or {}
    progress = job.get("progress") or {}
    line = f"{state['status']}: {progress.get('message') or ''}".rstrip(": ")
    if progress.get("fraction") is not None and state["status"] == "running":
        line += f" ({progress['fraction']:.0%})"
    if state["worker_gone"]:
        line += " — its worker has stopped; it resumes when a worker starts (`manyminds serve`)"
    elif workers is not None and not workers:
        line += " — no worker is running: start `manyminds serve` or `manyminds serve --worker-only`"
    return line


def _cut(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"
