"""Verify mode: votes, evidence, per-claim verdicts, the API (sync and async agree), storage, and
the CLI in a subprocess (files, stdin, bad input)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

import manyminds
from manyminds import embeddings
from manyminds.config import CouncilSettings, MemberSettings, Settings
from manyminds.errors import InputError
from manyminds.evidence import DocumentIndex, UnknownCollection
from manyminds.store import export_run, open_db
from manyminds.api import averify
from manyminds.strategies.verify import VerifyReport, judge_claim, parse_vote
from manyminds.testing import ScriptedModel

needs_embeddings = pytest.mark.skipif(not embeddings.available(), reason="MiniLM not installed (manyminds install-local)")

TEXT = "Marie Curie was a physicist. She discovered polonium in 1898. She was born on the Moon."


@pytest.mark.parametrize(
    "reply, vote",
    [
        ("True.", "true"), ("true", "true"), ("Yes, that is correct.", "true"), ("It is true.", "true"),
        ("False", "false"), ("No, she was born in Warsaw.", "false"), ("It is not true.", "false"),
        ("Incorrect.", "false"), ("unsure", "unsure"), ("I cannot say.", "unsure"), ("", "unsure"),
        ("The statement is not correct", "false"),
    ],
)
def test_parse_vote(reply, vote):
    assert parse_vote(reply) == vote


def test_claim_verdict_rules():
    w, members = {"a": 1.0, "b": 1.0, "c": 1.0}, ["a", "b", "c"]
    assert judge_claim({"a": "true", "b": "true", "c": "unsure"}, w, members, "unchecked") == ("supported", pytest.approx(0.8333, abs=1e-4))
    assert judge_claim({"a": "false", "b": "false", "c": "false"}, w, members, "unchecked")[0] == "refuted"
    assert judge_claim({"a": "true", "b": "false", "c": "unsure"}, w, members, "unchecked")[0] == "uncertain"
    assert judge_claim({"a": "unsure", "b": "unsure"}, w, members, "unchecked")[0] == "unsupported"  # c failed
    # evidence decides, and is averaged into the score
    assert judge_claim({"a": "true", "b": "true", "c": "true"}, w, members, "refuted") == ("refuted", 0.5)
    assert judge_claim({"a": "false", "b": "false", "c": "false"}, w, members, "supported") == ("supported", 0.5)
    assert judge_claim({}, w, members, "not_found") == ("unsupported", 0.5)


def voter(messages):
    prompt = messages[-1].content
    if "Moon" in prompt:
        return "False."
    return "unsure" if "1898" in prompt else "True"


def scripted_settings(*members: str, scripts: dict | None = None) -> Settings:
    for name, script in (scripts or {}).items():
        ScriptedModel.register_script(name, script)
    council = CouncilSettings(
        members=[MemberSettings(name=m, model=f"scripted/{m}", max_tokens=50) for m in members],
        quorum=1, short_answer="heuristic",
    )
    return Settings(default_council="test", councils={"test": council})


async def test_averify_checks_each_claim_and_stores_the_run(tmp_path):
    settings = scripted_settings("v1", "v2", "v3", scripts={"v1": voter, "v2": voter, "v3": voter})
    report = await averify(TEXT, settings=settings, db_path=tmp_path / "runs.db")
    assert isinstance(report, VerifyReport)
    assert [c.text for c in report.claims] == [
        "Marie Curie was a physicist.", "Marie Curie discovered polonium in 1898.", "Marie Curie was born on the Moon.",
    ]
    assert [c.verdict for c in report.claims] == ["supported", "unsupported", "refuted"]
    assert report.claims[0].votes == {"v1": "true", "v2": "true", "v3": "true"}
    assert report.verdict == "refuted" and report.score == 0.0
    assert report.counts == {"refuted": 1, "uncertain": 0, "unsupported": 1, "supported": 1}
    assert report.usage.total_tokens > 0 and len(report.members) == 3
    run = export_run(open_db(tmp_path / "runs.db"), report.run_id)
    assert run["strategy"] == "verify" and run["status"] == "complete" and run["question"] == TEXT
    assert [c["verdict"] for c in run["verdict"]["checks"]] == ["supported", "unsupported", "refuted"]
    assert {"claims", "votes"} <= {s["stage"] for s in run["stages"]}


def test_sync_and_async_agree(tmp_path):
    settings = scripted_settings("v1", "v2", scripts={"v1": voter, "v2": voter})
    sync = manyminds.verify(TEXT, settings=settings, store=False)
    import asyncio

    asynchronous = asyncio.run(manyminds.averify(TEXT, settings=settings, store=False))
    strip = lambda r: [(c.text, c.verdict, c.score, c.votes) for c in r.claims]  # noqa: E731
    assert strip(sync) == strip(asynchronous)


async def test_voters_never_see_the_whole_text_or_each_other():
    seen: list[str] = []

    def spy(messages):
        seen.append(messages[-1].content)
        return "true"

    settings = scripted_settings("s1", "s2", scripts={"s1": spy, "s2": spy})
    await averify(TEXT, settings=settings, store=False)
    assert len(seen) == 6  # 3 claims × 2 members, one claim per prompt
    assert all(prompt.count("Marie Curie") == 1 and "s1" not in prompt and "s2" not in prompt for prompt in seen)


async def test_a_short_answer_becomes_checkable_with_its_question():
    settings = scripted_settings("q1", scripts={"q1": lambda m: "True" if "Delhi" in m[-1].content else "False"})
    q = "The Oberoi family is part of a hotel company that has a head office in what city?"
    right = await averify("Delhi", question=q, settings=settings, store=False)
    wrong = await averify("Mumbai", question=q, settings=settings, store=False)
    assert right.claims[0].text == f'The answer to "{q}" is Delhi.'
    assert right.verdict == "supported" and wrong.verdict == "refuted" and right.score > wrong.score


@needs_embeddings
async def test_evidence_from_a_collection(tmp_path):
    db_path = tmp_path / "runs.db"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "curie.txt").write_text("Marie Curie was a physicist and chemist. She discovered polonium in 1898 with Pierre Curie.")
    DocumentIndex(open_db(db_path)).add("science", [docs])
    settings = scripted_settings("e1", scripts={"e1": lambda m: "unsure"})
    report = await averify("Marie Curie discovered polonium in 1898. Marie Curie discovered polonium in 1920.",
                           settings=settings, collection="science", db_path=db_path)
    assert [c.verdict for c in report.claims] == ["supported", "refuted"]
    assert report.claims[0].evidence[0].quote == "She discovered polonium in 1898 with Pierre Curie."
    assert report.claims[0].evidence[0].document.endswith("curie.txt")
    assert report.collection == "science"
    with pytest.raises(UnknownCollection):
        await averify("Paris is in France.", settings=settings, collection="nope", db_path=db_path)


async def test_bad_input(tmp_path):
    settings = scripted_settings("b1", scripts={"b1": lambda m: "true"})
    for text in ("", "   \n"):
        with pytest.raises(InputError, match="empty"):
            await averify(text, settings=settings, db_path=tmp_path / "runs.db")
    runs = list(open_db(tmp_path / "runs.db").query("select status, strategy from runs"))
    assert runs == [{"status": "failed", "strategy": "verify"}] * 2
    report = await averify("I don't know.", settings=settings, store=False)
    assert report.claims == [] and any("no checkable claims" in w for w in report.warnings)


async def test_a_failing_member_is_reported_and_counted_as_unsure():
    settings = scripted_settings("ok1", "down", scripts={"ok1": lambda m: "true", "down": RuntimeError("boom")})
    report = await averify("Paris is the capital of France.", settings=settings, store=False)
    assert report.claims[0].votes == {"ok1": "true"}
    assert report.claims[0].score == pytest.approx(0.75)  # (1 + 0.5) / 2: the failed member is unsure
    assert any("did not vote: down" in w for w in report.warnings)


# --- the CLI in a subprocess --------------------------------------------------------------------


def cli(home, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "manyminds.cli", "verify", *args], input=stdin, capture_output=True,
                          env={**os.environ, "MANYMINDS_HOME": str(home)}, timeout=120)


@pytest.fixture
def echo_home(manyminds_home):
    """A council of `scripted/echo` members: they repeat the vote prompt, whose first decisive
    word is the "true" of "Is this statement true?" — enough to test the plumbing."""
    (manyminds_home / "settings.toml").write_text(
        'default_council = "echo"\n[councils.echo]\nquorum = 1\nshort_answer = "heuristic"\n'
        '[[councils.echo.members]]\nname = "e1"\nmodel = "scripted/echo"\n'
        '[[councils.echo.members]]\nname = "e2"\nmodel = "scripted/echo"\n'
    )
    return manyminds_home


def stored(home, sql):
    con = sqlite3.connect(home / "manyminds.db")
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql)]
    finally:
        con.close()


def test_cli_json_from_a_file(echo_home, tmp_path):
    path = tmp_path / "text.md"
    path.write_text("Paris is the capital of France. The Seine flows through Paris.", encoding="utf-8")
    result = cli(echo_home, str(path), "--json")
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    assert [c["text"] for c in report["claims"]] == ["Paris is the capital of France.", "The Seine flows through Paris."]
    assert set(report["claims"][0]["votes"]) == {"e1", "e2"}
    assert stored(echo_home, "select strategy, status from runs") == [{"strategy": "verify", "status": "complete"}]


def test_cli_plain_from_stdin(echo_home):
    result = cli(echo_home, "-", stdin="Water boils at 100 degrees Celsius at sea level.\n".encode())
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert out.startswith("Verdict: ") and "c1 [" in out and "votes: e1=" in out and "Run: " in out


def test_cli_refuses_text_that_is_not_utf8(echo_home, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("Paris est la capitale de la France, évidemment.".encode("latin-1"))
    result = cli(echo_home, str(path))
    assert result.returncode == 2
    err = result.stderr.decode()
    assert "not valid UTF-8" in err and "0xe9" in err and "iconv" in err
    rows = stored(echo_home, "select strategy, status, question from runs")
    assert rows[0]["strategy"] == "verify" and rows[0]["status"] == "failed" and "\\xe9" in rows[0]["question"]


@pytest.mark.parametrize(
    "args, stdin, message",
    [
        (("/nonexistent/text.txt",), None, "No such file"),
        (("-",), b"   \n", "empty"),
        (("-", "--collection", "papers"), b"Paris is in France.", "Unknown document collection 'papers'"),
    ],
)
def test_cli_bad_input_exits_2(echo_home, args, stdin, message):
    result = cli(echo_home, *args, stdin=stdin)
    assert result.returncode == 2, result.stderr.decode()
    assert message in result.stderr.decode()


def test_cli_json_errors(echo_home):
    result = cli(echo_home, "/nonexistent/text.txt", "--json")
    assert result.returncode == 2
    assert json.loads(result.stdout)["error"]["type"] == "InputError"


@pytest.mark.local_model
@needs_embeddings
def test_verify_on_the_local_council_with_a_collection(manyminds_home, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "curie.md").write_text("# Marie Curie\n\nMarie Curie discovered polonium in 1898. She won the Nobel Prize in Chemistry in 1911.\n")
    env = {**os.environ, "MANYMINDS_HOME": str(manyminds_home)}
    added = subprocess.run([sys.executable, "-m", "manyminds.cli", "docs", "add", str(docs), "--collection", "science"],
                           capture_output=True, env=env, timeout=120)
    assert added.returncode == 0, added.stderr.decode()
    text = "Marie Curie discovered polonium in 1898. Marie Curie won the Nobel Prize in Chemistry in 1925."
    result = subprocess.run([sys.executable, "-m", "manyminds.cli", "verify", "-", "--collection", "science", "--json"],
                            input=text.encode(), capture_output=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    report = json.loads(result.stdout)
    # the tiny models' votes are noise; the sources decide
    assert [c["verdict"] for c in report["claims"]] == ["supported", "refuted"]
    assert report["verdict"] == "refuted"
    assert set(report["claims"][0]["votes"]) <= {"smollm2", "gemma3", "smollm2-terse"}
    # the sentence that names her, and the one that goes on with "She": both are quoted
    assert report["claims"][1]["evidence"][0]["quote"].endswith("She won the Nobel Prize in Chemistry in 1911.")
    assert stored(manyminds_home, "select strategy, status from runs") == [{"strategy": "verify", "status": "complete"}]
