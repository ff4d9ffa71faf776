"""What the personal memory adds to asking: the time `memory.context.recall` takes before the
run starts, for a profile of 0, 100 and 1,000 memories, in one process.

With no memories nothing is embedded (a count on the table); with memories, the question is
embedded once and compared with every memory by brute force. The first call of a process also
loads the embedding model (each `manyminds ask` is a process of its own), so that is timed apart.

    python benchmarks/memory_recall.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from manyminds import embeddings
from manyminds.config import Settings
from manyminds.memory.context import recall
from manyminds.memory.store import MemoryStore
from manyminds.store import open_db

QUESTION = "What should I cook for dinner tonight?"


def fill(db_path: Path, profile: str, n: int) -> None:
    """`n` memories written through the store, with random unit vectors (the embedding of each
    text is not what is measured here, and would take minutes at 1,000)."""
    rng = np.random.default_rng(0)

    def fake_embed(texts):
        v = rng.standard_normal((len(texts), embeddings.DIMENSIONS)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    db = open_db(db_path)
    store = MemoryStore(db, embed=fake_embed)
    for i in range(n):
        store.add(profile, f"Memory number {i}: a note about something the user likes.")
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "bench.db"
        fill(db_path, "p0", 0)
        fill(db_path, "p100", 100)
        fill(db_path, "p1000", 1000)
        start = time.perf_counter()
        asyncio.run(recall(QUESTION, settings, profile="p100", db_path=db_path))
        first = time.perf_counter() - start
        print(f"first recall in the process (loads the embedding model): {first * 1000:.0f} ms")
        results = {}
        for profile in ("p0", "p100", "p1000"):
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                asyncio.run(recall(QUESTION, settings, profile=profile, db_path=db_path))
                times.append(time.perf_counter() - start)
            results[profile] = statistics.median(times)
            print(f"{profile[1:]:>5} memories: median {results[profile] * 1000:.1f} ms over {args.repeat} calls")
        print(f"1,000 memories / none: {results['p1000'] / results['p0']:.1f}x; "
              f"1,000 / 100: {results['p1000'] / results['p100']:.2f}x")


if __name__ == "__main__":
    main()
