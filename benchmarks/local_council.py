"""The embedded local council on a short factual question: end-to-end seconds (cold, as a user
runs `manyminds ask`, and warm, with the model servers already up), tokens/s during fan-out,
and peak memory of manyminds plus its model servers.

    python benchmarks/local_council.py [--questions 3] [--council local-plus]

With `--models KEY…` it measures single local models instead (the figures of
docs/local-models.md): server start seconds, peak RSS of the server, and generation tokens/s
for 1 request and for 3 concurrent ones (MANYMINDS_LOCAL_THREADS sets the threads).

    python benchmarks/local_council.py --models smollm2 qwen2.5-coder-0.5b qwen2.5-coder-1.5b
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

QUESTIONS = ["What is the capital of France?", "Who wrote Hamlet?", "How many legs does a spider have?",
             "What is the largest planet in the solar system?", "What is 12 times 12?"]


def tree_rss_mb(root: int) -> float:
    """Resident memory of `root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            status = (entry / "status").read_text()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(stat[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total / 1024


class PeakSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, tree_rss_mb(self.pid))
            time.sleep(0.05)


def cold_runs(questions: list[str], council: str | None) -> None:
    for q in questions:
        t = time.perf_counter()
        extra = ["--council", council] if council else []
        proc = subprocess.Popen([sys.executable, "-m", "manyminds.cli", "ask", "--json", "--no-store", *extra, q],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        sampler = PeakSampler(proc.pid)
        sampler.start()
        out, err = proc.communicate()
        sampler.stop.set()
        seconds = time.perf_counter() - t
        if proc.returncode:
            print(f"  {q!r}: failed ({proc.returncode}): {err.decode()[-300:]}")
            continue
        v = json.loads(out)
        report(q, v, seconds, f"peak RSS {sampler.peak:.0f} MB (CLI + model servers)")


def report(q: str, v: dict, seconds: float, extra: str) -> None:
    out_tokens = sum(m["usage"]["output_tokens"] for m in v["members"] if m["status"] == "ok")
    fan = v["timings"]["fan_out"]
    print(f"  {q!r}: {seconds:.1f} s end to end (fan-out {fan:.1f} s, compare {v['timings']['compare']:.1f} s, "
          f"chair {v['timings']['synthesize']:.1f} s); {out_tokens / fan:.0f} member tokens/s during fan-out; "
          f"{v['usage']['total_tokens']} tokens; confidence {v['confidence']:.2f} → {v['short_answer']!r}; {extra}")


def warm_runs(questions: list[str], council: str | None) -> None:
    import manyminds
    from manyminds.models.local.server import shutdown_all

    sampler = PeakSampler(os.getpid())
    sampler.start()
    manyminds.ask("Warm up: what is 1 + 1?", council=council, store=False)
    for q in questions:
        t = time.perf_counter()
        v = manyminds.ask(q, council=council, store=False).model_dump()
        report(q, v, time.perf_counter() - t, "servers warm")
    sampler.stop.set()
    print(f"  peak RSS, this process + model servers: {sampler.peak:.0f} MB")
    shutdown_all()


SPEED_PROMPT = "Explain in one paragraph how a bicycle stays upright."


async def _generate(model, n: int, max_tokens: int) -> tuple[float, int]:
    """n concurrent requests; (wall seconds, output tokens in all)."""
    import asyncio

    from manyminds.models.base import Message, ModelOptions

    options = ModelOptions(temperature=0.0, max_tokens=max_tokens)
    t = time.perf_counter()
    done = await asyncio.gather(*(model.complete([Message(role="user", content=f"{SPEED_PROMPT} ({i})")], options)
                                  for i in range(n)))
    return time.perf_counter() - t, sum(c.usage.output_tokens for c in done)


def model_speed(key: str, max_tokens: int = 128) -> dict:
    """Start one model's server and measure it; the server is stopped afterwards."""
    import asyncio

    from manyminds.models.local.model import LocalModel
    from manyminds.models.local.server import get_server_sync, shutdown_all

    t = time.perf_counter()
    server = get_server_sync(key)
    start = time.perf_counter() - t
    sampler = PeakSampler(server.pid)
    sampler.start()

    async def run() -> dict:
        model = LocalModel(key)
        await _generate(model, 1, 8)  # warm-up
        one = await _generate(model, 1, max_tokens)
        three = await _generate(model, 3, max_tokens)
        await model.aclose()
        return {"tok_s_1": one[1] / one[0], "tok_s_3": three[1] / three[0], "seconds_3": three[0]}

    figures = asyncio.run(run())
    sampler.stop.set()
    size = Path(server.model_path).stat().st_size / 1e6
    shutdown_all()
    return {"model": key, "file_mb": round(size), "start_s": round(start, 1), "peak_rss_mb": round(sampler.peak),
            **{k: round(v, 1) for k, v in figures.items()}}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=3)
    parser.add_argument("--council", default=None, help="a council name (default: the default council)")
    parser.add_argument("--models", nargs="+", metavar="KEY", help="measure these local models one by one")
    args = parser.parse_args()
    if args.models:
        for key in args.models:
            print(json.dumps(model_speed(key)), flush=True)
        sys.exit(0)
    n = args.questions
    print("Cold (a fresh `manyminds ask` each time, model servers started on demand):")
    cold_runs(QUESTIONS[:n], args.council)
    print("Warm (one process, servers kept):")
    warm_runs(QUESTIONS[:n], args.council)
