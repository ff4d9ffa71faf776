"""Effort tiers on scripted councils (ScriptedModel, per-member delays) with a real SQLite run
store: early consensus cuts the slow member and records it, the quick tier picks the fastest
seats from stored answer times, the router's rules and its escalation, the deep and overnight
tiers, and bad input (an unknown tier, a tier with a strategy)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from helpers import make_council

from manyminds.api import aask, run_request
from manyminds.errors import InputError
from manyminds.pipeline.run import run_council
from manyminds.pipeline.stages.consensus import settled
from manyminds.pipeline.verdict import MemberAnswer
from manyminds.request import AskRequest
from manyminds.store import RunRecorder, export_run, open_db
from manyminds.strategies.router import escalate, features, first_tier
from manyminds.strategies.tiers import EFFORTS, fastest_members

SLOW = 30.0  # the slow member's delay: a run that waited for it could not finish within the test


@pytest.fixture
def db(manyminds_home):
    return open_db(manyminds_home / "manyminds.db")


def answer(member: str, text: str, status: str = "ok") -> MemberAnswer:
    return MemberAnswer(member=member, model=f"scripted/{member}", status=status, text=text)


# --- early consensus -------------------------------------------------------------------------


async def test_early_consensus_cuts_the_slow_member_and_records_it(db):
    council = make_council({"a": "William Shakespeare wrote Hamlet.", "b": "Shakespeare", "slow": "Christopher Marlowe"},
                           delays={"slow": SLOW}, timeout=SLOW * 2)
    events = []
    started = time.monotonic()
    verdict = await run_council("Who wrote Hamlet?", council, strategy="tier:quick", recorder=RunRecorder(db),
                                emit=events.append)
    assert time.monotonic() - started < SLOW / 3  # it did not wait for the slow member

    status = {m.member: m.status for m in verdict.members}
    assert status == {"a": "ok", "b": "ok", "slow": "cut"}
    assert "Shakespeare" in verdict.answer and verdict.effort == "quick"
    assert verdict.early_consensus is not None and verdict.early_consensus.cut == ["slow"]
    assert set(verdict.early_consensus.members) == {"a", "b"}
    assert "slow" in verdict.early_consensus.reason
    # The cut member is neither a failure nor a voter: no "did not answer" warning, and the
    # confidence is over the members heard.
    assert verdict.confidence == 1.0
    assert not any("did not answer" in w for w in verdict.warnings)
    assert verdict.chair is None  # quick asks no chair: the vote chooses
    cut_events = [e for e in events if e.kind == "member_cut"]
    assert [e.member for e in cut_events] == ["slow"] and cut_events[0].data["answer"]["status"] == "cut"
    fan_out_done = next(e for e in events if e.kind == "stage_done" and e.stage == "fan_out")
    assert fan_out_done.data["cut"] == ["slow"]

    stored = export_run(db, verdict.run_id)
    assert stored["status"] == "complete"
    assert {m["member"]: m["status"] for m in stored["members"]} == {"a": "ok", "b": "ok", "slow": "cut"}
    assert stored["verdict"]["early_consensus"]["cut"] == ["slow"]
    assert db.execute("select status from member_answers where member = 'slow'").fetchone()[0] == "cut"


async def test_a_member_that_could_still_change_the_winner_is_waited_for(db):
    council = make_council({"a": "William Shakespeare", "b": "Christopher Marlowe", "late": "Shakespeare"},
                           delays={"late": 0.4})
    verdict = await run_council("Who wrote Hamlet?", council, strategy="tier:quick")
    assert {m.member: m.status for m in verdict.members} == {"a": "ok", "b": "ok", "late": "ok"}
    assert verdict.early_consensus is None and "Shakespeare" in verdict.answer


async def test_weight_decides_whether_the_vote_is_settled():
    # Two agreeing members of weight 1 cannot outvote a pending member of weight 3.
    council = make_council({"a": "Shakespeare", "b": "Shakespeare", "heavy": "Marlowe"},
                           delays={"heavy": 0.4}, weights={"heavy": 3.0})
    verdict = await run_council("Who wrote Hamlet?", council, strategy="tier:quick")
    assert [m.status for m in verdict.members] == ["ok", "ok", "ok"]
    assert verdict.short_answer == "Marlowe"


def test_settled_uses_the_votes_rules():
    weights = {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0}
    two = [answer("a", "Paris"), answer("b", "Paris, France")]  # equivalent under the compare rules
    assert settled("What is the capital of France?", two, [("c", 1.0)], weights, quorum=2).answer
    # a tie is never settled early: the pending members could break it either way
    assert settled("What is the capital of France?", two, [("c", 1.0), ("d", 1.0)], weights, quorum=2) is None
    # below the quorum nothing is settled
    assert settled("What is the capital of France?", two[:1], [("c", 0.1)], weights, quorum=2) is None
    # a failed member is no vote
    mixed = [answer("a", "Paris"), answer("b", "", status="failed")]
    assert settled("What is the capital of France?", mixed, [("c", 1.0)], weights, quorum=1) is None


# --- which members quick asks -----------------------------------------------------------------


async def test_quick_asks_the_fastest_seats_by_stored_answer_time(db):
    scripts = {"a": "Shakespeare", "b": "Shakespeare", "c": "Shakespeare", "d": "Shakespeare"}
    council = make_council(scripts, delays={"a": 0.3, "b": 0.2}, quorum=1)
    # Nothing stored yet: quorum + 1 = 2 seats, in settings order.
    assert [m.name for m in fastest_members(council.members, 1, db).members] == ["a", "b"]
    for _ in range(3):
        await run_council("Who wrote Hamlet?", council, strategy="tier:standard", recorder=RunRecorder(db))
    pick = fastest_members(council.members, 1, db)
    assert [m.name for m in pick.members] == ["c", "d"] and "median stored answer time" in pick.rule
    verdict = await run_council("Who wrote Hamlet?", council, strategy="tier:quick", params={"db": db})
    assert [m.member for m in verdict.members] == ["c", "d"]
    assert any("c, d" in w and "fastest" in w for w in verdict.warnings)


# --- the router -------------------------------------------------------------------------------


@pytest.mark.parametrize("question, kind, tier", [
    ("What is the maximum safe dose of ibuprofen per day?", "high-stakes", "deep"),
    ("Should I put my savings into bitcoin?", "high-stakes", "deep"),
    ("Explain why the sky is blue.", "long-form", "standard"),
    ("What were the main causes of the First World War?", "long-form", "standard"),
    ("What is 17 + 25?", "maths", "quick"),
    ("How many legs does a spider have?", "maths", "quick"),
    ("Who wrote Hamlet?", "closed", "quick"),
    ("Which planet is largest?\nA) Mars\nB) Jupiter\nC) Venus", "closed", "quick"),
])
def test_the_router_rules(question, kind, tier):
    f = features(question)
    assert f.kind == kind
    choice = first_tier(f)
    assert choice.tier == tier and choice.reason


def test_escalation_rules():
    start = first_tier(features("Who wrote Hamlet?"))
    assert escalate(start, clusters=1, failed=0, settled=True, top_share=1.0).tier == "quick"
    split = escalate(start, clusters=2, failed=0, settled=False, top_share=0.67)
    assert split.tier == "standard" and split.escalated and "2 different answers" in split.reason
    assert escalate(start, clusters=1, failed=0, settled=False, top_share=1.0).tier == "quick"
    assert escalate(start, clusters=1, failed=1, settled=False, top_share=1.0).tier == "standard"
    # Every seat already heard: the full council's vote would pick the same answer, so quick stands.
    heard_all = escalate(start, clusters=2, failed=0, settled=False, top_share=0.67, unheard=0)
    assert heard_all.tier == "quick" and not heard_all.escalated and "every seat was heard" in heard_all.reason
    maths = first_tier(features("What is 17 * 23?"))
    assert escalate(maths, clusters=2, failed=0, settled=False, top_share=0.5, unheard=0).tier == "deep"
    assert escalate(maths, clusters=2, failed=0, settled=False, top_share=0.67).tier == "standard"


async def test_auto_keeps_quick_when_its_members_agree():
    council = make_council({"a": "Shakespeare", "b": "William Shakespeare", "c": "Shakespeare", "d": "Marlowe"},
                           delays={"d": SLOW}, timeout=SLOW * 2)
    verdict = await run_council("Who wrote Hamlet?", council, strategy="tier:auto")
    assert verdict.effort == "auto" and verdict.route.tier == "quick" and not verdict.route.escalated
    assert "agreed" in verdict.route.reason and verdict.route.kind == "closed"
    assert "d" not in [m.member for m in verdict.members]  # quick asked quorum + 1 = 3 seats


async def test_auto_keeps_quick_when_it_heard_every_seat_and_they_disagree():
    council = make_council({"a": "Shakespeare", "b": "Marlowe", "c": "Shakespeare"})
    verdict = await run_council("Who wrote Hamlet?", council, strategy="tier:auto")
    assert verdict.route.tier == "quick" and "every seat was heard" in verdict.route.reason
    assert verdict.short_answer == "Shakespeare" and verdict.chair is None


async def test_auto_escalates_on_disagreement_and_keeps_quicks_answers():
    council = make_council({"a": "Shakespeare", "b": "Marlowe", "c": "Bacon", "d": "Shakespeare"})
    verdict = await run_council("Who wrote Hamlet?", council, strategy="tier:auto")
    assert verdict.route.tier == "standard" and verdict.route.escalated
    assert "3 different answers" in verdict.route.reason
    assert verdict.route.features["quick"]["clusters"] == 3
    assert [m.member for m in verdict.members] == ["a", "b", "c", "d"]
    assert "fan_out_rest" in verdict.timings and verdict.chair is not None
    models = {m.name: m.model for m in council.members}
    # Quick's answers were kept: a, b and c were asked once; only d was asked afterwards.
    assert [len(innermost(models[n]).calls) for n in "abcd"] == [1, 1, 1, 1]


async def test_auto_sends_a_high_stakes_question_to_the_deep_tier():
    council = make_council({"a": "Take at most 1200 mg a day.", "b": "1200 mg", "c": "At most 1200 mg per day."})
    verdict = await run_council("What is the maximum safe dose of ibuprofen per day?", council, strategy="tier:auto")
    assert verdict.route.tier == "deep" and "dose" in verdict.route.reason
    assert verdict.reviews and any("No source to ground claims in" in w for w in verdict.warnings)


def innermost(model):
    while hasattr(model, "inner"):
        model = model.inner
    return model


# --- deep and overnight -----------------------------------------------------------------------


@pytest.fixture
def collection(db, tmp_path):
    from manyminds.evidence import DocumentIndex

    doc = tmp_path / "hamlet.txt"
    doc.write_text("Hamlet is a tragedy written by William Shakespeare around 1600. It is set in Denmark.\n")
    DocumentIndex(db).add("plays", [doc])
    return "plays"


async def test_the_deep_tier_grounds_claims_in_the_given_collection(db, collection, manyminds_home):
    council = make_council({"a": "William Shakespeare wrote Hamlet around 1600. It is set in Denmark.",
                            "b": "Hamlet was written by William Shakespeare. It is set in Denmark.",
                            "c": "Christopher Marlowe wrote Hamlet. It is set in Denmark."})
    verdict = await run_council("Who wrote Hamlet, and where is it set?", council, strategy="tier:deep",
                                params={"collection": collection, "db": db})
    assert verdict.effort == "deep" and verdict.reviews
    assert "ground" in verdict.timings and verdict.claims is not None
    assert any(c.evidence_verdict != "unchecked" for c in verdict.claims.claims)


async def test_overnight_samples_every_member_grounds_in_every_collection_and_writes_a_report(db, collection, manyminds_home):
    council = make_council({"a": "William Shakespeare wrote Hamlet around 1600.", "b": "William Shakespeare wrote Hamlet.",
                            "c": "Christopher Marlowe wrote Hamlet."})
    recorder = RunRecorder(db)
    verdict = await run_council("Who wrote Hamlet?", council, strategy="tier:overnight",
                                params={"samples": 2, "db": db}, recorder=recorder)
    assert verdict.effort == "overnight" and "samples" in verdict.timings and "ground" in verdict.timings
    assert all(m.signals.samples == 3 for m in verdict.members)  # its answer and two samples
    report = verdict.report
    assert report.startswith("# Who wrote Hamlet?") and "## Sources consulted" in report and "- plays" in report
    assert "## Members" in report and "| a |" in report and "## Claims" in report

    # Stored with the run and printed by `runs show ID --report`.
    shown = subprocess.run([sys.executable, "-m", "manyminds.cli", "runs", "show", verdict.run_id, "--report"],
                           capture_output=True, text=True, env=dict(os.environ), timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == report.strip()
    none = await run_council("Who wrote Hamlet?", council, strategy="tier:quick", recorder=recorder)
    missing = subprocess.run([sys.executable, "-m", "manyminds.cli", "runs", "show", none.run_id, "--report"],
                             capture_output=True, text=True, env=dict(os.environ), timeout=60)
    assert missing.returncode != 0 and "has no report" in missing.stderr and "overnight" in missing.stderr


async def test_an_overnight_request_is_a_job_the_worker_runs(manyminds_home, db):
    from test_server_support import scripted_settings

    from manyminds.jobs.queue import get_job, submit_job
    from manyminds.jobs.worker import Worker

    settings = scripted_settings()
    job = submit_job(db, AskRequest(question="Who wrote Hamlet?", effort="overnight", params={"samples": 1}), settings=settings)
    assert job["request"]["strategy"] == "tier:overnight" and job["request"]["effort"] == "overnight"
    await Worker(db_path=manyminds_home / "manyminds.db", settings=settings).run_until_idle()
    assert get_job(db, job["run_id"])["status"] == "done"
    run = export_run(db, job["run_id"])
    assert run["strategy"] == "tier:overnight" and run["verdict"]["report"].startswith("# Who wrote Hamlet?")


def test_ask_effort_overnight_queues_a_job(manyminds_home):
    result = subprocess.run([sys.executable, "-m", "manyminds.cli", "ask", "--effort", "overnight", "--json", "Who wrote Hamlet?"],
                            capture_output=True, text=True, env=dict(os.environ), timeout=60)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["status"] == "queued" and doc["tier"] == "deep" and doc["effort"] == "overnight"
    job = open_db(manyminds_home / "manyminds.db").execute("select request from jobs where run_id = ?", [doc["id"]]).fetchone()
    assert json.loads(job[0])["strategy"] == "tier:overnight"


# --- requests and bad input -------------------------------------------------------------------


def test_an_effort_is_a_tier_strategy_and_overnight_is_queued():
    from test_server_support import scripted_settings

    settings = scripted_settings()
    quick = AskRequest(question="Who wrote Hamlet?", effort="quick").check(settings)
    assert quick.strategy == "tier:quick" and quick.tier == "quick"
    overnight = AskRequest(question="Who wrote Hamlet?", effort="overnight").check(settings)
    assert overnight.strategy == "tier:overnight" and overnight.tier == "deep"
    with pytest.raises(InputError, match="not both"):
        AskRequest(question="Who wrote Hamlet?", effort="quick", strategy="debate").check(settings)


async def test_an_unknown_tier_is_refused_with_the_tiers_listed_and_stored(db, manyminds_home):
    from test_server_support import scripted_settings

    with pytest.raises(InputError) as info:
        await aask("Who wrote Hamlet?", effort="bogus", settings=scripted_settings(), db_path=manyminds_home / "manyminds.db")
    assert str(info.value) == f"Unknown effort tier 'bogus'. Tiers: {', '.join(EFFORTS)}."
    run = export_run(db, info.value.run_id)
    assert run["status"] == "failed" and run["error"]["message"].startswith("Unknown effort tier")
    with pytest.raises(Exception, match="effort"):
        AskRequest(question="Who wrote Hamlet?", effort="bogus")  # the validated request refuses it too
    request = AskRequest.model_construct(question="Who?", effort=3, tier="quick")
    with pytest.raises(InputError, match="Unknown effort tier 3"):
        await run_request(request, settings=scripted_settings(), store=False)


def test_the_cli_offers_exactly_the_tiers_and_refuses_an_unknown_one(manyminds_home):
    from manyminds.cli.ask import EFFORTS as CLI_EFFORTS

    assert CLI_EFFORTS == EFFORTS
    result = subprocess.run([sys.executable, "-m", "manyminds.cli", "ask", "--effort", "bogus", "Who wrote Hamlet?"],
                            capture_output=True, text=True, env=dict(os.environ), timeout=60)
    assert result.returncode == 2
    assert "'bogus' is not one of 'quick', 'standard', 'deep', 'overnight', 'auto'" in result.stderr


def test_eval_labels_name_the_tiers():
    from manyminds.eval.plan import expand_strategies

    council = make_council({"a": "x", "b": "y"})
    plan = expand_strategies(["tier:quick", "tier:standard", "tier:auto", "single:a"], council)
    assert {p.label: (p.strategy, p.params) for p in plan} == {
        "tier:quick": ("tier:quick", {}), "tier:standard": ("tier:standard", {}), "tier:auto": ("tier:auto", {}),
        "single:a": ("single", {"member": "a"}),
    }
    with pytest.raises(InputError, match="Unknown strategy 'tier:bogus'"):
        expand_strategies(["tier:bogus"], council)
