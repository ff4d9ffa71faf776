"""Running a batch: each line through the API the way `manyminds ask` / `verify` run one, stored
as it finishes, written to the JSONL as it finishes.

    lines ─▶ run_line (api.run_request, or api.averify for a text) ─▶ outcome + its run in `runs`
          ─▶ BatchStore.add_line (which lines are done) ─▶ one JSON line in --out

`run_line` is the one per-line function: in-process it gets a `RunRecorder`; on Ray
(`distributed/batch_tasks.py`) a worker calls it with a `TapeRecorder` and the driver replays
the tape into the `RunRecorder`, then stores the line — the driver alone writes the database.
A line that fails (bad line, unknown council, quorum not met) is an outcome with an error that
names its line number; it never stops the others.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import ManymindsError
from ..models.retry import ProviderLimiter
from .lines import BatchLine, LineError
from .store import BatchStore


async def run_line(line: BatchLine, *, settings: Any, recorder: Any, defaults: dict[str, Any],
                   limiter: ProviderLimiter | None = None) -> dict[str, Any]:  # fmt: skip
    """One line: the outcome the JSONL holds — {"line", "id", "ok", "run_id", "kind",
    "result" (the verdict, or the verify report)} or {…, "error"} — and its run recorded."""
    from ..api import averify, run_request
    from ..request import AskRequest

    council = line.council or defaults.get("council")
    models = line.models or defaults.get("models")
    base = {"line": line.line, "id": line.key, "kind": "verify" if line.verify else "ask"}
    try:
        if line.verify:
            report = await averify(line.text or "", council=council, models=models, collection=line.collection,
                                   settings=settings, recorder=recorder, limiter=limiter)  # fmt: skip
            return {**base, "ok": True, "run_id": report.run_id, "result": report.model_dump(mode="json")}
        strategy = line.strategy or defaults.get("strategy")
        params: dict[str, Any] | None = None
        if line.collection:  # as `ask --collection`: claims checked against the documents
            strategy = strategy or "crosscheck"
            params = {"collection": line.collection} if strategy != "crosscheck" else {
                "collection": line.collection, "review": False, "rounds": 0}  # fmt: skip
        # Unvalidated on purpose, as in `manyminds ask`: the pipeline refuses a bad question with
        # a stored, precise error. No personal memory: a batch is a file of questions, not the
        # user's conversation, and on Ray a worker must not open the user's store to look.
        request = AskRequest.model_construct(question=line.question, council=council, models=models, strategy=strategy,
                                             params=params, timeout=None, quorum=None, tier="quick", min_confidence=None,
                                             no_memory=True)  # fmt: skip
        verdict = await run_request(request, settings=settings, recorder=recorder, limiter=limiter)
        return {**base, "ok": True, "run_id": verdict.run_id, "result": verdict.model_dump(mode="json")}
    except ManymindsError as exc:
        error = exc.to_dict()
        error["message"] = f"line {line.line}: {error.get('message', exc)}"
        return {**base, "ok": False, "run_id": getattr(exc, "run_id", None), "error": error, "exit_code": exc.exit_code}


def bad_line_outcome(bad: LineError) -> dict[str, Any]:
    return {"line": bad.line, "id": bad.key, "kind": None, "ok": False, "run_id": None, "error": bad.to_error(),
            "exit_code": 2}


@dataclass
class BatchSummary:
    batch_id: str
    total: int
    ok: int = 0
    failed: int = 0
    skipped: int = 0  # done by an earlier attempt of this batch
    errors: list[str] = field(default_factory=list)  # "line N: …", in file order
    exit_code: int = 0  # the highest exit code of a failed line (2 bad input, 3 no answer, …)

    def to_dict(self) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "total": self.total, "ok": self.ok, "failed": self.failed,
                "skipped": self.skipped, "errors": self.errors, "exit_code": self.exit_code}  # fmt: skip


class BatchRunner:
    """Runs the lines not done yet, `concurrency` at a time (in-process) or as Ray tasks
    (`ray`, a `distributed.batch_tasks.RayBatch`), storing each line as it finishes."""

    def __init__(self, lines: list[BatchLine | LineError], *, db: Any, settings: Any, defaults: dict[str, Any],
                 concurrency: int = 4, ray: Any = None,
                 on_line: Callable[[dict[str, Any]], None] | None = None) -> None:  # fmt: skip
        self.lines, self.db, self.settings, self.defaults = lines, db, settings, defaults
        self.store = BatchStore(db)
        self.concurrency, self.ray = concurrency, ray
        self.on_line = on_line or (lambda outcome: None)
        self.limiter = ProviderLimiter()  # the batch's lines share the per-provider caps
        self.batch_id: str | None = None

    def start(self, source: str, resume_id: str | None = None) -> str:
        if resume_id is None:
            self.batch_id = self.store.create(source, self.defaults, len(self.lines))
        else:
            self.batch_id = self.store.get(resume_id)["id"]
            self.store.claim(self.batch_id, len(self.lines))
        return self.batch_id

    def recorder(self) -> Any:
        from ..store import RunRecorder

        return RunRecorder(self.db)

    async def run(self, out: IO[str] | None = None) -> BatchSummary:
        assert self.batch_id is not None, "start() first"
        done = {o["id"]: o for o in self.store.lines(self.batch_id) if o["ok"]}
        summary = BatchSummary(self.batch_id, total=len(self.lines))
        outcomes: dict[int, dict[str, Any]] = {}

        def keep(outcome: dict[str, Any], stored: bool = False) -> None:
            if not stored:
                self.store.add_line(self.batch_id, outcome)
            outcomes[outcome["line"]] = outcome
            if outcome["ok"]:
                summary.ok += 1
            else:
                summary.failed += 1
                summary.exit_code = max(summary.exit_code, int(outcome.get("exit_code") or 1))
            if out is not None:
                shown = {k: v for k, v in outcome.items() if k != "exit_code"}  # the summary carries it
                out.write(json.dumps(shown, ensure_ascii=False, default=str) + "\n")
                out.flush()
            self.on_line(outcome)

        todo: list[BatchLine] = []
        for line in self.lines:
            if line.key in done:
                summary.skipped += 1
                keep({**done[line.key], "line": line.line}, stored=True)
            elif isinstance(line, LineError):
                keep(bad_line_outcome(line))
            else:
                todo.append(line)
        try:
            if self.ray is not None:
                await self.ray.run_lines(self, todo, keep)
            else:
                await self._run_here(todo, keep)
        except BaseException as exc:
            status = "incomplete" if isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)) else "failed"
            self.store.finish(self.batch_id, status, {"type": type(exc).__name__, "message": str(exc)})
            raise
        summary.errors = [o["error"]["message"] for _, o in sorted(outcomes.items()) if not o["ok"]]
        self.store.finish(self.batch_id, "complete")
        return summary

    async def _run_here(self, todo: list[BatchLine], keep: Callable[[dict[str, Any]], None]) -> None:
        queue: asyncio.Queue[BatchLine] = asyncio.Queue()
        for line in todo:
            queue.put_nowait(line)

        async def worker() -> None:
            while not queue.empty():
                line = queue.get_nowait()
                keep(await run_line(line, settings=self.settings, recorder=self.recorder(), defaults=self.defaults,
                                    limiter=self.limiter))  # fmt: skip

        await asyncio.gather(*(worker() for _ in range(min(self.concurrency, max(1, len(todo))))))


def open_out(path: Path | None) -> IO[str] | None:
    return None if path is None else path.open("w", encoding="utf-8")
