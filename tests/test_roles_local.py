"""Roles on the real local model: the CLI in a subprocess asks a council of SmolLM2 members, one
a maths specialist and one a health specialist, through a loopback proxy in front of the real
llama.cpp server that records every request — so the test sees the role's system prompt arrive
at the model, and the verdict's `specialists` say who spoke and who was skipped."""

from __future__ import annotations

import http.client
import json
import os
import sqlite3
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.local_model

SETTINGS = """
default_council = "specialists"
[councils.specialists]
quorum = 1
short_answer = "heuristic"
chair = "plain"
chair_max_tokens = 48
[[councils.specialists.members]]
name = "plain"
model = "local/smollm2"
system = "Answer in one short sentence."
temperature = 0.0
max_tokens = 32
[[councils.specialists.members]]
name = "calculator"
model = "local/smollm2"
role = "maths"
temperature = 0.0
max_tokens = 48
[[councils.specialists.members]]
name = "nurse"
model = "local/smollm2"
role = "health-with-caution"
temperature = 0.0
max_tokens = 32
"""


class RecordingProxy:
    """A loopback HTTP proxy that forwards to `upstream` and keeps each request body."""

    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)
        self.bodies: list[dict] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if body:
                    try:
                        proxy.bodies.append(json.loads(body))
                    except ValueError:
                        pass
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = _forward

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "RecordingProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def smollm2_proxy():
    from manyminds.models.local.server import get_server_sync, shutdown_all

    server = get_server_sync("smollm2")  # the real llama.cpp server, owned by this test process
    try:
        with RecordingProxy(server.url) as proxy:
            yield proxy, server.api_key
    finally:
        shutdown_all()


def cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "manyminds.cli", *args], capture_output=True, env=env, timeout=300)


def test_role_prompt_reaches_the_local_model_and_the_verdict_names_the_specialists(manyminds_home, smollm2_proxy):
    proxy, api_key = smollm2_proxy
    (manyminds_home / "settings.toml").write_text(SETTINGS, encoding="utf-8")
    env = dict(os.environ, MANYMINDS_LOCAL_SERVER_URL_SMOLLM2=proxy.url + "/v1", MANYMINDS_LOCAL_SERVER_KEY_SMOLLM2=api_key or "")

    result = cli("ask", "--json", "What is 12 + 30?", env=env)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    verdict = json.loads(result.stdout)

    notes = {n["member"]: n for n in verdict["specialists"]}
    assert notes["calculator"]["role"] == "maths" and notes["calculator"]["status"] == "spoke"
    assert notes["nurse"]["status"] == "skipped" and "health-with-caution" in notes["nurse"]["reason"]
    assert {m["member"] for m in verdict["members"]} == {"plain", "calculator"}

    # What reached the model: the maths prompt in exactly the calls that carry the question as
    # a member's own question, and the health prompt in none.
    sent = [json.dumps(b) for b in proxy.bodies if "messages" in b or "prompt" in b]
    maths_calls = [s for s in sent if "You are a mathematician" in s]
    assert maths_calls and all("12 + 30" in s for s in maths_calls)
    assert not any("general, well-established health information" in s for s in sent)

    # The run record has the specialists and the council with its roles.
    con = sqlite3.connect(manyminds_home / "manyminds.db")
    try:
        row = con.execute("select status, settings from runs where id = ?", [verdict["run_id"]]).fetchone()
    finally:
        con.close()
    assert row[0] == "complete"
    council = json.loads(row[1])
    roles = {m["name"]: m.get("role") for m in council["members"]}
    assert roles == {"plain": None, "calculator": "maths", "nurse": "health-with-caution"}

    # Plain output lists the specialists too.
    plain = cli("ask", "What is 12 + 30?", env=env)
    assert plain.returncode == 0, plain.stderr.decode()[-2000:]
    out = plain.stdout.decode()
    assert "Specialists:" in out and "calculator (maths): spoke" in out and "nurse (health-with-caution): skipped" in out


def test_unknown_role_fails_the_cli_before_any_model_runs(manyminds_home):
    (manyminds_home / "settings.toml").write_text(SETTINGS.replace('role = "maths"', 'role = "accountant"'), encoding="utf-8")
    result = cli("ask", "What is 12 + 30?", env=dict(os.environ))
    assert result.returncode == 2
    err = result.stderr.decode()
    assert "Unknown role 'accountant'" in err and "member 'calculator' of council 'specialists'" in err
    assert "critic, fact-checker, health-with-caution, maths" in err
