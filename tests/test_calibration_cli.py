"""`manyminds eval calibrate` and `manyminds ask --min-confidence` through the real CLI in a
subprocess, on a scripted council, with the run store a real SQLite file in the user dir."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

SHARED_DATASETS = Path(os.environ.get("MANYMINDS_TEST_CACHE", Path.home() / ".cache" / "manyminds-test")) / "datasets"
DATASET = "halueval:yes-no"
SCRIPTS = {"yes": "Yes.", "no": "No.", "maybe": "Yes, probably."}
MODELS = ["-m", "scripted/yes", "-m", "scripted/no", "-m", "scripted/maybe"]
LAUNCHER = f"""
import sys
from manyminds import testing
for name, text in {SCRIPTS!r}.items():
    testing.ScriptedModel.register_script(name, text)
sys.argv = ["manyminds"] + sys.argv[1:]
from manyminds.cli import main
main()
"""


@pytest.fixture(scope="module", autouse=True)
def halueval_fetched():
    from manyminds.eval.fetch import fetch_dataset, is_fetched

    if not is_fetched("halueval", SHARED_DATASETS):
        fetch_dataset("halueval", cache_dir=SHARED_DATASETS, echo=lambda _: None)


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MANYMINDS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", LAUNCHER, *args], capture_output=True, text=True, env=env, timeout=300)


def eval_run(limit: int) -> str:
    done = cli("eval", "run", "-d", DATASET, "-s", "council", *MODELS, "--limit", str(limit), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["run_id"]


def test_calibrate_then_ask_uses_it_and_abstains(manyminds_home):
    run_id = eval_run(60)
    db = sqlite3.connect(manyminds_home / "manyminds.db")
    rows = db.execute("SELECT correct, confidence, extra FROM eval_items WHERE run_id = ?", [run_id]).fetchall()
    assert len(rows) == 60
    features = json.loads(rows[0][2])["features"]  # the runner stores what ask time computes
    assert features["confidence"] == pytest.approx(2 / 3, abs=1e-4) and features["token_prob"] is None
    right = sum(r[0] for r in rows)

    done = cli("eval", "calibrate", run_id, "--method", "isotonic", "--json")
    assert done.returncode == 0, done.stderr
    fit = json.loads(done.stdout)
    assert fit["items"] == 60 and fit["right"] == right and fit["datasets"] == {DATASET: 60}
    # Every verdict of this council had the same share (2 of 3 say yes), so the isotonic fit is one
    # block: the share of the 60 verdicts that were right.
    assert fit["isotonic"]["y"] == [pytest.approx(right / 60, abs=1e-6)]
    stored = json.loads((manyminds_home / "calibration.json").read_text())
    (entry,) = stored["councils"].values()
    assert entry["members"] == [["scripted/yes", "scripted/yes"], ["scripted/no", "scripted/no"],
                                ["scripted/maybe", "scripted/maybe"]]  # fmt: skip
    assert entry["strategies"]["council"]["runs"] == [run_id]

    plain = cli("eval", "calibrate", run_id, "--method", "isotonic")
    assert plain.returncode == 0 and "Training data: 60 labelled items" in plain.stdout and "raw confidence" in plain.stdout

    asked = cli("ask", *MODELS, "--json", "Is the sky blue?")
    assert asked.returncode == 0, asked.stderr
    verdict = json.loads(asked.stdout)
    assert verdict["calibrated"] is True and verdict["confidence_raw"] == pytest.approx(2 / 3, abs=1e-4)
    assert verdict["confidence"] == pytest.approx(round(right / 60, 4))
    assert verdict["calibration"]["method"] == "isotonic" and verdict["calibration"]["items"] == 60

    # Abstention: below the minimum, "not sure" with the competing answers; exit 0; stored.
    floor = min(1.0, round(right / 60, 4) + 0.01)
    done = cli("ask", *MODELS, "--min-confidence", str(floor), "Is the sky blue?")
    assert done.returncode == 0, done.stderr
    assert "Answer: NOT SURE. Not sure: the calibrated confidence" in done.stdout
    assert "Competing answers:" in done.stdout and "scripted/no (33%)" in done.stdout
    stored_verdict = json.loads(db.execute("SELECT verdict FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0])
    assert stored_verdict["abstained"] is True and len(stored_verdict["alternatives"]) == 2
    assert stored_verdict["withheld_answer"]

    kept = cli("ask", *MODELS, "--min-confidence", "0.01", "--json", "Is the sky blue?")
    assert kept.returncode == 0 and json.loads(kept.stdout)["abstained"] is False


def test_fewer_than_fifty_items_are_refused_with_the_count(manyminds_home):
    run_id = eval_run(20)
    done = cli("eval", "calibrate", run_id)
    assert done.returncode == 2
    assert "Only 20 labelled items of strategy 'council'" in done.stderr and "at least 50" in done.stderr
    assert not (manyminds_home / "calibration.json").exists()
    other = cli("eval", "calibrate", run_id, "--strategy", "majority")
    assert other.returncode == 2 and "Only 0 labelled items of strategy 'majority'" in other.stderr


@pytest.mark.parametrize("value", ["0", "1.5", "-0.2", "abc"])
def test_a_bad_min_confidence_exits_2(value):
    done = cli("ask", *MODELS, "--min-confidence", value, "Is the sky blue?")
    assert done.returncode == 2 and "--min-confidence" in done.stderr


def test_ask_with_a_corrupt_or_foreign_calibrator_warns_and_answers(manyminds_home):
    path = manyminds_home / "calibration.json"
    path.write_text("{broken")
    done = cli("ask", *MODELS, "--json", "Is the sky blue?")
    assert done.returncode == 0, done.stderr
    verdict = json.loads(done.stdout)
    assert verdict["calibrated"] is False and verdict["confidence"] == pytest.approx(2 / 3, abs=1e-4)
    assert any("calibrator file is unusable" in w for w in verdict["warnings"])

    path.write_text(json.dumps({"version": 1, "councils": {"0123456789abcdef": {"council": "elsewhere", "strategies": {}}}}))
    done = cli("ask", *MODELS, "Is the sky blue?")
    assert done.returncode == 0
    assert "uncalibrated" in done.stdout and "only for other councils (elsewhere)" in done.stdout

    path.unlink()
    done = cli("ask", *MODELS, "Is the sky blue?")
    assert done.returncode == 0 and "Confidence: 0.67, uncalibrated" in done.stdout and "Warning: " not in done.stdout


def test_the_request_refuses_a_bad_min_confidence():
    from pydantic import ValidationError

    from manyminds.api import check_min_confidence
    from manyminds.errors import InputError
    from manyminds.request import AskRequest

    assert AskRequest(question="q", min_confidence=1).min_confidence == 1
    for bad in (0, 1.01, -1):
        with pytest.raises(ValidationError):
            AskRequest(question="q", min_confidence=bad)
    for bad in (0, 2, True, "0.5"):
        with pytest.raises(InputError, match="min_confidence must be a number with 0 < x <= 1"):
            check_min_confidence(bad)
