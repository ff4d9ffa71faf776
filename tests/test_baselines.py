"""The baseline strategies (single, majority, self-consistency, council-rank, MoA, debate) on
`ScriptedModel` councils: what each asks, what it answers, and what its confidence means."""

from __future__ import annotations

import json
import re

import pytest
from helpers import make_council

from manyminds.errors import InputError, ModelError, QuorumNotMet
from manyminds.models.base import ModelOptions
from manyminds.testing import ScriptedModel
from manyminds.strategies.baselines import MOA_AGGREGATE_SYSTEM
from manyminds.pipeline.run import run_council
from manyminds.store import RunRecorder, export_run, open_db

Q = "What is the capital of France?"


class OptionsSpy(ScriptedModel):
    """Records the options of every call (ScriptedModel keeps only the messages)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.options: list[ModelOptions | None] = []

    async def complete(self, messages, options=None):
        self.options.append(options)
        return await super().complete(messages, options)


async def test_single_asks_one_member_and_reports_confidence_one():
    council = make_council({"a": "Paris", "b": "Lyon", "c": "Marseille"})
    verdict = await run_council(Q, council, strategy="single", params={"member": "b"})
    assert verdict.strategy == "single" and verdict.short_answer == "Lyon"
    assert [m.member for m in verdict.members] == ["b"]
    assert verdict.confidence == 1.0  # no agreement to measure; the harness stores it as unknown
    assert council.members[0].model.calls == [] and council.members[2].model.calls == []
    assert council.chair_model.calls == []  # no chair
    assert verdict.usage.total_tokens == verdict.members[0].usage.total_tokens


async def test_single_unknown_member_lists_the_members():
    council = make_council({"a": "Paris", "b": "Lyon"})
    with pytest.raises(InputError, match=r"no member 'zed' \(members: a, b\)"):
        await run_council(Q, council, strategy="single", params={"member": "zed"})


async def test_single_failure_is_quorum_not_met():
    council = make_council({"a": ModelError("down", provider="scripted", model="scripted/a"), "b": "Paris"})
    with pytest.raises(QuorumNotMet):
        await run_council(Q, council, strategy="single", params={"member": "a"})


async def test_majority_votes_without_a_chair_and_confidence_is_the_vote_share():
    council = make_council({"a": "Paris", "b": "Lyon", "c": "Paris is the capital."})
    verdict = await run_council(Q, council, strategy="majority")
    assert verdict.short_answer == "Paris" and verdict.chair is None
    assert council.chair_model.calls == []
    assert verdict.confidence == pytest.approx(2 / 3, abs=1e-4)
    assert [d.answer for d in verdict.dissent] == ["Lyon"]


async def test_majority_failed_member_counts_in_the_denominator():
    council = make_council({"a": "Paris", "b": "Paris", "c": ModelError("down", provider="scripted", model="scripted/c")})
    verdict = await run_council(Q, council, strategy="majority")
    assert verdict.confidence == pytest.approx(2 / 3, abs=1e-4)
    assert any("did not answer" in w for w in verdict.warnings)


async def test_majority_tie_goes_to_member_order_and_says_so():
    council = make_council({"a": "Lyon", "b": "Paris"})
    verdict = await run_council(Q, council, strategy="majority")
    assert verdict.short_answer == "Lyon" and verdict.confidence == pytest.approx(0.5)
    assert any("Tied vote" in w for w in verdict.warnings)


async def test_majority_weights_let_a_strong_member_outvote_two_weak_ones():
    council = make_council({"strong": "Paris", "weak1": "Lyon", "weak2": "Lyon"}, weights={"strong": 3.0})
    verdict = await run_council(Q, council, strategy="majority")
    assert verdict.short_answer == "Paris"
    assert verdict.confidence == pytest.approx(3 / 5, abs=1e-4)


async def test_self_consistency_samples_one_member_k_times_with_seeds_and_votes():
    council = make_council({"a": "x", "b": "never asked"})
    spy = OptionsSpy("a", ["Paris", "Lyon", "Paris", "Paris", "Lyon"])
    council.members[0].model = spy
    verdict = await run_council(Q, council, strategy="self-consistency", params={"member": "a", "k": 5, "temperature": 0.9})
    assert verdict.short_answer == "Paris"
    assert verdict.confidence == pytest.approx(3 / 5, abs=1e-4)  # share of the 5 samples
    assert sorted(m.member for m in verdict.members) == [f"a#{i}" for i in range(1, 6)]
    assert sorted(o.seed for o in spy.options) == [0, 1, 2, 3, 4]
    assert {o.temperature for o in spy.options} == {0.9}
    assert council.members[1].model.calls == [] and council.chair_model.calls == []
    assert verdict.usage.total_tokens == sum(m.usage.total_tokens for m in verdict.members)


async def test_self_consistency_rejects_a_silly_k():
    with pytest.raises(InputError, match="1 ≤ k ≤ 64"):
        await run_council(Q, make_council({"a": "Paris"}, quorum=1), strategy="self-consistency", params={"k": 0})


def _ranker(answer: str):
    """Answers `answer`; as a reviewer, ranks the response that says Paris first."""

    def script(messages):
        prompt = messages[-1].content
        if "rank them" in prompt:
            labels = re.findall(r'<response label="(\w+)">', prompt)
            texts = {lab: prompt.split(f'<response label="{lab}">')[1].split("</response>")[0] for lab in labels}
            return json.dumps({"errors": [], "ranking": sorted(labels, key=lambda lab: "Paris" not in texts[lab])})
        return answer

    return script


async def test_council_rank_tells_the_chair_the_ranking_in_its_own_labels():
    council = make_council({"alpha": _ranker("Lyon"), "beta": _ranker("Paris"), "gamma": _ranker("Marseille")}, chair="Paris")
    verdict = await run_council(Q, council, strategy="council-rank")
    assert verdict.strategy == "council-rank" and verdict.short_answer == "Paris"
    assert len(verdict.reviews) == 3 and all(r.status == "ok" for r in verdict.reviews)
    system, user = council.chair_model.calls[0][0].content, council.chair_model.calls[0][1].content
    top_label = re.search(r"best first \(labels as in the user message\): Response (\w+)", system).group(1)
    # the label the chair was told is best is the label of beta's answer ("Paris") in the chair's prompt
    assert f'<response label="{top_label}">\nParis\n</response>' in user
    for name in ("alpha", "beta", "gamma"):
        assert name not in system and name not in user  # anonymous: labels only
    assert verdict.confidence == pytest.approx(1 / 3, abs=1e-4)  # like the council: who agrees with the answer
    assert verdict.usage.total_tokens > sum(m.usage.total_tokens for m in verdict.members)  # reviews counted


async def test_moa_second_layer_sees_every_first_layer_answer_and_the_chair_aggregates():
    seen: dict[str, list[str]] = {"a": [], "b": [], "c": []}

    def layered(name: str, first: str):
        def script(messages):
            seen[name].append(messages[0].content)
            return "Paris" if "Responses from models" in messages[0].content else first

        return script

    council = make_council({n: layered(n, a) for n, a in {"a": "Paris", "b": "Lyon", "c": "Paris, France"}.items()},
                           chair="Paris")  # fmt: skip
    verdict = await run_council(Q, council, strategy="moa")
    for name in seen:
        assert len(seen[name]) == 2  # one answer per layer
        layer2 = seen[name][1]
        assert "Lyon" in layer2 and layer2.count("<response label=") == 3  # its own answer too
        assert not any(f"scripted/{n}" in layer2 for n in seen)
    assert MOA_AGGREGATE_SYSTEM in council.chair_model.calls[0][0].content
    assert verdict.short_answer == "Paris" and verdict.confidence == pytest.approx(1.0)
    assert verdict.usage.total_tokens > sum(m.usage.total_tokens for m in verdict.members) + 0  # layer 1 counted
    assert set(verdict.timings) >= {"fan_out", "moa_layer_2", "compare", "synthesize"}


def _debater(first: str, persuadable: bool):
    def script(messages):
        prompt = messages[-1].content
        if "Your final answer" in prompt:
            return "Paris" if persuadable and "Paris" in prompt else first
        return first

    return script


async def test_debate_runs_two_revision_rounds_then_votes(tmp_path):
    council = make_council({"a": _debater("Paris", False), "b": _debater("Lyon", True), "c": _debater("Marseille", False)})
    db = open_db(tmp_path / "runs.db")
    verdict = await run_council(Q, council, strategy="debate", recorder=RunRecorder(db))
    assert verdict.short_answer == "Paris" and verdict.chair is None
    assert verdict.confidence == pytest.approx(2 / 3, abs=1e-4)  # b was persuaded, c was not
    for m in council.members:
        assert len(m.model.calls) == 3  # the answer and two revisions
    assert verdict.usage.total_tokens > sum(m.usage.total_tokens for m in verdict.members)
    run = export_run(db, verdict.run_id)  # stored like any run
    assert run["status"] == "complete" and run["strategy"] == "debate"
    assert {"revise_1", "revise_2"} <= {s["stage"] for s in run["stages"]}


async def test_debate_zero_rounds_is_a_majority_vote():
    council = make_council({"a": "Paris", "b": "Paris", "c": "Lyon"})
    verdict = await run_council(Q, council, strategy="debate", params={"rounds": 0})
    assert verdict.short_answer == "Paris" and all(len(m.model.calls) == 1 for m in council.members)
