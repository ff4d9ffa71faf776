"""Evaluations and batches on Ray: one local cluster (`ray.init(num_cpus=2)`) for the module.

Scripted councils run on it through the runner's API (the same stored results as in-process;
per-provider caps held by the cluster's slot actor; a worker that kills itself mid-pair loses
nothing); the real CLI in a subprocess joins it with `--ray ADDRESS` for the real local model,
for a driver killed with SIGKILL and resumed, and for bad input. Skipped when Ray is not
installed (`pip install -e '.[ray]'`), except the test of that very message.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import helpers
from helpers import make_council
from manyminds.batch.lines import read_lines
from manyminds.batch.runner import BatchRunner
from manyminds.config import load_settings
from manyminds.eval.datasets import Item
from manyminds.eval.runner import EvalConfig, EvalRunner
from manyminds.eval.store import EvalStore
from manyminds.store import open_db
from manyminds.testing import ScriptedModel

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed: pip install -e '.[ray]'")

SHARED_CACHE = Path(os.environ.get("MANYMINDS_TEST_CACHE", Path.home() / ".cache" / "manyminds-test"))
GOLD = ["Yes", "No", "Yes", "No", "Yes", "No"]
ITEMS = [Item(id=f"t{i}", dataset="toy", question=f"Is toy question {i} true?", answers=(g,), kind="yes_no",
              category=None, incorrect=("No" if g == "Yes" else "Yes",)) for i, g in enumerate(GOLD)]  # fmt: skip
STRATEGIES = ["single", "majority", "council", "council+trust"]
# Everything of a stored pair that does not depend on where or how fast it ran.
COMPARED = ("correct", "confidence", "answer", "short_answer", "raw_text", "grade_method", "grade_error",
            "input_tokens", "output_tokens", "total_tokens", "error")  # fmt: skip


def strong(messages):
    """Right on every item but the last."""
    text = messages[-1].content
    i = next(i for i in range(len(GOLD)) if f"toy question {i} " in text)
    right = GOLD[i] if i < 5 else ("Yes" if GOLD[i] == "No" else "No")
    return f"{right}."


def dies_once(marker: str):
    """A script whose first call (across all processes) kills its own worker process."""

    def answer(messages):
        if not os.path.exists(marker):
            Path(marker).write_text(str(os.getpid()))
            os._exit(1)
        return "Yes."

    return answer


@dataclass
class ToyRecipe:
    """Builds the scripted council in whichever process asks (a worker, or this one)."""

    marker: str | None = None
    delay: float = 0.0

    def build_council(self):
        weak2 = dies_once(self.marker) if self.marker else "Yes."
        delays = {"strong": self.delay, "weak1": self.delay, "weak2": self.delay}
        return make_council({"strong": strong, "weak1": "Yes.", "weak2": weak2}, chair="Yes.", delays=delays)

    def build_model(self, name):
        return ScriptedModel(name, "CORRECT")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray cluster with 2 CPUs; its workers see a throw-away user dir and the shared
    model cache. Yields the address other drivers (the CLI) join it at."""
    if not HAVE_RAY:
        pytest.skip("Ray is not installed: pip install -e '.[ray]'")
    import ray

    env = {"MANYMINDS_HOME": str(tmp_path_factory.mktemp("rayhome")), "MANYMINDS_CACHE": str(SHARED_CACHE),
           "MANYMINDS_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}  # fmt: skip
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # inherited by the raylet, so by every worker
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    # The recipes and scripts above exist only in this module: ship them by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.cloudpickle.register_pickle_by_value(helpers)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


async def eval_run(db: Path, *, ray=None, recipe=None, **config):
    recipe = recipe or ToyRecipe()
    cfg = EvalConfig(datasets=["toy"], strategies=config.pop("strategies", STRATEGIES), **config)
    store = EvalStore(open_db(db))
    runner = EvalRunner(recipe.build_council(), cfg, {"toy": list(ITEMS)}, store=store, ray=ray)
    await runner.run()
    return runner, store


def stored(store: EvalStore, run_id: str) -> dict:
    rows = store.items(run_id, with_verdict=True)
    keyed = {(r["item_id"], r["strategy"]): r for r in rows}
    assert len(keyed) == len(rows)  # no pair twice
    return {k: {c: r[c] for c in COMPARED} | {"members": [(m["member"], m["text"]) for m in r["verdict"]["members"]]}
            for k, r in keyed.items()}  # fmt: skip


def unordered(doc):
    if isinstance(doc, dict):
        return {k: unordered(v) for k, v in doc.items() if k != "source_runs"}
    if isinstance(doc, list) and all(isinstance(x, str) for x in doc):
        return sorted(doc)
    return [unordered(x) for x in doc] if isinstance(doc, list) else doc


# --- eval on the cluster ------------------------------------------------------------------


@needs_ray
async def test_eval_on_ray_stores_what_in_process_stores(cluster, tmp_path):
    from manyminds.distributed.eval_tasks import RayEval

    here, here_store = await eval_run(tmp_path / "here.db")
    there, there_store = await eval_run(tmp_path / "ray.db", ray=RayEval(ToyRecipe()))
    expected = stored(here_store, here.run_id)
    assert len(expected) == 6 * 6  # 3 singles, majority, council, council+trust (phase 2)
    assert stored(there_store, there.run_id) == expected
    assert there_store.get_run(there.run_id)["status"] == "complete"
    # the trust weights fitted between the phases (member lists come in the order results arrived)
    trust = [unordered(s.get_run(r.run_id)["meta"]["trust"]) for s, r in ((there_store, there), (here_store, here))]
    assert trust[0] == trust[1]


@needs_ray
async def test_per_provider_caps_hold_across_the_cluster(cluster, tmp_path):
    import ray

    from manyminds.distributed.eval_tasks import RayEval

    on_ray = RayEval(ToyRecipe(delay=0.05))
    runner, store = await eval_run(tmp_path / "caps.db", ray=on_ray, strategies=["majority"], per_provider=2, concurrency=6)
    assert store.get_run(runner.run_id)["items_done"] == 6
    stats = ray.get(on_ray.slots.stats.remote())
    # Two workers each fanning out to three members at once: only the cap stops them at 2.
    assert stats["limits"] == {"scripted": 2}
    assert stats["peak"] == {"scripted": 2}
    # Releases are sent, not awaited: the last ones may reach the actor after the run returns
    deadline = time.monotonic() + 30
    while stats["held"] and time.monotonic() < deadline:
        time.sleep(0.1)
        stats = ray.get(on_ray.slots.stats.remote())
    assert stats["held"] == {}


@needs_ray
def test_a_slot_held_by_a_dead_process_is_freed(cluster):
    import ray

    from manyminds.distributed.limits import slots_actor

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    node = ray.get_runtime_context().get_node_id()
    slots = slots_actor(ray, "manyminds-slots-test-dead-holder", lease_s=600)
    ray.get(slots.acquire.remote("openai", 1, (node, int(gone.stdout))))  # its holder has exited
    started = time.monotonic()
    lease = ray.get(slots.acquire.remote("openai", 1, (node, os.getpid())), timeout=30)
    assert time.monotonic() - started < 10  # not the 600 s lease
    stats = ray.get(slots.stats.remote())
    assert stats["held"] == {"openai": 1} and stats["peak"] == {"openai": 1}
    ray.get(slots.release.remote(lease))
    assert ray.get(slots.stats.remote())["held"] == {}


@needs_ray
async def test_a_worker_killed_mid_pair_loses_no_item(cluster, tmp_path):
    from manyminds.distributed.eval_tasks import RayEval

    marker = tmp_path / "killed"
    recipe = ToyRecipe(marker=str(marker))
    runner, store = await eval_run(tmp_path / "kill.db", ray=RayEval(recipe), recipe=recipe, strategies=["single", "majority"])
    assert marker.exists(), "no worker was killed: the test proves nothing"
    assert int(marker.read_text()) != os.getpid()  # it was a worker, not this driver
    run = store.get_run(runner.run_id)
    assert run["status"] == "complete" and run["items_done"] == run["items_planned"] == 6 * 4
    here, here_store = await eval_run(tmp_path / "here.db", strategies=["single", "majority"])
    assert stored(store, runner.run_id) == stored(here_store, here.run_id)


# --- batch on the cluster -----------------------------------------------------------------

BATCH = [
    {"question": "Who wrote Hamlet?", "id": "hamlet"},
    {"question": "What is 12 times 12?"},
    "this line is not JSON",
    {"text": "The Eiffel Tower is in Paris. It was finished in 1889.", "id": "tower"},
    {"question": "Is water wet?", "council": "no-such-council"},
]


def write_batch(path: Path, lines=BATCH) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def runs_table(db: Path) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return sorted(con.execute("SELECT question, status, strategy, answer, short_answer, confidence, total_tokens, "
                                  "json_extract(error, '$.type') FROM runs"))  # fmt: skip
    finally:
        con.close()


async def batch_run(db: Path, file: Path, ray=None):
    defaults = {"verify": False, "council": None, "models": ["scripted/echo", "scripted/echo"], "strategy": None}
    runner = BatchRunner(read_lines(file), db=open_db(db), settings=load_settings(), defaults=defaults, ray=ray)
    runner.start(str(file))
    summary = await runner.run()
    return runner, summary


@needs_ray
async def test_batch_on_ray_stores_what_in_process_stores(cluster, tmp_path):
    from manyminds.distributed.batch_tasks import RayBatch

    file = write_batch(tmp_path / "q.jsonl")
    here, s1 = await batch_run(tmp_path / "here.db", file)
    there, s2 = await batch_run(tmp_path / "ray.db", file, ray=RayBatch(load_settings()))
    for s in (s1, s2):
        assert (s.ok, s.failed, s.exit_code) == (3, 2, 2)
        assert s.errors[0].startswith("line 3: not valid JSON")
        assert s.errors[1].startswith("line 5: Unknown council 'no-such-council'")
    rows = runs_table(tmp_path / "ray.db")
    assert rows == runs_table(tmp_path / "here.db")
    assert [r[1] for r in rows].count("complete") == 3 and [r[1] for r in rows].count("failed") == 1
    a, b = here.store.lines(here.batch_id), there.store.lines(there.batch_id)
    assert [(x["line"], x["id"], x["ok"]) for x in a] == [(x["line"], x["id"], x["ok"]) for x in b]
    def kept(result):
        return {k: result[k] for k in ("answer", "short_answer", "confidence", "text", "question") if k in result}

    assert [kept(x["result"]) for x in a if x["ok"]] == [kept(x["result"]) for x in b if x["ok"]]
    # every member answer of the worker's runs reached the driver's database
    con = sqlite3.connect(tmp_path / "ray.db")
    assert con.execute("SELECT count(*) FROM member_answers").fetchone()[0] >= 6
    con.close()


# --- the real CLI joining the cluster -------------------------------------------------------


def cli(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "manyminds.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}, timeout=timeout, **kw)  # fmt: skip


def query(db: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(db, timeout=10)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture
def halueval():
    from manyminds.eval.fetch import fetch_dataset, is_fetched

    if not is_fetched("halueval", SHARED_CACHE / "datasets"):
        fetch_dataset("halueval", cache_dir=SHARED_CACHE / "datasets", echo=lambda _: None)
    return "halueval:yes-no"


@needs_ray
@pytest.mark.local_model
def test_batch_with_a_real_local_model_on_ray(cluster, tmp_path, manyminds_home):
    file = write_batch(tmp_path / "q.jsonl", [{"question": "What is the capital of France?", "id": "paris"},
                                              {"question": "Who wrote Hamlet?", "id": "hamlet"}])  # fmt: skip
    out = tmp_path / "out.jsonl"
    result = cli("batch", str(file), "--ray", cluster, "-m", "local/smollm2", "-s", "majority", "--out", str(out),
                 "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert (summary["ok"], summary["failed"]) == (2, 0)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(x["id"] for x in lines) == ["hamlet", "paris"]
    for line in lines:
        member = line["result"]["members"][0]
        assert member["status"] == "ok" and member["text"].strip() and member["usage"]["output_tokens"] > 0
    db = manyminds_home / "manyminds.db"
    assert query(db, "SELECT count(*), min(status), max(status) FROM runs") == [(2, "complete", "complete")]
    assert query(db, "SELECT count(*) FROM member_answers WHERE model LIKE 'local/%' AND status = 'ok'")[0][0] == 2


@needs_ray
@pytest.mark.local_model
def test_driver_killed_then_resumed_on_ray_completes_without_duplicates(cluster, tmp_path, manyminds_home, halueval):
    db = manyminds_home / "manyminds.db"
    args = ["eval", "run", "-d", halueval, "-s", "single", "-m", "local/smollm2", "--limit", "3", "--concurrency", "1",
            "--ray", cluster]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "manyminds.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        done = 0
        while time.monotonic() < deadline and proc.poll() is None:
            if db.exists():
                try:
                    done = query(db, "SELECT count(*) FROM eval_items")[0][0]
                except sqlite3.OperationalError:
                    done = 0  # the tables are being created
                if done:
                    break
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    before = query(db, "SELECT count(*) FROM eval_items")[0][0]
    assert 1 <= before < 3
    (run_id,) = query(db, "SELECT id FROM eval_runs")[0]
    listed = json.loads(cli("eval", "list", "--json").stdout)
    assert listed[0]["status"] == "incomplete"

    result = cli("eval", "run", "--resume", run_id, "--ray", cluster, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["status"] == "complete"
    rows = query(db, "SELECT count(*), count(DISTINCT dataset || item_id || strategy) FROM eval_items")
    assert rows == [(3, 3)]
    assert query(db, "SELECT count(*) FROM eval_runs") == [(1,)]


@needs_ray
def test_ray_without_an_address_starts_and_stops_a_local_instance(tmp_path, manyminds_home):
    file = write_batch(tmp_path / "q.jsonl", [{"question": "Who wrote Hamlet?"}, {"question": "What is 2 + 2?"}])
    result = cli("batch", str(file), "-m", "scripted/echo", "--ray", "--json", "--out", str(tmp_path / "out.jsonl"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Started a local Ray instance" in result.stderr
    assert json.loads(result.stdout)["ok"] == 2
    assert query(manyminds_home / "manyminds.db", "SELECT count(*) FROM runs WHERE status = 'complete'") == [(2,)]


# --- bad input ------------------------------------------------------------------------------


@needs_ray
@pytest.mark.parametrize("address", ["127.0.0.1:9", "ray://127.0.0.1:9"])
def test_an_unreachable_address_is_refused_before_anything_starts(address, tmp_path, manyminds_home):
    file = write_batch(tmp_path / "q.jsonl")
    result = cli("eval", "run", "-d", "halueval:yes-no", "-m", "scripted/echo", "--ray", address, timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"No Ray cluster answers at {address}" in result.stderr
    result = cli("batch", str(file), "-m", "scripted/echo", "--ray", address, timeout=60)
    assert result.returncode == 2
    assert f"No Ray cluster answers at {address}" in result.stderr
    assert json.loads(cli("eval", "list", "--json").stdout) == []
    db = manyminds_home / "manyminds.db"
    if db.exists():
        assert query(db, "SELECT count(*) FROM batches") == [(0,)]
        assert query(db, "SELECT count(*) FROM runs") == [(0,)]


def test_without_ray_installed_the_message_gives_the_install_command(tmp_path, manyminds_home):
    file = write_batch(tmp_path / "q.jsonl")
    block_ray = ("import sys; sys.modules['ray'] = None; sys.argv = ['manyminds'] + sys.argv[1:]; "
                 "from manyminds.cli import main; main()")  # fmt: skip
    for args in (["batch", str(file), "-m", "scripted/echo", "--ray"],
                 ["eval", "run", "-d", "halueval:yes-no", "-m", "scripted/echo", "--ray"]):  # fmt: skip
        result = subprocess.run([sys.executable, "-c", block_ray, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stderr
        assert "--ray needs Ray, which is not installed" in result.stderr
        assert "pip install 'manyminds[ray]'" in result.stderr and "pip install -e '.[ray]'" in result.stderr
    db = manyminds_home / "manyminds.db"
    if db.exists():
        assert query(db, "SELECT count(*) FROM batches") == [(0,)]
        assert query(db, "SELECT count(*) FROM eval_runs") == [(0,)]


def test_bad_lines_name_their_line_and_the_others_still_run(tmp_path, manyminds_home):
    """In-process (the same lines and errors as on Ray): the real CLI, exit 2, summary printed."""
    file = write_batch(tmp_path / "q.jsonl", [{"question": "Who wrote Hamlet?"}, "[1, 2]", {"question": "  "},
                                              {"text": "x", "question": "y"}, {"question": "ok", "extra": 1},
                                              {"question": "Dup", "id": "a"}, {"question": "Dup", "id": "a"},
                                              {"question": "What is 2 + 2?"}])  # fmt: skip
    out = tmp_path / "out.jsonl"
    result = cli("batch", str(file), "-m", "scripted/echo", "--out", str(out))
    assert result.returncode == 2, result.stderr
    for message in ("line 2: expected a JSON object, got list.", "line 3: The question is empty.",
                    "line 4: needs exactly one of 'question' or 'text'.", "line 5: unknown key(s) 'extra'",
                    "line 7: id 'a' is already used on line 6."):  # fmt: skip
        assert message in result.stdout, result.stdout
    assert "Batch " in result.stdout and "3 ok, 5 failed" in result.stdout
    lines = {x["line"]: x for x in map(json.loads, out.read_text().splitlines())}
    assert sorted(lines) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [n for n, x in sorted(lines.items()) if x["ok"]] == [1, 6, 8]
    db = manyminds_home / "manyminds.db"
    assert query(db, "SELECT status, count(*) FROM runs GROUP BY status ORDER BY status") == [("complete", 3), ("failed", 1)]
    assert query(db, "SELECT status, lines_total FROM batches") == [("complete", 8)]

    # Resumed: the three done lines are skipped, the failed ones run again (and fail again).
    (batch_id,) = query(db, "SELECT id FROM batches")[0]
    result = cli("batch", str(file), "--resume", batch_id, "--out", str(out), "--json")
    summary = json.loads(result.stdout)
    assert (summary["skipped"], summary["ok"], summary["failed"]) == (3, 3, 5)
    assert query(db, "SELECT count(*) FROM runs WHERE status = 'complete'") == [(3,)]


async def test_a_wait_withdrawn_before_its_slot_is_granted_never_holds_it():
    """The slot actor's class on its own (no Ray needed): a caller cancelled while it waits
    withdraws its lease by name, so the slot is not held until the lease expires."""
    import asyncio

    from manyminds.distributed.limits import ProviderSlots

    slots = ProviderSlots(lease_s=900)
    first = await slots.acquire("p", 1, lease="first")
    waiting = asyncio.ensure_future(slots.acquire("p", 1, lease="second"))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # the one slot is held
    await slots.release("second")  # the waiter gave up before it was granted
    assert await asyncio.wait_for(waiting, 5) == "second"
    assert (await slots.stats())["held"] == {"p": 1}  # still only the first
    await slots.release(first)
    assert (await slots.stats())["held"] == {}
    await slots.release("third")  # withdrawn before it even asked: its later ask holds nothing
    assert await slots.acquire("p", 1, lease="third") == "third"
    assert (await slots.stats())["held"] == {} and slots.withdrawn == {}
    assert await slots.acquire("p", 1) and (await slots.stats())["held"] == {"p": 1}  # an unnamed ask still holds
