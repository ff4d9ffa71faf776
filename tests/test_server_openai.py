"""The OpenAI-compatible endpoint, driven by the official `openai` client (sync and async,
streaming and not) against a real server on a loopback port."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import openai
import pytest
from test_server_support import LiveServer, scripted_settings, wait_for

from manyminds.config import CouncilSettings, MemberSettings, ProviderSettings
from manyminds.server import create_app
from manyminds.store import export_run, open_db
from manyminds.testing import Behaviour, FakeOpenAIServer, ScriptedModel

TOKEN = "tok-openai-9a8b7c6d5e4f"
HAMLET = [{"role": "user", "content": "Who wrote Hamlet?"}]
EXTENSION_KEYS = {"run_id", "confidence", "short_answer", "agreement", "dissent", "citations", "claims", "warnings",
                  "effort", "route", "early_consensus", "cost_usd", "budget_limited"}


@pytest.fixture
def db_path(manyminds_home):
    return manyminds_home / "manyminds.db"


@pytest.fixture
def failing():
    with FakeOpenAIServer(default=Behaviour.error(500, "upstream down")) as server:
        yield server


@pytest.fixture
def srv(db_path, failing):
    settings = scripted_settings()
    settings.providers["fake"] = ProviderSettings(base_url=failing.base_url)
    settings.councils["broken"] = CouncilSettings(
        members=[MemberSettings(name=m, model=f"fake/{m}") for m in ("m1", "m2")], quorum=2, timeout=10, retries=0,
    )
    with LiveServer(create_app(settings, db_path=db_path, token=TOKEN)) as server:
        yield server


@pytest.fixture
def client(srv):
    return openai.OpenAI(base_url=srv.url + "/v1", api_key=TOKEN)


def stored(db_path, run_id):
    return export_run(open_db(db_path), run_id)


def test_a_completion_carries_the_answer_usage_and_the_extension(client, db_path):
    r = client.chat.completions.create(model="council/trio", messages=HAMLET)
    assert r.object == "chat.completion" and r.model == "council/trio"
    assert r.choices[0].message.role == "assistant" and r.choices[0].finish_reason == "stop"
    ext = r.model_extra["manyminds"]
    assert set(ext) == EXTENSION_KEYS
    run = stored(db_path, ext["run_id"])
    assert run["status"] == "complete" and run["question"] == "Who wrote Hamlet?"
    assert r.choices[0].message.content == run["verdict"]["answer"]
    assert r.id == f"chatcmpl-{ext['run_id']}"
    assert ext["confidence"] == run["confidence"] == pytest.approx(2 / 3, abs=1e-3)
    assert ext["dissent"][0]["members"] == ["gamma"] and "Marlowe" in ext["dissent"][0]["answer"]
    assert ext["agreement"]["members"] == ["alpha", "beta", "gamma"]
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (
        run["verdict"]["usage"]["input_tokens"], run["verdict"]["usage"]["output_tokens"], run["verdict"]["usage"]["total_tokens"])


def test_a_budget_sent_as_extra_body_stops_the_council_and_says_so(client, db_path):
    # duo: alpha and beta (quorum 1); 150 tokens pay for the members, not the chair's prompt.
    r = client.chat.completions.create(model="council/duo", messages=HAMLET,
                                       extra_body={"manyminds": {"budget": {"max_tokens": 150}}})  # fmt: skip
    ext = r.model_extra["manyminds"]
    assert ext["budget_limited"]["budget"] == "tokens" and ext["budget_limited"]["limit"] == 150
    assert r.usage.total_tokens <= 150 and "Shakespeare" in r.choices[0].message.content
    run = stored(db_path, ext["run_id"])
    assert run["budget_limited"]["budget"] == "tokens" and run["verdict"]["chair"]["status"] == "failed"
    free = client.chat.completions.create(model="council/duo", messages=HAMLET).model_extra["manyminds"]
    assert free["budget_limited"] is None and free["cost_usd"] == 0  # scripted models are priced at zero


def test_a_budget_that_stops_the_council_before_its_quorum_is_a_400_on_record(db_path):
    # Two wordy members, both needed: the first answer spends nearly all of the 60 tokens, so
    # the second member's prompt no longer fits.
    ScriptedModel.register_script("wordy", "Shakespeare, " * 60)
    wordy = CouncilSettings(members=[MemberSettings(name=n, model="scripted/wordy", max_tokens=100) for n in ("w1", "w2")],
                            chair="scripted/chair", quorum=2, timeout=10, retries=0)  # fmt: skip
    with LiveServer(create_app(scripted_settings(wordy=wordy), db_path=db_path)) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="council/wordy", messages=HAMLET,
                                           extra_body={"manyminds": {"budget": {"max_tokens": 60}}})  # fmt: skip
    assert caught.value.code == "budget_limited" and "before the quorum was met (1 of 2 members answered)" in caught.value.message
    assert caught.value.body["budget_limited"]["budget"] == "tokens"
    [(status, limited)] = open_db(db_path).execute("select status, budget_limited from runs").fetchall()
    assert status == "failed" and json.loads(limited)["limit"] == 60


@pytest.mark.parametrize("options, field", [
    ({"budget": {"max_tokens": 0}}, "max_tokens"), ({"budget": {"max_cost": -1}}, "max_cost"),
    ({"budget": {"max_dollars": 3}}, "max_dollars"), ({"max_tokens": 10}, "max_tokens"),
])  # fmt: skip
def test_a_bad_budget_is_refused_and_asks_nothing(client, db_path, options, field):
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.chat.completions.create(model="council/duo", messages=HAMLET, extra_body={"manyminds": options})
    assert caught.value.body["type"] == "invalid_request_error" and field in caught.value.message
    assert open_db(db_path).execute("select count(*) from runs").fetchone()[0] == 0


def test_a_budget_too_small_for_one_member_is_a_400_with_the_reason(client, db_path):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="council/duo", messages=HAMLET,
                                       extra_body={"manyminds": {"budget": {"max_tokens": 3}}})  # fmt: skip
    assert "--max-tokens 3 is too small for even one member" in caught.value.message
    db = open_db(db_path)
    assert db.execute("select count(*) from member_answers").fetchone()[0] == 0
    assert [tuple(r) for r in db.execute("select status from runs")] == [("failed",)]  # the refusal is on record


def test_council_is_the_default_council_and_models_lists_every_council(client):
    assert [m.id for m in client.models.list()] == ["council", "council/broken", "council/duo", "council/trio"]
    assert client.models.retrieve("council/duo").owned_by == "manyminds"
    r = client.chat.completions.create(model="council", messages=HAMLET)
    assert r.model_extra["manyminds"]["agreement"]["members"] == ["alpha", "beta", "gamma"]  # trio is the default


def test_streaming_sends_only_the_final_answer_and_the_extension_last(client, db_path):
    stream = client.chat.completions.create(model="council/trio", messages=HAMLET, stream=True)
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop" and set(last.model_extra["manyminds"]) == EXTENSION_KEYS
    assert all("manyminds" not in (c.model_extra or {}) for c in chunks[:-1])
    run = stored(db_path, last.model_extra["manyminds"]["run_id"])
    assert text == run["verdict"]["answer"]
    for member in run["members"]:  # members' own words never reach the content
        if member["text"] not in run["verdict"]["answer"]:
            assert member["text"] not in text


def test_streaming_with_include_usage_ends_with_a_usage_chunk(client):
    chunks = list(client.chat.completions.create(model="council/duo", messages=HAMLET, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0 and "manyminds" in chunks[-1].model_extra
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_the_raw_stream_is_sse_ending_with_done(srv):
    with httpx.stream("POST", srv.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {TOKEN}"},
                      json={"model": "council/duo", "messages": HAMLET, "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)
    docs = [json.loads(line[6:]) for line in lines[:-1]]
    assert {d["id"] for d in docs} == {docs[0]["id"]}


async def test_the_async_client_concurrently_streaming_and_not(srv, db_path):
    client = openai.AsyncOpenAI(base_url=srv.url + "/v1", api_key=TOKEN)

    async def plain(i: int) -> str:
        r = await client.chat.completions.create(model="council/trio", messages=[{"role": "user", "content": f"Who wrote Hamlet? ({i})"}])
        return r.model_extra["manyminds"]["run_id"]

    async def streamed(i: int) -> str:
        stream = await client.chat.completions.create(
            model="council/trio", messages=[{"role": "user", "content": f"Who wrote Hamlet? (s{i})"}], stream=True)
        last = None
        async for chunk in stream:
            last = chunk
        return last.model_extra["manyminds"]["run_id"]

    ids = await asyncio.gather(*[plain(i) for i in range(4)], *[streamed(i) for i in range(4)])
    await client.close()
    assert len(set(ids)) == 8
    db = open_db(db_path)
    assert db.execute("select count(*) from runs where status = 'complete'").fetchone()[0] == 8


def test_earlier_messages_are_context_and_a_lone_question_is_stored_as_asked(client, db_path):
    r = client.chat.completions.create(model="council/duo", messages=[
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Who wrote Macbeth?"},
        {"role": "assistant", "content": "Shakespeare."},
        {"role": "user", "content": [{"type": "text", "text": "And Hamlet?"}]},
    ])
    question = stored(db_path, r.model_extra["manyminds"]["run_id"])["question"]
    assert question == ("Instructions:\nAnswer briefly.\n\nConversation so far:\nuser: Who wrote Macbeth?\n"
                        "assistant: Shakespeare.\n\nQuestion: And Hamlet?")


def test_errors_in_openai_shape_without_retries(client, db_path, failing):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="council/nope", messages=HAMLET)
    assert info.value.code == "model_not_found" and info.value.param == "model"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=HAMLET)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="council", messages=[{"role": "system", "content": "hi"}])
    assert info.value.code == "no_user_message"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="council", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}])
    assert info.value.code == "unsupported_content"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="council", messages=[{"role": "user", "content": "  "}])
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="council", messages=HAMLET, n=2)
    assert open_db(db_path).execute("select count(*) from runs").fetchone()[0] == 0

    # The members fail: 502, stored once (x-should-retry: false stops the client's retries).
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="council/broken", messages=HAMLET)
    assert info.value.status_code == 502 and info.value.code == "quorum_not_met"
    assert info.value.body["run_id"]
    assert [r[0] for r in open_db(db_path).execute("select status from runs")] == ["failed"]
    assert len(failing.requests) == 2

    with pytest.raises(openai.APIError) as info:  # the same failure after the stream has begun
        list(client.chat.completions.create(model="council/broken", messages=HAMLET, stream=True))
    assert "Only 0 member(s) answered" in info.value.message


def test_a_wrong_token_is_an_authentication_error(srv):
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=srv.url + "/v1", api_key="wrong").models.list()


def test_a_completion_whose_run_is_cancelled_gets_a_409(db_path):
    with FakeOpenAIServer(default=Behaviour(text="Shakespeare", latency=5)) as slow:
        settings = scripted_settings()
        settings.providers["fake"] = ProviderSettings(base_url=slow.base_url)
        settings.councils["slow"] = CouncilSettings(members=[MemberSettings(name="m1", model="fake/m1")], quorum=1, timeout=30)
        with LiveServer(create_app(settings, db_path=db_path, token="")) as srv:
            client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused")
            errors = []

            def ask():
                try:
                    client.chat.completions.create(model="council/slow", messages=HAMLET)
                except openai.APIStatusError as exc:
                    errors.append(exc)

            thread = threading.Thread(target=ask)
            thread.start()
            wait_for(lambda: slow.requests)
            run_id = httpx.get(srv.url + "/api/runs").json()["runs"][0]["id"]
            assert httpx.post(f"{srv.url}/api/runs/{run_id}/cancel").status_code == 200
            thread.join(10)
    assert errors[0].status_code == 409 and errors[0].code == "run_cancelled" and errors[0].body["run_id"] == run_id
