"""The Python API: `ask` / `aask` return the same `Verdict` the CLI prints; `verify` / `averify`
fact-check a text claim by claim (the "verify" strategy) and return a `VerifyReport`.

Every entry point — these functions, the CLI, the server, the job worker, the MCP server —
builds one `AskRequest` (request.py) and runs it with `run_request`, which resolves the council,
applies what `eval fit-trust` learned, and calls `run_council`. They differ only in how they
show the events and the verdict.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .budget import Budget
from .config import Settings, load_settings
from .errors import InputError, ManymindsError
from .models.registry import build_registry
from .models.retry import ProviderLimiter
from .pipeline.council import Council
from .pipeline.events import Event, ignore_event
from .pipeline.run import Recorder, run_council
from .pipeline.verdict import Verdict
from .request import AskRequest

if TYPE_CHECKING:
    from .memory.context import Recall
    from .strategies.verify import VerifyReport

MAX_TEXT_CHARS = 100_000  # of a text to verify


def resolve_council(
    settings: Settings,
    council: str | None = None,
    models: list[str] | None = None,
    *,
    timeout: float | None = None,
    quorum: int | None = None,
    keys: dict[str, str] | None = None,
    limiter: ProviderLimiter | None = None,
) -> Council:
    """The council to ask: a named one from the settings, or an ad-hoc one from model names,
    with per-call overrides of the timeout and the quorum. `limiter` shares per-provider caps
    with other councils (a batch's lines; on Ray, the whole cluster)."""
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
    if limiter is not None:
        resolved.share_limiter(limiter)
    return resolved


def open_recorder(store: bool = True, db_path: str | Path | None = None) -> Recorder | None:
    if not store:
        return None
    from .store import RunRecorder, open_db

    return RunRecorder(open_db(db_path))


async def run_request(
    request: AskRequest,
    *,
    settings: Settings | None = None,
    store: bool = True,
    db_path: str | Path | None = None,
    recorder: Recorder | None = None,
    on_event: Callable[[Event], None] | None = None,
    keys: dict[str, str] | None = None,
    run_id: str | None = None,
    limiter: ProviderLimiter | None = None,
) -> Verdict:
    """Run one request: resolve its council, apply the learned default when it names no
    strategy, and call `run_council`. The verdict is calibrated for exactly this council and
    strategy when `manyminds eval calibrate` fitted one (calibration.py), and abstains below
    `request.min_confidence`, before it is stored. The run is stored (unless `store=False`, or a
    `recorder` is given), refused ones too, with their cause."""
    from .memory.context import give, recall
    from .strategies.tiers import check_effort
    from .trust import learned_default

    recorder = recorder if recorder is not None else open_recorder(store, db_path)
    strategy, params, learned = request.strategy, request.params, None
    try:
        min_confidence = check_min_confidence(getattr(request, "min_confidence", None))
        budget = Budget.checked(getattr(request, "budget", None))
        settings = settings or load_settings()
        resolved = resolve_council(
            settings, request.council, request.models, timeout=request.timeout, quorum=request.quorum, keys=keys,
            limiter=limiter,
        )
        effort = check_effort(getattr(request, "effort", None))
        if effort is not None:
            if strategy is not None and strategy != f"tier:{effort}":
                raise InputError(f"Give an effort tier or a strategy, not both (effort {effort!r}, strategy {strategy!r}).")
            strategy = f"tier:{effort}"
            params = tier_params(effort, settings, params, db_path if db_path is not None else getattr(recorder, "db", None))
        if strategy is None:
            resolved, strategy, learned = learned_default(resolved)
            params = {**learned, **(params or {})} if learned is not None else params
        found = await recall(request.question, settings, profile=getattr(request, "profile", None),
                             no_memory=bool(getattr(request, "no_memory", False)), db_path=db_path)
        give(resolved, found, settings.memory)
    except ManymindsError as exc:
        record_failure(recorder, request.question, request.council or "default", exc, strategy=strategy, run_id=run_id)
        raise
    try:
        notes, calibrate_as = [], None
        if learned is not None:
            from .trust import learned_note

            # a trust-weighted vote's confidence is another quantity than the plain vote's: it is
            # calibrated only by a fit on the eval results of exactly that configuration
            calibrate_as, note = learned_note(resolved, strategy)
            notes.append(note)
        finishing = Finishing(recorder, resolved, min_confidence, notes, found, calibrate_as=calibrate_as)
        verdict = await run_council(
            request.question, resolved, strategy=strategy, params=params, recorder=finishing,
            emit=on_event or ignore_event, run_id=run_id, budget=budget,
        )
        finishing.finalise(verdict)  # already done when the recorder stored it; idempotent
        return verdict
    finally:
        await resolved.aclose()


def tier_params(effort: str, settings: Settings, params: dict[str, Any] | None, db: Any) -> dict[str, Any]:
    """A tier's parameters as the run needs them: the run store (for the quick tier's measured
    member times and the collections of deep and overnight) and, for deep, overnight and auto,
    the search providers configured in the settings — objects, never part of a stored request."""
    out = dict(params or {})
    if db is not None and effort in ("quick", "deep", "overnight", "auto"):
        out.setdefault("db", db)
    if effort in ("deep", "overnight", "auto") and settings.search and "search" not in out:
        from .evidence.search import build_search_providers

        out["search"] = build_search_providers(settings)
    return out


def check_min_confidence(value: Any) -> float | None:
    """`min_confidence` in (0, 1], or None; a request built unvalidated is checked here."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < float(value) <= 1:
        raise InputError(f"min_confidence must be a number with 0 < x <= 1, not {value!r}.")
    return float(value)


class Finishing:
    """The recorder `run_request` hands to `run_council`: before the verdict is stored (and
    streamed) it is calibrated for exactly this council and strategy, and abstains below
    `min_confidence`, and lists what it was given from memory — so the stored run, the event
    and the returned verdict are the same."""

    def __init__(self, recorder: Recorder | None, council: Council, min_confidence: float | None,
                 notes: list[str] | None = None, memory: "Recall | None" = None,
                 calibrate_as: str | None = None) -> None:  # fmt: skip
        from .pipeline.run import NullRecorder

        self.inner = recorder if recorder is not None else NullRecorder()
        self.council, self.min_confidence, self.done = council, min_confidence, False
        self.notes = list(notes or [])  # warnings the stored verdict must carry too
        self.memory = memory
        self.calibrate_as = calibrate_as  # the eval label whose fit applies (default: the verdict's strategy)

    def __getattr__(self, name: str) -> Any:  # e.g. RunRecorder.db
        return getattr(self.inner, name)

    def finalise(self, verdict: Verdict) -> Verdict:
        if self.done:
            return verdict
        from .calibration import abstain, apply_calibration

        self.done = True
        verdict.warnings.extend(self.notes)
        if self.memory is not None:
            self.memory.apply(verdict)
        try:
            apply_calibration(verdict, self.council, self.calibrate_as)
        except Exception as exc:  # noqa: BLE001 - a calibrator must never cost the user the answer
            verdict.calibrated = False
            verdict.warnings.append(f"The calibrator could not be applied ({type(exc).__name__}: {exc}); "
                                    "the confidence is uncalibrated.")  # fmt: skip
        return abstain(verdict, self.min_confidence)

    def start(self, question: str, council: str, **kwargs: Any) -> str:
        return self.inner.start(question, council, **kwargs)

    def sink(self, event: Event) -> None:
        self.inner.sink(event)

    def finish(self, run_id: str, verdict: Verdict) -> None:
        self.inner.finish(run_id, self.finalise(verdict))

    def fail(self, run_id: str, error: dict, status: str = "failed") -> None:
        self.inner.fail(run_id, error, status)

    def mark_incomplete(self, run_id: str, reason: str) -> None:
        self.inner.mark_incomplete(run_id, reason)


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
    min_confidence: float | None = None,
    no_memory: bool = False,
    profile: str | None = None,
    effort: str | None = None,
    max_cost: float | None = None,
    max_tokens: int | None = None,
    max_seconds: float | None = None,
) -> Verdict:
    """Ask the council `question`; every member answers concurrently, a chair synthesises.

    `council` names a council from the settings file (default: the settings' default, which is
    the embedded local one); `models` builds an ad-hoc council from model names instead.
    `timeout` (seconds per member) and `quorum` override the council's settings for this call;
    `keys` maps provider → API key and wins over environment variables and the key file.
    `strategy` names how the council works (see `manyminds.strategies.base.STRATEGIES`:
    "council", "deep", "verify", the baselines, and plugins) with `params` for it; `run_id` (a
    ULID) fixes the stored run's id in advance. With no `strategy`, the council's default is
    used: "council", unless `manyminds eval fit-trust` learned another for exactly this council
    from stored eval runs (trust weights, or its best single member — see docs/evaluation.md);
    the verdict's warnings then say so. With a calibrator for exactly this council and strategy
    (`manyminds eval calibrate`) the confidence is the calibrated probability of being right
    (`confidence_raw` keeps the agreement share); below `min_confidence` the verdict abstains.
    The memories of `profile` (default: `$MANYMINDS_PROFILE`, else `[memory] profile`) closest
    to the question go, as quoted data, to the members whose provider may receive them
    (docs/memory.md); `no_memory=True` asks without them. The verdict lists what was used.
    `max_cost` (USD), `max_tokens` (all calls together) and `max_seconds` are the question's
    budget (budget.py): a run that hits one ends with what it has, `verdict.budget_limited`
    saying which and how much was spent; one that cannot pay for even one member is refused
    before any call. The run is stored in the user dir's database unless `store=False`; a run
    that fails is stored too, with its cause.

    `effort` picks a tier (docs/effort.md): "quick" (the fastest members, early consensus, no
    chair), "standard" (today's council), "deep" (review, revision, grounding), "overnight"
    (deep plus sampling, every source and a report — run here in-process; `manyminds ask
    --effort overnight` queues it as a job instead) or "auto" (the router picks, and
    `verdict.route` says why). An unknown tier is an `InputError` listing them.
    """
    budget = {"max_cost": max_cost, "max_tokens": max_tokens, "max_seconds": max_seconds}
    request = AskRequest.model_construct(
        question=question, council=council, models=models, strategy=strategy, params=params,
        timeout=timeout, quorum=quorum, tier="quick", min_confidence=min_confidence, effort=effort,
        no_memory=no_memory, profile=profile,
        budget=budget if any(v is not None for v in budget.values()) else None,
    )  # unvalidated on purpose: run_council refuses a bad question with a stored, precise error
    return await run_request(
        request, settings=settings, store=store, db_path=db_path, on_event=on_event, keys=keys, run_id=run_id
    )


def ask(question: str, **kwargs: Any) -> Verdict:
    """Synchronous twin of `aask` (same keywords, same `Verdict`)."""
    return asyncio.run(aask(question, **kwargs))


async def averify(
    text: str,
    *,
    council: str | None = None,
    models: list[str] | None = None,
    collection: str | None = None,
    question: str | None = None,
    search: Any = None,
    settings: Settings | None = None,
    store: bool = True,
    db_path: str | Path | None = None,
    on_event: Callable[[Any], None] | None = None,
    timeout: float | None = None,
    quorum: int | None = None,
    keys: dict[str, str] | None = None,
    extract: str = "auto",
    judge: str = "auto",
    recorder: Recorder | None = None,
    limiter: ProviderLimiter | None = None,
) -> "VerifyReport":
    """Fact-check `text` claim by claim with the council (or the ad-hoc council of `models`).

    `collection` names a document collection to consult (`manyminds docs add`), `search` search
    providers; `question` is what the text answers, when it answers one (it makes short answers
    checkable claims). The run is stored with strategy "verify" unless `store=False` (or in
    `recorder`, when given). Raises `InputError` for an empty text and for an unknown or empty
    collection.
    """
    from .strategies.verify import VerifyReport, VerifyVerdict

    recorder = recorder if recorder is not None else open_recorder(store, db_path)
    try:
        if not isinstance(text, str) or not text.strip():
            raise InputError("The text to verify is empty.")
        if len(text) > MAX_TEXT_CHARS:
            raise InputError(f"The text is {len(text):,} characters long; verify takes at most {MAX_TEXT_CHARS:,}.")
    except ManymindsError as exc:
        record_failure(recorder, text, council or "default", exc, strategy="verify")
        raise
    # The collection is looked up in the database the run is stored in.
    db = db_path if (collection and db_path) else (getattr(recorder, "db", None) if collection else None)
    params = {"question": question, "collection": collection, "search": search, "db": db, "extract": extract, "judge": judge}
    request = AskRequest.model_construct(
        question=text, council=council, models=models, strategy="verify", params=params,
        timeout=timeout, quorum=quorum, tier="quick", no_memory=True,  # a text is checked as written
    )
    verdict = await run_request(request, settings=settings, recorder=recorder, store=store, on_event=on_event, keys=keys,
                                limiter=limiter)
    assert isinstance(verdict, VerifyVerdict)
    return VerifyReport.from_verdict(verdict, text=text.strip(), question=question, collection=collection)


def verify(text: str, **kwargs: Any) -> "VerifyReport":
    """Synchronous twin of `averify` (same keywords, same `VerifyReport`)."""
    return asyncio.run(averify(text, **kwargs))


def record_failure(
    recorder: Recorder | None, question: Any, council: str, exc: ManymindsError, *, strategy: str | None = None,
    run_id: str | None = None,
) -> None:
    """A run refused before the pipeline started (bad settings, unknown model, unreadable input)
    still leaves a run record with its cause."""
    if recorder is None:
        return
    text = question if isinstance(question, str) else repr(question)
    run_id = recorder.start(text, council, members=[], settings_snapshot={}, strategy=strategy, run_id=run_id)
    recorder.fail(run_id, exc.to_dict())
    exc.run_id = run_id  # type: ignore[attr-defined]
