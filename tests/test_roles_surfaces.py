"""Roles on the server (over HTTP: the council view, GET /api/roles, a run's specialists, a
refused question stored as a failed run) and over MCP (the `councils` tool, a refusal as a tool
error). The members are loopback OpenAI-compatible models (FakeOpenAIServer), so the server and
the MCP subprocess reach them over real HTTP."""

from __future__ import annotations

import os
import sys

import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from test_server_support import LiveServer, wait_for

from manyminds.config import load_settings
from manyminds.server import create_app
from manyminds.testing import Behaviour, FakeOpenAIServer

HTTP = httpx.Client(timeout=60)  # a loaded machine answers slowly; slow is not wrong


@pytest.fixture
def fake():
    with FakeOpenAIServer({"general": Behaviour(text="391"), "calc": Behaviour(text="Answer: 391"),
                           "nurse": Behaviour(text="Sleep well."), "judge": Behaviour(text='{"errors": [], "ranking": ["A", "B"]}')}) as srv:
        yield srv


def write_settings(home, server) -> None:
    (home / "settings.toml").write_text(f"""
default_council = "team"
[providers.fake]
base_url = "{server.base_url}"
[roles.law]
domain = "Contracts"
system = "You are a lawyer."
topics = ["contract"]
[councils.team]
quorum = 1
retries = 0
timeout = 20
short_answer = "heuristic"
chair = "general"
[[councils.team.members]]
name = "general"
model = "fake/general"
[[councils.team.members]]
name = "calc"
model = "fake/calc"
role = "maths"
[[councils.team.members]]
name = "nurse"
model = "fake/nurse"
role = "health-with-caution"
[[councils.team.members]]
name = "judge"
model = "fake/judge"
role = "critic"
[[councils.team.guardrails.refuse]]
topics = ["explosive"]
message = "No weapons here."
[[councils.team.guardrails.warn]]
topics = ["invest"]
message = "Not financial advice."
""", encoding="utf-8")


def test_server_shows_roles_and_runs_with_specialists(manyminds_home, fake):
    write_settings(manyminds_home, fake)
    with LiveServer(create_app(load_settings(), db_path=manyminds_home / "manyminds.db", token="")) as srv:
        councils = HTTP.get(srv.url + "/api/councils").json()
        team = next(c for c in councils["councils"] if c["name"] == "team")
        members = {m["name"]: m for m in team["members"]}
        assert "role" not in members["general"]
        assert members["calc"]["role"] == "maths" and members["calc"]["role_kind"] == "answer" and "calculate" in members["calc"]["role_topics"]
        assert members["judge"]["role_kind"] == "critic" and "role_topics" not in members["judge"]
        assert "dose" in members["nurse"]["role_refuse"]
        assert team["guardrails"]["refuse"][0]["topics"] == ["explosive"]

        roles = {r["name"]: r for r in HTTP.get(srv.url + "/api/roles").json()["roles"]}
        assert roles["law"]["source"] == "settings" and roles["maths"]["source"] == "shipped"
        assert roles["critic"]["kind"] == "critic" and roles["law"]["topics"] == ["contract"]

        run_id = HTTP.post(srv.url + "/api/runs", json={"question": "What is 17 * 23?"}).json()["id"]
        doc = wait_for(lambda: (d := HTTP.get(f"{srv.url}/api/runs/{run_id}").json())["status"] == "complete" and d)
        notes = {n["member"]: n for n in doc["verdict"]["specialists"]}
        assert notes["calc"]["status"] == "spoke" and notes["nurse"]["status"] == "skipped"
        assert notes["judge"]["status"] == "reviewed" and set(notes["judge"]["scores"]) == {"general", "calc"}
        sent = [r for r in fake.requests if "You are a mathematician" in str(r.body)]
        assert sent and not [r for r in fake.requests if "health information" in str(r.body)]

        refused = HTTP.post(srv.url + "/api/runs", json={"question": "How do I make an explosive?"}).json()["id"]
        failed = wait_for(lambda: (d := HTTP.get(f"{srv.url}/api/runs/{refused}").json())["status"] == "failed" and d)
        assert failed["error"]["type"] == "QuestionRefused" and "No weapons here." in failed["error"]["message"]

        warned = HTTP.post(srv.url + "/api/runs", json={"question": "Should I invest in 17 * 23 shares?"}).json()["id"]
        doc = wait_for(lambda: (d := HTTP.get(f"{srv.url}/api/runs/{warned}").json())["status"] == "complete" and d)
        assert "Guardrail: Not financial advice." in doc["verdict"]["warnings"]


def mcp_client() -> Client:
    params = StdioServerParameters(command=sys.executable, args=["-m", "manyminds.cli", "mcp"], env=dict(os.environ))
    return Client(params)


async def test_mcp_councils_tool_shows_roles_and_a_refusal_is_a_tool_error(manyminds_home, fake):
    write_settings(manyminds_home, fake)
    async with mcp_client() as client:
        result = await client.call_tool("councils", {})
        assert result.is_error is False
        data = result.structured_content
        team = next(c for c in data["councils"] if c["name"] == "team")
        assert {m["name"]: m.get("role") for m in team["members"]} == {
            "general": None, "calc": "maths", "nurse": "health-with-caution", "judge": "critic"}
        assert "law" in {r["name"] for r in data["roles"]}
        refused = await client.call_tool("ask", {"question": "Where can I buy an explosive?"})
        assert refused.is_error is True and "No weapons here." in refused.content[0].text
        asked = await client.call_tool("ask", {"question": "What is 2 + 2?"})
        assert asked.is_error is False
        assert "Specialist calc (maths): spoke" in asked.content[0].text


def cli(*args: str) -> "subprocess.CompletedProcess":
    import subprocess

    return subprocess.run([sys.executable, "-m", "manyminds.cli", *args], capture_output=True, env=dict(os.environ), timeout=120)


def test_cli_roles_refusal_and_warning(manyminds_home, fake):
    import json
    import sqlite3

    write_settings(manyminds_home, fake)
    listed = cli("roles", "--json")
    assert listed.returncode == 0, listed.stderr.decode()
    roles = {r["name"]: r for r in json.loads(listed.stdout)["roles"]}
    assert {"critic", "fact-checker", "maths", "health-with-caution", "law"} <= set(roles)
    assert cli("roles").stdout.decode().splitlines()[0].startswith("critic\tcritic\tshipped")
    shown = cli("roles", "show", "health-with-caution")
    assert shown.returncode == 0 and "refuses: dose" in shown.stdout.decode()
    missing = cli("roles", "show", "astrologer", "--json")
    assert missing.returncode == 2 and "Unknown role 'astrologer'" in json.loads(missing.stdout)["error"]["message"]

    council = cli("council")
    assert "role: maths (answer)" in council.stdout.decode() and "role: critic (critic)" in council.stdout.decode()

    refused = cli("ask", "--json", "Which explosive is strongest?")
    assert refused.returncode == 2
    doc = json.loads(refused.stdout)
    assert doc["error"]["type"] == "QuestionRefused" and doc["error"]["refusal"] == "No weapons here."
    con = sqlite3.connect(manyminds_home / "manyminds.db")
    try:
        status = con.execute("select status from runs where id = ?", [doc["run_id"]]).fetchone()[0]
    finally:
        con.close()
    assert status == "failed"
    assert not any("explosive" in str(r.body) for r in fake.requests)  # no model saw the refused question

    warned = cli("ask", "Should I invest in gold?")
    assert warned.returncode == 0, warned.stderr.decode()
    out = warned.stdout.decode()
    assert "Warning: Guardrail: Not financial advice." in out and "nurse (health-with-caution): skipped" in out
