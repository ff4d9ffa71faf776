"""`manyminds batch FILE.jsonl`: one question (or text to verify) per line, in-process or on Ray.

    manyminds batch questions.jsonl --out results.jsonl            # in-process, 4 lines at once
    manyminds batch questions.jsonl --ray --out results.jsonl      # a local Ray instance
    manyminds batch texts.jsonl --verify --ray auto                # the cluster this machine is in
    manyminds batch questions.jsonl --resume ID --out results.jsonl  # skip the lines already done

Each line's run is stored like `manyminds ask`'s; the batch record says which lines are done.
The results go to --out (or stdout) as they finish, one JSON object per line; a progress line
per finished line and the summary go to stderr (the summary to stdout with --out).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .common import fail, run_or_fail


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
              help="Run the lines as Ray tasks: alone, on a local Ray instance; or join auto, HOST:PORT, ray://HOST:PORT.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the results here as JSONL (default: stdout).")
@click.option("--verify", is_flag=True, help="Every line is a text to verify ({\"text\": …}).")
@click.option("-c", "--council", "council_name", help="Council for lines that name none (default: the default council).")
@click.option("-m", "--model", "models", multiple=True, help="Ask these models, for lines that name none (repeatable).")
@click.option("-s", "--strategy", help="Strategy for question lines that name none.")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True, help="Lines in flight.")
@click.option("--resume", "resume_id", help="Continue a batch: lines it stored as done are skipped.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def batch(file, ray_address, out_path, verify, council_name, models, strategy, concurrency, resume_id, as_json) -> None:  # noqa: ANN001
    """Run every line of FILE (JSON Lines): {"question": …, "id": …, "council": …} or
    {"text": …} to verify. Bad lines are reported with their line number; the others still run.
    Exit code 0 when every line succeeded, else the highest of the failed lines' codes."""
    from ..batch.lines import read_lines
    from ..errors import InputError, ManymindsError

    try:
        if ray_address and Path(ray_address).is_file():
            raise InputError(f"--ray took {ray_address!r} as its address; put the file first: "
                             f"manyminds batch {ray_address} --ray")  # fmt: skip
        defaults: dict[str, Any] = {"verify": verify, "council": council_name, "models": list(models) or None,
                                    "strategy": strategy}  # fmt: skip
        if resume_id:
            defaults = _resumed_defaults(resume_id)
        lines = read_lines(file, verify=bool(defaults.get("verify")))
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    summary = run_or_fail(_run(file, lines, defaults, resume_id, ray_address, out_path, concurrency), as_json=as_json,
                          interrupted="Interrupted; finished lines are stored. Continue with the --resume command printed above.")  # fmt: skip
    doc = summary.to_dict()
    to_err = out_path is None
    if as_json:
        click.echo(__import__("json").dumps(doc, indent=2, ensure_ascii=False), err=to_err)
    else:
        click.echo(f"Batch {doc['batch_id']}: {doc['ok']} ok, {doc['failed']} failed, {doc['skipped']} already done "
                   f"(of {doc['total']} lines).", err=to_err)  # fmt: skip
        for message in doc["errors"]:
            click.echo(f"  {message}", err=to_err)
    sys.exit(summary.exit_code)


def _resumed_defaults(resume_id: str) -> dict[str, Any]:
    from ..batch.store import BatchStore
    from ..errors import InputError
    from ..store import open_db

    found = BatchStore(open_db()).get(resume_id)
    if found["status"] == "running":
        raise InputError(f"Batch {found['id']} is still running (pid {found['pid']}); wait for it or stop it first.")
    return found["options"]


async def _run(file: Path, lines: list[Any], defaults: dict[str, Any], resume_id: str | None, ray_address: str | None,
               out_path: Path | None, concurrency: int) -> Any:  # fmt: skip
    if ray_address is None:
        return await _run_here(file, lines, defaults, resume_id, out_path, concurrency, on_ray=False)
    from ..distributed.ray_env import ray_session

    with ray_session(ray_address):  # joined (or refused) before anything is stored
        return await _run_here(file, lines, defaults, resume_id, out_path, concurrency, on_ray=True)


async def _run_here(file: Path, lines: list[Any], defaults: dict[str, Any], resume_id: str | None,
                    out_path: Path | None, concurrency: int, *, on_ray: bool) -> Any:  # fmt: skip
    from ..batch.runner import BatchRunner, open_out
    from ..config import load_settings
    from ..store import open_db

    settings = load_settings()
    ray = None
    if on_ray:
        from ..distributed.batch_tasks import RayBatch

        ray = RayBatch(settings)
    runner = BatchRunner(lines, db=open_db(), settings=settings, defaults=defaults, concurrency=concurrency, ray=ray,
                         on_line=_progress)  # fmt: skip
    batch_id = runner.start(str(file), resume_id)
    click.echo(f"{'Resuming' if resume_id else 'Started'} batch {batch_id}: {len(lines)} lines. If it stops, continue "
               f"with: manyminds batch {file} --resume {batch_id}", err=True)  # fmt: skip
    out = open_out(out_path)
    try:
        return await runner.run(out if out is not None else sys.stdout)
    finally:
        if out is not None:
            out.close()


def _progress(outcome: dict[str, Any]) -> None:
    if outcome["ok"]:
        click.echo(f"line {outcome['line']} ({outcome['id']}): ok, run {outcome['run_id']}", err=True)
    else:
        click.echo(f"{outcome['error']['message']}", err=True)
