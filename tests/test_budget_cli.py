"""Budgets through the real CLI in a subprocess: the real local council hitting --max-tokens, a
real local member beside a slow loopback member hitting --max-seconds, prices from the settings
file and a missing one (unknown, never $0), bad budgets, and a budget too small for any call."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from manyminds.testing import Behaviour, FakeOpenAIServer


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "manyminds.cli", *args], capture_output=True, env=dict(os.environ),
                          timeout=timeout)  # fmt: skip


def runs(home: Path) -> list[dict]:
    con = sqlite3.connect(home / "manyminds.db")
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("select * from runs order by seq")]
    finally:
        con.close()


@pytest.fixture
def fake():
    with FakeOpenAIServer({
        "alpha": Behaviour(text="William Shakespeare wrote Hamlet."),
        "beta": Behaviour(text="Shakespeare"),
        "slow": Behaviour(text="Christopher Marlowe", latency=120),
    }) as srv:  # fmt: skip
        yield srv


def settings(home: Path, server: FakeOpenAIServer, members: dict[str, str], *, quorum: int = 1, chair: str | None = None,
             extra: str = "") -> None:
    lines = ['default_council = "mixed"', "", "[providers.fake]", f'base_url = "{server.base_url}"', "",
             "[councils.mixed]", f"quorum = {quorum}", "timeout = 200", "retries = 0", 'short_answer = "heuristic"']  # fmt: skip
    if chair:
        lines.append(f'chair = "{chair}"')
    for name, model in members.items():
        lines += ["[[councils.mixed.members]]", f'name = "{name}"', f'model = "{model}"', "max_tokens = 60"]
    (home / "settings.toml").write_text("\n".join(lines) + "\n" + extra)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--max-cost", "0"], "Invalid value for '--max-cost': 0.0 is not in the range x>0."),
    (["--max-cost", "-0.5"], "Invalid value for '--max-cost': -0.5 is not in the range x>0."),
    (["--max-tokens", "0"], "Invalid value for '--max-tokens': 0 is not in the range x>=1."),
    (["--max-seconds", "-2"], "Invalid value for '--max-seconds': -2.0 is not in the range x>0."),
    (["--max-tokens", "lots"], "Invalid value for '--max-tokens': 'lots' is not a valid integer range."),
])  # fmt: skip
def test_zero_or_negative_budgets_exit_2_with_the_option_named(args, message):
    result = cli("ask", *args, "Who wrote Hamlet?", timeout=60)
    assert result.returncode == 2 and message in result.stderr.decode()


def test_a_budget_too_small_for_any_member_is_refused_before_any_call(manyminds_home, fake):
    settings(manyminds_home, fake, {"alpha": "fake/alpha", "beta": "fake/beta"},
             extra='[prices."fake/alpha"]\ninput = 1.0\noutput = 2.0\n[prices."fake/beta"]\ninput = 1.0\noutput = 2.0\n')
    result = cli("ask", "--max-tokens", "5", "Who wrote Hamlet?", timeout=60)
    assert result.returncode == 2
    err = result.stderr.decode()
    assert "--max-tokens 5 is too small for even one member: the smallest prompt (member 'alpha') is about" in err
    result = cli("ask", "--json", "--max-cost", "0.0000001", "Who wrote Hamlet?", timeout=60)
    assert result.returncode == 2
    assert "--max-cost 1e-07 is too small for even one member: the cheapest call (member 'alpha'" in json.loads(result.stdout)["error"]["message"]
    assert fake.requests_for("alpha") == [] and fake.requests_for("beta") == []  # no model was called
    stored = runs(manyminds_home)
    assert [r["status"] for r in stored] == ["failed", "failed"]
    assert {json.loads(r["error"])["type"] for r in stored} == {"BudgetTooSmall"}


def test_prices_from_settings_and_a_missing_one_shown_as_unknown(manyminds_home, fake):
    settings(manyminds_home, fake, {"alpha": "fake/alpha", "beta": "fake/beta"}, quorum=2, chair="alpha",
             extra='[prices."fake/alpha"]\ninput = 1000.0\noutput = 2000.0\n')
    result = cli("ask", "--json", "Who wrote Hamlet?", timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    verdict = json.loads(result.stdout)
    members = {m["member"]: m for m in verdict["members"]}
    usage = members["alpha"]["usage"]
    assert members["alpha"]["cost_usd"] == pytest.approx((usage["input_tokens"] * 1000 + usage["output_tokens"] * 2000) / 1e6)
    assert members["beta"]["cost_usd"] is None and verdict["cost_usd"] is None  # unknown, not 0

    plain = cli("ask", "Who wrote Hamlet?", timeout=60).stdout.decode()
    assert "beta (fake/beta, " in plain and "cost unknown" in plain
    assert [line for line in plain.splitlines() if line.startswith("Run: ")][0].count("cost unknown") == 1
    # A missing price also blocks a cost budget, before any call.
    before = len(fake.requests_for("beta"))
    refused = cli("ask", "--max-cost", "1", "Who wrote Hamlet?", timeout=60)
    assert refused.returncode == 2 and "the price of fake/beta is unknown" in refused.stderr.decode()
    assert len(fake.requests_for("beta")) == before

    listing = cli("runs", "list", timeout=60).stdout.decode().splitlines()
    assert len(listing) == 3 and all("\tunknown\t" in line for line in listing[1:])  # newest first: two unknown costs
    assert "\tfailed\t-\t" in listing[0]


# --- the real local model ----------------------------------------------------------------------


@pytest.mark.local_model
def test_max_tokens_on_the_local_council_stops_cleanly(manyminds_home):
    result = cli("ask", "--json", "--max-tokens", "150", "Who wrote Hamlet?")
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    verdict = json.loads(result.stdout)
    limited = verdict["budget_limited"]
    assert limited["budget"] == "tokens" and limited["limit"] == 150 and limited["cut"]
    assert verdict["usage"]["total_tokens"] <= 150
    assert any(m["status"] == "ok" for m in verdict["members"]) and verdict["answer"]
    assert verdict["chair"]["status"] == "failed" and "150-token budget" in verdict["chair"]["error"]["message"]
    assert verdict["cost_usd"] == 0.0  # local models are free, by an explicit entry in the price table

    stored = runs(manyminds_home)[0]
    assert stored["status"] == "complete" and json.loads(stored["budget_limited"])["spent"] == limited["spent"]
    listing = cli("runs", "list", timeout=60).stdout.decode()
    assert "complete (budget: tokens)\t" in listing and "\t$0.0000\t" in listing


@pytest.mark.local_model
def test_max_seconds_cuts_a_slow_loopback_member_and_keeps_the_local_answer(manyminds_home, fake):
    settings(manyminds_home, fake, {"smollm2": "local/smollm2", "slow": "fake/slow"}, chair="smollm2")
    started = time.monotonic()
    result = cli("ask", "--json", "--max-seconds", "40", "Who wrote Hamlet?")
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert took < 90  # the slow member answers after 120 s: it was cut, not waited for
    verdict = json.loads(result.stdout)
    members = {m["member"]: m for m in verdict["members"]}
    assert members["smollm2"]["status"] == "ok" and members["smollm2"]["text"]
    assert members["slow"]["status"] == "failed" and members["slow"]["error"]["type"] == "BudgetExceeded"
    assert "cut at the 40-second budget (--max-seconds)" in members["slow"]["error"]["message"]
    assert verdict["budget_limited"]["budget"] == "seconds" and "fake/slow" in verdict["budget_limited"]["cut"]
    assert verdict["timings"]["fan_out"] <= 41
    assert json.loads(runs(manyminds_home)[0]["budget_limited"])["budget"] == "seconds"
