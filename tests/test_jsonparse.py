"""The tolerant JSON parser, on real malformed model outputs and on typical provider habits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from manyminds.pipeline.jsonparse import (
    JSONExtractionError,
    extract_json_object,
    parse_json_object,
    schema_errors,
)

DATA = Path(__file__).parent / "data" / "malformed_json"
MANIFEST = json.loads((DATA / "cases.json").read_text(encoding="utf-8"))
ANSWER = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


@pytest.mark.parametrize("case", MANIFEST["cases"], ids=lambda c: c["file"].removesuffix(".txt"))
def test_real_outputs(case):
    text = (DATA / case["file"]).read_text(encoding="utf-8")
    expect = case["expect"]
    if expect.get("none"):
        with pytest.raises(JSONExtractionError):
            extract_json_object(text, MANIFEST["schema"])
        assert parse_json_object(text, MANIFEST["schema"]) is None
        return
    parsed = extract_json_object(text, MANIFEST["schema"])
    if "value" in expect:
        assert parsed.value == expect["value"]
    else:
        assert parsed.value["answer"].startswith(expect["answer_startswith"])
    assert set(case["repairs"]) <= set(parsed.repairs), parsed.repairs


def test_manifest_lists_every_fixture():
    listed = {c["file"] for c in MANIFEST["cases"]}
    assert listed == {p.name for p in DATA.glob("*.txt")}
    assert len(listed) >= 10


# --- what real providers do -------------------------------------------------------------

PROVIDER_HABITS = [
    ('```json\n{"answer": "Paris"}\n```', {"answer": "Paris"}, ["fence"]),
    ('```\n{"answer": "Paris"}\n```', {"answer": "Paris"}, ["fence"]),
    ('```JSON\n{"answer": "Paris"}', {"answer": "Paris"}, ["fence"]),  # unclosed fence
    ('Sure! Here is the JSON you asked for:\n{"answer": "Paris"}\nLet me know if you need more.',
     {"answer": "Paris"}, ["prose", "trailing text"]),
    ('{"answer": "Paris",}', {"answer": "Paris"}, ["commas"]),
    ('{"answer": "Paris", "tags": ["a", "b",],}', {"answer": "Paris", "tags": ["a", "b"]}, ["commas"]),
    ("{'answer': 'Paris'}", {"answer": "Paris"}, ["quotes"]),
    ("{answer: 'Paris'}", {"answer": "Paris"}, ["unquoted keys", "quotes"]),
    ('{answer: Paris}', {"answer": "Paris"}, ["unquoted keys", "unquoted values"]),
    ("{'answer': 'Paris', 'sure': True, 'source': None}", {"answer": "Paris", "sure": True, "source": None},
     ["python literals"]),
    ('{"answer": “Paris”}', {"answer": "Paris"}, ["quotes"]),
    ("{“answer”: “Paris”}", {"answer": "Paris"}, ["quotes"]),
    ('{"answer": "Paris"', {"answer": "Paris"}, ["truncated"]),
    ('{"answer": "Paris", "confid', {"answer": "Paris"}, ["truncated"]),
    ('{"answer": "Par', {"answer": "Par"}, ["truncated"]),
    ('{"answer": "Paris"}{"answer": "Paris"}', {"answer": "Paris"}, ["trailing text"]),
    ('{"answer": "Paris"}\n{"answer": "Lyon"}', {"answer": "Paris"}, []),
    ('{"answer": "Paris", "answer": "Lyon"}', {"answer": "Paris"}, []),  # the first of repeated keys
    ('{"answer": "The "Bard" of Avon"}', {"answer": 'The "Bard" of Avon'}, ["unescaped quotes"]),
    ("{'answer': 'Don't know'}", {"answer": "Don't know"}, ["quotes"]),
    ('{\n  // the answer\n  "answer": "Paris" /* sure */\n}', {"answer": "Paris"}, ["comments"]),
    ('{"answer": "Paris" "confidence": 0.9}', {"answer": "Paris", "confidence": 0.9}, ["commas"]),
    ('{"result": {"answer": "Paris"}}', {"answer": "Paris"}, []),  # reaches the nested object
    ('[{"answer": "Paris"}]', {"answer": "Paris"}, []),
    ('Format: {"answer": "..."}\nMine: {"answer": "Paris"}', {"answer": "Paris"}, ["prose"]),
    ('{"Answer": "Paris"}', {"answer": "Paris"}, []),  # key case
    ('{"answer": 1945}', {"answer": "1945"}, []),  # coerced to the schema's string
    ('{"answer": "caf\\u00e9 \\"noir\\""}', {"answer": 'café "noir"'}, []),
    ('\ufeff{"answer": "Paris"}', {"answer": "Paris"}, []),
]


@pytest.mark.parametrize("text,value,repairs", PROVIDER_HABITS)
def test_provider_habits(text, value, repairs):
    parsed = extract_json_object(text, ANSWER)
    assert parsed.value == value
    assert set(repairs) <= set(parsed.repairs), parsed.repairs


def test_clean_json_needs_no_repair():
    parsed = extract_json_object('{"answer": "Paris", "n": [1, 2.5, true, null]}', ANSWER)
    assert parsed.repairs == [] and not parsed.truncated
    assert parsed.value == {"answer": "Paris", "n": [1, 2.5, True, None]}


def test_truncated_nested_structures_are_closed():
    parsed = extract_json_object('{"a": [1, 2, {"b": "x", "c": tru')
    assert parsed.value == {"a": [1, 2, {"b": "x", "c": True}]}
    assert parsed.truncated


@pytest.mark.parametrize(
    "text,answer",
    [
        ("Paris", "Paris"),
        ('"Paris"', "Paris"),
        ("Answer: Paris", "Paris"),
        ("The answer is: Paris", "Paris"),
        ("```\nParis\n```", "Paris"),
    ],
)
def test_bare_answer_when_the_schema_has_one_string_field(text, answer):
    parsed = extract_json_object(text, ANSWER)
    assert parsed.value == {"answer": answer}
    assert {"bare", "labelled lines"} & set(parsed.repairs)


def test_bare_answer_can_be_refused():
    assert parse_json_object("Paris", ANSWER, allow_bare=False) is None
    assert parse_json_object("Paris") is None  # no schema: no idea what to call it


def test_bare_answer_needs_a_single_string_field():
    two = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "required": ["a", "b"]}
    assert parse_json_object("Paris", two) is None


def test_essays_and_broken_objects_are_not_bare_answers():
    assert parse_json_object("word " * 100, ANSWER) is None
    assert parse_json_object('{"city": "Paris"}', ANSWER) is None


def test_labelled_lines():
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "reason": {"type": "string"}},
        "required": ["answer", "reason"],
    }
    text = "**Answer:** Paris\n**Reason:** It is the capital.\nAnswer: Lyon"
    assert parse_json_object(text, schema) == {"answer": "Paris", "reason": "It is the capital."}
    assert parse_json_object("Answer:\nParis\n", ANSWER) == {"answer": "Paris"}


def test_no_object_at_all():
    with pytest.raises(JSONExtractionError) as info:
        extract_json_object("I cannot answer that.", None)
    assert "no JSON object" in str(info.value)
    with pytest.raises(JSONExtractionError):
        extract_json_object("   ", ANSWER)


def test_error_says_what_did_not_fit():
    with pytest.raises(JSONExtractionError) as info:
        extract_json_object('{"answer": ["a", "b"]}', ANSWER)
    assert "$.answer should be string" in info.value.reason


def test_without_schema_any_object_will_do():
    assert parse_json_object('x {"b": 1} y') == {"b": 1}
    assert parse_json_object("[1, 2]") is None  # an array is not an object


def test_schema_subset():
    schema = {
        "type": "object",
        "properties": {
            "answer": {"type": "string"},
            "confidence": {"type": "number"},
            "sure": {"type": "boolean"},
            "claims": {"type": "array", "items": {"type": "string"}},
            "kind": {"type": "string", "enum": ["fact", "opinion"]},
            "n": {"type": ["integer", "null"]},
        },
        "required": ["answer", "confidence"],
    }
    good = {"answer": "x", "confidence": 0.5, "sure": True, "claims": ["a"], "kind": "fact", "n": None}
    assert schema_errors(good, schema) == []
    assert schema_errors({"answer": "x"}, schema) == ["$ is missing 'confidence'"]
    assert schema_errors({"answer": "x", "confidence": True}, schema) == ["$.confidence should be number, got bool"]
    assert schema_errors({"answer": "x", "confidence": 1, "claims": ["a", 2]}, schema) == [
        "$.claims[1] should be string, got int"
    ]
    assert schema_errors({"answer": "x", "confidence": 1, "kind": "guess"}, schema)
    assert schema_errors({"answer": "x", "confidence": 1, "n": 2.0}, schema) == []
    assert schema_errors([], schema) == ["$ should be object, got list"]


def test_coercion_follows_the_schema():
    schema = {
        "type": "object",
        "properties": {"confidence": {"type": "number"}, "sure": {"type": "boolean"}, "claims": {"type": "array"}},
        "required": ["confidence"],
    }
    assert parse_json_object('{"confidence": "0.8", "sure": "yes", "claims": "one"}', schema) == {
        "confidence": 0.8,
        "sure": True,
        "claims": ["one"],
    }
    assert parse_json_object('{"confidence": "high"}', schema) is None


def test_long_prose_is_bounded():
    # Only the first and the last few braces are tried: the answer at the end is still found.
    assert parse_json_object("{ " * 5000 + '{"answer": "Paris"}', ANSWER) == {"answer": "Paris"}
    assert parse_json_object("{ " * 50 + '{"answer": "Paris"}' + " { x" * 50, ANSWER) is None


def test_deep_nesting_is_refused_not_a_crash():
    assert parse_json_object("[" * 5000) is None
    # A text cut off 5000 levels deep: the outer starts are refused; a late start reads a small,
    # truncated object.
    parsed = extract_json_object('{"a":' * 5000)
    assert parsed.truncated
