"""Running an evaluation: every (item, strategy) pair through `run_council`, graded and stored.

    expand_strategies (labels × items)    ─▶ phase 1: strategies that need nothing measured
                                          ─▶ phase 2: self-consistency (k from phase 1's tokens)
                                                      and "+trust" variants (weights from phase 1)
    each pair: run_council(question, council, strategy, params) ─▶ grade ─▶ store

One mechanism: a pair is one call of `run_council` (pipeline/run.py) with a strategy from
`strategies/base.py: STRATEGIES` — the harness has no fan-out of its own. The pairs share the
council's models and so its `ProviderLimiter` (models/wrappers.py), so the per-provider caps
hold across the whole run, and at most `concurrency` pairs are in flight.

Around the loop: `plan.py` turns strategy labels into the plan (and checks a resume asks the
same), `items.py` says what each item is asked, `cache.py` shares deterministic calls between
strategies (tokens are still charged to each).

A budget (`--max-cost/--max-tokens/--max-seconds`, budget.py) covers one invocation of the run:
one `BudgetTracker` shared by every pair in flight, charged by the council's `Budgeted` wrapper
(cache hits are free, so they do not count). Once it is spent no new pair starts; a pair the
budget cut short is not stored (a resume runs it again), and the run ends `incomplete`, its meta
saying which budget stopped it — `--resume` continues it, with a new budget.

A pair never crashes the run: a strategy error (quorum not met, …) is stored with the item and
counts as wrong; a grader that cannot read the answer counts it wrong and keeps the raw text.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..budget import Budget, BudgetTracker, limit_sentence
from ..errors import InputError, ManymindsError
from ..models.base import Model
from ..pipeline.council import Council
from ..pipeline.run import run_council
from .cache import TALLY, CallCache, Tally, with_cache
from .items import PROMPT_SUFFIX, prompt_for
from .plan import Planned, check_same_plan, choose_k, expand_strategies, item_fold
from .store import EvalStore

# --- progress -----------------------------------------------------------------------------


@dataclass
class Progress:
    """What a progress display needs; `update` is called after every stored pair."""

    total: int
    done: int = 0
    skipped: int = 0  # stored by an earlier attempt of this run
    started: float = field(default_factory=time.monotonic)
    correct: dict[str, int] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    phase: int = 1

    def record(self, label: str, correct: bool, error: bool) -> None:
        self.done += 1
        self.seen[label] = self.seen.get(label, 0) + 1
        self.correct[label] = self.correct.get(label, 0) + int(correct)
        self.errors += int(error)

    def accuracy(self, label: str) -> float | None:
        n = self.seen.get(label, 0)
        return self.correct.get(label, 0) / n if n else None

    @property
    def eta_s(self) -> float | None:
        if not self.done:
            return None
        rate = (time.monotonic() - self.started) / self.done
        return rate * (self.total - self.skipped - self.done)

    def summary(self, labels: list[str] | None = None, width: int = 4) -> str:
        """"council 0.52 · majority 0.48 …" — running accuracy of the labels with results."""
        shown = [lab for lab in (labels or list(self.seen)) if self.seen.get(lab)][:width]
        return " · ".join(f"{lab} {self.accuracy(lab):.2f}" for lab in shown)


# --- the run ------------------------------------------------------------------------------


@dataclass
class EvalConfig:
    """Everything that defines a run; stored with it, and what `--resume` runs again."""

    datasets: list[str]
    strategies: list[str]
    limit: int | None = None
    seed: int = 0
    council: str | None = None
    models: list[str] | None = None
    categories: list[str] | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    judge: str | None = None
    judge_sample: int = 50
    concurrency: int = 4
    per_provider: int | None = None
    cache: bool = True
    trust_from: list[str] | None = None  # eval run ids whose single results give the trust weights
    # Which of the fitted weights a "+trust" row votes with (eval/trust.py TRUST_SCOPES). "overall"
    # by default because that is what `ask` applies: the eval then measures what users get.
    trust_scope: str = "overall"
    # Earlier eval runs whose call caches this one starts from: a changed strategy re-scored, or
    # a larger slice grown from a smaller one, without asking the models the same calls again.
    cache_from: list[str] | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise InputError("--limit must be at least 1 (leave it out to use every item).")
        if not self.datasets:
            raise InputError("Name at least one dataset with --dataset.")
        if not self.strategies:
            raise InputError("Name at least one strategy with --strategy (or --strategy all).")
        if self.concurrency < 1:
            raise InputError("--concurrency must be at least 1.")
        from .trust import TRUST_SCOPES

        if self.trust_scope not in TRUST_SCOPES:
            raise InputError(f"Unknown trust scope {self.trust_scope!r}: use one of {', '.join(TRUST_SCOPES)}.")
        if self.cache_from and not self.cache:
            raise InputError("--cache-from reuses calls through the call cache, which --no-cache turns off; drop one.")

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class EvalRunner:
    """Runs a plan against a council and stores each pair as it finishes.

    `store` None keeps results in memory only (the overhead benchmark measures both).
    """

    def __init__(
        self,
        council: Council,
        config: EvalConfig,
        items: dict[str, list[Any]],
        *,
        store: EvalStore | None = None,
        on_progress: Callable[[Progress, dict[str, Any] | None], None] | None = None,
        judge_model: Model | None = None,
        ray: Any = None,
        budget: Budget | None = None,
    ) -> None:
        self.config = config
        self.items = items
        self.store = store
        self.on_progress = on_progress or (lambda progress, row: None)
        self.judge_model = judge_model
        self.base_council = council
        self.plan = expand_strategies(config.strategies, council, config.params)
        self.results: list[dict[str, Any]] = []
        self.meta: dict[str, Any] = {}
        self.run_id: str | None = None
        self.cache = CallCache()
        self.council = council
        self.sizes = {name: len(v) for name, v in items.items()}  # what the judge's sample is drawn from
        self.ray = ray  # a `distributed.eval_tasks.RayEval`: where the pairs run; None runs them here
        self.budget = budget
        self.tracker: BudgetTracker | None = None

    # --- set-up -----------------------------------------------------------------------

    def plan_doc(self) -> dict[str, Any]:
        from .trust import answer_count

        pairs = sum(len(v) for v in self.items.values()) * len(self.plan)
        return {
            "items": {name: [i.id for i in items] for name, items in self.items.items()},
            "strategies": [{"label": p.label, "strategy": p.strategy, "params": p.params, "trust": p.trust} for p in self.plan],
            "total_pairs": pairs,
            "prompt_suffix": PROMPT_SUFFIX,
            "answers": {name: answer_count(items[0]) for name, items in self.items.items() if items},
        }

    def start(self, run_id: str | None = None) -> str:
        """Create the stored run, or take over `run_id` (a resume: its stored pairs are skipped,
        its cache and its choices — k, weights — reused)."""
        self._precheck_budget()
        if self.store is None:
            self.run_id = run_id or "memory"
            return self.run_id
        if run_id is None:
            if self.config.cache_from:  # full ids in the stored config, so the report names them exactly
                self.config.cache_from = list(dict.fromkeys(self.store.resolve(r) for r in self.config.cache_from))
            self.run_id = self.store.create_run(self.base_council.name, self.config.to_dict(), self.base_council.describe(), self.plan_doc())
        else:
            run = self.store.get_run(run_id)
            self.run_id = run["id"]
            check_same_plan(run, self.plan_doc(), self.base_council.describe())
            self.store.claim(self.run_id)
            self.meta = run.get("meta") or {}
            self.results = self.store.items(self.run_id)
            if self.config.cache:
                self.cache = CallCache(self.store.load_cache(self.run_id))
        if self.config.cache:
            for source in self.config.cache_from or []:  # a source deleted since adds nothing
                self.cache.borrow(self.store.load_cache(source))
        return self.run_id

    def _precheck_budget(self) -> None:
        """A budget too small for even one member's call on the shortest question is refused
        before a run is stored or a model asked; otherwise every pair would be stored as an
        error and the run would look complete."""
        prompts = [prompt_for(item) for items in self.items.values() for item in items]
        if self.budget is not None and prompts:
            BudgetTracker(self.budget).precheck(min(prompts, key=len), self.base_council.members, self.base_council.chair_model)

    # --- running ----------------------------------------------------------------------

    async def run(self) -> list[dict[str, Any]]:
        """Every pair not stored yet, phase by phase. Returns every result of the run."""
        if self.run_id is None:
            self.start()
        self.tracker = BudgetTracker(self.budget) if self.budget is not None else None
        council = with_cache(self.base_council, self.cache) if self.config.cache else self.base_council
        self._per_provider(council)
        done = {(r["dataset"], r["item_id"], r["strategy"]) for r in self.results}
        total = sum(len(v) for v in self.items.values()) * len(self.plan)
        progress = Progress(total=total, skipped=len(done))
        for r in self.results:
            progress.seen[r["strategy"]] = progress.seen.get(r["strategy"], 0) + 1
            progress.correct[r["strategy"]] = progress.correct.get(r["strategy"], 0) + int(r["correct"])
        try:
            for phase in (1, 2):
                progress.phase = phase
                planned = [p for p in self.plan if p.phase == phase]
                if not planned:
                    continue
                if self._budget_spent():
                    break
                if phase == 2:
                    self._prepare_phase_2()
                pairs = [
                    (item, p)
                    for name, items in self.items.items()
                    for item in items
                    for p in planned
                    if (name, item.id, p.label) not in done
                ]
                if self.ray is not None:
                    await self.ray.run_pairs(self, pairs, progress)
                else:
                    await self._run_pairs(council, pairs, progress)
        except BaseException as exc:
            if self.store is not None and self.run_id:
                status = "incomplete" if isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)) else "failed"
                self.store.finish(self.run_id, status, {"type": type(exc).__name__, "message": str(exc)})
            raise
        if self._budget_spent():
            self._finish_budget_limited()
        elif self.store is not None:
            self.store.finish(self.run_id, "complete")
        return self.results

    def _budget_spent(self) -> bool:
        tracker = self.tracker
        if tracker is None:
            return False
        tracker.hit = tracker.hit or tracker.exhausted()
        return tracker.hit is not None

    def _finish_budget_limited(self) -> None:
        """The run stopped on its budget: `incomplete` (resumable), with what stopped it in its
        meta (one entry per budget-limited attempt) and its error."""
        report = self.tracker.report() if self.tracker is not None else None
        assert report is not None
        stored = {(r["dataset"], r["item_id"], r["strategy"]) for r in self.results}
        report["pairs_left"] = sum(len(v) for v in self.items.values()) * len(self.plan) - len(stored)
        self.meta["budget_limited"] = [*(self.meta.get("budget_limited") or []), report]
        if self.store is not None:
            self.meta = self.store.update_meta(self.run_id, budget_limited=self.meta["budget_limited"])
            self.store.finish(self.run_id, "incomplete", {"type": "BudgetLimited", "message": limit_sentence(report),
                                                          "budget_limited": report})  # fmt: skip

    def _per_provider(self, council: Council) -> None:
        if self.config.per_provider:
            for m in council.members:
                m.max_concurrency = min(m.max_concurrency, self.config.per_provider)

    async def _run_pairs(self, council: Council, pairs: list[tuple[Any, Planned]], progress: Progress) -> None:
        queue: asyncio.Queue[tuple[Any, Planned]] = asyncio.Queue()
        for pair in pairs:
            queue.put_nowait(pair)

        async def worker() -> None:
            while not self._budget_spent():
                try:
                    item, planned = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                row = await self.run_pair(council, item, planned)
                if row is None:  # cut short by the run's budget: not stored, a resume runs it
                    continue
                progress.record(planned.label, bool(row["correct"]), row["error"] is not None)
                self.on_progress(progress, row)

        await asyncio.gather(*(worker() for _ in range(min(self.config.concurrency, max(1, len(pairs))))))

    async def run_pair(self, council: Council, item: Any, planned: Planned) -> dict[str, Any] | None:
        """One item through one strategy: run, grade, store. Never raises for the item's sake.
        None when the run's budget cut the pair short (nothing is stored for it)."""
        computed = await self.compute_pair(council, item, planned)
        return self.keep(*computed) if computed is not None else None

    async def compute_pair(
        self, council: Council, item: Any, planned: Planned
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]] | None:
        """Run and grade one pair, writing nothing: the row (with its verdict) and the cache
        entries it paid for, or None when the run's budget cut it short. On Ray this runs in a
        worker and `keep` on the driver."""
        from .graders import grade

        tally = Tally()
        token = TALLY.set(tally)
        started = time.perf_counter()
        verdict, error = None, None
        params = self._params_for(planned, item)
        try:
            seat = self._council_for(council, planned, item)
            verdict = await run_council(prompt_for(item), seat, strategy=planned.strategy, params=params, budget=self.tracker)
        except ManymindsError as exc:
            error = exc.to_dict()
        except Exception as exc:  # noqa: BLE001 - a bug in one strategy must not end a long run; kept with its traceback
            error = {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc(limit=6)}
        finally:
            TALLY.reset(token)
        if self._budget_spent() and (verdict is None or verdict.budget_limited is not None):
            return None
        seconds = time.perf_counter() - started
        answer = verdict.answer if verdict else ""
        short = verdict.short_answer if verdict else None
        if verdict is None:
            correct, method, grade_error, parsed = False, "none", "the strategy gave no answer (see error)", None
        else:
            try:
                g = grade(item, answer, short)
                correct, method, grade_error, parsed = g.correct, g.method, g.error, g.parsed
            except Exception as exc:  # noqa: BLE001 - an ungradable answer is wrong, never a crash
                correct, method, grade_error, parsed = False, "error", f"{type(exc).__name__}: {exc}", None
        extra: dict[str, Any] = {"calls": tally.calls, "cached_calls": tally.cached, "borrowed_calls": tally.borrowed, "parsed": parsed, "params": params}
        if verdict is not None and planned.strategy != "single":
            from ..calibration import features

            # What `eval calibrate` fits on: exactly what ask time computes from the verdict.
            extra["features"] = features(verdict, seat.weights)
        if planned.trust and params is not None:
            extra["weights"] = self._weights_for(item)
        if self.judge_model is not None and verdict is not None and self._judged(item):
            extra["judge"] = await self._judge(item, answer)
        usage = verdict.usage if verdict else None
        row = {
            "run_id": self.run_id, "dataset": item.dataset, "item_id": item.id, "strategy": planned.label,
            "category": item.category, "correct": int(bool(correct)),
            "confidence": None if (verdict is None or planned.strategy == "single") else verdict.confidence,
            "answer": answer, "short_answer": short, "raw_text": _raw_text(verdict), "grade_method": method,
            "grade_error": grade_error, "input_tokens": usage.input_tokens if usage else 0,
            "output_tokens": usage.output_tokens if usage else 0, "total_tokens": usage.total_tokens if usage else 0,
            "cost_usd": verdict.cost_usd if verdict else None, "seconds": round(seconds, 4), "error": error,
            "extra": extra, "verdict": verdict.model_dump(mode="json") if verdict else None,
        }  # fmt: skip
        return row, tally.new_entries

    def keep(self, row: dict[str, Any], cache_entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Store one computed pair (the only place a pair is written) and keep it in memory."""
        if self.store is not None:
            self.store.add_item(row, cache_entries)
        self.cache.stored.update(cache_entries)  # what a later phase's Ray workers start from
        row.pop("verdict", None)
        self.results.append(row)
        return row

    # --- strategy parameters that depend on measurements ---------------------------------

    def _params_for(self, planned: Planned, item: Any) -> dict[str, Any]:
        if planned.strategy == "self-consistency" and planned.phase == 2:
            choice = self.meta["self_consistency"][item.dataset]
            return {"member": choice["member"], "k": choice["k"], **planned.params}  # what the user fixed wins
        return dict(planned.params)

    def _council_for(self, council: Council, planned: Planned, item: Any) -> Council:
        if not planned.trust:
            return council
        from ..trust import apply_weights

        return apply_weights(council, self._weights_for(item))

    def _weights_for(self, item: Any) -> dict[str, float]:
        from .trust import weights_for

        return weights_for(self.meta["trust"], item.dataset, item.category, scope=self.config.trust_scope,
                           fold=None if self.config.trust_from else item_fold(item.id))  # fmt: skip

    def _prepare_phase_2(self) -> None:
        """Choose what phase 2 needs from phase 1's stored results (kept in the run's meta, so
        a resumed run makes the same choices)."""
        updates: dict[str, Any] = {}
        if any(p.strategy == "self-consistency" and p.phase == 2 for p in self.plan) and "self_consistency" not in self.meta:
            updates["self_consistency"] = choose_k(self.results, list(self.items), [m.name for m in self.base_council.members])
        if any(p.trust for p in self.plan) and "trust" not in self.meta:
            from .trust import answer_count, fit_trust_table

            source = self.results
            if self.config.trust_from:
                if self.store is None:
                    raise InputError("--trust-from needs the run store.")
                source = self.store.items(self.config.trust_from)
            answers = {name: answer_count(items[0]) for name, items in self.items.items() if items}
            updates["trust"] = fit_trust_table(source, folds=not self.config.trust_from, fold_of=item_fold, answers=answers)
            updates["trust"]["source_runs"] = self.config.trust_from or [self.run_id]
        if updates:
            self.meta.update(updates)
            if self.store is not None:
                self.meta = self.store.update_meta(self.run_id, **updates)

    # --- the judge --------------------------------------------------------------------

    def _judged(self, item: Any) -> bool:
        """A fixed sample of about `judge_sample` items per dataset (chosen by a hash of the
        item id and the seed, the same for every strategy, so grades can be paired)."""
        n = self.sizes.get(item.dataset, 0) or 1
        share = min(1.0, self.config.judge_sample / n)
        h = int.from_bytes(hashlib.sha256(f"{self.config.seed}:{item.id}".encode()).digest()[:4], "big")
        return h / 2**32 < share

    async def _judge(self, item: Any, answer: str) -> dict[str, Any]:
        from .graders import judge_grade

        g = await judge_grade(item, answer, self.judge_model)
        return {"model": self.judge_model.name, **g.to_dict()}


def _raw_text(verdict: Any) -> str:
    """What the strategy wrote before any extraction: the chair's text, else the answer."""
    if verdict is None:
        return ""
    if verdict.chair is not None and verdict.chair.text:
        return verdict.chair.text
    return verdict.answer
