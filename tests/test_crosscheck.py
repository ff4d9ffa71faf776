"""The claim path end to end on ScriptedModel councils: the default switch, crosscheck (review,
debate, grounding, synthesis), deep with a collection, confidence, follow-ups, storage."""

from __future__ import annotations

import json

import pytest
from helpers import make_council

from manyminds import embeddings
from manyminds.errors import QuorumNotMet
from manyminds.evidence import DocumentIndex, UnknownCollection
from manyminds.pipeline.stages.claim_matrix import MatrixBuild
from manyminds.pipeline.run import run_council
from manyminds.strategies.crosscheck import (
    asks_for_explanation,
    claim_confidence,
    follow_ups,
    is_closed_question,
    prefers_claims,
)
from manyminds.pipeline.verdict import Claim, ClaimMatrix, MemberAnswer
from manyminds.store import RunRecorder, export_run, open_db

pytestmark = pytest.mark.skipif(not embeddings.available(), reason="MiniLM not installed (manyminds install-local)")

Q = "Who was Marie Curie?"
ALPHA = "Marie Curie was a Polish-born physicist and chemist. She discovered polonium in 1898. She won two Nobel Prizes."
BETA = "Marie Curie was a physicist and chemist. Curie discovered polonium in 1898. Marie Curie won two Nobel Prizes."
GAMMA = "Marie Curie was a physicist and chemist. She discovered polonium in 1898. She won one Nobel Prize."


def member(answer: str, revised: str | None = None, reviews: list[dict] | None = None):
    """A scripted member: answers `answer`; in a revision round `revised` (default: the same);
    as a reviewer, names the responses that contain a phrase as errors."""
    reviews = reviews or []

    def script(messages):
        prompt = messages[-1].content
        if "rank them" in prompt:
            labels = [chunk.split('"')[0] for chunk in prompt.split('<response label="')[1:]]
            texts = {lab: prompt.split(f'<response label="{lab}">')[1].split("</response>")[0] for lab in labels}
            errors = [{"response": lab, "quote": r["quote"], "reason": r["reason"]} for lab in labels for r in reviews if r["quote"] in texts[lab]]
            return json.dumps({"errors": errors, "ranking": labels})
        if "Your final answer" in prompt:
            return revised or answer
        return answer

    return script


def answers(*texts):
    return [MemberAnswer(member=f"m{i}", model="x", status="ok", text=t) for i, t in enumerate(texts)]


def test_the_long_answer_rule():
    assert not prefers_claims(answers("Paris", "Paris.", "The capital of France is Paris."), "What is the capital of France?")
    assert prefers_claims(answers(ALPHA + " " + BETA, GAMMA + " " + BETA, "Curie."), Q)
    one_sentence = "The main causes were imperialism, militarism, nationalism and the alliance system of Europe."
    assert prefers_claims(answers(one_sentence, one_sentence, "Nationalism."), "What were the main causes of World War I?")
    assert not prefers_claims(answers(one_sentence, one_sentence, "Nationalism."), "Who started World War I?")


def test_closed_questions_keep_the_short_answer_path_however_long_the_answers():
    long = ALPHA + " " + BETA
    assert prefers_claims(answers(long, long, long), Q)
    for question in (
        "Could a llama give birth twice during the War in Vietnam?",
        "Question: Who wrote Hamlet?\nProposed answer: Marlowe\nIs the proposed answer correct?",
        "Answer yes or no: was Curie born in Warsaw?",
        "Which is true?\n\nA. Curie won two Nobel prizes\nB. Curie won none",
    ):
        assert is_closed_question(question), question
        assert not prefers_claims(answers(long, long, long), question), question
    assert not is_closed_question("What did Marie Curie discover?")
    # "Is …" that asks for an explanation is open
    assert prefers_claims(answers(long, long, long), "Explain whether nuclear power is safe.")
    assert asks_for_explanation("How does a vaccine work?") and not asks_for_explanation("How many legs does a spider have?")


async def test_short_answers_keep_the_answer_level_comparison():
    council = make_council({"alpha": "William Shakespeare", "beta": "Shakespeare", "gamma": "Christopher Marlowe"})
    verdict = await run_council("Who wrote Hamlet?", council)
    assert verdict.claims is None and verdict.strategy == "council"
    assert verdict.confidence == pytest.approx(2 / 3, abs=1e-3)


async def test_long_answers_take_the_claim_path_by_default():
    chair = "Marie Curie was a Polish-born physicist and chemist who discovered polonium in 1898 (Response C says one Nobel Prize)."
    council = make_council({"alpha": ALPHA, "beta": BETA, "gamma": GAMMA}, chair=chair)
    verdict = await run_council(Q, council)
    assert verdict.strategy == "council" and verdict.claims is not None
    statuses = {c.text: c.status for c in verdict.claims.claims}
    assert statuses["Marie Curie discovered polonium in 1898."] == "consensus"
    two = next(c for c in verdict.claims.claims if "two Nobel" in c.text)
    assert two.status == "contested" and two.stances["gamma"] == "contradicts"
    # the chair saw claims, anonymously, never the raw answers; its labels became member names
    prompt = council.chair_model.calls[0][-1].content
    assert "Established by the responses" in prompt and "alpha" not in prompt and "She won" not in prompt
    assert "Response C" not in verdict.answer and any(name in verdict.answer for name in ("alpha", "beta", "gamma"))
    assert {"fan_out", "compare", "claims", "claim_matrix", "synthesize"} <= set(verdict.timings)
    assert any("Nobel" in q for q in verdict.follow_ups)
    assert "claims" in verdict.confidence_explanation
    # consensus claims 1.0 (3 of 3), the two-prizes claim (2 − 1)/3, the one-prize claim 0:
    # weighted by their supporters (3, 3, 2, 1): (3 + 3 + 2/3 + 0) / 9
    assert verdict.confidence == pytest.approx((3 + 3 + 2 / 3) / 9, abs=1e-3)


async def test_crosscheck_reviews_debates_and_stops_when_the_matrix_settles():
    wrong = {"quote": "won one Nobel Prize", "reason": "She won two."}
    council = make_council(
        {
            "alpha": member(ALPHA, reviews=[wrong]),
            "beta": member(BETA, reviews=[wrong]),
            "gamma": member(GAMMA, revised=ALPHA.replace("Polish-born ", "")),
        },
        chair="Marie Curie was a physicist and chemist who discovered polonium in 1898 and won two Nobel Prizes.",
    )
    verdict = await run_council(Q, council, strategy="crosscheck", params={"rounds": 3})
    assert verdict.strategy == "crosscheck"
    assert sorted(r.reviewer for r in verdict.reviews) == ["alpha", "beta", "gamma"]
    assert all(r.reviewer not in r.labels.values() for r in verdict.reviews)
    # gamma was persuaded in round 1; round 2 is not needed: nothing is contested any more
    assert "revise_1" in verdict.timings and "revise_2" not in verdict.timings
    assert all(c.status != "contested" for c in verdict.claims.claims)
    two = next(c for c in verdict.claims.claims if "two Nobel" in c.text)
    assert two.status == "consensus" and two.stances["gamma"] == "supports"
    # reviews, superseded answers and the chair are in the totals
    assert verdict.usage.total_tokens > sum(m.usage.total_tokens for m in verdict.members)


async def test_review_errors_make_a_claim_contested():
    council = make_council(
        {"alpha": member(ALPHA + " She was born in Warsaw."), "beta": member(BETA, reviews=[{"quote": "born in Warsaw", "reason": "Paris."}]),
         "gamma": member(GAMMA)},
    )
    verdict = await run_council(Q, council, strategy="crosscheck", params={"rounds": 0})
    warsaw = next(c for c in verdict.claims.claims if "Warsaw" in c.text)
    assert warsaw.stances == {"alpha": "supports", "beta": "contradicts", "gamma": "silent"}
    assert warsaw.status == "contested"


@pytest.fixture
def collection(tmp_path):
    db = open_db(tmp_path / "store.db")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "curie.md").write_text(
        "# Marie Curie\n\nMarie Curie was a physicist and chemist. She discovered polonium in 1898 with Pierre Curie. "
        "Marie Curie won two Nobel Prizes, in 1903 and in 1911.\n"
    )
    DocumentIndex(db).add("science", [docs])
    yield db
    db.close()


async def test_crosscheck_grounds_contested_claims_and_cites_them(collection):
    council = make_council({"alpha": ALPHA, "beta": BETA, "gamma": GAMMA}, chair="Marie Curie won two Nobel Prizes [1].")
    verdict = await run_council(Q, council, strategy="crosscheck",
                                params={"review": False, "rounds": 0, "collection": "science", "db": collection})
    two = next(c for c in verdict.claims.claims if "two Nobel" in c.text)
    assert two.evidence_verdict == "supported" and two.evidence[0].document.endswith("curie.md")
    assert two.evidence[0].quote == "Marie Curie won two Nobel Prizes, in 1903 and in 1911."
    one = next(c for c in verdict.claims.claims if "one Nobel" in c.text)
    assert one.evidence_verdict == "refuted"  # the same sentence, another number
    cited = next(c for c in verdict.citations if two.id in c.claim_ids)
    assert cited.quote == two.evidence[0].quote and one.id in cited.claim_ids
    assert [c.id for c in verdict.citations] == list(range(1, len(verdict.citations) + 1))
    assert f"Marie Curie won two Nobel Prizes. [{cited.id}]" in council.chair_model.calls[0][-1].content
    assert "ground" in verdict.timings and "checked against sources" in verdict.confidence_explanation
    assert verdict.answer.startswith("Marie Curie won two Nobel Prizes [1]")


async def test_unknown_collection_fails_before_any_model_call(collection):
    council = make_council({"alpha": ALPHA, "beta": BETA})
    with pytest.raises(UnknownCollection):
        await run_council(Q, council, strategy="crosscheck", params={"collection": "papers", "db": collection})
    assert all(m.model.calls == [] for m in council.members)


async def test_deep_with_a_collection_takes_the_claim_path(collection):
    council = make_council({"alpha": member(ALPHA), "beta": member(BETA), "gamma": member(GAMMA)})
    verdict = await run_council(Q, council, strategy="deep", params={"rounds": 1, "collection": "science", "db": collection})
    assert verdict.strategy == "deep" and verdict.claims is not None and verdict.reviews
    assert any(c.evidence_verdict == "supported" for c in verdict.claims.claims)


async def test_a_chair_that_adds_facts_or_fails_is_replaced_by_the_composed_answer():
    council = make_council({"alpha": ALPHA, "beta": BETA, "gamma": GAMMA}, chair="Curie invented the telephone and lived on the Moon.")
    verdict = await run_council(Q, council)
    assert "telephone" not in verdict.answer and "Marie Curie discovered polonium in 1898." in verdict.answer
    assert "Contested:" in verdict.answer and "gamma" in verdict.answer
    assert any("set aside" in w for w in verdict.warnings)
    failing = make_council({"alpha": ALPHA, "beta": BETA, "gamma": GAMMA}, chair=RuntimeError("chair down"))
    verdict = await run_council(Q, failing)
    assert verdict.chair.status == "failed" and verdict.answer and any("Chair failed" in w for w in verdict.warnings)


async def test_a_member_with_no_claims_is_silent_and_said_so():
    council = make_council({"alpha": ALPHA, "beta": BETA, "gamma": "I don't know."})
    verdict = await run_council(Q, council, strategy="crosscheck", params={"review": False, "rounds": 0})
    assert all(c.stances["gamma"] == "silent" for c in verdict.claims.claims)
    assert any("gamma's answer has no extractable claims" in w for w in verdict.warnings)


async def test_model_extraction_for_councils_that_can_do_it():
    claims = {"claims": ["Marie Curie was a physicist and chemist.", "Marie Curie discovered polonium in 1898.", "Marie Curie won two Nobel Prizes."]}

    def extractor(answer):
        def script(messages):
            return json.dumps(claims) if "<text>" in messages[-1].content else answer
        return script

    council = make_council({"alpha": extractor(ALPHA), "beta": extractor(BETA), "gamma": extractor("garbage: " + GAMMA)})
    council.settings = council.settings.model_copy(update={"short_answer": "auto"})
    verdict = await run_council(Q, council, strategy="crosscheck", params={"review": False, "rounds": 0, "judge": "off"})
    assert all(c.status == "consensus" for c in verdict.claims.claims)
    assert verdict.usage.total_tokens > sum(m.usage.total_tokens for m in verdict.members) + verdict.chair.usage.total_tokens


async def test_the_run_is_stored_with_its_claims(tmp_path):
    db = open_db(tmp_path / "runs.db")
    council = make_council({"alpha": ALPHA, "beta": BETA, "gamma": GAMMA})
    verdict = await run_council(Q, council, strategy="crosscheck", params={"rounds": 0}, recorder=RunRecorder(db))
    run = export_run(db, verdict.run_id)
    assert run["strategy"] == "crosscheck" and run["status"] == "complete"
    assert run["verdict"]["claims"]["claims"][0]["id"] == "c1"
    assert {"claims", "claim_matrix", "review_1"} <= {s["stage"] for s in run["stages"]}


async def test_quorum_still_applies():
    council = make_council({"alpha": ALPHA, "beta": RuntimeError("down"), "gamma": RuntimeError("down")})
    with pytest.raises(QuorumNotMet):
        await run_council(Q, council, strategy="crosscheck")


def test_confidence_and_follow_ups_from_a_matrix():
    def claim(i, stances, status, evidence="unchecked"):
        return Claim(id=f"c{i}", text=f"The claim number {i} is true.", stances=stances, status=status, evidence_verdict=evidence)

    s = {"a": "supports", "b": "supports", "c": "supports"}
    matrix = ClaimMatrix(members=["a", "b", "c"], claims=[
        claim(1, s, "consensus"),
        claim(2, {"a": "supports", "b": "silent", "c": "silent"}, "unique"),
        claim(3, {"a": "supports", "b": "silent", "c": "silent"}, "unique", evidence="supported"),
    ])
    weights = {"a": 1.0, "b": 1.0, "c": 1.0}
    confidence, basis = claim_confidence(matrix, weights, total_weight=4.0)  # a fourth member failed
    # c1: 3/4 support; c3: a source makes it 1; the unsourced unique c2 is not asserted
    assert [c.id for c in basis] == ["c1", "c3"]
    assert confidence == pytest.approx((3 * 0.75 + 1 * 1.0) / 4)
    build = MatrixBuild(matrix=matrix, weights=weights)
    assert follow_ups("Q?", build) == ["Is it true that the claim number 2 is true?"]


# --- the real local council ---------------------------------------------------------------------


@pytest.mark.local_model
def test_a_paragraph_question_on_the_local_council_shows_the_claim_matrix(manyminds_home):
    import os
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "manyminds.cli", "ask", *args], capture_output=True,
                              env=dict(os.environ), timeout=300)

    result = cli("--json", "Explain how photosynthesis works.")
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    verdict = json.loads(result.stdout)
    assert verdict["strategy"] == "council" and verdict["claims"] is not None
    members = verdict["claims"]["members"]
    assert set(members) == {"smollm2", "gemma3", "smollm2-terse"}
    claims = verdict["claims"]["claims"]
    assert claims and all(set(c["stances"]) == set(members) for c in claims)
    assert {"claims", "claim_matrix", "synthesize"} <= set(verdict["timings"])
    assert verdict["answer"].strip() and 0.0 <= verdict["confidence"] <= 1.0
    assert verdict["usage"]["total_tokens"] >= sum(m["usage"]["total_tokens"] for m in verdict["members"])
    # a short factual question keeps the answer-level comparison
    short = json.loads(cli("--json", "What is the capital of France?").stdout)
    assert short["claims"] is None


def test_ask_options_choose_the_strategy():
    from manyminds.cli.ask import _strategy_kwargs

    assert _strategy_kwargs(None, None) == {}
    assert _strategy_kwargs("crosscheck", None) == {"strategy": "crosscheck"}
    assert _strategy_kwargs(None, "papers") == {"strategy": "crosscheck", "params": {"collection": "papers", "review": False, "rounds": 0}}
    assert _strategy_kwargs("deep", "papers") == {"strategy": "deep", "params": {"collection": "papers"}}


def test_ask_with_an_unknown_collection_exits_2(manyminds_home):
    import os
    import subprocess
    import sys

    (manyminds_home / "settings.toml").write_text(
        'default_council = "echo"\n[councils.echo]\nquorum = 1\nshort_answer = "heuristic"\n'
        '[[councils.echo.members]]\nname = "e1"\nmodel = "scripted/echo"\n'
    )
    result = subprocess.run([sys.executable, "-m", "manyminds.cli", "ask", "--collection", "papers", "Who wrote Hamlet?"],
                            capture_output=True, env=dict(os.environ), timeout=120)
    assert result.returncode == 2
    assert "Unknown document collection 'papers'" in result.stderr.decode()
