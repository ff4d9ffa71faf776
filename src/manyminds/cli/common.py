"""Helpers shared by the CLI commands: error reporting and output mode."""

from __future__ import annotations

import json
import sys
from typing import Any, Coroutine, NoReturn

import click


INTERRUPTED = "Interrupted; the run is stored as incomplete."


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def fail(exc: Exception, *, as_json: bool = False) -> NoReturn:
    """Report a manyminds error precisely and exit with its code."""
    from ..errors import ManymindsError

    code = exc.exit_code if isinstance(exc, ManymindsError) else 1
    run_id = getattr(exc, "run_id", None)
    if as_json:
        doc: dict[str, Any] = {"error": exc.to_dict() if isinstance(exc, ManymindsError) else {"type": type(exc).__name__, "message": str(exc)}}
        if run_id:
            doc["run_id"] = run_id
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    message = f"Error: {exc}"
    if run_id and "stored as" not in str(exc):
        message += f"\n(run {run_id} stored as failed)"
    click.echo(message, err=True)
    sys.exit(code)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def decode_utf8(data: bytes, what: str) -> str:
    """`data` as text, or an `InputError` naming the first bad byte and its position. The
    error keeps the input with bad bytes escaped (`received`), so the run record loses nothing."""
    from ..errors import InputError

    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        error = InputError(
            f"{what} is not valid UTF-8: byte 0x{data[exc.start]:02x} at position {exc.start} "
            f"cannot be decoded. Convert it first, e.g. iconv -f latin1 -t utf-8."
        )
        error.received = data.decode("utf-8", "backslashreplace")  # type: ignore[attr-defined]
        raise error from None


def run_or_fail(coro: Coroutine[Any, Any, Any], *, as_json: bool, interrupted: str) -> Any:
    """Run a command's coroutine: a manyminds error is reported with its exit code, Ctrl-C
    says what was kept (`interrupted`) and exits 130."""
    import asyncio

    from ..errors import ManymindsError

    try:
        return asyncio.run(coro)
    except ManymindsError as exc:
        fail(exc, as_json=as_json)
    except KeyboardInterrupt:
        click.echo(interrupted, err=True)
        sys.exit(130)


def budget_options(command: Any) -> Any:
    """--max-cost / --max-tokens / --max-seconds (budget.py), shared by `ask` and `eval run`.
    Zero or a negative value is refused by click with the option's name (exit code 2)."""
    command = click.option("--max-seconds", type=click.FloatRange(min=0, min_open=True), metavar="S",
                           help="Stop at S seconds of wall time (> 0); keep what finished.")(command)  # fmt: skip
    command = click.option("--max-tokens", type=click.IntRange(min=1), metavar="N",
                           help="Stop at N tokens, input + output of every call (>= 1).")(command)  # fmt: skip
    return click.option("--max-cost", type=click.FloatRange(min=0, min_open=True), metavar="USD",
                        help="Stop at USD spent on model calls (> 0; needs every model's price).")(command)  # fmt: skip
