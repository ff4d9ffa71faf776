"""Running an evaluation: every (item, strategy) pair through `run_council`, graded and stored.

    expand_strategies (labels × items)    ─▶ phase 1: strategies that need nothing measured
                                          ─▶ phase 2: self-consistency (k from phase 1's tokens)
                                                      and "+trust" variants (weights from phase 1)
    each pair: run_council(question, council, strategy, params) ─▶ grade ─▶ store

One mechanism: a pair is one call of `run_council` (pipeline/run.py) with a strategy from
`strategies/base.py: STRATEGIES` — the harness has no fan-out of its own. The pairs share the
council's models and so its `ProviderLimiter` (models/wrappers.py), so the per-provider caps
hold across the whole run, and at most `concurrency` pairs are in flight.

Strategy labels: a registered strategy name ("council", "majority", "moa"…), `single:MEMBER`
(plain "single" expands to every member), `NAME+trust` (the strategy on a council whose member
weights were fitted from the single-member results, see trust.py), or "all".

Cost fairness: at temperature 0 several strategies make identical calls (the council's fan-out
*is* each member's single answer). `CachedModel` shares them within a run (persisted, so a
resumed run does not pay again), but every strategy is charged the tokens as if it had made the
call itself; only wall time benefits, and the report says so.

A pair never crashes the run: a strategy error (quorum not met, …) is stored with the item and
counts as wrong; a grader that cannot read the answer counts it wrong and keeps the raw text.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import math
import time
import traceback
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import InputError, ManymindsError
from ..models.base import Chunk, Completion, Message, Model, ModelOptions, Usage
from ..pipeline.council import Council
from ..pipeline.run import run_council
from ..strategies.base import STRATEGIES
from .store import EvalStore

DEFAULT_STRATEGY = "council"  # what `manyminds ask` runs; the report's reference
# What "all" means: the baselines plus the default and its trust-weighted variants.
ALL_STRATEGIES = ("single", "majority", "self-consistency", "council-rank", "moa", "debate", "council",
                  "council+trust", "majority+trust")  # fmt: skip
PHASE_2 = ("self-consistency",)
SC_K_RANGE = (1, 16)
PROMPT_SUFFIX = {
    "yes_no": "Reply with yes or no.",
    "number": "Reply with the final answer as a number.",
    "choice": "Reply with the letter of the correct choice.",
    "short": "",
}


def prompt_for(item: Any) -> str:
    """The question a council is asked for `item`: the context first (HaluEval's knowledge),
    then the question, then how to answer for its kind. Recorded in each run's config."""
    parts = [f"Context: {item.context.strip()}", ""] if item.context else []
    parts.append(item.question.strip())
    suffix = PROMPT_SUFFIX.get(item.kind, "")
    if suffix:
        parts.append(suffix)
    return "\n".join(parts)


# --- items -------------------------------------------------------------------------------
#
# Views: a dataset asked another way, for councils of small models that score zero on the
# open-ended original. They live here, not in datasets.py, because they are framings of the
# question (what the harness asks), not new data; each item keeps its source id.


def _halueval_yes_no(item: Any) -> Any:
    """HaluEval with its knowledge: is this proposed answer (the right or the hallucinated one,
    chosen per item by a hash, so about half of each) correct? `metadata["shown"]` says which."""
    right = hashlib.sha256(f"view:{item.id}".encode()).digest()[0] & 1 == 0
    shown = item.answers[0] if right else item.incorrect[0]
    question = f"Question: {item.question}\nProposed answer: {shown}\nIs the proposed answer correct?"
    # Which answer was shown is the label itself: it stays out of `category`, which trust
    # weights are fitted on (per-category weights would read the answer key).
    shown_kind = "right answer shown" if right else "hallucinated answer shown"
    return replace(item, dataset="halueval:yes-no", question=question, answers=("Yes" if right else "No",),
                   incorrect=("No" if right else "Yes",), kind="yes_no", category=None,
                   metadata={**dict(item.metadata or {}), "shown": shown_kind})  # fmt: skip


def _truthfulqa_ab(item: Any) -> Any:
    """TruthfulQA as two choices: its best answer against its first false answer, in an order
    chosen per item by a hash. Categories are TruthfulQA's."""
    true, false = item.answers[0], item.incorrect[0]
    first = hashlib.sha256(f"view:{item.id}".encode()).digest()[0] & 1 == 0
    choices = (true, false) if first else (false, true)
    letter = "A" if first else "B"
    question = f"{item.question}\n\nA. {choices[0]}\nB. {choices[1]}"
    return replace(item, dataset="truthfulqa:ab", question=question, answers=(letter, true), incorrect=(false,),
                   kind="choice", choices=choices)  # fmt: skip


VIEWS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "halueval:yes-no": ("halueval", _halueval_yes_no),
    "truthfulqa:ab": ("truthfulqa", _truthfulqa_ab),
}


def dataset_choices() -> list[str]:
    from .datasets import dataset_names

    return dataset_names() + list(VIEWS)


def load_items(name: str, *, limit: int | None, seed: int, categories: list[str] | None = None) -> list[Any]:
    """The items of a dataset or a view, sampled like `datasets.load_dataset` (stratified by
    category, deterministic in `seed`). Unknown names list the valid ones."""
    from .datasets import DATASETS, load_dataset, sample_items

    if limit is not None and limit < 1:
        raise InputError("--limit must be at least 1 (leave it out to use every item).")
    if name in DATASETS:
        return load_dataset(name, limit=limit, seed=seed, categories=categories or None)
    if name not in VIEWS:
        raise InputError(f"Unknown dataset {name!r}. Choose one of: {', '.join(dataset_choices())}.")
    base, view = VIEWS[name]
    items = [view(i) for i in load_dataset(base, seed=seed) if i.incorrect]
    if categories:
        wanted = {c.casefold() for c in categories}
        items = [i for i in items if i.category and i.category.casefold() in wanted]
        if not items:
            raise InputError(f"No items of {name!r} in the categories {', '.join(categories)}.")
    return sample_items(items, limit, seed)


def to_item_result(row: dict[str, Any]) -> Any:
    """A stored row as the metrics' `ItemResult` (tokens as if uncached; error as text)."""
    from .records import ItemResult

    error = row.get("error")
    return ItemResult(
        run_id=row["run_id"], item_id=row["item_id"], dataset=row["dataset"], category=row.get("category"),
        strategy=row["strategy"], correct=bool(row["correct"]), confidence=row.get("confidence"),
        answer=row.get("answer") or "", short_answer=row.get("short_answer"), raw_text=row.get("raw_text") or "",
        grade_method=row.get("grade_method") or "none", grade_error=row.get("grade_error"),
        tokens=int(row.get("total_tokens") or 0), cost_usd=row.get("cost_usd"), seconds=float(row.get("seconds") or 0.0),
        error=(error.get("message") or error.get("type")) if isinstance(error, dict) else error,
        extra=row.get("extra") or {},
    )  # fmt: skip


# --- the plan -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """One strategy label of a run: which registered strategy, with which params, and whether
    the council's weights come from trust."""

    label: str
    strategy: str
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    trust: bool = False

    @property
    def phase(self) -> int:
        return 2 if self.trust or (self.strategy in PHASE_2 and not {"member", "k"} <= set(self.params)) else 1


def valid_labels(council: Council) -> list[str]:
    names = sorted(STRATEGIES)
    return ["all"] + names + [f"single:{m.name}" for m in council.members] + [f"{n}+trust" for n in names]


def expand_strategies(names: list[str], council: Council, params: dict[str, dict[str, Any]] | None = None) -> list[Planned]:
    """Labels → planned strategies, in a stable order, without duplicates. Unknown names are an
    `InputError` listing the valid ones. Self-consistency and "+trust" need single-member
    results (and self-consistency the council's tokens), so those are added when missing."""
    params = params or {}
    members = [m.name for m in council.members]
    wanted: list[str] = []
    for raw in names:
        for name in (ALL_STRATEGIES if raw.strip() == "all" else [raw.strip()]):
            base, _, trust = name.partition("+")
            base, _, member = base.partition(":")
            if base not in STRATEGIES or (trust and trust != "trust") or (member and (base != "single" or member not in members)):
                raise InputError(f"Unknown strategy {name!r}. Valid strategies: {', '.join(valid_labels(council))}.")
            if base == "single" and not member and not trust:
                wanted += [f"single:{m}" for m in members]
            else:
                wanted.append(name)
    needs_singles = any(n.endswith("+trust") or n.startswith("self-consistency") for n in wanted)
    if needs_singles:
        wanted += [f"single:{m}" for m in members]
    if any(n.startswith("self-consistency") for n in wanted) and "k" not in params.get("self-consistency", {}):
        wanted.append(DEFAULT_STRATEGY)  # k is matched to the council's tokens per question
    planned: list[Planned] = []
    for name in dict.fromkeys(wanted):
        base, _, trust = name.partition("+")
        base, _, member = base.partition(":")
        p = dict(params.get(base, {}))
        if member:
            p["member"] = member
        planned.append(Planned(name, base, p, trust=bool(trust)))
    return sorted(planned, key=lambda p: (p.phase, _order(p.label)))


def _order(label: str) -> int:
    base = label.split(":")[0].split("+")[0]
    return ALL_STRATEGIES.index(base) if base in ALL_STRATEGIES else len(ALL_STRATEGIES)


# --- the cache ----------------------------------------------------------------------------


@dataclass
class Tally:
    """Per pair: model calls asked for, and how many a cache served."""

    calls: int = 0
    cached: int = 0
    new_entries: dict[str, dict[str, Any]] = field(default_factory=dict)


_TALLY: contextvars.ContextVar[Tally | None] = contextvars.ContextVar("eval_tally", default=None)


class CallCache:
    """Completions of one eval run, by call. A call is cacheable when it is deterministic: at
    temperature 0, or with a seed (self-consistency samples carry one each)."""

    def __init__(self, stored: dict[str, dict[str, Any]] | None = None) -> None:
        self.stored = dict(stored or {})
        self._inflight: dict[str, asyncio.Task[Completion]] = {}

    @staticmethod
    def key(model: str, messages: list[Message], options: ModelOptions | None) -> str | None:
        opts = (options or ModelOptions()).model_dump(exclude_none=True)
        if opts.get("temperature") != 0 and opts.get("seed") is None:
            return None
        doc = {"model": model, "messages": [[m.role, m.content] for m in messages], "options": opts}
        return hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    async def get(self, key: str, call: Callable[[], Any]) -> Completion:
        tally = _TALLY.get()
        if tally is not None:
            tally.calls += 1
        if key in self.stored:
            if tally is not None:
                tally.cached += 1
            return completion_from(self.stored[key])
        task = self._inflight.get(key)
        if task is None:
            # The first asker owns the call; asking twice at once (two strategies of one item)
            # waits for the same call. Shielded: one waiter's timeout must not cancel the others'.
            task = self._inflight[key] = asyncio.ensure_future(call())
            task.add_done_callback(lambda t, k=key: self._done(k, t, tally))
        elif tally is not None:
            tally.cached += 1
        return await asyncio.shield(task)

    def _done(self, key: str, task: asyncio.Task[Completion], tally: Tally | None) -> None:
        self._inflight.pop(key, None)
        if task.cancelled() or task.exception() is not None:
            return  # failures are not cached: a resumed run tries again
        entry = task.result().to_dict()
        self.stored[key] = entry
        if tally is not None:
            tally.new_entries[key] = entry  # stored with the item that paid for it


def completion_from(doc: dict[str, Any]) -> Completion:
    usage = doc.get("usage") or {}
    return Completion(
        text=doc["text"], usage=Usage(usage.get("input_tokens", 0), usage.get("output_tokens", 0)),
        latency_s=doc.get("latency_s", 0.0), finish_reason=doc.get("finish_reason", "stop"),
        model=doc.get("model", ""), usage_estimated=doc.get("usage_estimated", False),
    )  # fmt: skip


class CachedModel(Model):
    """A model whose deterministic calls go through a `CallCache`. It reports the cached call's
    original usage, so token counts stay as if uncached."""

    def __init__(self, inner: Model, cache: CallCache) -> None:
        super().__init__(inner.model_id, context_window=inner.context_window)
        self.inner, self.cache = inner, cache
        self.provider = inner.provider
        self.supports_json, self.supports_stream = inner.supports_json, inner.supports_stream
        self.input_price_per_mtok = inner.input_price_per_mtok
        self.output_price_per_mtok = inner.output_price_per_mtok

    @property
    def name(self) -> str:
        return self.inner.name

    async def complete(self, messages: list[Message], options: ModelOptions | None = None) -> Completion:
        key = self.cache.key(self.inner.name, messages, options)
        if key is None:
            tally = _TALLY.get()
            if tally is not None:
                tally.calls += 1
            return await self.inner.complete(messages, options)
        return await self.cache.get(key, lambda: self.inner.complete(messages, options))

    async def stream(self, messages: list[Message], options: ModelOptions | None = None) -> AsyncIterator[Chunk]:
        # Nobody watches an eval's deltas: one completion, whether it came from the cache or not.
        completion = await self.complete(messages, options)
        yield Chunk(delta=completion.text, completion=completion)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def cost_usd(self, usage: Usage) -> float | None:
        return self.inner.cost_usd(usage)

    def availability(self) -> tuple[bool, str]:
        return self.inner.availability()

    async def aclose(self) -> None:
        await self.inner.aclose()


def with_cache(council: Council, cache: CallCache) -> Council:
    """A copy of `council` whose models (members and chair) go through `cache`."""
    wrapped: dict[int, CachedModel] = {}

    def wrap(model: Model) -> Model:
        if id(model) not in wrapped:
            wrapped[id(model)] = CachedModel(model, cache)
        return wrapped[id(model)]

    members = [replace(m, model=wrap(m.model)) for m in council.members]
    return replace(council, members=members, chair_model=wrap(council.chair_model))


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

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise InputError("--limit must be at least 1 (leave it out to use every item).")
        if not self.datasets:
            raise InputError("Name at least one dataset with --dataset.")
        if not self.strategies:
            raise InputError("Name at least one strategy with --strategy (or --strategy all).")
        if self.concurrency < 1:
            raise InputError("--concurrency must be at least 1.")

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def item_fold(item_id: str) -> int:
    """0 or 1, fixed per item: the cross-fitting halves of the trust weights."""
    return hashlib.sha256(item_id.encode()).digest()[0] & 1


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
        if self.store is None:
            self.run_id = run_id or "memory"
            return self.run_id
        if run_id is None:
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
        return self.run_id

    # --- running ----------------------------------------------------------------------

    async def run(self) -> list[dict[str, Any]]:
        """Every pair not stored yet, phase by phase. Returns every result of the run."""
        if self.run_id is None:
            self.start()
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
                if phase == 2:
                    self._prepare_phase_2()
                pairs = [
                    (item, p)
                    for name, items in self.items.items()
                    for item in items
                    for p in planned
                    if (name, item.id, p.label) not in done
                ]
                await self._run_pairs(council, pairs, progress)
        except BaseException as exc:
            if self.store is not None and self.run_id:
                status = "incomplete" if isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)) else "failed"
                self.store.finish(self.run_id, status, {"type": type(exc).__name__, "message": str(exc)})
            raise
        if self.store is not None:
            self.store.finish(self.run_id, "complete")
        return self.results

    def _per_provider(self, council: Council) -> None:
        if self.config.per_provider:
            for m in council.members:
                m.max_concurrency = min(m.max_concurrency, self.config.per_provider)

    async def _run_pairs(self, council: Council, pairs: list[tuple[Any, Planned]], progress: Progress) -> None:
        queue: asyncio.Queue[tuple[Any, Planned]] = asyncio.Queue()
        for pair in pairs:
            queue.put_nowait(pair)

        async def worker() -> None:
            while True:
                try:
                    item, planned = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                row = await self.run_pair(council, item, planned)
                progress.record(planned.label, bool(row["correct"]), row["error"] is not None)
                self.on_progress(progress, row)

        await asyncio.gather(*(worker() for _ in range(min(self.config.concurrency, max(1, len(pairs))))))

    async def run_pair(self, council: Council, item: Any, planned: Planned) -> dict[str, Any]:
        """One item through one strategy: run, grade, store. Never raises for the item's sake."""
        from .graders import grade

        tally = Tally()
        token = _TALLY.set(tally)
        started = time.perf_counter()
        verdict, error = None, None
        params = self._params_for(planned, item)
        try:
            seat = self._council_for(council, planned, item)
            verdict = await run_council(prompt_for(item), seat, strategy=planned.strategy, params=params)
        except ManymindsError as exc:
            error = exc.to_dict()
        except Exception as exc:  # noqa: BLE001 - a bug in one strategy must not end a long run; kept with its traceback
            error = {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc(limit=6)}
        finally:
            _TALLY.reset(token)
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
        extra: dict[str, Any] = {"calls": tally.calls, "cached_calls": tally.cached, "parsed": parsed, "params": params}
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
        if self.store is not None:
            self.store.add_item(row, tally.new_entries)
        row.pop("verdict")
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

        return weights_for(self.meta["trust"], item.dataset, item.category, fold=None if self.config.trust_from else item_fold(item.id))

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
        n = len(self.items.get(item.dataset, [])) or 1
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


def check_same_plan(run: dict[str, Any], plan: dict[str, Any], snapshot: dict[str, Any]) -> None:
    """A resume must ask the same council the same items, or its numbers would mix two runs."""
    stored = run.get("plan") or {}
    if stored.get("items") != plan["items"]:
        changed = [d for d in plan["items"] if stored.get("items", {}).get(d) != plan["items"][d]]
        raise InputError(f"Eval run {run['id']} was started on other items ({', '.join(changed) or 'datasets differ'}); "
                         "resume it with its own --dataset/--limit/--seed, or start a new run.")  # fmt: skip
    labels = [s["label"] for s in stored.get("strategies", [])]
    if labels != [s["label"] for s in plan["strategies"]]:
        raise InputError(f"Eval run {run['id']} was started with strategies {', '.join(labels)}; resume it with those.")
    old = [(m["name"], m["model"]) for m in (run.get("snapshot") or {}).get("members", [])]
    new = [(m["name"], m["model"]) for m in snapshot.get("members", [])]
    if old != new:
        raise InputError(f"Eval run {run['id']} was started with another council ({old}); resume it with that council.")


def choose_k(results: list[dict[str, Any]], datasets: list[str], members: list[str]) -> dict[str, dict[str, Any]]:
    """Per dataset: the best single member (highest accuracy; ties → fewer tokens, then member
    order) and k = round(council tokens per question ÷ that member's tokens per question),
    clamped to [1, 16] — self-consistency at the council's token budget."""
    out: dict[str, dict[str, Any]] = {}
    for dataset in datasets:
        rows = [r for r in results if r["dataset"] == dataset]
        council = [r["total_tokens"] for r in rows if r["strategy"] == DEFAULT_STRATEGY]
        stats = []
        for i, m in enumerate(members):
            mine = [r for r in rows if r["strategy"] == f"single:{m}"]
            if mine:
                acc = sum(r["correct"] for r in mine) / len(mine)
                tokens = sum(r["total_tokens"] for r in mine) / len(mine)
                stats.append((-acc, tokens, i, m, acc, len(mine)))
        if not stats or not council:
            out[dataset] = {"member": members[0], "k": 5, "reason": "no single or council results to measure: default k"}
            continue
        _, tokens, _, member, acc, n = min(stats)
        per_q = sum(council) / len(council)
        raw = per_q / tokens if tokens else float(SC_K_RANGE[1])
        k = max(SC_K_RANGE[0], min(SC_K_RANGE[1], math.floor(raw + 0.5)))
        out[dataset] = {
            "member": member, "k": k, "member_accuracy": round(acc, 4), "items": n,
            "council_tokens_per_question": round(per_q, 1), "member_tokens_per_question": round(tokens, 1),
            "reason": f"{per_q:.0f} council tokens ÷ {tokens:.0f} tokens of {member} per question = {raw:.2f} → k={k}"
                      + (" (clamped)" if k != math.floor(raw + 0.5) else ""),
        }  # fmt: skip
    return out
