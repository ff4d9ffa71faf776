"""`manyminds batch --ray`: each line as a Ray task; the driver replays and stores each result.

A worker calls `batch.runner.run_line` — the in-process per-line function — with a
`TapeRecorder` and a `ClusterLimiter`, and returns the outcome and the tape; the driver replays
the tape into its `RunRecorder` (the run appears in `runs` under the id the worker gave it) and
stores the line. A worker that dies has its task retried by Ray; a line whose retries are used
up is stored as failed (its error says so), and `--resume` runs it again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable

from .limits import ClusterLimiter, slots_actor
from .ray_env import import_ray

MAX_RETRIES = 3


@dataclass
class RayBatch:
    settings: Any
    lease_s: float = 900.0
    retries: int = MAX_RETRIES
    slots: Any = field(default=None, init=False)

    async def run_lines(self, runner: Any, lines: list[Any], keep: Callable[[dict[str, Any]], None]) -> None:
        from .tape import replay

        ray = import_ray()
        if self.slots is None:  # one actor for the whole run; it lives while this handle does
            self.slots = slots_actor(ray, f"manyminds-slots-{runner.batch_id}", self.lease_s)
        slots = self.slots
        shared = ray.put((self.settings, runner.defaults, slots))
        task = ray.remote(num_cpus=1, max_retries=self.retries, retry_exceptions=False)(_line_task)
        pending = iter(lines)
        in_flight: dict[asyncio.Future[Any], Any] = {}

        def submit() -> None:
            line = next(pending, None)
            if line is not None:
                in_flight[asyncio.wrap_future(task.remote(runner.batch_id, [shared], line).future())] = line

        for _ in range(max(1, runner.concurrency)):
            submit()
        while in_flight:
            done, _ = await asyncio.wait(list(in_flight), return_when=asyncio.FIRST_COMPLETED)
            for fut in done:
                line = in_flight.pop(fut)
                try:
                    outcome, tape = fut.result()
                except Exception as exc:  # noqa: BLE001 - the worker died past its retries: a failed line, resumable
                    outcome = {"line": line.line, "id": line.key, "kind": "verify" if line.verify else "ask", "ok": False,
                               "run_id": None, "error": {"type": type(exc).__name__,
                               "message": f"line {line.line}: failed on Ray after {self.retries} retries: {str(exc)[:300]}"}}  # fmt: skip
                else:
                    replay(tape, runner.recorder())
                keep(outcome)
                submit()


_state: dict[str, Any] = {}


def _line_task(batch_id: str, holder: list[Any], line: Any) -> tuple[dict[str, Any], list[Any]]:
    from ..batch.runner import run_line
    from .tape import TapeRecorder

    if _state.get("batch") != batch_id:
        settings, defaults, slots = import_ray().get(holder[0])
        _state.update(batch=batch_id, settings=settings, defaults=defaults, limiter=ClusterLimiter(slots))
    loop = _state.setdefault("loop", asyncio.new_event_loop())
    tape = TapeRecorder()
    outcome = loop.run_until_complete(run_line(line, settings=_state["settings"], recorder=tape,
                                               defaults=_state["defaults"], limiter=_state["limiter"]))  # fmt: skip
    broken, _state["limiter"].broken = _state["limiter"].broken, None
    if broken is not None:  # the cluster failed the line, not the council: retried or failed, never "done"
        raise RuntimeError(f"the batch's slot actor failed: {broken}") from broken
    return outcome, tape.calls
