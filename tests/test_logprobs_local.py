"""Token logprobs from the bundled llama.cpp server (xllamacpp) on loopback: the real payloads,
on the chat endpoint (SmolLM2) and on the legacy completions endpoint (Gemma 3, a base model),
where llama.cpp sends the chat shape `{"content": [...]}` instead of OpenAI's legacy one."""

from __future__ import annotations

import math

import pytest
from conftest import SHARED_CACHE

from manyminds.config import MemberSettings
from manyminds.models.base import Message, ModelOptions
from manyminds.models.local import server as ls
from manyminds.models.local.model import LocalModel
from manyminds.pipeline.stages.fanout import FanOut, Member

pytestmark = pytest.mark.local_model

ASK = ModelOptions(temperature=0.0, max_tokens=12, logprobs=True)
QUESTION = [Message(role="user", content="What is the capital of France? Answer in one word.")]


@pytest.fixture(autouse=True)
def local_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MANYMINDS_CACHE", str(SHARED_CACHE))
    for key in ("SMOLLM2", "GEMMA3_270M"):
        monkeypatch.delenv(f"MANYMINDS_LOCAL_SERVER_URL_{key}", raising=False)
        monkeypatch.delenv(f"MANYMINDS_LOCAL_SERVER_KEY_{key}", raising=False)


@pytest.fixture(scope="module", autouse=True)
def stop_servers_at_end():
    yield
    ls.shutdown_all()


async def final(stream):
    out = None
    async for chunk in stream:
        out = chunk.completion or out
    return out


@pytest.mark.parametrize("key", ["smollm2", "gemma3-270m"])
async def test_the_local_server_returns_one_logprob_per_generated_token_streamed_or_not(key):
    model = LocalModel(key)
    try:
        whole = await model.complete(QUESTION, ASK)
        streamed = await final(model.stream(QUESTION, ASK))
        plain = await model.complete(QUESTION, ASK.model_copy(update={"logprobs": None}))
    finally:
        await model.aclose()
    for c in (whole, streamed):
        assert c.text and c.logprobs, c
        assert all(-100.0 <= t.logprob <= 0.0 for t in c.logprobs)
        # One entry per token of the answer: the tokens of a stop sequence (Gemma's "\n\n",
        # "\nQuestion:") are generated and counted in usage, but not scored.
        assert 1 <= len(c.logprobs) <= c.usage.output_tokens
    # Greedy decoding: the same tokens and (to float32 noise) the same values either way.
    assert [t.token for t in whole.logprobs] == [t.token for t in streamed.logprobs]
    assert [t.logprob for t in whole.logprobs] == pytest.approx([t.logprob for t in streamed.logprobs], abs=1e-3)
    assert plain.logprobs is None  # not asked, none sent


async def test_a_local_member_answer_carries_its_token_signals():
    model = LocalModel("smollm2")
    member = Member(MemberSettings(name="s", model="local/smollm2", temperature=0.0, max_tokens=12), model)
    try:
        answer = await FanOut(timeout=300).one("What is the capital of France? Answer in one word.", member)
    finally:
        await model.aclose()
    s = answer.signals
    assert answer.ok and s.token_count and s.token_count > 0
    assert 0.0 < s.min_token_prob <= s.mean_token_prob <= 1.0
    assert s.mean_logprob <= math.log(s.mean_token_prob) + 1e-6  # Jensen: mean log ≤ log mean
