"""Effort tiers end to end on the embedded local council: real GGUF models on loopback, the real
CLI in a subprocess, and the SQLite file it leaves."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

pytestmark = pytest.mark.local_model


def cli(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "manyminds.cli", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=timeout)


def stored(home, run_id: str) -> dict[str, str]:
    con = sqlite3.connect(home / "manyminds.db")
    try:
        rows = con.execute("select member, status from member_answers where run_id = ?", [run_id]).fetchall()
        strategy = con.execute("select strategy from runs where id = ?", [run_id]).fetchone()[0]
    finally:
        con.close()
    return {"strategy": strategy, **dict(rows)}


def test_quick_and_auto_on_the_local_council(manyminds_home):
    quick = cli("ask", "--effort", "quick", "--json", "What is the capital of France?")
    assert quick.returncode == 0, quick.stderr[-2000:]
    v = json.loads(quick.stdout)
    assert v["effort"] == "quick" and v["strategy"] == "tier:quick" and v["chair"] is None
    assert "Paris" in v["answer"]
    statuses = {m["member"]: m["status"] for m in v["members"]}
    assert set(statuses) == {"smollm2", "gemma3", "smollm2-terse"} and set(statuses.values()) <= {"ok", "cut"}
    if "cut" in statuses.values():  # the two first answers agreed: the third was not waited for
        assert v["early_consensus"]["cut"] == [m for m, s in statuses.items() if s == "cut"]
    assert stored(manyminds_home, v["run_id"]) == {"strategy": "tier:quick", **statuses}

    auto = cli("ask", "--effort", "auto", "--json", "What is the capital of France?")
    assert auto.returncode == 0, auto.stderr[-2000:]
    a = json.loads(auto.stdout)
    assert a["effort"] == "auto" and a["route"]["kind"] == "closed" and a["route"]["tier"] in ("quick", "standard")
    assert a["route"]["reason"] and "quick" in a["route"]["features"]
    assert a["route"]["escalated"] == (a["route"]["tier"] != "quick")
    assert stored(manyminds_home, a["run_id"])["strategy"] == "tier:auto"

    # plain output shows the route
    plain = cli("ask", "--effort", "auto", "Explain why the sky is blue.")
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert "Route: standard — long-form" in plain.stdout


def test_an_unknown_tier_on_the_cli(manyminds_home):
    result = cli("ask", "--effort", "hard", "What is the capital of France?", timeout=60)
    assert result.returncode == 2
    assert "Invalid value for '--effort'" in result.stderr and "'quick', 'standard', 'deep', 'overnight', 'auto'" in result.stderr
    strategy = cli("ask", "--effort", "quick", "--strategy", "debate", "--json", "What is the capital of France?", timeout=60)
    assert strategy.returncode != 0
    assert "not both" in json.loads(strategy.stdout)["error"]["message"]
