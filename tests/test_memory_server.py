"""The memory API over real HTTP (uvicorn on a loopback port): list, add, forget, the errors,
auth, and runs that use (or skip) the memory — stored with what they used."""

from __future__ import annotations

import sqlite3

import httpx
import pytest
from test_server_support import LiveServer, scripted_settings, wait_for

from manyminds.config import MemorySettings
from manyminds.memory.store import MAX_MEMORY_CHARS
from manyminds.server import create_app

TOKEN = "tok-memory-7c1e9a2b4d6f"


@pytest.fixture
def db_path(manyminds_home):
    return manyminds_home / "manyminds.db"


@pytest.fixture
def srv(db_path):
    settings = scripted_settings()
    settings.memory = MemorySettings(share_with=["scripted"])
    with LiveServer(create_app(settings, db_path=db_path, token=TOKEN)) as server:
        yield server


def client(srv) -> httpx.Client:
    return httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)


def count(db_path, sql: str, args=()) -> int:
    con = sqlite3.connect(db_path)
    try:
        return con.execute(sql, args).fetchone()[0]
    finally:
        con.close()


def test_list_add_forget(srv, db_path):
    with client(srv) as c:
        assert c.get("/api/memory").json() == {"profile": "default", "memories": []}
        made = c.post("/api/memory", json={"text": "  I prefer answers in French.  "})
        assert made.status_code == 201
        memory = made.json()
        assert memory["text"] == "I prefer answers in French." and memory["source"] == "api"
        c.post("/api/memory", json={"text": "A work note", "profile": "work"})
        assert [m["id"] for m in c.get("/api/memory").json()["memories"]] == [memory["id"]]
        assert [m["text"] for m in c.get("/api/memory?profile=work").json()["memories"]] == ["A work note"]

        gone = c.delete(f"/api/memory/{memory['id']}")
        assert gone.status_code == 200 and gone.json() == {"profile": "default", "forgotten": 1, "id": memory["id"]}
        assert c.get("/api/memory").json()["memories"] == []
        assert count(db_path, "select count(*) from memories where id = ?", [memory["id"]]) == 0
        assert count(db_path, "select count(*) from memory_vectors where memory_id = ?", [memory["id"]]) == 0

        again = c.delete(f"/api/memory/{memory['id']}")
        assert again.status_code == 404
        assert again.json()["error"]["type"] == "NotFound" and memory["id"] in again.json()["error"]["message"]


def test_bad_input_is_refused_precisely_and_nothing_is_stored(srv, db_path):
    with client(srv) as c:
        for body, needle in [({"text": ""}, "The memory is empty"), ({"text": "   "}, "The memory is empty"),
                             ({"text": "q" * (MAX_MEMORY_CHARS + 1)}, "the limit is 2,000"),
                             ({"text": "a\u0000b"}, "NUL"), ({"text": "x", "profile": "../etc"}, "Invalid profile name")]:
            r = c.post("/api/memory", json=body)
            assert r.status_code == 422 and needle in r.json()["error"]["message"], r.text
        assert c.post("/api/memory", json={"text": 5}).status_code == 422
        assert c.post("/api/memory", json={"text": "x", "colour": "red"}).status_code == 422
        assert c.post("/api/memory", content=b'{"text": "caf\xe9"}', headers={"Content-Type": "application/json"}).status_code in (400, 422)
        assert c.get("/api/memory?profile=a%20b").status_code == 422
    assert count(db_path, "select count(*) from memories") == 0
    # The token guards the memory like every other route.
    assert httpx.get(srv.url + "/api/memory").status_code == 401
    assert httpx.delete(srv.url + "/api/memory/x").status_code == 401


def test_a_run_uses_the_memory_and_no_memory_skips_it(srv):
    with client(srv) as c:
        note = c.post("/api/memory", json={"text": "My favourite playwright is William Shakespeare."}).json()

        def finished(run_id: str) -> dict:
            doc = wait_for(lambda: (d := c.get(f"/api/runs/{run_id}").json())["status"] == "complete" and d, 20)
            return doc["verdict"]

        used = finished(c.post("/api/runs", json={"question": "Who is my favourite playwright?"}).json()["id"])
        assert [m["id"] for m in used["memory_used"]] == [note["id"]]
        assert used["memory_members"] == ["alpha", "beta", "gamma"]
        skipped = finished(c.post("/api/runs", json={"question": "Who is my favourite playwright?", "no_memory": True}).json()["id"])
        assert skipped["memory_used"] == [] and skipped["memory_members"] == []
        bad = c.post("/api/runs", json={"question": "Who wrote Hamlet?", "profile": "no/slashes"})
        assert bad.status_code == 422 and "Invalid profile name" in bad.json()["error"]["message"]
