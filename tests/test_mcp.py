"""`manyminds mcp` launched by the official `mcp` package's stdio client, the way an agent host
launches it: the tools and their schemas, `ask` on a council defined in the settings (answered by
an OpenAI-compatible loopback server) and on the local council, `verify`, and bad input coming
back as a tool error while the server keeps serving."""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from manyminds.testing import Behaviour, FakeOpenAIServer


def judge(body: dict) -> str:
    """A fact-checking member: the claim about 1850 is false, every other one true."""
    return "false" if "1850" in body["messages"][-1]["content"] else "true"


@pytest.fixture
def fake():
    with FakeOpenAIServer(
        {
            "alpha": Behaviour(text="William Shakespeare wrote Hamlet."),
            "beta": Behaviour(text="Shakespeare"),
            "gamma": Behaviour(text="Christopher Marlowe"),
            "broken": Behaviour.error(401, "Incorrect API key provided"),
            "judge": Behaviour(text=judge),
        }
    ) as srv:
        yield srv


def write_settings(home: Path, server: FakeOpenAIServer, members: list[str], *, quorum: int = 2) -> None:
    """Council "fake" of `members` (each answered by the loopback model of the same name), and
    council "judges": three seats on the fact-checking model."""
    lines = ['default_council = "fake"', "", "[providers.fake]", f'base_url = "{server.base_url}"', ""]
    councils = {"fake": [(m, m) for m in members], "judges": [("j1", "judge"), ("j2", "judge"), ("j3", "judge")]}
    for name, seats in councils.items():
        lines += [f"[councils.{name}]", f"quorum = {min(quorum, len(seats))}", "timeout = 20", "retries = 0",
                  'short_answer = "heuristic"']
        for seat, model in seats:
            lines += [f"[[councils.{name}.members]]", f'name = "{seat}"', f'model = "fake/{model}"']
        lines.append("")
    (home / "settings.toml").write_text("\n".join(lines))


def mcp_client() -> Client:
    """A client that starts `manyminds mcp` as a subprocess (the environment carries the test's
    MANYMINDS_HOME and the shared model cache)."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "manyminds.cli", "mcp"], env=dict(os.environ))
    return Client(params, read_timeout_seconds=600)


def text_of(result) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "type", "") == "text")


def raw_session(calls: list[dict], timeout: float = 120) -> tuple[list[str], dict[int, dict], bytes]:
    """Talk JSON-RPC to `manyminds mcp` by hand: initialize, then each tool call in turn (waiting
    for its answer). Every line the server writes to stdout must be a JSON-RPC message. Returns
    those lines, the responses by id, and the server's stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "manyminds.cli", "mcp"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    lines: queue.Queue = queue.Queue()

    def read_stdout() -> None:
        for raw in proc.stdout:
            lines.put(raw.decode())

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    seen: list[str] = []
    responses: dict[int, dict] = {}

    def send(message: dict) -> None:
        proc.stdin.write(json.dumps(message).encode() + b"\n")
        proc.stdin.flush()

    def take(raw: str) -> None:
        seen.append(raw)
        message = json.loads(raw)  # anything but JSON on stdout fails here
        assert message["jsonrpc"] == "2.0", raw
        if "id" in message and ("result" in message or "error" in message):
            responses[message["id"]] = message

    try:
        send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw-test", "version": "0"}}})
        for n, call in enumerate([None, *calls]):
            if call is not None:
                send({"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": call})
            while n not in responses:
                take(lines.get(timeout=timeout))
            if n == 0:
                assert responses[0]["result"]["serverInfo"]["name"] == "manyminds"
                send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    finally:
        proc.stdin.close()  # the host hangs up: the server exits
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
    while not lines.empty():
        take(lines.get_nowait())
    stderr = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == 0, stderr.decode()[-2000:]
    return seen, responses, stderr


def stored_runs(home: Path) -> list[dict]:
    con = sqlite3.connect(home / "manyminds.db")
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("select id, status, question, error from runs order by seq")]
    finally:
        con.close()


async def test_tools_are_listed_with_their_schemas(manyminds_home, fake):
    write_settings(manyminds_home, fake, ["alpha", "beta"])
    async with mcp_client() as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {"ask", "verify", "councils", "memory_list", "memory_add", "memory_forget"}
    ask = tools["ask"]
    assert ask.input_schema["required"] == ["question"]
    assert set(ask.input_schema["properties"]) == {"question", "council", "models", "min_confidence", "no_memory", "effort",
                                                    "max_cost", "max_tokens", "max_seconds"}
    assert tools["memory_add"].input_schema["required"] == ["text"]
    assert tools["memory_forget"].annotations.destructive_hint is True
    assert tools["memory_list"].annotations.read_only_hint is True
    assert ask.input_schema["properties"]["max_tokens"]["anyOf"][0] == {"exclusiveMinimum": 0, "type": "integer"}
    assert ask.input_schema["properties"]["models"]["anyOf"][0] == {"items": {"type": "string"}, "type": "array"}
    # The structured result is a Verdict: its schema is published for the host.
    assert {"answer", "confidence", "dissent", "members", "agreement"} <= set(ask.output_schema["properties"])
    verify = tools["verify"]
    assert verify.input_schema["required"] == ["text"]
    assert set(verify.input_schema["properties"]) == {"text", "collection", "council", "models"}
    assert {"verdict", "score", "claims", "summary"} <= set(verify.output_schema["properties"])
    # Each call runs (and may pay for) models: hosts should not treat it as read-only.
    assert ask.annotations.read_only_hint is False and ask.annotations.open_world_hint is True


async def test_ask_returns_the_verdict_and_a_summary(manyminds_home, fake):
    write_settings(manyminds_home, fake, ["alpha", "beta", "gamma"])
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value, total, message):
        progress.append((value, total, message))

    async with mcp_client() as client:
        result = await client.call_tool("ask", {"question": "Who wrote Hamlet?"}, progress_callback=on_progress)
    assert result.is_error is False, text_of(result)
    verdict = result.structured_content
    assert "Shakespeare" in verdict["answer"]
    assert verdict["confidence"] == pytest.approx(2 / 3, abs=1e-3)
    assert verdict["dissent"][0]["members"] == ["gamma"]
    assert [m["member"] for m in verdict["members"]] == ["alpha", "beta", "gamma"]
    summary = text_of(result)
    assert "Shakespeare" in summary and "Confidence: 67%" in summary
    assert "Dissent: 'Christopher Marlowe' from gamma" in summary and verdict["run_id"] in summary
    # Stored like any other run.
    assert [(r["id"], r["status"]) for r in stored_runs(manyminds_home)] == [(verdict["run_id"], "complete")]
    # The host was told how far the run got.
    assert progress and any("gamma" in (m or "") for _, _, m in progress)


async def test_ask_abstains_below_min_confidence_and_refuses_a_bad_one(manyminds_home, fake):
    write_settings(manyminds_home, fake, ["alpha", "beta", "gamma"])
    async with mcp_client() as client:
        unsure = await client.call_tool("ask", {"question": "Who wrote Hamlet?", "min_confidence": 0.9})
        bad = await client.call_tool("ask", {"question": "Who wrote Hamlet?", "min_confidence": 1.5})
    assert unsure.is_error is False, text_of(unsure)
    verdict = unsure.structured_content
    assert verdict["abstained"] is True and verdict["answer"].startswith("Not sure: the uncalibrated confidence 0.67")
    assert "Shakespeare" in verdict["withheld_answer"]
    assert [a["members"] for a in verdict["alternatives"]] == [["alpha", "beta"], ["gamma"]]
    assert bad.is_error is True and "min_confidence must be a number with 0 < x <= 1, not 1.5" in text_of(bad)
    assert [r["status"] for r in stored_runs(manyminds_home)][0] == "complete"


async def test_bad_input_is_a_tool_error_not_a_crash(manyminds_home, fake):
    write_settings(manyminds_home, fake, ["alpha", "beta", "broken"], quorum=3)
    async with mcp_client() as client:
        empty = await client.call_tool("ask", {"question": "   "})
        assert empty.is_error is True and "The question is empty" in text_of(empty)
        unknown = await client.call_tool("ask", {"question": "Who wrote Hamlet?", "council": "nope"})
        assert unknown.is_error is True and "Unknown council 'nope'" in text_of(unknown)
        # Too few members answered: the message names each failure's cause.
        short = await client.call_tool("ask", {"question": "Who wrote Hamlet?"})
        assert short.is_error is True
        assert "Only 2 member(s) answered; the council needs 3." in text_of(short)
        assert "broken" in text_of(short) and "Incorrect API key" in text_of(short)
        no_text = await client.call_tool("verify", {"text": ""})
        assert no_text.is_error is True and "empty" in text_of(no_text)
        wrong_type = await client.call_tool("ask", {"question": 42})
        assert wrong_type.is_error is True
        # Still serving after all that.
        ok = await client.call_tool("ask", {"question": "Who wrote Hamlet?", "models": ["fake/alpha", "fake/beta"]})
        assert ok.is_error is False and "Shakespeare" in ok.structured_content["answer"]
    statuses = [r["status"] for r in stored_runs(manyminds_home)]
    assert statuses.count("failed") >= 2 and statuses[-1] == "complete"


async def test_memory_tools_and_ask_with_and_without_memory(manyminds_home, fake):
    write_settings(manyminds_home, fake, ["alpha", "beta"])
    with open(manyminds_home / "settings.toml", "a") as f:
        f.write('\n[memory]\nshare_with = ["fake"]\n')
    note = "My favourite play is Hamlet, and I want the author's full name."
    async with mcp_client() as client:
        added = await client.call_tool("memory_add", {"text": note})
        assert added.is_error is False, text_of(added)
        memory_id = added.structured_content["id"]
        listed = await client.call_tool("memory_list", {})
        assert [m["text"] for m in listed.structured_content["memories"]] == [note]
        used = await client.call_tool("ask", {"question": "Who wrote Hamlet?"})
        assert [m["id"] for m in used.structured_content["memory_used"]] == [memory_id]
        assert any(note in json.dumps(r.body) for r in fake.requests)
        fake.reset()
        bare = await client.call_tool("ask", {"question": "Who wrote Hamlet?", "no_memory": True})
        assert bare.structured_content["memory_used"] == []
        assert fake.requests and not any(note in json.dumps(r.body) for r in fake.requests)
        empty = await client.call_tool("memory_add", {"text": "  "})
        assert empty.is_error is True and "The memory is empty" in text_of(empty)
        forgot = await client.call_tool("memory_forget", {"id": memory_id})
        assert forgot.is_error is False and forgot.structured_content["forgotten"] == 1
        unknown = await client.call_tool("memory_forget", {"id": memory_id})
        assert unknown.is_error is True and f"No memory {memory_id!r}" in text_of(unknown)
        assert (await client.call_tool("memory_list", {})).structured_content["memories"] == []


async def test_verify_returns_a_verdict_per_claim(manyminds_home, fake):
    write_settings(manyminds_home, fake, ["alpha", "beta"])
    text = "Hamlet was written by William Shakespeare. It was first performed in 1850."
    async with mcp_client() as client:
        result = await client.call_tool("verify", {"text": text, "council": "judges"})
    assert result.is_error is False, text_of(result)
    report = result.structured_content
    verdicts = {c["text"]: c["verdict"] for c in report["claims"]}
    assert len(verdicts) == 2
    assert [v for t, v in verdicts.items() if "Shakespeare" in t] == ["supported"]
    assert [v for t, v in verdicts.items() if "1850" in t] == ["refuted"]
    assert report["verdict"] == "refuted" and report["council"] == "judges"
    assert {"j1": "true", "j2": "true", "j3": "true"} in [c["votes"] for c in report["claims"]]
    summary = text_of(result)
    assert summary.startswith("Verdict: refuted") and "[supported" in summary and "[refuted" in summary
    assert f"Run {report['run_id']}" in summary
    assert stored_runs(manyminds_home)[-1]["status"] == "complete"


async def test_stdout_carries_only_the_protocol(manyminds_home, fake):
    write_settings(manyminds_home, fake, ["alpha", "beta", "gamma"])
    _, responses, stderr = raw_session([
        {"name": "ask", "arguments": {"question": "Who wrote Hamlet?"}},
        {"name": "ask", "arguments": {"question": ""}},
    ])
    assert responses[1]["result"]["isError"] is False
    assert responses[1]["result"]["structuredContent"]["dissent"][0]["members"] == ["gamma"]
    assert responses[2]["result"]["isError"] is True
    assert b"Traceback" not in stderr


@pytest.mark.local_model
async def test_ask_on_the_local_council(manyminds_home):
    async with mcp_client() as client:
        result = await client.call_tool("ask", {"question": "What is the capital of France?"})
    assert result.is_error is False, text_of(result)
    verdict = result.structured_content
    assert verdict["council"] == "local"
    assert {m["member"] for m in verdict["members"]} == {"smollm2", "gemma3", "smollm2-terse"}
    assert verdict["answer"].strip() and 0.0 <= verdict["confidence"] <= 1.0
    assert f"Run {verdict['run_id']}" in text_of(result)
    # The local model servers start on the first call; nothing of theirs reaches stdout.
    _, responses, _ = raw_session([{"name": "ask", "arguments": {"question": "Who wrote Hamlet?"}}], timeout=600)
    assert responses[1]["result"]["isError"] is False
