"""`manyminds ask`: one question to the council, shown live, stored, and printed as a verdict."""

from __future__ import annotations

import sys

import click

from .common import INTERRUPTED, budget_options, decode_utf8, echo_json, fail, run_or_fail, stdout_is_terminal

# strategies/tiers.py EFFORTS, spelled out so `--help` imports nothing (a test checks they match).
EFFORTS = ("quick", "standard", "deep", "overnight", "auto")


def read_question(words: tuple[str, ...]) -> str:
    """The question from the arguments, or from stdin when none are given (or `-`).

    Stdin must be UTF-8: bytes that are not are refused with their position, not guessed at.
    """
    from ..errors import InputError

    if words and words != ("-",):
        question = " ".join(words)
        try:
            question.encode("utf-8")
        except UnicodeEncodeError as exc:  # undecodable argv bytes arrive as lone surrogates
            raise InputError(f"The question is not valid UTF-8 (at character {exc.start}).") from None
        return question
    if sys.stdin is None or sys.stdin.isatty():
        raise InputError('No question given. Usage: manyminds ask "Who wrote Hamlet?" (or pipe it on stdin)')
    data = sys.stdin.buffer.read()
    return decode_utf8(data, "The question on stdin")


@click.command()
@click.argument("question", nargs=-1)
@click.option("-c", "--council", "council_name", help="Council from the settings file (default: the default council).")
@click.option("-m", "--model", "models", multiple=True, help="Ask these models instead of a council (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@click.option("--no-store", is_flag=True, help="Do not store the run in the database.")
@click.option("--timeout", type=click.FloatRange(min=0.1), help="Seconds each member may take (overrides settings).")
@click.option("--quorum", type=click.IntRange(min=1), help="Members that must answer (overrides settings).")
@click.option("--deep", is_flag=True, help="Queue a deep run (review and revision rounds) for a worker; print its id.")
@click.option("--effort", type=click.Choice(EFFORTS, case_sensitive=False),
              help="How much work: quick (fastest members, early consensus), standard (today's council), deep (review, "
                   "revision, grounding), overnight (queued job with a report), auto (the router picks).")
@click.option("--collection", help="Check the answer's claims against this document collection (manyminds docs add).")
@click.option("--strategy", "strategy_name", help="How the council works: council (default), crosscheck, deep, …")
@click.option("--min-confidence", type=click.FloatRange(min=0, max=1, min_open=True),
              help="Below this confidence (calibrated, else raw; 0 < X <= 1) answer 'not sure' with the competing answers.")
@click.option("--no-memory", is_flag=True, help="Ask without the personal memory (manyminds memory).")
@click.option("--profile", help="Memory profile to draw on (default: $MANYMINDS_PROFILE, else [memory] profile).")
@budget_options
def ask(question, council_name, models, as_json, no_store, timeout, quorum, deep, effort, collection, strategy_name,  # noqa: ANN001
        min_confidence, no_memory, profile, max_cost, max_tokens, max_seconds) -> None:  # noqa: ANN001
    """Ask the council QUESTION (or read it from stdin).

    Every member answers concurrently; their answers are compared, a chair writes one answer
    with a confidence derived from the members' agreement (calibrated when `manyminds eval
    calibrate` fitted this council), and the run is stored. With --min-confidence X the verdict
    abstains below X: "not sure", with the competing answers and their shares (exit code 0).
    Memories relevant to the question (manyminds memory) go, as quoted data, to the members
    allowed to receive them; the verdict lists them. --no-memory asks without.

    --effort picks how much work the question gets (docs/effort.md); --deep says *when*: it
    queues the run for a worker (with no --effort, the "deep" strategy, as before). So
    `--effort deep` runs the deep tier now, `--deep --effort deep` queues it, and
    `--effort overnight` is always queued.

    --max-cost / --max-tokens / --max-seconds bound what the question may spend: the run stops
    cleanly at the first one hit and the verdict says it was budget-limited.
    """
    from ..api import open_recorder, record_failure
    from ..errors import ManymindsError

    try:
        question_text = read_question(question)
    except ManymindsError as exc:
        # Kept with the undecodable bytes escaped, so the record shows what was refused.
        received = getattr(exc, "received", None) or _raw_question(question)
        record_failure(open_recorder(not no_store), received, council_name or "default", exc)
        fail(exc, as_json=as_json)

    from ..request import AskRequest

    # Unvalidated on purpose: the pipeline refuses a bad question with a stored, precise error.
    effort = effort.lower() if effort else None
    queued = deep or effort == "overnight"
    if effort:
        kwargs = {"effort": effort, "strategy": strategy_name, "params": {"collection": collection} if collection else None}
    else:
        kwargs = _strategy_kwargs(strategy_name or ("deep" if deep else None), collection)
    request = AskRequest.model_construct(
        question=question_text, council=council_name, models=list(models) or None, timeout=timeout, quorum=quorum,
        tier="deep" if queued else "quick", min_confidence=min_confidence, no_memory=no_memory, profile=profile,
        budget=_budget(max_cost, max_tokens, max_seconds),
        **kwargs,
    )
    if queued:
        _submit_deep(request, as_json, no_store)
        return

    live = stdout_is_terminal() and not as_json
    verdict = run_or_fail(_run(request, not no_store, live), as_json=as_json, interrupted=INTERRUPTED)

    if as_json:
        echo_json(verdict.model_dump())
    elif live:
        from rich.console import Console

        from .render import render_verdict

        Console().print(render_verdict(verdict))
    else:
        from .render import plain_verdict

        click.echo(plain_verdict(verdict))


async def _run(request, store: bool, live: bool):  # noqa: ANN001, ANN202
    from ..api import run_request

    if not live:
        return await run_request(request, store=store)
    from rich.live import Live

    from .render import LiveState

    state = LiveState()
    with Live(get_renderable=state.renderable, refresh_per_second=8, transient=True):
        verdict = await run_request(request, store=store, on_event=state.handle)
    from rich.console import Console

    Console().print(state.renderable())  # the members' final answers stay on screen
    return verdict


def _budget(max_cost, max_tokens, max_seconds) -> dict | None:  # noqa: ANN001
    values = {"max_cost": max_cost, "max_tokens": max_tokens, "max_seconds": max_seconds}
    return values if any(v is not None for v in values.values()) else None


def _raw_question(words: tuple[str, ...]) -> str:
    return " ".join(words).encode("utf-8", "backslashreplace").decode("utf-8")


def _submit_deep(request, as_json: bool, no_store: bool) -> None:  # noqa: ANN001
    """Queue the question as a deep job straight in the database (no server needed) and say
    whether a worker will pick it up. The id printed is the id the finished run will have.
    The job runs the "deep" strategy unless --strategy / --collection name another."""
    from ..config import load_settings
    from ..errors import InputError, ManymindsError
    from ..jobs.queue import live_workers, submit_job
    from ..store import open_db

    try:
        if no_store:
            raise InputError("Queued runs (--deep, --effort overnight) are stored by nature (a worker runs them later); drop --no-store.")
        db = open_db()
        job = submit_job(db, request, settings=load_settings())
        workers = live_workers(db)
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    run_id = job["run_id"]
    if as_json:
        echo_json({"id": run_id, "status": job["status"], "tier": "deep", "effort": request.effort, "worker_running": bool(workers),
                   "workers": workers, "wait": f"manyminds runs wait {run_id}"})
        return
    click.echo(run_id)  # alone on stdout: ID=$(manyminds ask --deep "…")
    if workers:
        click.echo(f"Queued {request.effort or 'deep'} run {run_id}; a worker is running (pid {workers[0]['pid']}).", err=True)
    else:
        click.echo(f"Queued {request.effort or 'deep'} run {run_id}. No worker is running: start one with `manyminds serve` "
                   "(or `manyminds serve --worker-only`).", err=True)
    click.echo(f"Follow it with: manyminds runs wait {run_id}", err=True)


def _strategy_kwargs(strategy: str | None, collection: str | None) -> dict:
    """--strategy / --collection as the request's `strategy` and `params` fields. A collection alone means the claim path
    with grounding and no review rounds (crosscheck, review off): one fan-out, then sources."""
    if collection and not strategy:
        return {"strategy": "crosscheck", "params": {"collection": collection, "review": False, "rounds": 0}}
    out: dict = {"strategy": strategy} if strategy else {}
    if collection:
        out["params"] = {"collection": collection}
    return out
