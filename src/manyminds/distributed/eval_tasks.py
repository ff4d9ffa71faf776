"""`manyminds eval run --ray`: the runner's pairs as Ray tasks; the driver stores each result.

    driver (EvalRunner.run)                      worker process (one Ray task per pair)
    ─ per phase: put a `PairJob` (config, run  ─▶ build the council from the recipe (once per
      id, meta, the run's cache so far)            process), a cluster limiter, a CallCache
    ─ keep ≤ `concurrency` tasks in flight        ─ `EvalRunner.compute_pair` — the in-process
    ─ `EvalRunner.keep` each row as it arrives ◀─   per-pair function: run, grade, no writes

One mechanism: a worker calls the same `compute_pair` the in-process loop calls, on a council
built from the same settings; only where it runs changes. A worker that dies mid-pair (killed,
out of memory, node lost) has its task retried by Ray (`max_retries`); nothing of it was stored,
so nothing is lost or doubled. A pair whose retries are used up is not stored either: the run
ends failed, naming how many, and `--resume` runs exactly those again.

The call cache is per worker process, seeded at each phase with what the run has stored: calls
two strategies of one item share are made once per worker rather than once per run (tokens are
charged to each strategy either way, so results do not change).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ..errors import ManymindsError
from .limits import ClusterLimiter, slots_actor
from .ray_env import import_ray

MAX_RETRIES = 3  # per task, when its worker dies


@dataclass
class PairJob:
    """What every task of one phase shares (put in the object store once)."""

    key: str
    recipe: Any
    config: Any
    run_id: str
    meta: dict[str, Any]
    sizes: dict[str, int]
    cache: dict[str, dict[str, Any]]
    slots: Any
    per_provider: int | None = None
    borrowed: frozenset[str] = frozenset()  # the cache keys that came from other runs (--cache-from)


@dataclass
class RayEval:
    """How `EvalRunner` runs pairs on Ray: the recipe workers build the council from."""

    recipe: Any
    lease_s: float = 900.0
    retries: int = MAX_RETRIES
    phase: int = field(default=0, init=False)
    slots: Any = field(default=None, init=False)  # the run's slot actor (its `stats` show the caps held)

    async def run_pairs(self, runner: Any, pairs: list[tuple[Any, Any]], progress: Any) -> None:
        ray = import_ray()
        self.phase += 1
        if self.slots is None:  # one actor for the whole run; it lives while this handle does
            self.slots = slots_actor(ray, f"manyminds-slots-{runner.run_id}", self.lease_s)
        slots = self.slots
        job = PairJob(key=f"{runner.run_id}:{self.phase}", recipe=self.recipe, config=runner.config, run_id=runner.run_id,
                      meta=runner.meta, sizes=runner.sizes, cache=dict(runner.cache.stored) if runner.config.cache else {},
                      slots=slots, per_provider=runner.config.per_provider, borrowed=runner.cache.borrowed)  # fmt: skip
        job_ref = ray.put(job)
        task = ray.remote(num_cpus=1, max_retries=self.retries, retry_exceptions=False)(_pair_task)
        pending = iter(pairs)
        in_flight: dict[asyncio.Future[Any], tuple[Any, Any]] = {}
        lost: list[str] = []

        def submit() -> bool:
            pair = next(pending, None)
            if pair is None:
                return False
            ref = task.remote(job.key, [job_ref], pair[0], pair[1])  # the ref in a list: fetched once per process
            in_flight[asyncio.wrap_future(ref.future())] = pair
            return True

        while len(in_flight) < runner.config.concurrency and submit():
            pass
        while in_flight:
            done, _ = await asyncio.wait(list(in_flight), return_when=asyncio.FIRST_COMPLETED)
            for fut in done:
                item, planned = in_flight.pop(fut)
                try:
                    row, entries = fut.result()
                except Exception as exc:  # noqa: BLE001 - the worker died past its retries: not stored, resumable
                    lost.append(f"{item.dataset}/{item.id} × {planned.label}: {type(exc).__name__}: {str(exc)[:200]}")
                else:
                    row = runner.keep(row, entries)
                    progress.record(planned.label, bool(row["correct"]), row["error"] is not None)
                    runner.on_progress(progress, row)
                submit()
        if lost:
            raise PairsLost(f"{len(lost)} (item, strategy) pairs failed on Ray after {self.retries} retries and were "
                            f"not stored (first: {lost[0]}); the rest are stored. Resume with "
                            f"`manyminds eval run --resume {runner.run_id}`.")  # fmt: skip


class PairsLost(ManymindsError):
    """Some pairs could not be computed on the cluster (their workers kept dying)."""


# --- the worker side ----------------------------------------------------------------------

_state: dict[str, Any] = {}  # per worker process: the job it serves, its council, its loop


def _worker_for(key: str, holder: list[Any]) -> Any:
    state = _state.get("job")
    if state is not None and state.key == key:
        return state
    if state is not None:
        state.close()
    ray = import_ray()
    state = _state["job"] = _WorkerState(ray.get(holder[0]), _state.setdefault("loop", asyncio.new_event_loop()))
    return state


class _WorkerState:
    """One worker process's share of a phase: the council (from the recipe, with the cluster
    limiter and this process's cache) and an `EvalRunner` that only computes."""

    def __init__(self, job: PairJob, loop: asyncio.AbstractEventLoop) -> None:
        from ..eval.cache import CallCache, with_cache
        from ..eval.runner import EvalRunner

        self.key, self.loop = job.key, loop
        self.limiter = ClusterLimiter(job.slots, job.per_provider)
        base = job.recipe.build_council().share_limiter(self.limiter)
        self.base = base
        self.judge = job.recipe.build_model(job.config.judge) if job.config.judge else None
        self.runner = EvalRunner(base, job.config, {}, judge_model=self.judge)
        self.runner.run_id, self.runner.meta, self.runner.sizes = job.run_id, job.meta, job.sizes
        self.runner.cache = CallCache(job.cache, job.borrowed)
        self.council = with_cache(base, self.runner.cache) if job.config.cache else base

    def compute(self, item: Any, planned: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        row, entries = self.loop.run_until_complete(self.runner.compute_pair(self.council, item, planned))
        if self.limiter.broken is not None:
            # The pair's error is the cluster's, not the strategy's: fail the task (not stored,
            # so `--resume` runs the pair again) rather than store it as a wrong answer.
            broken, self.limiter.broken = self.limiter.broken, None
            raise RuntimeError(f"the run's slot actor failed: {broken}") from broken
        return row, entries

    def close(self) -> None:
        self.loop.run_until_complete(self.base.aclose())
        if self.judge is not None:
            self.loop.run_until_complete(self.judge.aclose())


def _pair_task(key: str, holder: list[Any], item: Any, planned: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """One (item, strategy) pair on a worker: the row and the cache entries it added."""
    return _worker_for(key, holder).compute(item, planned)
