"""`manyminds serve` as a user runs it: a subprocess on a free port. Binding refused without a
token; structured JSON logs that never contain the token or an API key; and, on the real local
council, the official `openai` client end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import openai
import pytest
from test_server_support import ServeProcess, write_fake_settings

from manyminds.store import open_db
from manyminds.testing import Behaviour, FakeOpenAIServer

TOKEN = "tok-NEVER-LOG-ME-7d41c2b9e0a8"
PROVIDER_KEY = "fk-NEVER-LOG-ME-2a9c8e7f6d5b"
OPENAI_KEY = "sk-NEVER-LOG-ME-0f1e2d3c4b5a6978"


def test_binding_beyond_loopback_needs_a_token(manyminds_home):
    env = {k: v for k, v in os.environ.items() if k != "MANYMINDS_TOKEN"}
    result = subprocess.run([sys.executable, "-m", "manyminds.cli", "serve", "--host", "0.0.0.0", "--port", "9"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a token" in result.stderr and "--token" in result.stderr


def test_logs_are_json_lines_without_the_token_or_keys(manyminds_home, tmp_path):
    behaviours = {"good": Behaviour(text="William Shakespeare"),
                  # A provider that echoes the key it was sent in its error message.
                  "leaky": Behaviour.error(401, "Incorrect API key provided: {auth}")}
    with FakeOpenAIServer(behaviours) as fake:
        write_fake_settings(manyminds_home, fake.base_url, ["good", "leaky"], key_env="FAKE_API_KEY")
        log_file = tmp_path / "server.log"
        env = {"MANYMINDS_TOKEN": TOKEN, "FAKE_API_KEY": PROVIDER_KEY, "OPENAI_API_KEY": OPENAI_KEY}
        with ServeProcess("--log-level", "debug", env=env) as srv:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            client = openai.OpenAI(base_url=srv.url + "/v1", api_key=TOKEN)
            answer = client.chat.completions.create(model="council", messages=[{"role": "user", "content": "Who wrote Hamlet?"}])
            assert "Shakespeare" in answer.choices[0].message.content
            assert any(r.headers.get("authorization") == f"Bearer {PROVIDER_KEY}" for r in fake.requests)  # the key was used
            assert httpx.get(f"{srv.url}/api/runs?token={TOKEN}").status_code == 200
            assert httpx.get(f"{srv.url}/api/runs", headers={"Authorization": f"Bearer {TOKEN[:-1]}"}).status_code == 401
            run_id = httpx.post(f"{srv.url}/api/runs", headers=auth, json={"question": "Who wrote Macbeth?"}).json()["id"]
            with httpx.stream("GET", f"{srv.url}/api/runs/{run_id}/events?token={TOKEN}", timeout=30) as r:
                assert "verdict" in r.read().decode()
            write_fake_settings(manyminds_home, fake.base_url, ["leaky"], key_env="FAKE_API_KEY")
        _, stderr = srv.output()

        with ServeProcess("--log-file", str(log_file), env=env) as srv2:  # the same, to a file
            assert httpx.get(f"{srv2.url}/api/runs?token={TOKEN}").status_code == 200
        from_file = log_file.read_text()

    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    access = [r for r in records if r["logger"] == "manyminds.server.access"]
    assert {"/v1/chat/completions", "/api/runs", f"/api/runs/{run_id}/events"} <= {r["path"] for r in access}
    assert {r["status"] for r in access} >= {200, 202, 401}
    assert all({"ts", "level", "msg", "method", "status", "ms", "request_id"} <= set(r) for r in access)
    assert any(r["msg"] == "server started" for r in records)
    for text in (stderr, from_file):
        for secret in (TOKEN, PROVIDER_KEY, OPENAI_KEY, TOKEN[:-1]):
            assert secret not in text
    assert any(json.loads(line).get("path") == "/api/runs" for line in from_file.splitlines() if line.startswith("{"))


@pytest.mark.local_model
def test_the_openai_client_against_the_local_council(manyminds_home):
    with ServeProcess(env={"MANYMINDS_TOKEN": ""}) as srv:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", timeout=300)
        assert "council/local" in [m.id for m in client.models.list()]
        r = client.chat.completions.create(model="council/local", messages=[{"role": "user", "content": "What is the capital of France?"}])
        ext = r.model_extra["manyminds"]
        assert r.choices[0].message.content.strip() and 0.0 <= ext["confidence"] <= 1.0
        assert len(ext["agreement"]["members"]) == 3 and r.usage.total_tokens > 0
        chunks = list(client.chat.completions.create(model="council", stream=True,
                                                     messages=[{"role": "user", "content": "Who wrote Hamlet?"}]))
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert streamed.strip() and chunks[-1].model_extra["manyminds"]["run_id"]
    db = open_db(manyminds_home / "manyminds.db")
    assert [row[0] for row in db.execute("select status from runs")] == ["complete", "complete"]
