"""Budgets on the other surfaces: the run API over real HTTP (422 for a bad budget, a run
that stops on one), the MCP server over stdio, an eval run stopped by its budget and resumed,
and the report's Pareto frontier on a hand-made run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from test_eval_cli import DATASET, MODELS, halueval_fetched, invoke, scripted  # noqa: F401 - fixtures
from test_mcp import fake, mcp_client, text_of, write_settings  # noqa: F401 - fixtures
from test_server import follow, live  # noqa: F401 - fixtures
from test_server_support import scripted_settings

from manyminds.eval.metrics import ItemResult
from manyminds.eval.pareto import frontier
from manyminds.eval.report import write_report
from manyminds.store import open_db


@pytest.fixture
def db_path(manyminds_home):
    return manyminds_home / "manyminds.db"


# --- the run API over HTTP ---------------------------------------------------------------------


@pytest.mark.parametrize("budget, field", [
    ({"max_tokens": 0}, "max_tokens"), ({"max_cost": -1}, "max_cost"), ({"max_seconds": 0}, "max_seconds"),
    ({"max_tokens": 10, "max_dollars": 3}, "max_dollars"),
])  # fmt: skip
def test_a_bad_budget_is_a_422_and_nothing_is_stored(live, db_path, budget, field):
    srv = live(scripted_settings())
    r = httpx.post(srv.url + "/api/runs", json={"question": "Who wrote Hamlet?", "budget": budget})
    assert r.status_code == 422
    assert field in json.dumps(r.json())
    assert open_db(db_path).execute("select count(*) from runs").fetchone()[0] == 0


def test_a_run_over_http_stops_on_its_token_budget(live, db_path):
    srv = live(scripted_settings())
    # duo: alpha and beta (max_tokens 100 each, quorum 1). alpha holds its prompt and 100 tokens,
    # beta gets the rest; the chair's long prompt no longer fits.
    r = httpx.post(srv.url + "/api/runs", json={"question": "Who wrote Hamlet?", "council": "duo",
                                                "budget": {"max_tokens": 150}})  # fmt: skip
    assert r.status_code == 202
    created = r.json()
    messages = follow(srv.url + created["events_url"])
    assert messages[-1]["event"] == "verdict"
    verdict = messages[-1]["data"]["data"]
    assert verdict["budget_limited"]["budget"] == "tokens" and verdict["usage"]["total_tokens"] <= 150
    assert [m["status"] for m in verdict["members"]] == ["ok", "ok"]
    assert verdict["chair"]["status"] == "failed"  # the chair's prompt did not fit what was left
    doc = httpx.get(srv.url + created["url"]).json()
    assert doc["budget_limited"]["budget"] == "tokens"
    listed = httpx.get(srv.url + "/api/runs").json()
    assert listed["runs"][0]["id"] == created["id"]


def test_a_budget_too_small_over_http_fails_the_run_with_the_reason(live, db_path):
    srv = live(scripted_settings())
    created = httpx.post(srv.url + "/api/runs", json={"question": "Who wrote Hamlet?", "budget": {"max_tokens": 3}}).json()
    messages = follow(srv.url + created["events_url"])
    assert messages[-1]["event"] == "run_failed"
    error = messages[-1]["data"]["data"]
    assert error["type"] == "BudgetTooSmall" and "--max-tokens 3 is too small for even one member" in error["message"]
    assert open_db(db_path).execute("select count(*) from member_answers").fetchone()[0] == 0


# --- MCP ---------------------------------------------------------------------------------------


async def test_mcp_ask_takes_a_budget_and_refuses_a_bad_one(manyminds_home, fake):  # noqa: F811
    write_settings(manyminds_home, fake, ["alpha", "beta", "gamma"], quorum=1)
    async with mcp_client() as client:
        bad = await client.call_tool("ask", {"question": "Who wrote Hamlet?", "max_tokens": 0})
        assert bad.is_error is True and "max_tokens" in text_of(bad)
        limited = await client.call_tool("ask", {"question": "Who wrote Hamlet?", "max_tokens": 150})
    assert limited.is_error is False, text_of(limited)
    verdict = limited.structured_content
    assert verdict["budget_limited"]["budget"] == "tokens" and verdict["usage"]["total_tokens"] <= 150


# --- an eval run with a budget -----------------------------------------------------------------


EVAL_COUNCIL = """
default_council = "s3"
[councils.s3]
quorum = 1
retries = 0
short_answer = "heuristic"
""" + "".join(f'[[councils.s3.members]]\nname = "{n}"\nmodel = "scripted/{n}"\nmax_tokens = 8\n' for n in ("yes", "no", "maybe"))


def test_an_eval_run_stops_on_its_budget_and_resumes(manyminds_home, tmp_path):
    # Members with a small max_tokens: what a call reserves is close to what it spends.
    (manyminds_home / "settings.toml").write_text(EVAL_COUNCIL)
    code, out, err = invoke("eval", "run", "-d", DATASET, "-s", "majority", "--limit", "2", "--json")
    assert code == 0, err
    per_pair = json.loads(out)["summary"][DATASET]["majority"]["tokens_per_q"]
    # Room for two pairs and a half, one pair at a time: the third is cut, the rest never start.
    code, out, err = invoke("eval", "run", "-d", DATASET, "-s", "majority", "--limit", "6", "--concurrency", "1",
                            "--no-cache", "--max-tokens", str(int(per_pair * 2.5)), "--json")  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    run_id = doc["run_id"]
    assert doc["status"] == "incomplete" and doc["items"] == 2
    limited = doc["budget_limited"]
    assert limited["budget"] == "tokens" and limited["pairs_left"] == 4
    assert limited["spent"]["tokens"] <= int(per_pair * 2.5)
    shown = json.loads(invoke("eval", "show", run_id, "--json")[1])
    assert shown["status"] == "incomplete" and shown["error"]["type"] == "BudgetLimited"

    code, out, _ = invoke("eval", "report", run_id, "--out", str(tmp_path / "rep"))
    report = (tmp_path / "rep" / "report.md").read_text()
    assert f"**Budget limited**: yes — {run_id} stopped on a budget" in report
    assert f"- **Budget-limited**: eval run {run_id} stopped on its budget" in report and "is still incomplete" in report

    code, out, err = invoke("eval", "run", "--resume", run_id, "--json")
    assert code == 0, err
    resumed = json.loads(out)
    assert resumed["status"] == "complete" and resumed["items"] == 6 and resumed["budget_limited"] is None
    code, out, _ = invoke("eval", "report", run_id, "--out", str(tmp_path / "rep2"))
    assert "was resumed and is now complete" in (tmp_path / "rep2" / "report.md").read_text()


def test_eval_run_refuses_bad_budgets():
    code, _, err = invoke("eval", "run", "-d", DATASET, "-s", "majority", *MODELS, "--max-seconds", "0")
    assert code == 2 and "Invalid value for '--max-seconds': 0.0 is not in the range x>0." in err


def test_an_eval_budget_too_small_for_one_call_is_refused_before_a_run_is_stored(manyminds_home):
    (manyminds_home / "settings.toml").write_text(EVAL_COUNCIL)
    code, _, err = invoke("eval", "run", "-d", DATASET, "-s", "single", "-s", "majority", "--limit", "2",
                          "--max-tokens", "20")  # fmt: skip
    assert code == 2 and "--max-tokens 20 is too small for even one member" in err
    assert json.loads(invoke("eval", "list", "--json")[1]) == []  # not a run of stored errors


# --- the Pareto frontier -----------------------------------------------------------------------

# (accuracy over 4 items, tokens per question, seconds per question, cost per question)
RUN = {
    "single:x":   ([1, 1, 0, 0], 100, 1.0, 0.001),   # fewest tokens: on both frontiers
    "single:y":   ([1, 0, 0, 0], 120, 0.5, 0.001),   # dominated on tokens (x: more accurate, fewer); fastest
    "majority":   ([1, 1, 1, 0], 300, 3.0, 0.003),   # more accurate for more tokens; slower than council
    "council":    ([1, 1, 1, 0], 400, 2.0, None),    # as accurate as majority but more tokens; faster than it
    "deep":       ([1, 1, 1, 1], 900, 9.0, 0.009),   # the most accurate: on both
}  # fmt: skip


def hand_made() -> list[ItemResult]:
    return [ItemResult(run_id="r", item_id=f"i{n}", dataset="d", category=None, strategy=name, correct=bool(correct[n]),
                       confidence=None, answer="a", short_answer="a", raw_text="a", grade_method="exact",
                       grade_error=None, tokens=tokens, cost_usd=cost, seconds=seconds)
            for name, (correct, tokens, seconds, cost) in RUN.items() for n in range(4)]  # fmt: skip


def test_frontier_by_hand():
    assert frontier({"a": (1, 0.5), "b": (2, 0.5), "c": (2, 0.9), "d": (3, 0.9), "e": (1, 0.5)}) == ["a", "e", "c"]
    assert frontier({"only": (5, 0.1)}) == ["only"]


def test_the_report_marks_the_frontier_and_draws_both_plots(tmp_path):
    path = write_report(hand_made(), tmp_path / "out", title="Pareto", meta={"default_strategy": "council"}, n_boot=50)
    text = path.read_text()
    section = text.split("## Accuracy against effort (Pareto frontier)\n", 1)[1].split("\n## ", 1)[0]
    marks = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 7 and cells[0] in RUN:
            marks[cells[0]] = (cells[5] == "✓", cells[6] == "✓", cells[4])
    assert marks == {
        "single:x": (True, True, "$0.0010"),  # only y is faster, and y is less accurate
        "single:y": (False, True, "$0.0010"),
        "majority": (True, False, "$0.0030"),
        "council": (False, True, "n/a"),
        "deep": (True, True, "$0.0090"),
    }
    for name in ("pareto_tokens.png", "pareto_seconds.png"):
        data = (path.parent / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
        assert f"]({name})" in text
    assert re.search(r"\| council \| 75\.0% \| 400 \| 2\.00 \| n/a \|", section)


def test_eval_run_refuses_a_budget_with_ray():
    code, _, err = invoke("eval", "run", "-d", DATASET, "-s", "majority", *MODELS, "--ray", "--max-tokens", "100")
    assert code == 2 and "cannot be enforced with --ray" in err
