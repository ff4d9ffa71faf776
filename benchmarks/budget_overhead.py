"""Budget overhead: process CPU per question of a scripted council with a budget that is never
hit (every call checked, reserved, counted chunk by chunk as it streams, charged) ÷ the same
council without a budget. Also where a run stopped by --max-tokens lands against the limit
(spent − limit; negative: under it).

    python benchmarks/budget_overhead.py [--questions 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from _common import council_of

from manyminds.budget import Budget
from manyminds.pipeline.run import run_council
from manyminds.testing import ScriptedModel

ANSWER = "William Shakespeare wrote Hamlet around 1600 in London, for the Globe. " * 3


def priced(model: ScriptedModel) -> ScriptedModel:
    model.input_price_per_mtok, model.output_price_per_mtok = 0.15, 0.60  # so --max-cost is checked too
    return model


def council():
    members = {f"m{i}": priced(ScriptedModel(f"m{i}", ANSWER, chunk_size=4)) for i in range(5)}
    return council_of(members, chair=priced(ScriptedModel("chair", "William Shakespeare")))


async def cpu_per_question(budget: Budget | None, questions: int) -> list[float]:
    c = council()
    await run_council("warm-up", c, budget=budget)
    out = []
    for n in range(questions):
        t = time.process_time()
        await run_council(f"Who wrote Hamlet? ({n})", c, budget=budget)
        out.append(time.process_time() - t)
    return out


async def cut_precision(limit: int, rounds: int = 20) -> list[int]:
    """Tokens spent when --max-tokens stops the run, minus the limit (positive: over it)."""
    over = []
    for n in range(rounds):
        verdict = await run_council(f"Who wrote Hamlet? ({n})", council(), budget=Budget(max_tokens=limit))
        over.append(verdict.budget_limited["spent"]["tokens"] - limit)
    return over


async def main(questions: int) -> None:
    plain = await cpu_per_question(None, questions)
    budgeted = await cpu_per_question(Budget(max_tokens=10**9, max_cost=10**6, max_seconds=10**6), questions)
    ratio = statistics.median(budgeted) / statistics.median(plain)
    print(f"CPU per question, no budget      : median {1000 * statistics.median(plain):.2f} ms ({questions} questions)")
    print(f"CPU per question, budget not hit : median {1000 * statistics.median(budgeted):.2f} ms")
    print(f"budgeted ÷ plain                 : {ratio:.3f}")
    over = await cut_precision(200)
    print(f"--max-tokens 200 cut: spent − limit, min {min(over)} / median {statistics.median(over)} / max {max(over)} tokens")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=200)
    asyncio.run(main(parser.parse_args().questions))
