"""Load on loopback: N concurrent OpenAI chat completions against `manyminds serve` on a real
council (default: the embedded local one), through the official `openai` client.

Prints p50 / p95 / max latency, requests per minute, errors, and checks the database: exactly N
new runs, all complete, one per answered request (no lost or duplicated runs).

    python benchmarks/server_load.py [--requests 50] [--council local] [--stream] [--max-runs 16]
                                     [--settings FILE]   # another council, e.g. scripted/echo members

The server runs in a subprocess with a throw-away user dir (so the count of runs is exact); the
local models' cache is shared (`MANYMINDS_CACHE`, default ~/.manyminds/cache). One warm-up
request starts the local model servers first; it is reported apart and not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai

QUESTIONS = [
    "What is the capital of France?", "Who wrote Hamlet?", "How many legs does a spider have?",
    "What is the largest planet in the solar system?", "What is 12 times 12?", "What colour is the sky on a clear day?",
    "Who painted the Mona Lisa?", "What is the boiling point of water in Celsius?", "What is the capital of Japan?",
    "How many days are in a week?",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0–100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def start_server(home: Path, port: int, max_runs: int) -> subprocess.Popen:
    env = dict(os.environ, MANYMINDS_HOME=str(home))
    env.setdefault("MANYMINDS_CACHE", str(Path.home() / ".manyminds" / "cache"))
    env.pop("MANYMINDS_DB", None)
    env.pop("MANYMINDS_TOKEN", None)
    log = open(home / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "manyminds.cli", "serve", "--port", str(port), "--max-runs", str(max_runs), "--no-worker"],
        env=env, stdout=log, stderr=log,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve exited: {(home / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("serve did not come up within 60 s")


async def one(client: openai.AsyncOpenAI, model: str, question: str, stream: bool) -> tuple[float, str | None, str | None]:
    """(seconds, run id, error) of one request."""
    start = time.perf_counter()
    try:
        messages = [{"role": "user", "content": question}]
        if stream:
            last = None
            async for chunk in await client.chat.completions.create(model=model, messages=messages, stream=True):
                last = chunk
            run_id = last.model_extra["manyminds"]["run_id"] if last else None
        else:
            r = await client.chat.completions.create(model=model, messages=messages)
            run_id = r.model_extra["manyminds"]["run_id"]
        return time.perf_counter() - start, run_id, None
    except Exception as exc:  # noqa: BLE001 - every failure is counted and shown, none stops the load
        return time.perf_counter() - start, None, f"{type(exc).__name__}: {exc}"[:200]


def db_runs(db: Path) -> list[tuple[str, str]]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT id, status FROM runs").fetchall()
    finally:
        con.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--council", default="local")
    parser.add_argument("--stream", action="store_true", help="Streaming completions instead of plain ones.")
    parser.add_argument("--max-runs", type=int, default=16, help="The server's --max-runs (runs executing at once).")
    parser.add_argument("--settings", type=Path, help="A settings.toml for the server's user dir (default: none).")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mm-load-") as tmp:
        home, port = Path(tmp), free_port()
        if args.settings:
            (home / "settings.toml").write_text(args.settings.read_text())
        proc = start_server(home, port, args.max_runs)
        try:
            client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0,
                                        timeout=1800, http_client=None)
            model = f"council/{args.council}"
            warm, _, error = await one(client, model, "What is 2 plus 2?", args.stream)
            if error:
                raise SystemExit(f"warm-up request failed: {error}\n{(home / 'server.log').read_text()[-2000:]}")
            before = {run_id for run_id, _ in db_runs(home / "manyminds.db")}

            questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(args.requests)]
            start = time.perf_counter()
            results = await asyncio.gather(*[one(client, model, q, args.stream) for q in questions])
            wall = time.perf_counter() - start
            await client.close()

            after = db_runs(home / "manyminds.db")
        finally:
            proc.terminate()
            proc.wait(30)

    latencies = [s for s, _, err in results if err is None]
    errors = [err for _, _, err in results if err is not None]
    answered = [run_id for _, run_id, err in results if err is None]
    new = {run_id: status for run_id, status in after if run_id not in before}
    print(f"server_load: {args.requests} concurrent {'streaming ' if args.stream else ''}chat completions, "
          f"council {args.council!r}, server --max-runs {args.max_runs}")
    print(f"  warm-up (starts the model servers): {warm:.2f} s")
    if latencies:
        print(f"  latency p50 {percentile(latencies, 50):.2f} s · p95 {percentile(latencies, 95):.2f} s · "
              f"max {max(latencies):.2f} s · mean {statistics.mean(latencies):.2f} s")
    print(f"  wall {wall:.1f} s · {len(latencies) / wall * 60:.1f} requests/minute")
    print(f"  errors: {len(errors)}" + "".join(f"\n    - {e}" for e in sorted(set(errors))[:5]))
    statuses = {s: list(new.values()).count(s) for s in sorted(set(new.values()))}
    duplicates = len(answered) - len(set(answered))
    missing = set(answered) - set(new)
    print(f"  database: {len(new)} new runs {statuses}; answered ids {len(answered)}, duplicated {duplicates}, "
          f"missing from the DB {len(missing)}")
    ok = not errors and len(new) == args.requests and not duplicates and not missing and statuses == {"complete": args.requests}
    print("  check:", "OK — exactly one complete run per request" if ok else "FAILED")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    asyncio.run(main())
