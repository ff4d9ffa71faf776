"""Per-member signals (issue 11, part 1): token logprobs parsed from real SDK responses served
by the loopback fake (streamed and not, both OpenAI shapes, absent, malformed, refused), the
verbalised confidence, agreement, semantic entropy, and the signals column in a real SQLite
file — including one made before the column existed."""

from __future__ import annotations

import math

import pytest
import sqlite_utils
from helpers import make_council

from manyminds.config import MemberSettings
from manyminds.models.base import Completion, Message, ModelOptions, TokenLogprob
from manyminds.models.logprobs import parse_logprobs, token_stats
from manyminds.models.openai_compat import OpenAICompatModel
from manyminds.pipeline.run import run_council
from manyminds.pipeline.stages.compare import compare, semantic_entropy, with_agreement_signals
from manyminds.pipeline.stages.fanout import FanOut, Member
from manyminds.pipeline.stages.signals import CONFIDENCE_INSTRUCTION, answer_signals, split_confidence
from manyminds.pipeline.verdict import MemberAnswer
from manyminds.store import RunRecorder, export_run, get_run, open_db
from manyminds.store.connect import configure
from manyminds.store.migrator import migrate, registered_migrations
from manyminds.testing import Behaviour, FakeOpenAIServer, ScriptedModel

Q = "What is the capital of France?"
ASK = ModelOptions(logprobs=True)
MSGS = [Message(role="user", content=Q)]
VALUES = [-0.5, -0.25, -2.0, 0.0]  # the loopback's four "tokens" of "Paris is in France"


def fake_model(server: FakeOpenAIServer, model_id: str = "m", *, logprobs: bool = True) -> OpenAICompatModel:
    return OpenAICompatModel(model_id, provider="fake", base_url=server.base_url, api_key="sk-loopback", needs_key=False,
                             supports_logprobs=logprobs)


async def answer_of(model: OpenAICompatModel, how: str, options: ModelOptions = ASK) -> Completion:
    """One call through the chat or the legacy endpoint, streamed or not."""
    if how == "chat":
        return await model.complete(MSGS, options)
    if how == "prompt":
        return await model.complete_prompt(Q, options)
    stream = model.stream(MSGS, options) if how == "chat-stream" else model.stream_prompt(Q, options)
    final = None
    async for chunk in stream:
        final = chunk.completion or final
    assert final is not None
    return final


ALL_WAYS = ["chat", "chat-stream", "prompt", "prompt-stream"]


# --- parsing through the real SDK -----------------------------------------------------------


@pytest.mark.parametrize("how", ALL_WAYS)
async def test_logprobs_are_read_from_every_endpoint_streamed_or_not(how, closing):
    with FakeOpenAIServer(default=Behaviour(text="Paris is in France", logprobs=VALUES)) as server:
        model = closing(fake_model(server))
        c = await answer_of(model, how)
        assert c.text == "Paris is in France"
        assert [t.logprob for t in c.logprobs] == VALUES
        assert "".join(t.token for t in c.logprobs) == c.text
        body = server.requests[-1].body
        if how.startswith("chat"):
            # top_logprobs 1, not 0: llama.cpp reads 0 as "none" and omitted as "20 alternatives".
            assert body["logprobs"] is True and body["top_logprobs"] == 1
        else:
            assert body["logprobs"] == 1


@pytest.mark.parametrize("how", ALL_WAYS)
async def test_a_provider_without_logprobs_neither_asks_nor_reports_them(how, closing):
    with FakeOpenAIServer(default=Behaviour(text="Paris", logprobs=VALUES)) as server:
        c = await answer_of(closing(fake_model(server, logprobs=False)), how)
        assert "logprobs" not in server.requests[-1].body and "top_logprobs" not in server.requests[-1].body
        assert c.text == "Paris" and c.logprobs is None


@pytest.mark.parametrize("how", ALL_WAYS)
async def test_an_endpoint_that_ignores_the_request_gives_absent_not_empty(how, closing):
    with FakeOpenAIServer(default=Behaviour(text="Paris", logprobs=False)) as server:
        c = await answer_of(closing(fake_model(server)), how)
        assert server.requests[-1].body["logprobs"]  # asked
        assert c.text == "Paris" and c.logprobs is None


@pytest.mark.parametrize("how", ALL_WAYS)
async def test_a_malformed_payload_is_absent_and_the_answer_survives(how, closing):
    with FakeOpenAIServer(default=Behaviour(text="Paris is nice", logprobs="malformed")) as server:
        c = await answer_of(closing(fake_model(server)), how)
        assert c.text == "Paris is nice" and c.logprobs is None


@pytest.mark.parametrize(
    "payload",
    [
        "not an object",
        {"content": "nope"},
        {"content": [{"token": "Paris", "logprob": float("nan")}]},
        {"content": [{"token": "Paris", "logprob": 0.7}]},  # a probability is not a log-probability
        {"content": [{"token": "Paris", "logprob": True}]},
        {"content": [{"logprob": -0.1}]},
        {"tokens": ["Paris"], "token_logprobs": [-0.1, -0.2]},
        {"tokens": "Paris", "token_logprobs": [-0.1]},
        {"something": "else"},
    ],
)
@pytest.mark.parametrize("how", ["chat", "chat-stream"])
async def test_odd_payloads_from_a_server_are_absent(payload, how, closing):
    with FakeOpenAIServer(default=Behaviour(text="Paris", logprobs=lambda tokens: payload)) as server:
        c = await answer_of(closing(fake_model(server)), how)
        assert c.text == "Paris" and c.logprobs is None


async def test_a_stream_with_one_broken_chunk_is_absent_whole(closing):
    calls = []

    def payload(tokens):  # the second chunk's entry is broken
        calls.append(tokens)
        lp = "x" if len(calls) == 2 else -0.1
        return {"content": [{"token": t, "logprob": lp} for t in tokens]}

    with FakeOpenAIServer(default=Behaviour(text="one two three", logprobs=payload)) as server:
        c = await answer_of(closing(fake_model(server)), "chat-stream")
        assert len(calls) == 3 and c.text == "one two three" and c.logprobs is None


def test_llama_cpp_chat_shape_on_the_legacy_endpoint_is_read_from_the_sdk_extras():
    # What the bundled llama.cpp server sends on /v1/completions (seen on a real one, trimmed),
    # validated into the SDK's legacy `Logprobs` model, which has no `content` field.
    from openai.types.completion_choice import Logprobs

    raw = {"content": [{"id": 9079, "token": " Paris", "bytes": [32, 80, 97, 114, 105, 115], "logprob": -0.844,
                        "top_logprobs": [{"id": 9079, "token": " Paris", "logprob": -0.844}]}]}
    parsed = parse_logprobs(Logprobs.model_validate(raw))
    assert parsed == [TokenLogprob(" Paris", -0.844)]
    assert parse_logprobs(Logprobs.construct(**raw)) == parsed  # the SDK builds responses unvalidated


def test_infinite_and_rounded_values_are_kept_in_range():
    parsed = parse_logprobs({"content": [{"token": "a", "logprob": float("-inf")}, {"token": "b", "logprob": 1e-6}]})
    assert [t.logprob for t in parsed] == [-100.0, 0.0]
    assert parse_logprobs({"content": []}) == []  # well-formed and empty: no tokens, not absent
    assert token_stats([]) is None and token_stats(None) is None


async def test_a_model_that_refuses_the_field_is_asked_again_without_it(closing):
    refusal = Behaviour.error(400, "logprobs is not supported with this model")
    with FakeOpenAIServer(default=Behaviour(text="Paris", logprobs=VALUES)) as server:
        server.queue(refusal, model="m")
        model = closing(fake_model(server))
        c = await model.complete(MSGS, ASK)
        assert c.text == "Paris" and c.logprobs is None
        assert [("logprobs" in r.body) for r in server.requests] == [True, False]
        await model.complete(MSGS, ASK)  # and it is not asked again
        assert "logprobs" not in server.requests[-1].body


async def test_any_other_400_is_not_retried(closing):
    from manyminds.errors import ModelError

    with FakeOpenAIServer(default=Behaviour.error(400, "max_tokens is too large")) as server:
        with pytest.raises(ModelError, match="max_tokens is too large"):
            await closing(fake_model(server)).complete(MSGS, ASK)
        assert len(server.requests) == 1


def test_completion_round_trips_its_logprobs_and_old_documents_read_as_absent():
    c = Completion(text="Paris", logprobs=[TokenLogprob("Paris", -0.25)])
    assert Completion.from_dict(c.to_dict()).logprobs == c.logprobs
    old = {k: v for k, v in c.to_dict().items() if k != "logprobs"}
    assert Completion.from_dict(old).logprobs is None
    assert Completion.from_dict({**old, "logprobs": [["Paris", "high"]]}).logprobs is None


# --- the verbalised confidence --------------------------------------------------------------


@pytest.mark.parametrize(
    "text, kept, value",
    [
        ("Paris.\nConfidence: 85%", "Paris.\n", 0.85),
        ("Paris.\n**Confidence:** 85%", "Paris.\n", 0.85),
        ("Paris. Confidence: 0.9", "Paris.", 0.9),
        ("Paris\n(Confidence: 90 percent)", "Paris\n", 0.9),
        ("Paris\nConfidence level is about 70 %.", "Paris\n", 0.7),
        ("Paris\nconfidence: 7/100", "Paris\n", 0.07),
        ("Paris\n\nConfidence: 0,75\n\n", "Paris\n\n", 0.75),
        ("Paris\nConfidence: 60", "Paris\n", 0.6),
    ],
)
def test_a_confidence_line_is_read_and_cut(text, kept, value):
    assert split_confidence(text) == (kept, value, len(text) - len(kept))


@pytest.mark.parametrize(
    "text",
    ["Paris", "Paris\nConfidence: 150%", "My confidence is 90% that it is\nParis", "Paris\nConfidence: high", ""],
)
def test_no_readable_confidence_on_the_last_line_keeps_the_text(text):
    assert split_confidence(text) == (text, None, 0)


def test_the_confidence_line_is_left_out_of_the_token_statistics():
    raw = "Paris\nConfidence: 90%"
    tokens = [TokenLogprob("Paris", -0.1), TokenLogprob("\nConfidence", -3.0), TokenLogprob(": 90%", -3.0)]
    text, signals = answer_signals(Completion(text=raw, logprobs=tokens), asked_confidence=True)
    assert text == "Paris" and signals.verbal_confidence == 0.9
    assert signals.token_count == 1 and signals.mean_token_prob == pytest.approx(math.exp(-0.1), abs=1e-6)
    # Not asked: the line is the member's own text, and its tokens count.
    text, signals = answer_signals(Completion(text=raw, logprobs=tokens), asked_confidence=False)
    assert text == raw and signals.verbal_confidence is None and signals.token_count == 3


# --- the fan-out fills the signals ----------------------------------------------------------


def seat(name: str, model, **settings) -> Member:
    return Member(MemberSettings(name=name, model=f"x/{name}", **settings), model)


async def test_fanout_signals_from_logprobs_and_an_asked_confidence():
    model = ScriptedModel("a", "Paris is the capital.\nConfidence: 80%", logprobs=[-0.1, -0.2, -0.3, -0.4, -9.0])
    member = seat("a", model, ask_confidence=True)
    answer = await FanOut(timeout=5).one(Q, member)
    assert model.calls[0][-1].content == f"{Q}\n\n{CONFIDENCE_INSTRUCTION}"
    assert answer.text == "Paris is the capital."
    s = answer.signals
    assert s.verbal_confidence == 0.8
    # "Paris ", "is ", "the ", "capital.\n" — the confidence line's tokens are left out.
    assert s.token_count == 4
    assert s.min_token_prob == pytest.approx(math.exp(-0.4), abs=1e-6)
    assert s.mean_token_prob == pytest.approx(sum(math.exp(v) for v in (-0.1, -0.2, -0.3, -0.4)) / 4, abs=1e-6)
    assert s.mean_logprob == pytest.approx(-0.25, abs=1e-6)


async def test_fanout_without_logprobs_or_a_request_leaves_the_signals_absent():
    answer = await FanOut(timeout=5).one(Q, seat("a", ScriptedModel("a", "Paris\nConfidence: 80%")))
    s = answer.signals
    assert answer.text == "Paris\nConfidence: 80%"  # not asked: the text is the member's
    assert (s.token_count, s.mean_token_prob, s.min_token_prob, s.mean_logprob, s.verbal_confidence) == (None,) * 5


async def test_a_confidence_asked_but_not_given_is_none_and_custom_messages_are_not_read():
    member = seat("a", ScriptedModel("a", "Paris\nConfidence: 80%"), ask_confidence=True)
    review = [Message(role="user", content="Review this.")]
    answer = await FanOut(timeout=5).one(Q, member, review)  # a review round's own messages
    assert answer.text == "Paris\nConfidence: 80%" and answer.signals.verbal_confidence is None
    member = seat("b", ScriptedModel("b", "Paris"), ask_confidence=True)
    assert (await FanOut(timeout=5).one(Q, member)).signals.verbal_confidence is None


async def test_fanout_signals_through_a_real_endpoint_streamed(closing):
    with FakeOpenAIServer(default=Behaviour(text="Paris is in France", logprobs=VALUES)) as server:
        answer = await FanOut(timeout=5).one(Q, seat("a", closing(fake_model(server))))
        assert server.requests[-1].stream and answer.signals.token_count == 4
        assert answer.signals.min_token_prob == pytest.approx(math.exp(-2.0), abs=1e-6)


# --- agreement and semantic entropy ---------------------------------------------------------


def ok(member: str, short: str) -> MemberAnswer:
    return MemberAnswer(member=member, model=f"x/{member}", status="ok", text=short, short_answer=short)


def test_agreement_signals_are_the_rows_of_the_matrix():
    answers = [ok("a", "Paris"), ok("b", "Paris, France"), ok("c", "Lyon"),
               MemberAnswer(member="d", model="x/d", status="failed")]
    agreement = compare(answers, question=Q)
    out = with_agreement_signals(answers, agreement)
    a, b, c, d = (x.signals for x in out)
    assert a.agreement == {"b": agreement.matrix[0][1], "c": 0.0} and a.agreement["b"] >= 0.9
    assert a.mean_agreement == pytest.approx((a.agreement["b"] + 0.0) / 2, abs=1e-4)
    assert c.agreement == {"a": 0.0, "b": agreement.matrix[2][1]} and c.agreement["b"] < 0.5
    assert d.agreement == {} and d.mean_agreement is None  # failed: nothing to agree with
    solo = with_agreement_signals([ok("a", "Paris")], compare([ok("a", "Paris")]))
    assert solo[0].signals.agreement == {} and solo[0].signals.mean_agreement is None


@pytest.mark.parametrize(
    "shorts, expected",
    [
        (["Paris", "Paris", "paris", "Paris."], 0.0),
        (["Paris", "Lyon", "Nice", "Lille"], math.log(4)),
        (["Paris", "William Shakespeare", "Shakespeare", "Lyon"], -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))),
        (["Paris"], None),
    ],
)
def test_semantic_entropy_of_the_cluster_shares(shorts, expected):
    agreement = compare([ok(f"s{i}", s) for i, s in enumerate(shorts)])
    value = semantic_entropy(agreement)
    assert value == (None if expected is None else pytest.approx(expected, abs=1e-6))


async def test_self_consistency_puts_the_semantic_entropy_on_every_sample():
    council = make_council({"a": ["Paris", "Lyon", "Paris", "Paris"], "b": "never asked"})
    verdict = await run_council(Q, council, strategy="self-consistency", params={"member": "a", "k": 4})
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert [m.signals.semantic_entropy for m in verdict.members] == [pytest.approx(entropy, abs=1e-6)] * 4
    assert {m.signals.samples for m in verdict.members} == {4}
    assert all(len(m.signals.agreement) == 3 for m in verdict.members)


async def test_other_strategies_have_no_semantic_entropy():
    council = make_council({"a": "Paris", "b": "Paris", "c": "Lyon"})
    verdict = await run_council(Q, council, strategy="majority")
    assert all(m.signals.semantic_entropy is None and m.signals.samples is None for m in verdict.members)
    assert {m.member: m.signals.mean_agreement for m in verdict.members} == {"a": 0.5, "b": 0.5, "c": 0.0}


# --- stored ---------------------------------------------------------------------------------


async def test_signals_are_stored_and_exported(tmp_path):
    db = open_db(tmp_path / "runs.db")
    council = make_council({"a": "Paris", "b": "Lyon"})
    council.members[0].model = ScriptedModel("a", "Paris", logprobs=[-0.5])
    verdict = await run_council(Q, council, strategy="majority", recorder=RunRecorder(db))
    exported = export_run(db, verdict.run_id)
    members = {m["member"]: m for m in exported["members"] if m["stage"] == "fan_out"}
    assert members["a"]["signals"] == verdict.members[0].signals.model_dump(mode="json")
    assert members["a"]["signals"]["mean_logprob"] == -0.5 and members["a"]["signals"]["agreement"] == {"b": 0.0}
    assert members["b"]["signals"]["mean_token_prob"] is None  # absent, stored as absent
    assert exported["verdict"]["members"][0]["signals"]["token_count"] == 1


def test_a_database_from_before_the_signals_column_migrates_and_keeps_its_answers(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    configure(old)
    before = [m for m in registered_migrations() if m.__name__ < "m006"]
    assert migrate(old, before) == ["m001_initial", "m002_run_search", "m003_eval", "m004_documents", "m005_jobs"]
    assert "signals" not in old["member_answers"].columns_dict
    run_id = RunRecorder(old).start(Q, "local")
    old.execute("INSERT INTO member_answers (run_id, stage, member, model, status, text, finished_at) "
                "VALUES (?, 'fan_out', 'a', 'x/a', 'ok', 'Paris', '2025-01-01T00:00:00.000Z')", [run_id])
    old.conn.commit()
    old.close()

    db = open_db(path)  # applies m006
    assert db["member_answers"].columns_dict["signals"] is str
    stored = get_run(db, run_id)["members"]
    assert [(m["member"], m["text"], m["signals"]) for m in stored] == [("a", "Paris", None)]  # not recorded
    RunRecorder(db).member_finished(run_id, ok("a", "Paris").model_copy(update={"text": "Paris!"}))
    again = get_run(db, run_id)["members"][0]
    assert again["text"] == "Paris!" and again["signals"]["agreement"] == {}


def test_trailing_tokens_that_spell_nothing_are_not_part_of_the_answer():
    from manyminds.models.logprobs import trim_unspoken

    t = [TokenLogprob("", -1.0), TokenLogprob("\nColour", -2.0), TokenLogprob("", -0.5), TokenLogprob("", -0.1)]
    assert trim_unspoken(t) == t[:2]  # the held-back "" inside the answer stays
    assert trim_unspoken([TokenLogprob("", -0.5)]) == [] and trim_unspoken(None) is None
