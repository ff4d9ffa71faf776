"""Eval harness overhead per item: what `EvalRunner` adds on top of the strategy itself.

1,000 synthetic yes/no items, a council of three zero-latency `ScriptedModel` members and a
scripted chair, strategy "council". Timed one after another, one pair in flight:
  bare      `run_council` for every item in a plain loop — the pipeline's own cost
  harness   the same through `EvalRunner` (scheduling, call cache, grading, progress), no store
  + SQLite  the same, each item written in its own transaction (WAL, synchronous=NORMAL)
Overhead per item = (harness − bare) ÷ items. Target: under 5 ms per item.

    python benchmarks/eval_overhead.py [--items 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from _common import council_of

from manyminds.eval.datasets import Item
from manyminds.eval.items import prompt_for
from manyminds.eval.runner import EvalConfig, EvalRunner
from manyminds.eval.store import EvalStore
from manyminds.testing import ScriptedModel
from manyminds.pipeline.run import run_council
from manyminds.store import open_db


def items(n: int) -> list[Item]:
    return [Item(id=f"b{i:05d}", dataset="bench", question=f"Is bench question {i} true?", answers=("Yes" if i % 2 else "No",),
                 kind="yes_no", category=None) for i in range(n)]  # fmt: skip


def council():
    def member(answer_odd: str):
        return lambda messages: answer_odd if int(messages[-1].content.split()[3]) % 2 else "No."

    models = {"a": ScriptedModel("a", member("Yes.")), "b": ScriptedModel("b", member("Yes.")), "c": ScriptedModel("c", "No.")}
    return council_of(models, chair=ScriptedModel("chair", "Yes."))


async def bare(data: list[Item]) -> float:
    c = council()
    start = time.perf_counter()
    for item in data:
        await run_council(prompt_for(item), c)
    return time.perf_counter() - start


async def harness(data: list[Item], db: Path | None) -> float:
    store = EvalStore(open_db(db)) if db else None
    runner = EvalRunner(council(), EvalConfig(datasets=["bench"], strategies=["council"], concurrency=1), {"bench": data},
                        store=store)  # fmt: skip
    runner.start()
    start = time.perf_counter()
    rows = await runner.run()
    elapsed = time.perf_counter() - start
    assert len(rows) == len(data) and not any(r["error"] for r in rows)
    if store is not None:
        store.db.close()
    return elapsed


async def main(n: int, rounds: int) -> None:
    data = items(n)
    await bare(items(20))  # imports, first-call costs
    times: dict[str, list[float]] = {"bare": [], "harness": [], "sqlite": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):  # interleaved, so a noisy neighbour hits all three alike
            times["bare"].append(await bare(data))
            times["harness"].append(await harness(data, None))
            times["sqlite"].append(await harness(data, Path(tmp) / f"eval{r}.db"))
    med = {k: statistics.median(v) for k, v in times.items()}
    ms = lambda s: 1000 * s / n
    print(f"items: {n}, rounds: {rounds} (medians)")
    print(f"bare run_council per item      : {ms(med['bare']):.2f} ms")
    print(f"through the harness, no store  : {ms(med['harness']):.2f} ms  → overhead {ms(med['harness'] - med['bare']):.2f} ms/item")
    print(f"through the harness, SQLite    : {ms(med['sqlite']):.2f} ms  → overhead {ms(med['sqlite'] - med['bare']):.2f} ms/item")
    print("target: overhead under 5 ms per item")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.items, args.rounds))
