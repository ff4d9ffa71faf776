"""What running eval pairs on Ray costs: items/s in-process against a local Ray cluster.

1,000 synthetic yes/no items, a council of three zero-latency `ScriptedModel` members and a
scripted chair, strategy "council", each pair stored in SQLite as it finishes:
  in-process   `EvalRunner` with `concurrency` pairs in flight in this event loop
  Ray          the same runner with `RayEval`: each pair a Ray task on a local cluster
               (`ray.init(num_cpus=2)`), the driver storing each result
Overhead per item = (Ray − in-process) ÷ items. With zero-latency models this is all overhead:
task submission, (de)serialising the item and the row, the cluster-wide slot actor's two round
trips per model call. Real models take seconds per call, so the share shrinks accordingly.
The cluster's start-up is timed separately and not counted.

    python benchmarks/ray_overhead.py [--items 1000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _common import council_of

from manyminds.eval.datasets import Item
from manyminds.eval.runner import EvalConfig, EvalRunner
from manyminds.eval.store import EvalStore
from manyminds.store import open_db
from manyminds.testing import ScriptedModel


def items(n: int) -> list[Item]:
    return [Item(id=f"b{i:05d}", dataset="bench", question=f"Is bench question {i} true?", answers=("Yes" if i % 2 else "No",),
                 kind="yes_no", category=None) for i in range(n)]  # fmt: skip


@dataclass
class BenchRecipe:
    """The council, built wherever it is asked for (here, or in each Ray worker)."""

    def build_council(self):
        def member(answer_odd: str):
            return lambda messages: answer_odd if int(messages[-1].content.split()[3]) % 2 else "No."

        models = {"a": ScriptedModel("a", member("Yes.")), "b": ScriptedModel("b", member("Yes.")),
                  "c": ScriptedModel("c", "No.")}  # fmt: skip
        return council_of(models, chair=ScriptedModel("chair", "Yes."))

    def build_model(self, name: str):
        return ScriptedModel(name, "CORRECT")


async def timed(data: list[Item], db: Path, concurrency: int, ray=None) -> float:
    store = EvalStore(open_db(db))
    runner = EvalRunner(BenchRecipe().build_council(), EvalConfig(datasets=["bench"], strategies=["council"],
                        concurrency=concurrency), {"bench": data}, store=store, ray=ray)  # fmt: skip
    runner.start()
    start = time.perf_counter()
    rows = await runner.run()
    elapsed = time.perf_counter() - start
    assert len(rows) == len(data) and not any(r["error"] for r in rows), [r["error"] for r in rows if r["error"]][:1]
    store.db.close()
    return elapsed


async def main(n: int, concurrency: int) -> None:
    import ray

    from manyminds.distributed.eval_tasks import RayEval

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    data = items(n)
    with tempfile.TemporaryDirectory() as tmp:
        await timed(items(20), Path(tmp) / "warm.db", concurrency)  # imports, first-call costs
        here = await timed(data, Path(tmp) / "here.db", concurrency)
        started = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        boot = time.perf_counter() - started
        try:
            await timed(items(20), Path(tmp) / "warm-ray.db", concurrency, RayEval(BenchRecipe()))  # workers up
            there = await timed(data, Path(tmp) / "ray.db", concurrency, RayEval(BenchRecipe()))
        finally:
            ray.shutdown()
    print(f"items: {n}, pairs in flight: {concurrency}, Ray: local cluster with 2 CPUs (start-up {boot:.1f} s, not counted)")
    print(f"in-process : {n / here:8.1f} items/s  ({1000 * here / n:.2f} ms per item)")
    print(f"on Ray     : {n / there:8.1f} items/s  ({1000 * there / n:.2f} ms per item)")
    print(f"overhead per item on Ray: {1000 * (there - here) / n:.2f} ms ({there / here:.1f}× the in-process time)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.items, args.concurrency))
