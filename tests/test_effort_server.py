"""Effort tiers over the wire: the run API with `effort` in the body and the OpenAI-compatible
route with `council/NAME:TIER` (real HTTP, uvicorn on loopback; `council/local:quick` on the real
local models), and the MCP tool's `effort` argument (`manyminds mcp` over stdio)."""

from __future__ import annotations

import httpx
import pytest
from test_mcp import mcp_client, text_of, write_settings
from test_server_support import LiveServer, scripted_settings, wait_for

from manyminds.config import load_settings
from manyminds.server import create_app
from manyminds.store import export_run, open_db
from manyminds.testing import Behaviour, FakeOpenAIServer


@pytest.fixture
def db_path(manyminds_home):
    return manyminds_home / "manyminds.db"


@pytest.fixture
def live(db_path):
    servers = []

    def start(settings=None):
        srv = LiveServer(create_app(settings or scripted_settings(), db_path=db_path, token=""))
        servers.append(srv.__enter__())
        return srv

    yield start
    for srv in servers:
        srv.__exit__(None, None, None)


def finished(srv, run_id: str) -> dict:
    return wait_for(lambda: (doc := httpx.get(f"{srv.url}/api/runs/{run_id}").json())["status"] == "complete" and doc,
                    timeout=60)


def test_effort_in_the_run_body(live, db_path):
    srv = live()
    created = httpx.post(srv.url + "/api/runs", json={"question": "Who wrote Hamlet?", "effort": "quick"})
    assert created.status_code == 202 and created.json()["tier"] == "quick" and created.json()["status"] == "running"
    doc = finished(srv, created.json()["id"])
    assert doc["strategy"] == "tier:quick" and doc["verdict"]["effort"] == "quick"

    auto = httpx.post(srv.url + "/api/runs", json={"question": "Who wrote Hamlet?", "effort": "auto"}).json()
    route = finished(srv, auto["id"])["verdict"]["route"]
    assert route["tier"] in ("quick", "standard") and route["reason"] and route["kind"] == "closed"

    # overnight is a background job whatever the tier field says
    queued = httpx.post(srv.url + "/api/runs", json={"question": "Who wrote Hamlet?", "effort": "overnight"})
    assert queued.status_code == 202 and queued.json()["status"] == "queued" and queued.json()["tier"] == "deep"
    job = httpx.get(f"{srv.url}/api/runs/{queued.json()['id']}").json()["job"]
    assert job["request"]["strategy"] == "tier:overnight"


def test_bad_efforts_in_the_run_body_are_422_and_store_nothing(live, db_path):
    srv = live()
    bogus = httpx.post(srv.url + "/api/runs", json={"question": "Who wrote Hamlet?", "effort": "bogus"})
    assert bogus.status_code == 422
    error = bogus.json()["error"]
    assert error["code"] == "validation_error" and error["param"] == "effort"
    assert ("body", "effort") in {tuple(d["loc"]) for d in error["details"]} and "quick" in error["message"]
    both = httpx.post(srv.url + "/api/runs", json={"question": "Who wrote Hamlet?", "effort": "quick", "strategy": "debate"})
    assert both.status_code == 422 and "not both" in both.json()["error"]["message"]
    assert open_db(db_path).execute("select count(*) from runs").fetchone()[0] == 0


def test_the_openapi_document_lists_the_tiers(live):
    spec = httpx.get(live().url + "/openapi.json").json()
    effort = spec["components"]["schemas"]["RunRequest"]["properties"]["effort"]
    assert {"quick", "standard", "deep", "overnight", "auto"} <= set(effort["anyOf"][0]["enum"])


def test_v1_effort_suffix_on_a_scripted_council(live, db_path):
    srv = live()
    r = httpx.post(srv.url + "/v1/chat/completions", timeout=60,
                   json={"model": "council/trio:auto", "messages": [{"role": "user", "content": "Who wrote Hamlet?"}]})
    assert r.status_code == 200, r.text
    ext = r.json()["manyminds"]
    assert ext["effort"] == "auto" and ext["route"]["tier"] in ("quick", "standard")
    assert export_run(open_db(db_path), ext["run_id"])["strategy"] == "tier:auto"


@pytest.mark.parametrize("model, status, words", [
    ("council/trio:bogus", 404, ["unknown effort tier 'bogus'", "quick, standard, deep, overnight, auto"]),
    ("council:bogus", 404, ["unknown effort tier 'bogus'"]),
    ("council/nope:quick", 404, ["does not exist"]),
    ("council/trio:overnight", 400, ["background job"]),
])
def test_v1_bad_effort_suffixes(live, db_path, model, status, words):
    r = httpx.post(live().url + "/v1/chat/completions",
                   json={"model": model, "messages": [{"role": "user", "content": "Who wrote Hamlet?"}]})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == "model" and all(w in error["message"] for w in words)
    assert r.headers["x-should-retry"] == "false"
    assert open_db(db_path).execute("select count(*) from runs").fetchone()[0] == 0


@pytest.mark.local_model
def test_v1_council_local_quick_on_the_real_local_models(live, db_path):
    srv = live(load_settings())
    r = httpx.post(srv.url + "/v1/chat/completions", timeout=300,
                   json={"model": "council/local:quick", "messages": [{"role": "user", "content": "What is the capital of France?"}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "council/local:quick" and body["choices"][0]["message"]["content"].strip()
    ext = body["manyminds"]
    assert ext["effort"] == "quick"
    run = export_run(open_db(db_path), ext["run_id"])
    assert run["strategy"] == "tier:quick" and run["status"] == "complete"
    statuses = {m["member"]: m["status"] for m in run["members"]}
    assert set(statuses) <= {"smollm2", "gemma3", "smollm2-terse"} and "ok" in statuses.values()
    assert set(statuses.values()) <= {"ok", "cut"}
    assert run["verdict"]["chair"] is None  # quick asks no chair


# --- MCP --------------------------------------------------------------------------------------


@pytest.fixture
def fake():
    with FakeOpenAIServer({"alpha": Behaviour(text="William Shakespeare wrote Hamlet."), "beta": Behaviour(text="Shakespeare"),
                           "gamma": Behaviour(text="Christopher Marlowe")}) as srv:
        yield srv


async def test_the_mcp_tool_takes_an_effort_and_refuses_an_unknown_one(manyminds_home, fake):
    write_settings(manyminds_home, fake, ["alpha", "beta", "gamma"])
    async with mcp_client() as client:
        quick = await client.call_tool("ask", {"question": "Who wrote Hamlet?", "effort": "quick"})
        assert quick.is_error is False, text_of(quick)
        assert quick.structured_content["effort"] == "quick" and quick.structured_content["strategy"] == "tier:quick"
        auto = await client.call_tool("ask", {"question": "Who wrote Hamlet?", "effort": "auto"})
        assert auto.is_error is False and "Route: " in text_of(auto)
        bogus = await client.call_tool("ask", {"question": "Who wrote Hamlet?", "effort": "bogus"})
        assert bogus.is_error is True
        assert "Unknown effort tier 'bogus'. Tiers: quick, standard, deep, overnight, auto." in text_of(bogus)
        overnight = await client.call_tool("ask", {"question": "Who wrote Hamlet?", "effort": "overnight"})
        assert overnight.is_error is True and "--effort overnight" in text_of(overnight)
        still = await client.call_tool("ask", {"question": "Who wrote Hamlet?"})  # the server keeps serving
        assert still.is_error is False
