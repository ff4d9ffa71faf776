"""Deep runs as jobs: the queue (validation, exclusive claims, stale workers, cancel), the worker
(progress, requeue on stop, resuming an interrupted run under the same id), the CLI
(`ask --deep`, `runs wait`), and a real `manyminds serve` killed with SIGKILL mid-run."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from test_server_support import (
    ServeProcess,
    read_sse,
    scripted_settings,
    wait_for,
    write_fake_settings,
)

from manyminds.config import CouncilSettings, MemberSettings, ProviderSettings, Settings
from manyminds.errors import ConfigError, InputError, UnknownModel
from manyminds.testing import Behaviour, FakeOpenAIServer
from manyminds.jobs.queue import (
    JobFinished,
    WorkerIdentity,
    cancel_job,
    claim_job,
    get_job,
    heartbeat_job,
    live_workers,
    run_state,
    submit_job,
)
from manyminds.jobs.worker import Worker
from manyminds.request import AskRequest
from manyminds.store import export_run, open_db


def submit(db, question, *, settings, max_attempts=3, **fields):
    return submit_job(db, AskRequest(question=question, **fields), settings=settings, max_attempts=max_attempts)


@pytest.fixture
def db(manyminds_home):
    return open_db(manyminds_home / "manyminds.db")


@pytest.fixture
def settings():
    return scripted_settings()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def count(db, sql: str, params=()) -> int:
    return db.execute(sql, params).fetchone()[0]


def slow_settings(server: FakeOpenAIServer, members=("m1", "m2"), **council) -> Settings:
    """A council on the loopback server, whose latency makes runs last long enough to interrupt."""
    options = {"quorum": 1, "timeout": 30, "retries": 0, "short_answer": "heuristic", **council}
    return Settings(
        default_council="slow",
        providers={"fake": ProviderSettings(base_url=server.base_url)},
        councils={"slow": CouncilSettings(members=[MemberSettings(name=m, model=f"fake/{m}") for m in members], **options)},
    )


# --- the queue ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"question": "   "}, InputError),
        ({"question": "a\x00b"}, InputError),
        ({"question": "Who?", "council": "nope"}, ConfigError),
        ({"question": "Who?", "models": ["scripted/alpha", "nosuch/model"]}, UnknownModel),
        ({"question": "Who?", "strategy": "telepathy"}, InputError),
        ({"question": "Who?", "params": {"rounds": 2, "bogus": 1}}, InputError),
        ({"question": "Who?", "quorum": 4}, InputError),
    ],
)
def test_a_refused_submission_stores_nothing(db, settings, kwargs, error):
    question = kwargs.pop("question")
    with pytest.raises(error):
        submit(db, question, settings=settings, **kwargs)
    assert count(db, "select count(*) from jobs") == 0
    assert count(db, "select count(*) from runs") == 0


def test_submit_stores_the_request_without_keys(db, settings, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-never-be-stored-1234")
    job = submit(db, "  Who wrote Hamlet?  ", settings=settings, council="duo")
    assert job["status"] == "queued" and job["tier"] == "deep" and job["attempts"] == 0
    assert job["request"]["question"] == "Who wrote Hamlet?" and job["request"]["strategy"] == "deep"
    raw = db.execute("select * from jobs").fetchone()
    assert "sk-should-never" not in json.dumps(raw)


def test_claims_are_exclusive_across_connections(manyminds_home, settings):
    path = manyminds_home / "manyminds.db"
    seed = open_db(path)
    ids = {submit(seed, f"Question {i}?", settings=settings)["run_id"] for i in range(24)}
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer() -> None:
        conn, me = open_db(path), WorkerIdentity.new()
        while (job := claim_job(conn, me)) is not None:
            with lock:
                claimed.append(job["run_id"])

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)  # every job once, none twice


def test_a_dead_workers_job_is_claimed_again_and_a_live_ones_is_not(db, settings):
    job = submit(db, "Who wrote Hamlet?", settings=settings)
    host = socket.gethostname()
    assert claim_job(db, WorkerIdentity("dead", dead_pid(), host))["run_id"] == job["run_id"]
    # Its pid is gone on this host: the next worker takes it at once, without waiting for staleness.
    again = claim_job(db, WorkerIdentity.new(), stale_after_s=3600)
    assert again["run_id"] == job["run_id"] and again["attempts"] == 2 and again["previous_worker"] == "dead"
    # A live worker (this process) with a fresh heartbeat keeps it.
    assert claim_job(db, WorkerIdentity.new(), stale_after_s=3600) is None


def test_a_silent_worker_on_another_host_is_presumed_gone(db, settings):
    job = submit(db, "Who wrote Hamlet?", settings=settings)
    remote = WorkerIdentity("remote", 1, "another-host")
    claim_job(db, remote)
    assert claim_job(db, WorkerIdentity.new(), stale_after_s=30) is None
    db.execute("update jobs set heartbeat_at = '2000-01-01T00:00:00.000Z'")
    db.conn.commit()
    assert claim_job(db, WorkerIdentity.new(), stale_after_s=30)["run_id"] == job["run_id"]
    # The old worker's next heartbeat learns that the job is no longer its own.
    assert heartbeat_job(db, job["run_id"], "remote") == (False, False)


def test_a_job_that_keeps_losing_its_worker_is_failed(db, settings):
    job = submit(db, "Who wrote Hamlet?", settings=settings, max_attempts=2)
    host = socket.gethostname()
    claim_job(db, WorkerIdentity("w1", dead_pid(), host))
    claim_job(db, WorkerIdentity("w2", dead_pid(), host))
    assert claim_job(db, WorkerIdentity.new()) is None
    failed = get_job(db, job["run_id"])
    assert failed["status"] == "failed" and failed["error"]["type"] == "JobAbandoned"


def test_cancel_a_queued_job(db, settings):
    job = submit(db, "Who wrote Hamlet?", settings=settings)
    assert cancel_job(db, job["run_id"])["status"] == "cancelled"
    with pytest.raises(JobFinished):
        cancel_job(db, job["run_id"])
    assert claim_job(db, WorkerIdentity.new()) is None
    assert run_state(db, job["run_id"])["final"] == "cancelled"


# --- the worker --------------------------------------------------------------------------------


async def test_the_worker_runs_a_job_under_its_id_with_progress(manyminds_home, db, settings):
    job = submit(db, "Who wrote Hamlet?", settings=settings)
    events = []
    await Worker(db_path=manyminds_home / "manyminds.db", settings=settings, publish=events.append).run_until_idle()
    done = get_job(db, job["run_id"])
    assert done["status"] == "done" and done["attempts"] == 1 and done["error"] is None
    assert done["progress"]["fraction"] == 1.0
    assert {"fan_out", "review_1", "compare", "synthesize"} <= set(done["progress"]["stages_done"])
    run = export_run(db, job["run_id"])
    assert run["status"] == "complete" and run["strategy"] == "deep" and "Shakespeare" in run["answer"]
    assert {e.kind for e in events} >= {"run_started", "stage_started", "member_done", "verdict"}
    assert all(e.run_id == job["run_id"] for e in events)


async def test_a_failing_run_fails_its_job(manyminds_home, db):
    with FakeOpenAIServer(default=Behaviour.error(500, "boom")) as server:
        settings = slow_settings(server, quorum=2)
        job = submit(db, "Who wrote Hamlet?", settings=settings)
        await Worker(db_path=manyminds_home / "manyminds.db", settings=settings).run_until_idle()
    failed = get_job(db, job["run_id"])
    assert failed["status"] == "failed" and failed["error"]["type"] == "QuorumNotMet"
    assert export_run(db, job["run_id"])["status"] == "failed"


async def test_cancel_reaches_a_running_job_through_the_database(manyminds_home, db):
    with FakeOpenAIServer(default=Behaviour(text="Shakespeare", latency=2.0)) as server:
        settings = slow_settings(server)
        job = submit(db, "Who wrote Hamlet?", settings=settings)
        worker = Worker(db_path=manyminds_home / "manyminds.db", settings=settings, heartbeat_s=0.2)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        await wait_async(lambda: get_job(db, job["run_id"])["status"] == "running")
        # As another process would: through the database only.
        other = open_db(manyminds_home / "manyminds.db")
        assert cancel_job(other, job["run_id"])["cancel_requested"] is True
        await wait_async(lambda: get_job(db, job["run_id"])["status"] == "cancelled", timeout=5)
        stop.set()
        await task
    run = export_run(db, job["run_id"])
    assert run["status"] == "incomplete" and run["error"]["type"] == "Cancelled"


async def test_a_stopping_worker_requeues_its_job_and_the_next_one_finishes_it(manyminds_home, db):
    with FakeOpenAIServer(default=Behaviour(text="Shakespeare", latency=0.5)) as server:
        settings = slow_settings(server)
        job = submit(db, "Who wrote Hamlet?", settings=settings)
        path = manyminds_home / "manyminds.db"
        first = Worker(db_path=path, settings=settings, heartbeat_s=0.2)
        stop = asyncio.Event()
        task = asyncio.create_task(first.run(stop))
        await wait_async(lambda: count(db, "select count(*) from member_answers where run_id = ?", [job["run_id"]]) > 0)
        stop.set()
        await task
        requeued = get_job(db, job["run_id"])
        assert requeued["status"] == "queued" and requeued["attempts"] == 0
        assert "requeued" in requeued["history"][-1]["outcome"]
        assert export_run(db, job["run_id"])["status"] == "incomplete"  # what the stopped attempt left

        await Worker(db_path=path, settings=settings).run_until_idle()
    done = get_job(db, job["run_id"])
    assert done["status"] == "done" and done["attempts"] == 1
    assert "restarted" in done["history"][-1]["outcome"] and done["history"][-1]["answers_stored"] >= 1
    assert export_run(db, job["run_id"])["status"] == "complete"
    assert count(db, "select count(*) from runs") == 1


async def test_an_attempt_that_had_already_stored_its_verdict_is_not_run_again(manyminds_home, db, settings):
    job = submit(db, "Who wrote Hamlet?", settings=settings)
    path = manyminds_home / "manyminds.db"
    # The worker died after the verdict was stored but before it marked the job done.
    claim_job(db, WorkerIdentity("gone", dead_pid(), socket.gethostname()))
    from manyminds.api import aask

    await aask("Who wrote Hamlet?", settings=settings, db_path=path, run_id=job["run_id"], strategy="council")
    before = db.execute("select finished_at from runs where id = ?", [job["run_id"]]).fetchone()[0]
    await Worker(db_path=path, settings=settings).run_until_idle()
    assert get_job(db, job["run_id"])["status"] == "done"
    assert db.execute("select finished_at from runs where id = ?", [job["run_id"]]).fetchone()[0] == before


async def wait_async(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


# --- the CLI -------------------------------------------------------------------------------------


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "manyminds.cli", *args], capture_output=True, env=dict(os.environ), timeout=timeout)


def test_ask_deep_queues_without_a_server_and_says_no_worker_runs(manyminds_home):
    with FakeOpenAIServer(default=Behaviour(text="Shakespeare")) as server:
        write_fake_settings(manyminds_home, server.base_url, ["m1", "m2"])
        plain = cli("ask", "--deep", "Who wrote Hamlet?")
        assert plain.returncode == 0, plain.stderr.decode()
        run_id = plain.stdout.decode().strip()
        assert len(run_id) == 26 and b"No worker is running" in plain.stderr and b"manyminds runs wait" in plain.stderr
        as_json = json.loads(cli("ask", "--deep", "--json", "Who wrote Macbeth?").stdout)
        assert as_json["status"] == "queued" and as_json["worker_running"] is False
        refused = cli("ask", "--deep", "-c", "nope", "Who?")
        assert refused.returncode == 2 and b"Unknown council 'nope'" in refused.stderr
        db = open_db(manyminds_home / "manyminds.db")
        assert count(db, "select count(*) from jobs") == 2 and count(db, "select count(*) from runs") == 0
        assert server.requests == []
        listed = json.loads(cli("runs", "list", "--json").stdout)
        assert [(r["status"], r["question"]) for r in listed] == [("queued", "Who wrote Macbeth?"), ("queued", "Who wrote Hamlet?")]
        assert listed[1]["id"] == run_id
        assert json.loads(cli("runs", "list", "--status", "complete", "--json").stdout) == []
        plain_list = cli("runs", "list").stdout.decode()
        assert f"{run_id}\t" in plain_list and "queued" in plain_list


def test_runs_wait_exit_codes(manyminds_home):
    with FakeOpenAIServer({"bad": Behaviour.error(500, "boom")}, default=Behaviour(text="Shakespeare")) as server:
        write_fake_settings(manyminds_home, server.base_url, ["m1", "m2"])
        good = cli("ask", "--deep", "Who wrote Hamlet?").stdout.decode().strip()
        cancelled = cli("ask", "--deep", "Who wrote Macbeth?").stdout.decode().strip()
        db = open_db(manyminds_home / "manyminds.db")
        cancel_job(db, cancelled)
        timed_out = cli("runs", "wait", good[:12], "--timeout", "0.5", "--interval", "0.1")
        assert timed_out.returncode == 124 and b"no worker is running" in timed_out.stderr

        worker = subprocess.Popen([sys.executable, "-m", "manyminds.cli", "serve", "--worker-only"], env=dict(os.environ),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: live_workers(db))
            assert json.loads(cli("ask", "--deep", "--json", "Who?").stdout)["worker_running"] is True
            done = cli("runs", "wait", good, "--json", "--interval", "0.2")
            assert done.returncode == 0, done.stderr.decode()
            doc = json.loads(done.stdout)
            assert doc["status"] == "done" and doc["run"]["status"] == "complete" and doc["run"]["id"] == good
            plain = cli("runs", "wait", good)
            assert plain.returncode == 0 and plain.stdout.startswith(b"Answer: ")
            assert cli("runs", "wait", cancelled).returncode == 1

            write_fake_settings(manyminds_home, server.base_url, ["bad"])
            failing = cli("ask", "--deep", "Who?").stdout.decode().strip()
            failed = cli("runs", "wait", failing, "--interval", "0.2")
            assert failed.returncode == 3 and b"failed" in failed.stderr
        finally:
            worker.terminate()
            worker.wait(15)
        assert cli("runs", "wait", "ZZZZZZ").returncode == 2


# --- a real server, killed mid-run -----------------------------------------------------------------


def test_a_deep_run_survives_kill_9_of_the_server(manyminds_home):
    """Submit a deep run to `manyminds serve`, SIGKILL the server while the run is half done,
    start it again: the run completes under the id the client was given, stored once."""
    with FakeOpenAIServer(default=Behaviour(text="William Shakespeare", latency=0.6)) as fake:
        write_fake_settings(manyminds_home, fake.base_url, ["m1", "m2"])
        first = ServeProcess().start()
        try:
            created = httpx.post(first.url + "/api/runs", json={"question": "Who wrote Hamlet?", "tier": "deep"}).json()
            run_id = created["id"]
            db = open_db(manyminds_home / "manyminds.db")
            # Half done: the fan-out answers are stored, later stages are not.
            wait_for(lambda: count(db, "select count(*) from stages where run_id = ? and stage = 'fan_out' and finished_at is not null",
                                   [run_id]) > 0, timeout=30)
            assert get_job(db, run_id)["status"] == "running"
        finally:
            first.kill()
        assert get_job(db, run_id)["status"] == "running"  # nobody told the database

        with ServeProcess(port=first.port) as second:
            with httpx.stream("GET", f"{second.url}/api/runs/{run_id}/events", timeout=60) as response:
                messages = read_sse(response)
            assert messages[-1]["event"] == "verdict" and messages[-1]["data"]["run_id"] == run_id
            doc = httpx.get(f"{second.url}/api/runs/{run_id}").json()
    assert doc["status"] == "complete" and doc["verdict"]["run_id"] == run_id
    job = doc["job"]
    assert job["status"] == "done" and job["attempts"] == 2
    assert job["history"][0]["outcome"].startswith("interrupted") and "fan_out" in job["history"][0]["stages_done"]
    assert count(db, "select count(*) from runs where id = ?", [run_id]) == 1
    assert count(db, "select count(*) from runs") == 1
    assert count(db, "select count(*) from stages where run_id = ? and stage = 'fan_out'", [run_id]) == 1


def test_a_clean_stop_of_the_server_puts_its_deep_run_back_in_the_queue(manyminds_home):
    with FakeOpenAIServer(default=Behaviour(text="William Shakespeare", latency=0.6)) as fake:
        write_fake_settings(manyminds_home, fake.base_url, ["m1", "m2"])
        db = open_db(manyminds_home / "manyminds.db")
        with ServeProcess() as first:
            run_id = httpx.post(first.url + "/api/runs", json={"question": "Who wrote Hamlet?", "tier": "deep"}).json()["id"]
            wait_for(lambda: count(db, "select count(*) from member_answers where run_id = ?", [run_id]) > 0, timeout=30)
        # SIGTERM: the worker hands the job back instead of leaving it to look abandoned.
        job = get_job(db, run_id)
        assert job["status"] == "queued" and job["attempts"] == 0 and "requeued" in job["history"][-1]["outcome"]
        with ServeProcess():
            wait_for(lambda: get_job(db, run_id)["status"] == "done", timeout=60)
    assert export_run(db, run_id)["status"] == "complete"
