"""Orchestration CPU per question, model time excluded: five `ScriptedModel` members (no delay,
no network) through the whole council — fan-out, compare, chair — measured with process CPU
time. Reported without a store and with the SQLite recorder. Target ≤ 25 ms median.

    python benchmarks/orchestration_cpu.py [--questions 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from _common import council_of

from manyminds.testing import ScriptedModel
from manyminds.pipeline.run import run_council
from manyminds.store import RunRecorder, open_db

ANSWERS = ["William Shakespeare wrote Hamlet.", "Shakespeare", "It was William Shakespeare.",
           "Christopher Marlowe", "Hamlet was written by Shakespeare around 1600."]


async def measure(n: int, recorder=None) -> list[float]:  # noqa: ANN001
    models = {f"m{i}": ScriptedModel(f"m{i}", a, chunk_size=8) for i, a in enumerate(ANSWERS)}
    council = council_of(models, chair=ScriptedModel("chair", "William Shakespeare wrote Hamlet."))
    await run_council("Who wrote Hamlet?", council, recorder=recorder)  # warm-up
    cpu = []
    for i in range(n):
        t = time.process_time()
        await run_council(f"Who wrote Hamlet? ({i})", council, recorder=recorder)
        cpu.append((time.process_time() - t) * 1000)
    return cpu


def main(n: int) -> None:
    bare = asyncio.run(measure(n))
    with tempfile.TemporaryDirectory() as tmp:
        stored = asyncio.run(measure(n, RunRecorder(open_db(Path(tmp) / "bench.db"))))
    for label, values in (("no store", bare), ("SQLite store", stored)):
        values.sort()
        print(f"orchestration CPU per question, {label:12}: median {statistics.median(values):.2f} ms · "
              f"p95 {values[int(len(values) * 0.95) - 1]:.2f} ms (n={n}, five members; target ≤ 25 ms)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=200)
    main(parser.parse_args().questions)
