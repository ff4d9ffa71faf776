"""The run store on real SQLite files: connection settings, migrations, the recorder, queries,
runs killed half way, concurrent writers and ULIDs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from manyminds.errors import InputError, QuorumNotMet
from manyminds.pipeline.events import Event
from manyminds.pipeline.verdict import Agreement, ChairResult, Cluster, MemberAnswer, UsageOut, Verdict
from manyminds import ids as ulid_module
from manyminds.ids import new_ulid, ulid_datetime
from manyminds.store import (
    RunRecorder,
    applied_migrations,
    export_all,
    export_run,
    get_run,
    list_runs,
    mark_abandoned_runs,
    open_db,
    pid_alive,
    registered_migrations,
    resolve_run_id,
)
from manyminds.store.abandoned import REASON_PROCESS_EXITED
from manyminds.store.db import hours_ago_iso

TESTS_DIR = Path(__file__).parent


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("MANYMINDS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MANYMINDS_DB", raising=False)


@pytest.fixture
def db(tmp_path):
    database = open_db(tmp_path / "runs.db")
    yield database
    database.close()


def answer(member: str, text: str = "Paris", status: str = "ok", **kw) -> MemberAnswer:
    return MemberAnswer(
        member=member,
        model=f"scripted/{member}",
        status=status,
        text=text if status == "ok" else "",
        usage=UsageOut(input_tokens=10, output_tokens=5, total_tokens=15),
        latency_s=0.25,
        cost_usd=0.001,
        **kw,
    )


def make_verdict(run_id: str = "", question: str = "Capital of France?") -> Verdict:
    members = [answer("a", short_answer="Paris", short_answer_method="json"), answer("b", short_answer="Paris")]
    return Verdict(
        run_id=run_id,
        question=question,
        council="local",
        answer="Paris is the capital of France.",
        short_answer="Paris",
        confidence=0.9,
        confidence_explanation="both members agree",
        agreement=Agreement(
            members=["a", "b"],
            matrix=[[1.0, 1.0], [1.0, 1.0]],
            clusters=[Cluster(id=0, answer="Paris", members=["a", "b"], weight=2.0, share=1.0)],
        ),
        dissent=[],
        members=members,
        chair=ChairResult(member="a", model="scripted/a", status="ok", usage=UsageOut(total_tokens=7)),
        usage=UsageOut(input_tokens=25, output_tokens=12, total_tokens=37),
        cost_usd=0.0025,
        timings={"fan_out": 0.5, "synthesize": 0.2, "total": 0.8},
        warnings=["a warning"],
    )


def run_python(code: str, *args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env, **kw)


# --- connection and migrations ----------------------------------------------------------


def test_open_db_creates_parent_dirs_and_sets_pragmas_on_every_connection(tmp_path):
    path = tmp_path / "deep" / "er" / "runs.db"
    first = open_db(path)
    second = open_db(path)
    for conn in (first, second):
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert {"runs", "member_answers", "stages", "_migrations"} <= set(first.table_names())
    custom = open_db(path, busy_timeout=1.5)
    assert custom.execute("PRAGMA busy_timeout").fetchone()[0] == 1500


def test_open_db_defaults_to_config_db_path(tmp_path, monkeypatch):
    monkeypatch.setenv("MANYMINDS_DB", str(tmp_path / "env" / "from-env.db"))
    open_db().close()
    assert (tmp_path / "env" / "from-env.db").exists()


def test_reopening_applies_no_migration_twice(tmp_path):
    path = tmp_path / "runs.db"
    open_db(path).close()
    before = applied_migrations(open_db(path))
    assert [m["name"] for m in before] == [m.__name__ for m in registered_migrations()]
    after = applied_migrations(open_db(path))
    assert after == before  # same rows, same applied_at


def test_a_migration_added_later_applies_once_to_an_old_database(tmp_path):
    path = tmp_path / "runs.db"
    old = open_db(path)
    run_id = RunRecorder(old).start("an old question", "local")
    old.close()
    calls = []

    def m003_run_tags(db):
        calls.append(1)
        db.execute("ALTER TABLE runs ADD COLUMN tags TEXT")

    newer = open_db(path, migrations=[*registered_migrations(), m003_run_tags])
    assert calls == [1]
    assert "tags" in newer["runs"].columns_dict
    assert get_run(newer, run_id)["question"] == "an old question"
    open_db(path, migrations=[*registered_migrations(), m003_run_tags])
    assert calls == [1]
    assert [m["name"] for m in applied_migrations(newer)][-1] == "m003_run_tags"


def test_a_failing_migration_leaves_no_trace(tmp_path):
    path = tmp_path / "runs.db"
    open_db(path).close()

    def m003_broken(db):
        db.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        open_db(path, migrations=[*registered_migrations(), m003_broken])
    db = open_db(path)
    assert not db["half_done"].exists()
    assert "m003_broken" not in {m["name"] for m in applied_migrations(db)}


def test_migration_names_are_numbered_and_in_order():
    names = [m.__name__ for m in registered_migrations()]
    assert names == sorted(names)
    assert all(name[0] == "m" and name[1:4].isdigit() for name in names)


# --- the recorder -----------------------------------------------------------------------


def test_full_recorder_lifecycle(db):
    recorder = RunRecorder(db)
    run_id = recorder.start(
        "Capital of France?", "local", members=["a", "b"], settings_snapshot={"quorum": 2}, strategy="council"
    )
    row = get_run(db, run_id)
    assert row["status"] == "running"
    assert row["pid"] == os.getpid() and row["hostname"]
    assert row["seats"] == ["a", "b"] and row["settings"] == {"quorum": 2}

    recorder.stage_started(run_id, "fan_out")
    recorder.member_finished(run_id, answer("a"))
    error = {"type": "RateLimited", "message": "member 'b' (x via y): 429 Too Many Requests — slow down"}
    recorder.member_finished(run_id, answer("b", status="failed", error=error))
    recorder.stage_finished(run_id, "fan_out", 0.5, {"answered": 1})

    partial = get_run(db, run_id)
    assert partial["usage"] == {"input_tokens": 20, "output_tokens": 10, "total_tokens": 30}
    assert partial["cost_usd"] == pytest.approx(0.002)
    assert [m["member"] for m in partial["members"]] == ["a", "b"]
    assert partial["members"][1]["error"] == error  # stored exactly as given
    assert partial["stages"][0]["seconds"] == 0.5 and partial["stages"][0]["data"] == {"answered": 1}

    verdict = make_verdict()
    recorder.finish(run_id, verdict)
    done = get_run(db, run_id)
    assert done["status"] == "complete" and done["finished_at"]
    assert done["answer"] == verdict.answer and done["short_answer"] == "Paris" and done["confidence"] == 0.9
    assert done["usage"] == verdict.usage.model_dump() and done["cost_usd"] == 0.0025
    assert done["seconds"] == 0.8
    # The verdict's members replace the answers streamed in (they carry the short answers).
    assert [(m["member"], m["status"], m["short_answer"]) for m in done["members"]] == [
        ("a", "ok", "Paris"),
        ("b", "ok", "Paris"),
    ]
    # fan_out came from the events; synthesize only from the verdict's timings.
    assert [(s["stage"], s["seconds"]) for s in done["stages"]] == [("fan_out", 0.5), ("synthesize", 0.2)]

    exported = export_run(db, run_id)
    assert exported["status"] == "complete" and exported["error"] is None
    assert exported["timings"] == {"fan_out": 0.5, "synthesize": 0.2, "total": 0.8}
    restored = Verdict.model_validate(exported["verdict"])
    assert restored.run_id == run_id and restored.created_at == done["created_at"]
    assert restored.model_dump(exclude={"run_id", "created_at"}) == verdict.model_dump(exclude={"run_id", "created_at"})
    json.dumps(exported)  # plain JSON all the way down

    recorder.finish(run_id, verdict)  # idempotent
    assert len(get_run(db, run_id)["members"]) == 2


def test_each_write_is_committed_immediately(db, tmp_path):
    recorder = RunRecorder(db)
    run_id = recorder.start("q?", "local")
    recorder.member_finished(run_id, answer("a"))
    other = open_db(tmp_path / "runs.db", check_abandoned=False)
    assert [m["member"] for m in get_run(other, run_id)["members"]] == ["a"]
    assert not db.conn.in_transaction


def test_sink_records_member_and_stage_events(db):
    recorder = RunRecorder(db)
    run_id = recorder.start("q?", "local")
    failed = answer("b", status="timeout", error={"type": "ModelTimeout", "message": "no answer within 5 s"})
    for event in [
        Event("run_started", run_id=run_id),
        Event("stage_started", run_id=run_id, stage="fan_out"),
        Event("member_started", run_id=run_id, stage="fan_out", member="a", data={"model": "scripted/a"}),
        Event("member_delta", run_id=run_id, stage="fan_out", member="a", data={"text": "Par"}),
        Event("member_done", run_id=run_id, stage="fan_out", member="a", data={"answer": answer("a").model_dump()}),
        Event("member_failed", stage="fan_out", member="b", data={"answer": failed.model_dump()}),  # no run_id
        Event("stage_done", run_id=run_id, stage="fan_out", data={"seconds": 1.25, "answered": 1}),
        Event("stage_started", run_id=run_id, stage="review"),
        Event("member_done", run_id=run_id, stage="review", member="a", data={"answer": answer("a", "B is wrong").model_dump()}),
    ]:
        recorder.sink(event)
    run = get_run(db, run_id)
    assert [(m["stage"], m["member"], m["status"]) for m in run["members"]] == [
        ("fan_out", "a", "ok"),
        ("fan_out", "b", "timeout"),
        ("review", "a", "ok"),
    ]
    assert run["members"][1]["error"]["type"] == "ModelTimeout"
    assert [(s["stage"], s["seconds"], s["data"]) for s in run["stages"]] == [
        ("fan_out", 1.25, {"answered": 1}),
        ("review", None, None),  # started, not finished
    ]
    assert recorder.errors == []
    assert (run["members_ok"], run["members_total"]) == (1, 2)  # the review row is not a second answer
    exported = export_run(db, run_id)
    assert exported["verdict"] is None and exported["timings"] == {"fan_out": 1.25}


def test_failure_events_do_not_overwrite_the_recorded_failure(db):
    # The order the council uses: fail() first, then the run_failed event to every sink.
    recorder = RunRecorder(db)
    run_id = recorder.start("q?", "local")
    err = QuorumNotMet(0, 2, {"a": "502", "b": "timeout"}, run_id=run_id)
    recorder.fail(run_id, err.to_dict())
    recorder.sink(Event("run_failed", run_id=run_id, data=err.to_dict()))
    recorder.sink(Event("verdict", run_id=run_id, data={"answer": "ignored"}))
    run = get_run(db, run_id)
    assert run["status"] == "failed" and run["error"] == err.to_dict() and run["answer"] is None


def test_sink_does_not_break_the_run_on_a_store_error(db):
    recorder = RunRecorder(db)
    recorder.sink(Event("stage_started", run_id="01NOSUCHRUN0000000000000000", stage="fan_out"))
    assert len(recorder.errors) == 1 and "No run with id" in recorder.errors[0]


def test_writes_to_an_unknown_run_raise(db):
    with pytest.raises(InputError, match="No run with id"):
        RunRecorder(db).member_finished("01NOSUCHRUN000000000000000", answer("a"))


def test_fail_and_mark_incomplete_keep_what_was_stored(db):
    recorder = RunRecorder(db)
    failed_id = recorder.start("q1?", "local")
    recorder.member_finished(failed_id, answer("a", status="failed", error={"type": "ServerError", "message": "502"}))
    err = QuorumNotMet(0, 2, {"a": "502"}, run_id=failed_id)
    recorder.fail(failed_id, err)
    run = get_run(db, failed_id)
    assert run["status"] == "failed" and run["finished_at"] and run["seconds"] is not None
    assert run["error"] == {"type": "QuorumNotMet", "message": str(err)}
    assert len(run["members"]) == 1

    stopped = recorder.start("q2?", "local")
    recorder.mark_incomplete(stopped, "interrupted by the user")
    assert get_run(db, stopped)["error"]["message"] == "interrupted by the user"
    exported = export_run(db, stopped)
    assert exported["status"] == "incomplete" and exported["verdict"] is None and exported["members"] == []

    with pytest.raises(ValueError, match="status"):
        recorder.fail(stopped, {"message": "x"}, status="complete")
    with pytest.raises(ValueError, match="verdict is for run"):
        recorder.finish(stopped, make_verdict(run_id="01SOMEOTHERRUN000000000000"))
    with pytest.raises(InputError):
        recorder.start(b"not text", "local")
    # An empty question is recorded (the pipeline then fails that run with the reason).
    assert recorder.start("   ", "local")
    with pytest.raises(ValueError, match="ULID"):
        recorder.start("q?", "local", run_id="run-1")


# --- queries ----------------------------------------------------------------------------


def test_prefix_lookup_and_its_errors(db):
    recorder = RunRecorder(db)
    ids = [recorder.start(f"q{i}?", "local", run_id=rid) for i, rid in enumerate(
        ["01HAAAAAAAAAAAAAAAAAAAAAAA", "01HAAAAAAAAAAAAAAAAAAAAAAB", "01HBBBBBBBBBBBBBBBBBBBBBBB"]
    )]
    assert get_run(db, ids[0])["id"] == ids[0]
    assert resolve_run_id(db, "01hb") == ids[2]  # case-insensitive
    assert resolve_run_id(db, "o1HB") == ids[2]  # Crockford look-alike O -> 0
    with pytest.raises(InputError, match="ambiguous.*01HAAAAAAAAAAAAAAAAAAAAAAA, 01HAAAAAAAAAAAAAAAAAAAAAAB"):
        get_run(db, "01HA")
    with pytest.raises(InputError, match="No run with id '01Z'"):
        get_run(db, "01Z")
    with pytest.raises(InputError, match="No run with id"):
        get_run(db, "01%")  # never read as a LIKE pattern
    with pytest.raises(InputError, match="Give a run id"):
        get_run(db, "  ")


def test_list_runs_orders_filters_and_searches(db):
    recorder = RunRecorder(db)
    hamlet = recorder.start("Who wrote Hamlet?", "local")
    recorder.finish(hamlet, make_verdict(question="Who wrote Hamlet?"))
    boiling = recorder.start("Boiling point of water at sea level?", "cloud")
    recorder.fail(boiling, {"type": "Error", "message": "x"})
    running = recorder.start('Is "quoted" text (and AND/OR) safe?', "local")

    assert [r["id"] for r in list_runs(db)] == [running, boiling, hamlet]
    assert [r["id"] for r in list_runs(db, limit=1)] == [running]
    assert [r["id"] for r in list_runs(db, status="complete")] == [hamlet]
    assert [r["id"] for r in list_runs(db, status=["failed", "running"])] == [running, boiling]
    assert [r["id"] for r in list_runs(db, search="hamle")] == [hamlet]  # word prefix
    assert [r["id"] for r in list_runs(db, search="capital")] == [hamlet]  # in the answer
    assert [r["id"] for r in list_runs(db, search='"quoted" AND/OR (')] == [running]
    assert [r["id"] for r in list_runs(db, search="hamle\x00")] == [hamlet]  # a NUL is no FTS syntax error (found by fuzzing)
    assert list_runs(db, search="nothing-like-this") == []
    summary = list_runs(db, status="complete")[0]
    assert summary["members_ok"] == 2 and summary["members_total"] == 2 and "verdict" not in summary
    with pytest.raises(InputError, match="Unknown run status"):
        list_runs(db, status="done")
    assert [d["id"] for d in export_all(db)] == [hamlet, boiling, running]


# --- runs whose process died --------------------------------------------------------------

KILLED_WRITER = """
    import sys, time
    from manyminds.pipeline.verdict import MemberAnswer
    from manyminds.store import RunRecorder, open_db

    recorder = RunRecorder(open_db(sys.argv[1]))
    run_id = recorder.start("Capital of France?", "local", members=["a", "b"])
    recorder.stage_started(run_id, "fan_out")
    recorder.member_finished(run_id, MemberAnswer(member="a", model="scripted/a", status="ok", text="Paris"))
    print(run_id, flush=True)
    time.sleep(60)  # member b never answers: the test kills us here
"""


def test_a_run_killed_half_way_keeps_its_answers_and_shows_as_incomplete(tmp_path):
    path = tmp_path / "runs.db"
    proc = run_python(KILLED_WRITER, str(path), stdout=subprocess.PIPE, text=True)
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id, "the writer did not start"
        db = open_db(path)
        assert get_run(db, run_id)["status"] == "running"  # its process is alive
        os.kill(proc.pid, signal.SIGKILL)
        # Not reaped yet: a zombie, which must count as dead.
        deadline = time.monotonic() + 5
        while pid_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not pid_alive(proc.pid)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()

    listed = {r["id"]: r for r in list_runs(open_db(path, check_abandoned=False))}
    assert listed[run_id]["status"] == "incomplete"
    assert listed[run_id]["error"]["message"] == REASON_PROCESS_EXITED
    run = get_run(db, run_id)
    assert [(m["member"], m["text"]) for m in run["members"]] == [("a", "Paris")]
    assert run["stages"][0]["stage"] == "fan_out" and run["stages"][0]["finished_at"] is None
    exported = export_run(db, run_id)
    assert exported["status"] == "incomplete" and exported["members"][0]["text"] == "Paris"


def test_live_runs_stay_running_and_stale_ones_do_not(db):
    recorder = RunRecorder(db)
    live = recorder.start("still thinking?", "local")
    elsewhere = recorder.start("on another machine?", "local")
    stale = recorder.start("forgotten?", "local")
    db.execute("UPDATE runs SET hostname = 'another-host', pid = 1 WHERE id = ?", [elsewhere])
    db.execute("UPDATE runs SET updated_at = ? WHERE id = ?", [hours_ago_iso(7), stale])
    assert mark_abandoned_runs(db) == [stale]
    statuses = {r["id"]: r["status"] for r in list_runs(db)}
    assert statuses == {live: "running", elsewhere: "running", stale: "incomplete"}
    assert "no progress" in get_run(db, stale)["error"]["message"]
    later = datetime.now(timezone.utc) + timedelta(hours=7)
    assert set(mark_abandoned_runs(db, now=later)) == {live, elsewhere}
    # A run that was wrongly given up can still finish.
    recorder.finish(live, make_verdict())
    assert get_run(db, live)["status"] == "complete"


def test_pid_alive():
    assert pid_alive(os.getpid())
    assert not pid_alive(0) and not pid_alive(None)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not pid_alive(proc.pid)


# --- concurrency ------------------------------------------------------------------------

CONCURRENT_WRITER = """
    import sys, time
    from pathlib import Path
    from manyminds.store import RunRecorder, open_db
    from test_store import answer, make_verdict

    path, go, worker, count = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    while not go.exists():  # start together: the database does not exist yet either
        time.sleep(0.005)
    recorder = RunRecorder(open_db(path))
    for i in range(count):
        run_id = recorder.start(f"worker {worker} question {i}", "local")
        recorder.stage_started(run_id, "fan_out")
        recorder.member_finished(run_id, answer("a"))
        recorder.stage_finished(run_id, "fan_out", 0.01)
        if i % 5 == 4:
            recorder.fail(run_id, {"type": "Error", "message": "quorum"})
        else:
            recorder.finish(run_id, make_verdict(question=f"worker {worker} question {i}"))
"""


def test_concurrent_writers_all_succeed(tmp_path):
    path, go = tmp_path / "shared.db", tmp_path / "go"
    workers, count = 4, 50
    procs = [
        run_python(CONCURRENT_WRITER, str(path), str(go), str(w), str(count), stderr=subprocess.PIPE, text=True)
        for w in range(workers)
    ]
    time.sleep(0.3)  # let the interpreters import before the start signal
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    db = open_db(path)
    runs = list_runs(db, limit=None)
    assert len(runs) == workers * count
    assert len({r["id"] for r in runs}) == workers * count
    assert sum(r["status"] == "complete" for r in runs) == workers * count * 4 // 5
    assert sum(r["status"] == "failed" for r in runs) == workers * count // 5
    assert db.execute("SELECT count(*) FROM member_answers").fetchone()[0] == workers * count * 2 - workers * count // 5
    assert [m["name"] for m in applied_migrations(db)] == [m.__name__ for m in registered_migrations()]


# --- ULIDs ------------------------------------------------------------------------------


def test_ulids_are_unique_sortable_and_decode_to_now():
    ids = [new_ulid() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # monotonic within the process, also inside one millisecond
    assert all(len(i) == 26 and set(i) <= set(ulid_module.CROCKFORD) for i in ids)
    made = ulid_datetime(ids[0])
    assert abs((datetime.now(timezone.utc) - made).total_seconds()) < 5
    value = ulid_module.decode(ids[-1])
    assert ulid_module.encode(value) == ids[-1]


def test_ulids_stay_ordered_when_the_clock_stalls_or_goes_back():
    clock = iter([5_000_000_000, 5_000_000_000, 5_000_000_000, 4_000_000_000, 6_000_000_000])
    gen = ulid_module.UlidGenerator(clock_ns=lambda: next(clock))
    ids = [gen.new() for _ in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert ulid_datetime(ids[0]).timestamp() == 5.0
    assert ulid_datetime(ids[3]).timestamp() == 5.0  # the clock went back: stay on the last time
    assert ulid_datetime(ids[4]).timestamp() == 6.0
    with pytest.raises(ValueError):
        ulid_module.decode("not-a-ulid")
