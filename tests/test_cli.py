"""The real CLI in a subprocess against OpenAI-compatible loopback servers: output modes, the
stored runs, and every bad-input path with its message, exit code and run record."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from manyminds.testing import Behaviour, FakeOpenAIServer

SECRET = "sk-test-DO-NOT-LEAK-4f9a8b7c6d5e4f3a2b1c"


@pytest.fixture
def server():
    with FakeOpenAIServer(
        {
            "alpha": Behaviour(text="William Shakespeare wrote Hamlet."),
            "beta": Behaviour(text="Shakespeare"),
            "gamma": Behaviour(text="Christopher Marlowe"),
            "slow": Behaviour(text="Shakespeare", latency=10),
            # far slower than a loaded machine needs to start the CLI and store the fast answer
            "slower": Behaviour(text="Shakespeare", latency=60),
            "garbage": Behaviour.failing("garbage"),
            "truncated": Behaviour.failing("truncated"),
            "drop": Behaviour.failing("drop"),
            "e500": Behaviour.error(500, "internal error"),
            "leaky": Behaviour.error(401, "Incorrect API key provided: {auth}"),
            "jsonish": Behaviour(text='{"answer": "Shakespeare", "reason": "he wrote it'),
        }
    ) as srv:
        yield srv


def write_settings(home: Path, server: FakeOpenAIServer, members: list[str], *, quorum: int = 2,
                   timeout: float = 20, keyed: bool = False, chair: str | None = None) -> None:
    lines = ['default_council = "fake"', "", "[providers.fake]", f'base_url = "{server.base_url}"']
    if keyed:
        lines += ['key_env = "FAKE_API_KEY"', "needs_key = true"]
    lines += ["", "[councils.fake]", f"quorum = {quorum}", f"timeout = {timeout}", "retries = 1",
              'short_answer = "heuristic"']
    if chair:
        lines.append(f'chair = "{chair}"')
    for m in members:
        lines += ["[[councils.fake.members]]", f'name = "{m}"', f'model = "fake/{m}"']
    (home / "settings.toml").write_text("\n".join(lines) + "\n")


def run_cli(*args: str, stdin: bytes | None = None, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "manyminds.cli", *args], input=stdin, capture_output=True, env=full_env, timeout=timeout,
    )


def runs_in_db(home: Path) -> list[dict]:
    con = sqlite3.connect(home / "manyminds.db")
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute("select * from runs order by seq")]
    con.close()
    return rows


def test_ask_json_prints_the_verdict_and_stores_it(manyminds_home, server):
    write_settings(manyminds_home, server, ["alpha", "beta", "gamma"])
    result = run_cli("ask", "--json", "Who wrote Hamlet?")
    assert result.returncode == 0, result.stderr.decode()
    verdict = json.loads(result.stdout)
    assert "Shakespeare" in verdict["answer"]
    assert verdict["confidence"] == pytest.approx(2 / 3, abs=1e-3)
    assert verdict["dissent"][0]["members"] == ["gamma"]
    assert [m["status"] for m in verdict["members"]] == ["ok", "ok", "ok"]
    rows = runs_in_db(manyminds_home)
    assert len(rows) == 1 and rows[0]["id"] == verdict["run_id"] and rows[0]["status"] == "complete"

    listed = run_cli("runs", "list", "--json")
    assert json.loads(listed.stdout)[0]["id"] == verdict["run_id"]
    exported = json.loads(run_cli("runs", "export", verdict["run_id"][:10]).stdout)
    assert exported["verdict"]["answer"] == verdict["answer"]
    shown = run_cli("runs", "show", verdict["run_id"])
    assert shown.returncode == 0 and b"Shakespeare" in shown.stdout


def test_plain_text_when_stdout_is_not_a_terminal(manyminds_home, server):
    write_settings(manyminds_home, server, ["alpha", "beta", "gamma"])
    result = run_cli("ask", "Who wrote Hamlet?")
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert out.startswith("Answer: ")
    assert "Confidence: 0.67" in out and "Dissent:" in out and "gamma" in out
    assert "\x1b[" not in out  # no terminal control codes in a pipe


def test_question_from_stdin(manyminds_home, server):
    write_settings(manyminds_home, server, ["alpha", "beta"])
    result = run_cli("ask", "--json", stdin="Who wrote Hamlet?\n".encode())
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout)["question"] == "Who wrote Hamlet?"


def test_bad_utf8_on_stdin_is_refused_and_stored(manyminds_home, server):
    write_settings(manyminds_home, server, ["alpha", "beta"])
    result = run_cli("ask", stdin=b"Who wrote \xff\xfe Hamlet?")
    assert result.returncode == 2
    assert b"not valid UTF-8: byte 0xff at position 10" in result.stderr
    run = runs_in_db(manyminds_home)[0]
    assert run["status"] == "failed" and run["question"] == "Who wrote \\xff\\xfe Hamlet?"


@pytest.mark.parametrize("question", ["", "   "])
def test_empty_question(manyminds_home, server, question):
    write_settings(manyminds_home, server, ["alpha", "beta"])
    result = run_cli("ask", question)
    assert result.returncode == 2
    assert b"The question is empty" in result.stderr
    rows = runs_in_db(manyminds_home)
    assert rows[0]["status"] == "failed" and "empty" in rows[0]["error"]
    assert server.requests == []  # no model was called


def test_question_longer_than_the_smallest_context(manyminds_home, server):
    write_settings(manyminds_home, server, ["alpha", "beta"])
    settings = manyminds_home / "settings.toml"
    settings.write_text(settings.read_text().replace(f'base_url = "{server.base_url}"', f'base_url = "{server.base_url}"\ncontext_window = 512'))
    result = run_cli("ask", "Why? " * 1000)
    assert result.returncode == 2
    err = result.stderr.decode()
    assert "too long for member 'alpha'" in err and "holds 512" in err
    assert runs_in_db(manyminds_home)[0]["status"] == "failed"


def test_unknown_model_suggests_a_name(manyminds_home):
    result = run_cli("ask", "-m", "local/smolm2", "Who wrote Hamlet?")
    assert result.returncode == 2
    err = result.stderr.decode()
    assert "Unknown model 'local/smolm2'" in err and "Did you mean 'local/smollm2'" in err
    assert runs_in_db(manyminds_home)[0]["status"] == "failed"


def test_missing_key_names_the_variable(manyminds_home, server):
    write_settings(manyminds_home, server, ["alpha", "beta"], keyed=True)
    result = run_cli("ask", "Who wrote Hamlet?")
    assert result.returncode == 3
    err = result.stderr.decode()
    assert "FAKE_API_KEY" in err and "alpha" in err and "beta" in err
    assert runs_in_db(manyminds_home)[0]["status"] == "failed"


def test_one_member_timing_out_does_not_stop_the_run(manyminds_home, server):
    # 6 s: beyond what a loaded machine needs for the instant members, short of slow's 10 s
    write_settings(manyminds_home, server, ["alpha", "beta", "slow"], timeout=6)
    result = run_cli("ask", "--json", "Who wrote Hamlet?")
    assert result.returncode == 0, result.stderr.decode()
    members = {m["member"]: m for m in json.loads(result.stdout)["members"]}
    assert members["slow"]["status"] == "timeout"
    assert "no complete answer within 6 s" in members["slow"]["error"]["message"]
    assert members["alpha"]["status"] == "ok"


def test_every_member_failing_lists_each_cause(manyminds_home, server):
    write_settings(manyminds_home, server, ["garbage", "truncated", "drop", "e500"], quorum=1, timeout=15)
    result = run_cli("ask", "--json", "Who wrote Hamlet?")
    assert result.returncode == 3
    err = result.stderr.decode()
    assert "Only 0 member(s) answered; the council needs 1." in err
    for member in ("garbage", "truncated", "drop", "e500"):
        assert f"  - {member}:" in err
    assert "HTTP 500" in err
    doc = json.loads(result.stdout)
    assert doc["error"]["type"] == "QuorumNotMet" and doc["run_id"]
    row = runs_in_db(manyminds_home)[0]
    assert row["status"] == "failed"
    shown = json.loads(run_cli("runs", "export", row["id"]).stdout)
    assert {m["member"]: m["status"] for m in shown["members"]} == {
        "garbage": "failed", "truncated": "failed", "drop": "failed", "e500": "failed"}


def test_truncated_json_answer_is_still_compared(manyminds_home, server):
    write_settings(manyminds_home, server, ["jsonish", "beta"], chair="beta")
    result = run_cli("ask", "--json", "Who wrote Hamlet?")
    assert result.returncode == 0, result.stderr.decode()
    verdict = json.loads(result.stdout)
    jsonish = next(m for m in verdict["members"] if m["member"] == "jsonish")
    assert jsonish["short_answer"] == "Shakespeare" and jsonish["short_answer_method"] == "json"
    assert verdict["confidence"] == 1.0


def test_a_key_never_reaches_output_database_or_logs(manyminds_home, server):
    write_settings(manyminds_home, server, ["leaky", "alpha"], keyed=True, quorum=2)
    result = run_cli("ask", "--json", "Who wrote Hamlet?", env={"FAKE_API_KEY": SECRET})
    assert result.returncode == 3
    assert any(SECRET in (r.headers.get("authorization") or "") for r in server.requests)  # it was sent…
    needle = SECRET.encode()
    assert needle not in result.stdout and needle not in result.stderr  # …and never shown
    assert b"authentication failed (HTTP 401)" in result.stderr
    for path in manyminds_home.rglob("*"):
        if path.is_file():
            assert needle not in path.read_bytes(), path
    exported = run_cli("runs", "export", "--all", env={"FAKE_API_KEY": SECRET})
    assert needle not in exported.stdout


def test_runs_show_unknown_id(manyminds_home):
    result = run_cli("runs", "show", "01NOSUCHRUN")
    assert result.returncode == 2
    assert b"No run with id" in result.stderr


def test_models_and_council_commands(manyminds_home, server):
    write_settings(manyminds_home, server, ["alpha", "beta"], keyed=True)
    models = json.loads(run_cli("models", "--json").stdout)
    names = {m["name"]: m for m in models["models"]}
    assert names["local/smollm2"]["usable"] in (True, False)
    openai = next(m for n, m in names.items() if n.startswith("openai/"))
    assert openai["usable"] is False and "OPENAI_API_KEY" in openai["reason"]
    council = json.loads(run_cli("council", "--json").stdout)
    assert [m["name"] for m in council["members"]] == ["alpha", "beta"]
    assert "FAKE_API_KEY" in council["usable"]["alpha"]
    default_local = json.loads(run_cli("council", "local", "--json").stdout)
    assert {m["model"] for m in default_local["members"]} == {"local/smollm2", "local/gemma3-270m"}


def test_live_view_in_a_terminal(manyminds_home, server):
    """In a (pseudo) terminal the CLI shows a panel per member while it runs, then the verdict."""
    import pty
    import select

    server.set_behaviour("alpha", Behaviour(text="William Shakespeare wrote Hamlet around 1600.", token_delay=0.05))
    write_settings(manyminds_home, server, ["alpha", "beta", "gamma"])
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "LINES": "50", "TERM": "xterm-256color"}
    proc = subprocess.Popen([sys.executable, "-m", "manyminds.cli", "ask", "Who wrote Hamlet?"],
                            stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    screen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    proc.wait(timeout=30)
    os.close(master)
    text = screen.decode("utf-8", "replace")
    assert proc.returncode == 0, text[-3000:]
    assert "\x1b[" in text  # it drew with terminal control codes
    for member in ("alpha", "beta", "gamma"):
        assert member in text
    assert "stage: fan_out" in text  # the live panels were drawn while members answered
    assert "Agreement" in text and "Verdict" in text and "Confidence 67%" in text


def test_ctrl_c_marks_the_run_incomplete_and_keeps_finished_members(manyminds_home, server):
    import signal
    import time

    write_settings(manyminds_home, server, ["alpha", "slower"], timeout=90)
    proc = subprocess.Popen([sys.executable, "-m", "manyminds.cli", "ask", "Who wrote Hamlet?"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    db = manyminds_home / "manyminds.db"
    deadline, done = time.monotonic() + 45, 0
    while time.monotonic() < deadline:
        if not db.exists():  # read-only polling: the CLI, not this test, creates the database
            time.sleep(0.05)
            continue
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            done = con.execute("select count(*) from member_answers where member = 'alpha'").fetchone()[0]
            con.close()
        except sqlite3.OperationalError:
            done = 0
        if done:
            break
        time.sleep(0.05)
    assert done, "the fast member's answer was not stored within 45 s"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err.decode()
    assert b"stored as incomplete" in err
    row = runs_in_db(manyminds_home)[0]
    assert row["status"] == "incomplete"
    exported = json.loads(run_cli("runs", "export", row["id"]).stdout)
    assert [m["member"] for m in exported["members"]] == ["alpha"]
