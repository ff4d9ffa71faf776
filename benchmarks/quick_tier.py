"""The quick tier on the embedded local council: its wall time ÷ the fastest member's own wall
time, measured in one run (target ≤ 1.2×).

    python benchmarks/quick_tier.py [--questions 5] [--council local]

The models are warmed up first (one standard run starts the servers). Then, per question:
each member alone (the `single` strategy, so nothing else competes for the cores), the quick
tier (`tier:quick`: the fastest quorum + 1 seats, early consensus, no chair), and the quick tier
held to the two seats that were fastest alone (k = 2). Printed:
per question the quick seconds, the fastest member alone, the ratio, who was cut; then the
median ratio. A throw-away MANYMINDS_HOME keeps the user's runs and stored member times out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import replace

QUESTIONS = ["What is the capital of France?", "Who wrote Hamlet?", "How many legs does a spider have?",
             "What is the largest planet in the solar system?", "What is the chemical symbol for gold?"]


async def main(n: int, council_name: str | None) -> None:
    from manyminds.api import resolve_council
    from manyminds.config import load_settings
    from manyminds.pipeline.run import run_council

    council = resolve_council(load_settings(), council_name)
    try:
        await run_council("What is the capital of Italy?", council, strategy="tier:standard")  # start the servers
        ratios, ratios_two = [], []
        print(f"{'question':48} {'quick s':>8} {'fastest alone':>22} {'ratio':>6} {'k=2':>6}  cut")
        for question in QUESTIONS[:n]:
            alone = {}
            for member in council.members:
                t = time.perf_counter()
                await run_council(question, council, strategy="single", params={"member": member.name})
                alone[member.name] = time.perf_counter() - t
            t = time.perf_counter()
            quick = await run_council(question, council, strategy="tier:quick")
            seconds = time.perf_counter() - t
            # The same tier on only the two fastest seats measured just now (k = 2): nothing to cut.
            two = sorted(alone, key=alone.get)[:2]
            sub = replace(council, members=[m for m in council.members if m.name in two])
            t = time.perf_counter()
            await run_council(question, sub, strategy="tier:quick", params={"k": 2})
            seconds_two = time.perf_counter() - t
            fastest = min(alone, key=alone.get)
            ratio = seconds / alone[fastest]
            ratios.append(ratio)
            ratios_two.append(seconds_two / alone[fastest])
            cut = ", ".join(quick.early_consensus.cut) if quick.early_consensus else "—"
            print(f"{question[:48]:48} {seconds:8.2f} {fastest + f' {alone[fastest]:.2f}s':>22} {ratio:6.2f}  "
                  f"{seconds_two / alone[fastest]:6.2f}  {cut}")
        print(f"\nquick tier ÷ fastest member alone: median {statistics.median(ratios):.2f}× "
              f"(min {min(ratios):.2f}, max {max(ratios):.2f}, n={len(ratios)}; target ≤ 1.2×)")
        print(f"with k = 2 (the two fastest seats, nothing to cut): median {statistics.median(ratios_two):.2f}× "
              f"(min {min(ratios_two):.2f}, max {max(ratios_two):.2f})")
    finally:
        await council.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=5)
    parser.add_argument("--council", default=None)
    args = parser.parse_args()
    os.environ["MANYMINDS_HOME"] = tempfile.mkdtemp(prefix="mm-quick-bench-")
    asyncio.run(main(args.questions, args.council))
