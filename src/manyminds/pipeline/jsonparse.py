"""A tolerant parser for the JSON objects models are asked to produce.

Models asked for `{"answer": "..."}` return, besides clean JSON: code fences, prose around the
object, trailing commas, single or typographic quotes, unquoted keys, Python literals
(`True`, `None`), objects cut off at `max_tokens`, the same object twice, or only the bare
answer. `extract_json_object` tries strict JSON first and then a forgiving recursive-descent
reader over each candidate object in the text; a schema (a small subset of JSON Schema) picks the
first candidate that fits. Tests use real malformed outputs (tests/data/malformed_json/).

No dependency: the schema subset is checked here (`schema_errors`); the tolerant reader itself
is `jsonrepair.TolerantReader`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .jsonrepair import NUMBER, QUOTES, TolerantReader, Unreadable, first_wins, object_starts

__all__ = [
    "JSONExtractionError",
    "ParsedJSON",
    "extract_json_object",
    "parse_json_object",
    "schema_errors",
]

# A bare answer longer than this is an essay (or a model repeating itself), not an answer.
MAX_BARE_CHARS = 300

_FENCE = re.compile(r"```[ \t]*(?:json5?|JSON|javascript|js|python|py)?[ \t]*\n?(.*?)(?:```|\Z)", re.S)
_LABEL = re.compile(
    r"^(?:the\s+)?(?:final\s+)?answer(?:\s+(?:to|for)\s+(?:this|the|your)\s+question)?"
    r"(?:\s+is\s*[:,]?|\s*[:=])\s*",
    re.I,
)
# A value that only stands for "put the answer here": an echoed format instruction.
_PLACEHOLDER = re.compile(
    r"^\s*(?:\.{2,}|…|<[^<>]*>|\[[^\[\]]*\]|string|text|value|answer|your answer|answer here|"
    r"your answer here|xxx|todo|tbd|placeholder)\s*$",
    re.I,
)


class JSONExtractionError(ValueError):
    """No object that fits the schema could be read from a model's text."""

    def __init__(self, reason: str, text: str):
        self.reason = reason
        self.text = text
        snippet = text if len(text) <= 120 else text[:117] + "..."
        super().__init__(f"{reason}: {snippet!r}")


@dataclass
class ParsedJSON:
    """An object read from model text, and the repairs it needed (empty for clean JSON)."""

    value: dict[str, Any]
    repairs: list[str] = field(default_factory=list)

    @property
    def truncated(self) -> bool:
        return "truncated" in self.repairs


def parse_json_object(
    text: str, schema: dict[str, Any] | None = None, *, allow_bare: bool = True
) -> dict[str, Any] | None:
    """The object in `text` that fits `schema`, or None. See `extract_json_object`."""
    try:
        return extract_json_object(text, schema, allow_bare=allow_bare).value
    except JSONExtractionError:
        return None


def extract_json_object(
    text: str, schema: dict[str, Any] | None = None, *, allow_bare: bool = True
) -> ParsedJSON:
    """Read the first JSON object in `text` that fits `schema` (any object when no schema).

    Order: strict JSON; the contents of code fences; each `{` in the text read tolerantly
    (outer objects before the ones nested in them, earlier before later); `Answer: …` lines
    for the properties the schema names; and, when `allow_bare` and the schema has exactly
    one required string property, the bare text as that property. Values are coerced where the intent is plain (a number where a string is
    wanted becomes its text). An echoed placeholder (`{"answer": "..."}`) inside prose is
    returned only when nothing else fits, marked with the repair "placeholder". Raises
    `JSONExtractionError` when nothing fits.
    """
    if not isinstance(text, str):
        raise JSONExtractionError("not text", repr(text))
    stripped = text.strip().lstrip("\ufeff")
    if not stripped:
        raise JSONExtractionError("empty text", text)
    problems: list[str] = []
    placeholder: list[ParsedJSON] = []

    def accept(value: Any, repairs: list[str]) -> ParsedJSON | None:
        if not isinstance(value, dict):
            return None
        value = _coerce(value, schema) if schema else value
        errors = schema_errors(value, schema) if schema else []
        if errors:
            problems.extend(errors)
            return None
        if repairs and _is_placeholder(value):
            # An echoed format instruction ({"answer": "..."}) in prose: keep looking for the
            # real object, and fall back to this one only if there is none.
            placeholder.append(ParsedJSON(value, repairs + ["placeholder"]))
            return None
        return ParsedJSON(value, repairs)

    # 1. Clean JSON: the common case, and the only one that needs no judgement.
    try:
        found = accept(json.loads(stripped, object_pairs_hook=first_wins), [])
        if found:
            return found
    except (json.JSONDecodeError, RecursionError):
        pass

    # 2. Fenced blocks, then the whole text: each `{` in them is a candidate start.
    sources: list[tuple[str, list[str]]] = [(m.group(1), ["fence"]) for m in _FENCE.finditer(stripped)]
    sources.append((stripped, []))
    seen: set[str] = set()
    for source, base in sources:
        for start in object_starts(source):
            try:
                value, end, repairs = TolerantReader(source, start).read()
            except Unreadable as exc:
                problems.append(str(exc))
                continue
            key = repr(value)
            if key in seen:
                continue
            seen.add(key)
            repairs = base + repairs
            if start > 0 and source[:start].strip():
                repairs.append("prose")
            if source[end:].strip().strip("`").strip():
                repairs.append("trailing text")
            found = accept(value, _dedupe(repairs))
            if found:
                return found

    # 3. "Answer: Paris\nReason: ..." lines, for the keys the schema names.
    if schema:
        labelled = _labelled_lines(stripped, schema)
        found = accept(labelled, ["labelled lines"]) if labelled else None
        if found:
            return found
    if placeholder:
        return placeholder[0]
    # 4. Only the answer itself, when the schema says what it must be called.
    bare_key = _single_string_field(schema) if schema else None
    if allow_bare and bare_key:
        bare = _bare_answer(stripped)
        if bare:
            return ParsedJSON({bare_key: bare}, ["bare"])
    if not problems:
        raise JSONExtractionError("no JSON object found", text)
    raise JSONExtractionError(f"no JSON object fits the schema ({'; '.join(dict.fromkeys(problems))})", text)


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


# --- the schema subset -------------------------------------------------------------------

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
}


def schema_errors(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """What is wrong with `value` under a JSON-schema subset: `type` (one or a list of
    object/array/string/number/integer/boolean/null), `properties`, `required`, `items`,
    `enum`. Other keywords are ignored, not enforced."""
    errors: list[str] = []
    wanted = schema.get("type")
    if wanted is not None:
        names = wanted if isinstance(wanted, list) else [wanted]
        if not any(_is_type(value, name) for name in names):
            errors.append(f"{path} should be {'/'.join(names)}, got {type(value).__name__}")
            return errors
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path} should be one of {schema['enum']!r}")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path} is missing {name!r}")
        for name, sub in schema.get("properties", {}).items():
            if name in value and isinstance(sub, dict):
                errors.extend(schema_errors(value[name], sub, f"{path}.{name}"))
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors.extend(schema_errors(item, schema["items"], f"{path}[{i}]"))
    return errors


def _is_type(value: Any, name: str) -> bool:
    if name in ("number", "integer") and isinstance(value, bool):
        return False  # bool is an int subclass in Python, not a number in JSON
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(name, (object,)))


def _coerce(value: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Fix the plain mismatches models make: `{"Answer": 1945}` for a string `answer`, a
    number or boolean written as a string. Keys are matched case-insensitively."""
    props = schema.get("properties") or {}
    if not props:
        return value
    out = dict(value)
    lower = {k.lower(): k for k in out}
    for name, sub in props.items():
        if name not in out and name.lower() in lower:
            out[name] = out.pop(lower[name.lower()])
        if name not in out or not isinstance(sub, dict):
            continue
        wanted, item = sub.get("type"), out[name]
        if wanted == "string" and isinstance(item, (int, float)) and not isinstance(item, bool):
            out[name] = str(item)
        elif wanted == "string" and isinstance(item, list) and len(item) == 1 and isinstance(item[0], str):
            out[name] = item[0]
        elif wanted in ("number", "integer") and isinstance(item, str) and NUMBER.fullmatch(item.strip()):
            number = float(item)
            out[name] = int(number) if wanted == "integer" or number.is_integer() and "." not in item else number
        elif wanted == "boolean" and isinstance(item, str) and item.strip().lower() in ("true", "false", "yes", "no"):
            out[name] = item.strip().lower() in ("true", "yes")
        elif wanted == "array" and isinstance(item, str):
            out[name] = [item]
    return out


def _is_placeholder(value: dict[str, Any]) -> bool:
    strings = [v for v in value.values() if isinstance(v, str)]
    return bool(strings) and all(_PLACEHOLDER.match(v) or not v.strip() for v in strings)


def _single_string_field(schema: dict[str, Any]) -> str | None:
    required = schema.get("required") or []
    props = schema.get("properties") or {}
    if len(required) == 1 and (props.get(required[0]) or {}).get("type") == "string":
        return required[0]
    return None


def _labelled_lines(text: str, schema: dict[str, Any]) -> dict[str, str] | None:
    """`Answer: Paris` / `Reason: ...` lines (or `**Answer:**` on one line and the value on the
    next) for the properties the schema names; the first occurrence of each label wins, since
    small models go on to repeat the prompt. None unless every required property is found."""
    props = list((schema.get("properties") or {}).keys())
    out: dict[str, str] = {}
    lines = text.splitlines()
    for name in props:
        label = re.compile(rf"^\s*[*_#>-]*\s*{re.escape(name)}\s*[*_]*\s*[:=]\s*[*_]*\s*(.*)$", re.I)
        for i, line in enumerate(lines):
            match = label.match(line)
            if not match:
                continue
            value = match.group(1).strip()
            if not value:
                following = next((ln.strip() for ln in lines[i + 1 :] if ln.strip()), "")
                value = "" if re.match(r"^[\w\s]{1,30}:", following) else following
            if value and value[0] not in "{[":  # `answer: {` opens an object: not a value
                out[name] = _unquote(value.strip("*_ "))
                break
    required = schema.get("required") or []
    return out if out and all(name in out for name in required) else None


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] in QUOTES and text[-1] == QUOTES[text[0]]:
        return text[1:-1].strip()
    return text


def _bare_answer(text: str) -> str:
    """The text as a bare answer: fences, a label (`answer:`) and wrapping quotes removed."""
    fenced = _FENCE.search(text)
    if fenced and fenced.group(1).strip():
        text = fenced.group(1)
    text = text.strip()
    text = _unquote(_LABEL.sub("", text).strip())
    if "{" in text or "[" in text[:1] or len(text) > MAX_BARE_CHARS:
        return ""  # a broken object, or an essay, is not an answer
    return text
