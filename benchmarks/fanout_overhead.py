"""Fan-out overhead: council fan-out wall time ÷ the slowest member's own time.

Five members on one loopback OpenAI-compatible server with fixed latencies (0.2–1.0 s, streamed
answers). The slowest member is timed alone, then the five together through the real fan-out
(OpenAI SDK, streaming, retries wrapper, per-provider limiter, events). Target ≤ 1.05.

    python benchmarks/fanout_overhead.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from _common import council_of

from manyminds.models.openai_compat import OpenAICompatModel
from manyminds.testing import Behaviour, FakeOpenAIServer, ScriptedModel
from manyminds.pipeline.stages.fanout import FanOut

LATENCIES = {"m1": 0.2, "m2": 0.4, "m3": 0.6, "m4": 0.8, "m5": 1.0}


def model(server: FakeOpenAIServer, name: str) -> OpenAICompatModel:
    return OpenAICompatModel(name, provider="loopback", base_url=server.base_url, api_key=None, needs_key=False)


async def main(rounds: int) -> None:
    behaviours = {n: Behaviour(text="Paris is the capital of France.", latency=lat, token_delay=0.002) for n, lat in LATENCIES.items()}
    with FakeOpenAIServer(behaviours) as server:
        council = council_of({n: model(server, n) for n in LATENCIES}, chair=ScriptedModel("chair", "Paris"))
        slowest = next(m for m in council.members if m.name == "m5")
        fan = FanOut(timeout=30)
        await fan.run("warm-up", council.members)  # connection set-up, imports
        alone, together, whole = [], [], []
        for _ in range(rounds):
            t = time.perf_counter()
            await fan.one("What is the capital of France?", slowest)
            alone.append(time.perf_counter() - t)
            t = time.perf_counter()
            await fan.run("What is the capital of France?", council.members)
            together.append(time.perf_counter() - t)
        from manyminds.pipeline.run import run_council

        for _ in range(rounds):
            t = time.perf_counter()
            await run_council("What is the capital of France?", council)
            whole.append(time.perf_counter() - t)
        await council.aclose()
    ratios = [b / a for a, b in zip(alone, together)]
    print(f"slowest member alone      : median {statistics.median(alone):.3f} s")
    print(f"five members, fan-out     : median {statistics.median(together):.3f} s")
    print(f"fan-out ÷ slowest member  : median {statistics.median(ratios):.3f} (target ≤ 1.05; rounds={rounds})")
    print(f"whole council ÷ slowest   : median {statistics.median(whole) / statistics.median(alone):.3f} "
          "(fan-out + compare + scripted chair, no store)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args().rounds))
