"""Fuzz the whole API from its own OpenAPI document with schemathesis (its CLI: coverage,
fuzzing and stateful phases, every check) against a real server with a token, on the scripted
councils. No request may get a 5xx, every response must match the document (status, content
type, headers, schema, SSE events), schema-invalid requests must be refused, and requests
without the token must get 401 — which is how the document is kept accurate.

One check is left out: `positive_data_acceptance` (a schema-valid request must succeed).
Some of the server's rules are not JSON Schema's to state — a model name must be one the
registry knows, the question must not be blank once stripped, the last user message must
carry text — and the server refuses those with a precise 4xx, which is what it should do."""

from __future__ import annotations

import subprocess
import sys

from test_server_support import LiveServer, scripted_settings

from manyminds.server import create_app

TOKEN = "fuzz-token-5e1f0c9a"


def test_schemathesis_finds_no_server_error_and_no_spec_mismatch(tmp_path):
    app = create_app(scripted_settings(), db_path=tmp_path / "fuzz.db", token=TOKEN, worker=True,
                     worker_poll_s=0.2, sse_heartbeat_s=0.5)
    with LiveServer(app) as srv:
        result = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", f"{srv.url}/openapi.json",
             "-H", f"Authorization: Bearer {TOKEN}", "--checks", "all", "--exclude-checks", "positive_data_acceptance",
             "--max-examples", "25", "--request-timeout", "30", "--no-color"],
            capture_output=True, text=True, timeout=300,
            cwd=tmp_path,  # schemathesis keeps its example database in the working directory
        )
    report = result.stdout[-6000:]
    assert result.returncode == 0, report
    assert "passed" in report and "failed" not in report.split("SUMMARY")[-1]
