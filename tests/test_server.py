"""The run API over real HTTP (uvicorn on a loopback port, in a thread): create, get, list,
follow over SSE, cancel; deep runs through the in-server worker; bad input (nothing stored);
auth, CORS, body limits, the error shape, the web page mount and the OpenAPI document."""

from __future__ import annotations

import json

import httpx
import pytest
from test_server_support import (
    SCRIPTS,
    LiveServer,
    read_sse,
    scripted_settings,
    wait_for,
)

from manyminds.api import aask
from manyminds.config import CouncilSettings, MemberSettings, ProviderSettings, Settings
from manyminds.server import create_app
from manyminds.store import export_run, open_db
from manyminds.testing import Behaviour, FakeOpenAIServer

TOKEN = "tok-3f9d2a7c5b1e4d6f8a0b"


@pytest.fixture
def db_path(manyminds_home):
    return manyminds_home / "manyminds.db"


@pytest.fixture
def live(db_path):
    """A server on the scripted councils; `live(**create_app options)` for others."""
    servers = []

    def start(settings=None, **options):
        srv = LiveServer(create_app(settings or scripted_settings(), db_path=db_path, token=options.pop("token", ""), **options))
        servers.append(srv.__enter__())
        return srv

    yield start
    for srv in servers:
        srv.__exit__(None, None, None)


@pytest.fixture
def slow():
    """A loopback model server whose answers take 1.5 s: runs that can be watched and cancelled."""
    with FakeOpenAIServer(default=Behaviour(text="William Shakespeare", latency=1.5)) as server:
        yield server


def slow_settings(server) -> Settings:
    base = scripted_settings()
    base.providers["fake"] = ProviderSettings(base_url=server.base_url)
    base.councils["slow"] = CouncilSettings(
        members=[MemberSettings(name=m, model=f"fake/{m}") for m in ("m1", "m2")], quorum=1, timeout=30, retries=0,
        short_answer="heuristic",
    )
    return base


def rows(db_path, table: str) -> int:
    return open_db(db_path).execute(f"select count(*) from {table}").fetchone()[0]


def follow(url: str, **headers) -> list[dict]:
    with httpx.stream("GET", url, headers=headers, timeout=30) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        return read_sse(response)


# --- basics ----------------------------------------------------------------------------------


def test_health_and_councils(live):
    srv = live()
    assert httpx.get(srv.url + "/healthz").json() == {"ok": True, "version": "0.1.0"}
    councils = httpx.get(srv.url + "/api/councils").json()
    assert councils["default"] == "trio"
    trio = next(c for c in councils["councils"] if c["name"] == "trio")
    assert trio == {"name": "trio", "members": [{"name": n, "model": f"scripted/{n}"} for n in ("alpha", "beta", "gamma")],
                    "chair": "scripted/chair", "quorum": 2}


def test_create_a_quick_run_then_follow_and_get_it(live, db_path):
    srv = live()
    r = httpx.post(srv.url + "/api/runs", json={"question": "Who wrote Hamlet?"})
    assert r.status_code == 202
    created = r.json()
    run_id = created["id"]
    assert created == {"id": run_id, "status": "running", "tier": "quick", "url": f"/api/runs/{run_id}",
                       "events_url": f"/api/runs/{run_id}/events"}
    assert r.headers["location"] == created["url"]

    messages = follow(srv.url + created["events_url"])
    kinds = [m["event"] for m in messages]
    assert kinds[0] == "run_started" and kinds[-1] == "verdict"
    assert {"stage_started", "member_started", "member_delta", "member_done", "stage_done"} <= set(kinds)
    assert [int(m["id"]) for m in messages] == list(range(1, len(messages) + 1))
    for m in messages:
        assert set(m["data"]) == {"kind", "run_id", "stage", "member", "data", "ts"}
        assert m["data"]["kind"] == m["event"] and m["data"]["run_id"] == run_id
    verdict = messages[-1]["data"]["data"]
    assert verdict["run_id"] == run_id and "Shakespeare" in verdict["answer"]

    doc = httpx.get(srv.url + created["url"]).json()
    expected = export_run(open_db(db_path), run_id)
    assert doc == {**json.loads(json.dumps(expected)), "job": None}
    assert httpx.get(srv.url + f"/api/runs/{run_id[:12].lower()}").json()["id"] == run_id  # a prefix, any case


def test_follow_a_live_run_resume_with_last_event_id_and_stop_after_the_end(live, slow):
    srv = live(slow_settings(slow), sse_heartbeat_s=0.3)
    run_id = httpx.post(srv.url + "/api/runs", json={"question": "Who wrote Hamlet?", "council": "slow"}).json()["id"]
    url = f"{srv.url}/api/runs/{run_id}/events"
    with httpx.stream("GET", url, timeout=30) as response:
        raw = "".join(response.iter_text())
    assert ": keep-alive" in raw  # heartbeats while the members think
    messages = read_sse(httpx.Response(200, text=raw))
    assert messages[-1]["event"] == "verdict"
    resumed = follow(url, **{"Last-Event-ID": "3"})
    assert [m["id"] for m in resumed] == [m["id"] for m in messages[3:]]
    # The client has had everything: 204 tells an EventSource to stop reconnecting.
    assert httpx.get(url, headers={"Last-Event-ID": messages[-1]["id"]}).status_code == 204
    assert len(follow(url, **{"Last-Event-ID": "x"})) == len(messages)  # not an id of ours: from the start


async def test_runs_finished_before_the_server_knew_them_get_one_synthesised_event(live, db_path):
    settings = scripted_settings()
    verdict = await aask("Who wrote Hamlet?", settings=settings, db_path=db_path)
    srv = live(settings)
    messages = follow(f"{srv.url}/api/runs/{verdict.run_id}/events")
    assert [m["event"] for m in messages] == ["verdict"]
    assert messages[0]["data"]["data"]["answer"] == verdict.answer
    again = httpx.get(f"{srv.url}/api/runs/{verdict.run_id}/events", headers={"Last-Event-ID": messages[0]["id"]})
    assert again.status_code == 204


def test_list_and_search_runs(live):
    srv = live()
    ids = [httpx.post(srv.url + "/api/runs", json={"question": q}).json()["id"]
           for q in ("Who wrote Hamlet?", "Who painted the Mona Lisa?", "Who wrote Macbeth?")]
    wait_for(lambda: all(httpx.get(f"{srv.url}/api/runs/{i}").json()["status"] == "complete" for i in ids))
    queued = httpx.post(srv.url + "/api/runs", json={"question": "Who wrote Othello?", "tier": "deep"}).json()["id"]

    listed = httpx.get(srv.url + "/api/runs").json()
    assert [r["id"] for r in listed["runs"]] == [queued, *reversed(ids)] and listed["next_offset"] is None
    assert listed["runs"][0]["status"] == "queued" and listed["runs"][0]["job"]["status"] == "queued"
    assert listed["runs"][1]["job"] is None
    # Words of the question or the answer (every answer here says "Shakespeare wrote Hamlet").
    assert [r["id"] for r in httpx.get(srv.url + "/api/runs", params={"search": "painted"}).json()["runs"]] == [ids[1]]
    assert [r["id"] for r in httpx.get(srv.url + "/api/runs", params={"search": "othello"}).json()["runs"]] == [queued]
    assert [r["id"] for r in httpx.get(srv.url + "/api/runs", params={"status": "queued"}).json()["runs"]] == [queued]
    assert len(httpx.get(srv.url + "/api/runs", params={"status": "complete"}).json()["runs"]) == 3
    page = httpx.get(srv.url + "/api/runs", params={"limit": 2, "offset": 1}).json()
    assert [r["id"] for r in page["runs"]] == [ids[2], ids[1]] and page["next_offset"] == 3
    bad = httpx.get(srv.url + "/api/runs", params={"limit": 0, "status": "sleeping"})
    assert bad.status_code == 422
    assert {tuple(d["loc"]) for d in bad.json()["error"]["details"]} == {("query", "limit"), ("query", "status")}


def test_schema_invalid_bodies_are_refused_not_defaulted(live, db_path):
    """What the OpenAPI document forbids is refused with 422 (found by the fuzzer): an empty
    council name, an empty model list, a non-boolean `include_usage` or `stream`, a non-integer `n`."""
    srv = live()
    for body in ({"question": "Who?", "council": ""}, {"question": "Who?", "models": []}):
        refused = httpx.post(srv.url + "/api/runs", json=body)
        assert refused.status_code == 422, body
    chat = {"model": "council", "messages": [{"role": "user", "content": "Who?"}], "stream": True,
            "stream_options": {"include_usage": 1}}
    assert httpx.post(srv.url + "/v1/chat/completions", json=chat).status_code in (400, 422)
    question = {"model": "council", "messages": [{"role": "user", "content": "Who?"}]}
    for lax in ({"stream": 1}, {"stream": "true"}, {"n": True}, {"n": 1.0}):
        assert httpx.post(srv.url + "/v1/chat/completions", json={**question, **lax}).status_code in (400, 422), lax
    assert open_db(db_path).execute("select count(*) from runs").fetchone()[0] == 0


# --- deep runs and cancel ------------------------------------------------------------------------


def test_a_deep_run_through_the_in_server_worker(live):
    srv = live(worker=True, worker_poll_s=0.1)
    created = httpx.post(srv.url + "/api/runs", json={"question": "Who wrote Hamlet?", "tier": "deep"})
    assert created.status_code == 202 and created.json()["status"] == "queued"
    run_id = created.json()["id"]
    messages = follow(f"{srv.url}/api/runs/{run_id}/events")
    assert messages[-1]["event"] == "verdict"
    stages = {m["data"]["stage"] for m in messages if m["event"] == "stage_done"}
    assert {"fan_out", "review_1", "revise_1", "compare", "synthesize"} <= stages
    doc = wait_for(lambda: (d := httpx.get(f"{srv.url}/api/runs/{run_id}").json())["job"]["status"] == "done" and d)
    assert doc["status"] == "complete" and doc["strategy"] == "deep" and doc["job"]["progress"]["fraction"] == 1.0
    assert httpx.post(f"{srv.url}/api/runs/{run_id}/cancel").status_code == 409


def test_cancel_a_quick_run(live, slow, db_path):
    srv = live(slow_settings(slow))
    run_id = httpx.post(srv.url + "/api/runs", json={"question": "Who wrote Hamlet?", "council": "slow"}).json()["id"]
    wait_for(lambda: slow.requests)
    r = httpx.post(f"{srv.url}/api/runs/{run_id}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled" and r.json()["tier"] == "quick"
    doc = httpx.get(f"{srv.url}/api/runs/{run_id}").json()
    assert doc["status"] == "incomplete" and doc["error"]["type"] == "Cancelled"
    messages = follow(f"{srv.url}/api/runs/{run_id}/events")
    assert messages[-1]["event"] == "run_failed" and messages[-1]["data"]["data"]["type"] == "Cancelled"
    assert httpx.post(f"{srv.url}/api/runs/{run_id}/cancel").status_code == 409


def test_cancel_a_quick_run_still_waiting_for_its_turn(live, slow):
    srv = live(slow_settings(slow), max_concurrent_runs=1)
    first = httpx.post(srv.url + "/api/runs", json={"question": "Who wrote Hamlet?", "council": "slow"}).json()["id"]
    waiting = httpx.post(srv.url + "/api/runs", json={"question": "Who wrote Macbeth?", "council": "slow"}).json()["id"]
    assert httpx.get(f"{srv.url}/api/runs/{waiting}").json()["status"] == "running"  # from the client's side
    assert httpx.post(f"{srv.url}/api/runs/{waiting}/cancel").json()["status"] == "cancelled"
    doc = httpx.get(f"{srv.url}/api/runs/{waiting}").json()  # it never began, yet its id names a stored run
    assert doc["status"] == "incomplete" and doc["error"]["type"] == "Cancelled" and doc["question"] == "Who wrote Macbeth?"
    assert follow(f"{srv.url}/api/runs/{first}/events")[-1]["event"] == "verdict"


def test_cancel_deep_runs_queued_and_running(live, slow):
    srv = live(slow_settings(slow), worker=True, worker_poll_s=0.1)
    first = httpx.post(srv.url + "/api/runs", json={"question": "Who wrote Hamlet?", "council": "slow", "tier": "deep"}).json()["id"]
    second = httpx.post(srv.url + "/api/runs", json={"question": "Who wrote Macbeth?", "council": "slow", "tier": "deep"}).json()["id"]
    wait_for(lambda: httpx.get(f"{srv.url}/api/runs/{first}").json()["job"]["status"] == "running")
    queued = httpx.post(f"{srv.url}/api/runs/{second}/cancel")  # one job at a time: still queued
    assert queued.status_code == 200 and queued.json()["status"] == "cancelled"
    running = httpx.post(f"{srv.url}/api/runs/{first}/cancel")
    assert running.status_code == 200 and running.json()["status"] == "cancelled"
    assert httpx.get(f"{srv.url}/api/runs/{first}").json()["error"]["type"] == "Cancelled"
    assert [m["event"] for m in follow(f"{srv.url}/api/runs/{second}/events")] == ["run_failed"]
    assert httpx.post(f"{srv.url}/api/runs/{second}/cancel").status_code == 409
    assert httpx.post(f"{srv.url}/api/runs/01ZZZZZZZZZZZZZZZZZZZZZZZZ/cancel").status_code == 404


# --- bad input: precise 4xx, one error shape, nothing stored -------------------------------------------


def test_a_run_below_min_confidence_abstains_and_a_bad_minimum_is_refused(live, db_path):
    srv = live()
    for bad in (0, 1.5, "high", True, "0.5"):  # a bool or a numeric string is not a number here
        r = httpx.post(srv.url + "/api/runs", json={"question": "Who wrote Hamlet?", "min_confidence": bad})
        assert r.status_code == 422 and r.json()["error"]["param"].endswith("min_confidence"), r.text
    assert rows(db_path, "runs") == 0
    run_id = httpx.post(srv.url + "/api/runs", json={"question": "Who wrote Hamlet?", "min_confidence": 0.99}).json()["id"]
    verdict = follow(f"{srv.url}/api/runs/{run_id}/events")[-1]["data"]["data"]
    assert verdict["abstained"] is True and verdict["answer"].startswith("Not sure:")
    assert "Shakespeare" in verdict["withheld_answer"] and len(verdict["alternatives"]) >= 1
    stored = httpx.get(f"{srv.url}/api/runs/{run_id}").json()
    assert stored["verdict"]["abstained"] is True


@pytest.mark.parametrize(
    "send, status, code",
    [
        ({"content": b'{"question": "Who?",', "headers": {"content-type": "application/json"}}, 400, "invalid_json"),
        ({"content": b'{"question": "Who?"}', "headers": {"content-type": "text/plain"}}, 400, "unsupported_media_type"),
        ({"json": ["Who?"]}, 422, "validation_error"),
        ({"json": {"question": 42}}, 422, "validation_error"),
        ({"json": {"question": "Who?", "tier": "slow"}}, 422, "validation_error"),
        ({"json": {"question": "Who?", "temperature": 2}}, 422, "validation_error"),
        ({"json": {}}, 422, "validation_error"),
        ({"json": {"question": "   "}}, 422, None),
        ({"json": {"question": "Who?", "council": "nope"}}, 422, "unknown_council"),
        ({"json": {"question": "Who?", "models": ["scripted/alpha", "nosuch/x"]}}, 422, "model_not_found"),
        ({"json": {"question": "Who?", "strategy": "telepathy"}}, 422, "validation_error"),
        ({"json": {"question": "Who?", "tier": "deep", "council": "nope"}}, 422, "unknown_council"),
        ({"json": {"question": "x" * 300_000}}, 413, "payload_too_large"),
    ],
)
def test_bad_requests_get_a_precise_json_error_and_store_nothing(live, db_path, send, status, code):
    srv = live(max_body_bytes=256 * 1024)
    r = httpx.post(srv.url + "/api/runs", **send)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) >= {"type", "message", "param", "code"} and error["message"] and error["code"] == code
    assert rows(db_path, "runs") == 0 and rows(db_path, "jobs") == 0


def test_validation_errors_keep_the_field_details(live):
    srv = live()
    error = httpx.post(srv.url + "/api/runs", json={"question": 42, "tier": "slow"}).json()["error"]
    assert error["type"] == "ValidationError" and error["param"] == "question"
    assert {tuple(d["loc"]) for d in error["details"]} == {("body", "question"), ("body", "tier")}
    assert "body.question" in error["message"]


def test_a_chunked_body_over_the_limit_is_refused_while_reading(live, db_path):
    srv = live(max_body_bytes=10_000)

    def chunks():
        yield b'{"question": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    r = httpx.post(srv.url + "/api/runs", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert rows(db_path, "runs") == 0


def test_unknown_runs_routes_and_methods(live):
    srv = live()
    for path in ("/api/runs/01ZZZZZZZZZZZZZZZZZZZZZZZZ", "/api/runs/not-an-id", "/api/runs/01ZZZZZZZZZZZZZZZZZZZZZZZZ/events"):
        r = httpx.get(srv.url + path)
        assert r.status_code == 404 and r.json()["error"]["type"] == "NotFound", path
    assert httpx.get(srv.url + "/nowhere").json()["error"]["type"] == "NotFound"
    r = httpx.delete(srv.url + "/api/runs")
    assert r.status_code == 405 and r.json()["error"]["type"] == "MethodNotAllowed"


# --- auth, CORS, the page, the spec ---------------------------------------------------------------------


def test_a_configured_token_is_required_everywhere_but_healthz(live):
    srv = live(token=TOKEN)
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(srv.url + "/healthz").status_code == 200
    for method, path in [("GET", "/api/runs"), ("POST", "/api/runs"), ("GET", "/v1/models"), ("GET", "/openapi.json"),
                         ("POST", "/v1/chat/completions"), ("GET", "/api/councils")]:
        missing = httpx.request(method, srv.url + path, json={})
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_token", path
        assert missing.headers["www-authenticate"].startswith("Bearer")
        wrong = httpx.request(method, srv.url + path, json={}, headers={"Authorization": f"Bearer {TOKEN}x"})
        assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "Invalid bearer token."
    assert httpx.get(srv.url + "/api/runs", headers=good).status_code == 200
    assert httpx.get(srv.url + "/api/runs", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    # The page's own files hold no data and load without it (the page then sends the token).
    assert httpx.get(srv.url + "/static/nothing-here.js").status_code == 404
    assert httpx.post(srv.url + "/", json={}).status_code == 401
    # ?token= for what a browser cannot send headers with (EventSource, links): GET only.
    assert httpx.get(srv.url + "/api/runs", params={"token": TOKEN}).status_code == 200
    assert httpx.post(srv.url + "/api/runs", params={"token": TOKEN}, json={"question": "Who?"}).status_code == 401
    run_id = httpx.post(srv.url + "/api/runs", headers=good, json={"question": "Who wrote Hamlet?"}).json()["id"]
    messages = follow(f"{srv.url}/api/runs/{run_id}/events?token={TOKEN}")
    assert messages[-1]["event"] == "verdict"
    spec = httpx.get(srv.url + "/openapi.json", headers=good).json()
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert spec["paths"]["/api/runs"]["post"]["security"] == [{"bearerAuth": []}]
    assert "security" not in spec["paths"]["/healthz"]["get"]


def test_cors_is_closed_by_default_and_configurable(live):
    closed = live()
    foreign = {"Origin": "https://evil.example"}
    assert "access-control-allow-origin" not in httpx.get(closed.url + "/api/runs", headers=foreign).headers
    preflight = httpx.options(closed.url + "/api/runs", headers={**foreign, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers

    opened = live(cors_origins=["https://app.example"], token=TOKEN)
    ok = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
          "Access-Control-Request-Headers": "authorization,content-type"}
    pre = httpx.options(opened.url + "/api/runs", headers=ok)  # a preflight carries no token
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "https://app.example"
    r = httpx.get(opened.url + "/api/runs", headers={"Origin": "https://app.example", "Authorization": f"Bearer {TOKEN}"})
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    other = httpx.get(opened.url + "/api/runs", headers={**foreign, "Authorization": f"Bearer {TOKEN}"})
    assert "access-control-allow-origin" not in other.headers


def test_the_web_page_is_served_from_the_static_directory(live, tmp_path):
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<!doctype html><title>manyminds</title>")
    (static / "app.js").write_text("console.log('hi')")
    srv = live(static_dir=static)
    page = httpx.get(srv.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html") and "manyminds" in page.text
    assert httpx.get(srv.url + "/static/app.js").text == "console.log('hi')"
    bare = live(static_dir=tmp_path / "missing")
    assert httpx.get(bare.url + "/").status_code == 404 and httpx.get(bare.url + "/static/app.js").status_code == 404


def test_the_openapi_document_describes_the_contract(live):
    spec = httpx.get(live().url + "/openapi.json").json()
    paths = spec["paths"]
    for path, method in [("/healthz", "get"), ("/v1/models", "get"), ("/v1/chat/completions", "post"), ("/api/runs", "post"),
                         ("/api/runs", "get"), ("/api/runs/{run_id}", "get"), ("/api/runs/{run_id}/events", "get"),
                         ("/api/runs/{run_id}/cancel", "post"), ("/api/councils", "get"), ("/api/memory", "get"),
                         ("/api/memory", "post"), ("/api/memory/{memory_id}", "delete")]:
        assert method in paths[path], path
    body = spec["components"]["schemas"]["RunRequest"]
    assert set(body["properties"]) == {"question", "council", "models", "strategy", "tier", "min_confidence", "no_memory",
                                       "profile", "effort", "budget"}
    budget = spec["components"]["schemas"]["Budget"]
    assert set(budget["properties"]) == {"max_cost", "max_tokens", "max_seconds"} and budget["additionalProperties"] is False
    assert body["additionalProperties"] is False
    assert "202" in paths["/api/runs"]["post"]["responses"]
    assert paths["/api/runs"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # FastAPI's shape is not ours


def test_scripts_are_the_ones_the_tests_expect():
    # Guards the expectations above ("Shakespeare" wins 2 to 1) against edits of the shared scripts.
    assert "Shakespeare" in SCRIPTS["alpha"] and "Marlowe" in SCRIPTS["gamma"]
