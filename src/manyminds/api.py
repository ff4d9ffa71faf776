"""The Python API: `ask` and its async twin `aask` return the same `Verdict` the CLI prints.

The CLI calls `aask` too; it only adds the live view and the way the verdict is printed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Callable

from .config import Settings, load_settings
from .errors import InputError, ManymindsError
from .models.registry import build_registry
from .pipeline.council import Council, run_council
from .pipeline.events import Event, ignore_event
from .pipeline.verdict import Verdict


def resolve_council(
    settings: Settings,
    council: str | None = None,
    models: list[str] | None = None,
    *,
    timeout: float | None = None,
    quorum: int | None = None,
    keys: dict[str, str] | None = None,
) -> Council:
    """The council to ask: a named one from the settings, or an ad-hoc one from model names,
    with per-call overrides of the timeout and the quorum."""
    registry = build_registry(settings)
    name, council_settings = settings.council(council)
    if models:
        resolved = Council.from_models(list(models), registry, base=council_settings, keys=keys)
    else:
        resolved = Council.build(name, council_settings, registry, keys)
    overrides: dict[str, Any] = {}
    if timeout is not None:
        overrides["timeout"] = timeout
    if quorum is not None:
        if quorum > len(resolved.members):
            raise InputError(f"A quorum of {quorum} is larger than the council's {len(resolved.members)} members.")
        overrides["quorum"] = quorum
    if overrides:
        resolved.settings = resolved.settings.model_copy(update=overrides)
    return resolved


def open_recorder(store: bool = True, db_path: str | Path | None = None) -> Any:
    if not store:
        return None
    from .store import RunRecorder, open_db

    return RunRecorder(open_db(db_path))


async def aask(
    question: str,
    *,
    council: str | None = None,
    models: list[str] | None = None,
    settings: Settings | None = None,
    store: bool = True,
    db_path: str | Path | None = None,
    on_event: Callable[[Event], None] | None = None,
    timeout: float | None = None,
    quorum: int | None = None,
    keys: dict[str, str] | None = None,
    strategy: str | None = None,
    params: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> Verdict:
    """Ask the council `question`; every member answers concurrently, a chair synthesises.

    `council` names a council from the settings file (default: the settings' default, which is
    the embedded local one); `models` builds an ad-hoc council from model names instead.
    `timeout` (seconds per member) and `quorum` override the council's settings for this call;
    `keys` maps provider → API key and wins over environment variables and the key file.
    `strategy` names how the council works (see `manyminds.pipeline.strategies.STRATEGIES`:
    "council", "deep", and the baselines) with `params` for it; `run_id` (a ULID) fixes the
    stored run's id in advance. With no `strategy`, the council's default is used: "council",
    unless `manyminds eval fit-trust` learned another for exactly this council from stored
    eval runs (trust weights, or its best single member — see docs/evaluation.md); the
    verdict's warnings then say so.
    The run is stored in the user dir's database unless `store=False`; a run that fails is
    stored too, with its cause.
    """
    recorder = open_recorder(store, db_path)
    try:
        settings = settings or load_settings()
        resolved = resolve_council(settings, council, models, timeout=timeout, quorum=quorum, keys=keys)
        learned = None
        if strategy is None:
            resolved, strategy, learned = learned_default(resolved)
            params = {**learned, **(params or {})} if learned is not None else params
    except ManymindsError as exc:
        record_failure(recorder, question, council or "default", exc, strategy=strategy, run_id=run_id)
        raise
    try:
        verdict = await run_council(
            question, resolved, strategy=strategy, params=params, recorder=recorder,
            emit=on_event or ignore_event, run_id=run_id,
        )
        if learned is not None:
            verdict.warnings.append(
                f"Strategy {verdict.strategy!r} with the weights learned from stored eval runs for this council "
                "(manyminds eval fit-trust; delete trust.json in the user dir to undo)."
            )
        return verdict
    finally:
        await resolved.aclose()


def learned_default(council: Council) -> tuple[Council, str, dict[str, Any] | None]:
    """(council, strategy, params) for a call that named no strategy: "council", or what
    `eval fit-trust` recorded for exactly this council (params is then not None)."""
    from .eval.trust import apply_learned, trust_path

    if not trust_path().exists():  # the common case: no eval was ever fitted
        return council, "council", None
    resolved, strategy, params = apply_learned(council, "council")
    if resolved is council and strategy == "council" and not params:
        return council, "council", None
    return resolved, strategy, params


def ask(question: str, **kwargs: Any) -> Verdict:
    """Synchronous twin of `aask` (same keywords, same `Verdict`)."""
    return asyncio.run(aask(question, **kwargs))


def record_failure(
    recorder: Any, question: Any, council: str, exc: ManymindsError, *, strategy: str | None = None, run_id: str | None = None
) -> None:
    """A run refused before the pipeline started (bad settings, unknown model, unreadable input)
    still leaves a run record with its cause."""
    if recorder is None:
        return
    text = question if isinstance(question, str) else repr(question)
    run_id = recorder.start(text, council, members=[], settings_snapshot={}, strategy=strategy, run_id=run_id)
    recorder.fail(run_id, exc.to_dict())
    exc.run_id = run_id  # type: ignore[attr-defined]
