"""`manyminds serve`: the HTTP API, the OpenAI-compatible endpoint and the web page, with the
deep-run worker; `manyminds serve --worker-only` runs just the worker.

(`manyminds mcp` is registered from this module too; it lives at the bottom, written separately.)
"""

from __future__ import annotations

import sys

import click

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind. Anything but loopback needs a token.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--token", envvar="MANYMINDS_TOKEN", help="Require `Authorization: Bearer TOKEN` (env MANYMINDS_TOKEN).")
@click.option("--cors-origin", "cors_origins", multiple=True, help="Allow browser requests from this origin (repeatable). Default: none.")
@click.option("--max-body", default=1024 * 1024, show_default=True, type=click.IntRange(min=1024), help="Largest request body, in bytes.")
@click.option("--db", "db_file", type=click.Path(dir_okay=False), help="Run store (default: the user dir's manyminds.db).")
@click.option("--log-file", type=click.Path(dir_okay=False), help="Write the JSON log lines here instead of stderr.")
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--no-worker", is_flag=True, help="Do not run deep jobs in this process (run `serve --worker-only` elsewhere).")
@click.option("--worker-only", is_flag=True, help="Run only the deep-run worker: no HTTP server.")
@click.option("--jobs", "worker_concurrency", default=1, show_default=True, type=click.IntRange(min=1), help="Deep runs at once.")
@click.option("--max-runs", default=16, show_default=True, type=click.IntRange(min=1), help="Quick runs executing at once; more wait.")
def serve(host, port, token, cors_origins, max_body, db_file, log_file, log_level, no_worker, worker_only,  # noqa: ANN001
          worker_concurrency, max_runs) -> None:
    """Serve the run API, the OpenAI-compatible endpoint (/v1) and the web page.

    Binds 127.0.0.1 unless told otherwise; binding any other address needs a token, since
    every run costs money and the runs may be private.
    """
    from ..errors import ConfigError
    from ..server.logs import configure_logging, known_secrets
    from .common import fail

    if worker_only and no_worker:
        fail(ConfigError("--worker-only and --no-worker together leave nothing to run."))
    configure_logging(level=log_level, path=log_file, secrets=known_secrets(token))
    if worker_only:
        _worker_only(db_file, worker_concurrency)
        return
    if host not in LOOPBACK and not token:
        click.echo(
            f"Error: refusing to listen on {host} without a token: anyone who can reach it could run (and pay for) "
            "questions and read every stored run. Set one with --token or MANYMINDS_TOKEN, or bind 127.0.0.1.",
            err=True,
        )
        sys.exit(2)

    import uvicorn

    from ..server.app import create_app

    try:
        app = create_app(
            db_path=db_file, token=token or "", cors_origins=list(cors_origins), max_body_bytes=max_body,
            worker=not no_worker, worker_concurrency=worker_concurrency, max_concurrent_runs=max_runs,
        )
    except ConfigError as exc:
        fail(exc)
    display = f"[{host}]" if ":" in host else host
    click.echo(f"manyminds serving on http://{display}:{port}  (OpenAI base_url http://{display}:{port}/v1)", err=True)
    # log_config=None: keep the JSON handlers set above; uvicorn's access log is off (it would
    # print ?token= query strings) and ours (server/middleware.py) replaces it.
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, timeout_graceful_shutdown=3)


def _worker_only(db_file: str | None, concurrency: int) -> None:
    """The worker alone, until SIGINT/SIGTERM; running jobs go back to the queue on the way out."""
    import asyncio
    import signal

    from ..jobs.worker import Worker

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        worker = Worker(db_path=db_file, concurrency=concurrency)
        click.echo(f"manyminds worker {worker.id} waiting for deep runs (Ctrl-C to stop)", err=True)
        await worker.run(stop)

    asyncio.run(main())


# --- `manyminds mcp` ---------------------------------------------------------------------------
# Registered in cli/__init__.py as "manyminds.cli.serve:mcp"; written separately, below this line.


@click.command()
@click.option("--db", "db_file", type=click.Path(dir_okay=False), help="Run store (default: the user dir's manyminds.db).")
def mcp(db_file) -> None:
    """Serve the `ask` and `verify` tools over MCP (stdio), for agent hosts.

    The host starts this command and talks to it on stdin/stdout; logs go to stderr. Councils
    come from the settings file, read on every call. See docs/web-and-mcp.md.
    """
    from ..mcp_server import main

    main(db_path=db_file)
