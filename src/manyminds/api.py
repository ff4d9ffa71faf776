"""The Python API: `ask` and its async twin `aask` return the same `Verdict` the CLI prints."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Callable

from .config import Settings, load_settings
from .models.registry import build_registry
from .pipeline.council import Council, run_council
from .pipeline.events import Event, ignore_event
from .pipeline.verdict import Verdict


def resolve_council(
    settings: Settings, council: str | None = None, models: list[str] | None = None
) -> Council:
    registry = build_registry(settings)
    name, council_settings = settings.council(council)
    if models:
        return Council.from_models(list(models), registry, base=council_settings)
    return Council.build(name, council_settings, registry)


async def aask(
    question: str,
    *,
    council: str | None = None,
    models: list[str] | None = None,
    settings: Settings | None = None,
    store: bool = True,
    db_path: str | Path | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> Verdict:
    """Ask the council `question`; every member answers concurrently, a chair synthesises.

    `council` names a council from the settings file (default: the settings' default, which is
    the embedded local one); `models` builds an ad-hoc council from model names instead.
    The run is stored in the user dir's database unless `store=False`.
    """
    settings = settings or load_settings()
    recorder = None
    if store:
        from .store import RunRecorder, open_db

        recorder = RunRecorder(open_db(db_path))
    try:
        resolved = resolve_council(settings, council, models)
    except Exception as exc:
        _record_setup_failure(recorder, question, council or settings.default_council, exc)
        raise
    try:
        return await run_council(question, resolved, recorder=recorder, emit=on_event or ignore_event)
    finally:
        await resolved.aclose()


def ask(question: str, **kwargs) -> Verdict:  # noqa: ANN003 - same keywords as `aask`
    """Synchronous twin of `aask`."""
    return asyncio.run(aask(question, **kwargs))


def _record_setup_failure(recorder, question: str, council: str, exc: Exception) -> None:  # noqa: ANN001
    """A council that cannot even be built (unknown model, bad settings) still leaves a run record."""
    from .errors import ManymindsError

    if recorder is None or not isinstance(exc, ManymindsError):
        return
    run_id = recorder.start(question if isinstance(question, str) else repr(question), council, members=[], settings_snapshot={})
    recorder.fail(run_id, exc.to_dict())
    exc.run_id = run_id  # type: ignore[attr-defined]
