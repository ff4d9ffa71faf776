"""A tolerant parser for the JSON objects models are asked to produce.

Models asked for `{"answer": "..."}` return, besides clean JSON: code fences, prose around the
object, trailing commas, single or typographic quotes, unquoted keys, Python literals
(`True`, `None`), objects cut off at `max_tokens`, the same object twice, or only the bare
answer. `extract_json_object` tries strict JSON first and then a forgiving recursive-descent
reader over each candidate object in the text; a schema (a small subset of JSON Schema) picks the
first candidate that fits. Tests use real malformed outputs (tests/data/malformed_json/).

No dependency: the schema subset is checked here (`schema_errors`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "JSONExtractionError",
    "ParsedJSON",
    "extract_json_object",
    "parse_json_object",
    "schema_errors",
]

# At most this many `{` positions are tried as object starts (the first two thirds and the last
# third): bounds the work on long prose.
MAX_CANDIDATES = 24
# Nesting deeper than this is not an answer object; the limit keeps the recursive reader safe.
MAX_DEPTH = 64
# A bare answer longer than this is an essay (or a model repeating itself), not an answer.
MAX_BARE_CHARS = 300

_FENCE = re.compile(r"```[ \t]*(?:json5?|JSON|javascript|js|python|py)?[ \t]*\n?(.*?)(?:```|\Z)", re.S)
_SMART_OPEN = {"“": "”", "„": "“", "‘": "’", "«": "»"}
_QUOTES = {'"': '"', "'": "'", "`": "`", **_SMART_OPEN, "”": "”", "’": "’"}
_LITERALS: dict[str, Any] = {
    "true": True, "True": True, "TRUE": True,
    "false": False, "False": False, "FALSE": False,
    "null": None, "None": None, "NULL": None, "nil": None, "undefined": None,
}
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_LABEL = re.compile(
    r"^(?:the\s+)?(?:final\s+)?answer(?:\s+(?:to|for)\s+(?:this|the|your)\s+question)?"
    r"(?:\s+is\s*[:,]?|\s*[:=])\s*",
    re.I,
)
_IDENT = re.compile(r"[A-Za-z_$][\w$-]*")
_KEY_AHEAD = re.compile(r"[A-Za-z_$][\w$-]*\s*[:=]")  # an unquoted key and its colon
_INT_KEY = re.compile(r"\d+")
_VALUE_END = re.compile(r"[,}\]\n]")
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
        found = accept(json.loads(stripped, object_pairs_hook=_first_wins), [])
        if found:
            return found
    except (json.JSONDecodeError, RecursionError):
        pass

    # 2. Fenced blocks, then the whole text: each `{` in them is a candidate start.
    sources: list[tuple[str, list[str]]] = [(m.group(1), ["fence"]) for m in _FENCE.finditer(stripped)]
    sources.append((stripped, []))
    seen: set[str] = set()
    for source, base in sources:
        for start in _object_starts(source):
            try:
                value, end, repairs = _Reader(source, start).read()
            except _Unreadable as exc:
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


# --- the tolerant reader -----------------------------------------------------------------


class _Unreadable(ValueError):
    pass


class _Reader:
    """Recursive descent over JSON-ish text. Accepts what models write, records what it fixed.

    Unlike json.loads it reads single, typographic and backtick quotes, unquoted keys and
    values, Python literals, comments, trailing or missing commas, and an end of text inside
    a string, array or object (closing whatever is open: the `max_tokens` cut-off).
    """

    def __init__(self, text: str, pos: int = 0):
        self.text = text
        self.pos = pos
        self.repairs: list[str] = []
        self.depth = 0

    def read(self) -> tuple[Any, int, list[str]]:
        value = self.value()
        return value, self.pos, self.repairs

    def note(self, repair: str) -> None:
        if repair not in self.repairs:
            self.repairs.append(repair)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip(self) -> None:
        """Skip whitespace and // or /* */ comments."""
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch.isspace():
                self.pos += 1
            elif text.startswith("//", self.pos) or (ch == "#" and self.depth):
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
                self.note("comments")
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                self.pos = len(text) if end < 0 else end + 2
                self.note("comments")
            else:
                break

    def value(self) -> Any:
        self.skip()
        ch = self.peek()
        if not ch:
            raise _Unreadable("end of text where a value was expected")
        if ch in "{[" and self.depth >= MAX_DEPTH:
            raise _Unreadable("nested too deeply")
        if ch == "{":
            return self.obj()
        if ch == "[":
            return self.array()
        if ch in _QUOTES:
            return self.string()
        match = _NUMBER.match(self.text, self.pos)
        if match and not _IDENT.match(self.text, match.end()):
            self.pos = match.end()
            raw = match.group()
            number = float(raw)
            return int(number) if re.fullmatch(r"[-+]?\d+", raw) else number
        return self.bare_word()

    def obj(self) -> dict[str, Any]:
        self.pos += 1  # past "{"
        self.depth += 1
        result: dict[str, Any] = {}
        try:
            while True:
                self.skip()
                ch = self.peek()
                if not ch:
                    self.note("truncated")
                    break
                if ch == "}":
                    if self._after_comma():
                        self.note("commas")  # a trailing comma
                    self.pos += 1
                    break
                if ch == ",":  # a doubled comma
                    self.note("commas")
                    self.pos += 1
                    continue
                try:
                    member = self.member()
                except _Unreadable:
                    if not result:
                        raise
                    member = None
                if member is None:
                    break
                key, value = member
                # Keep the first of duplicated keys: later copies are usually a model repeating itself.
                result.setdefault(key, value)
                if not self._member_follows():
                    self.note("garbage")  # keep what was read: the schema decides if it is enough
                    break
                self.skip()
                ch = self.peek()
                if ch == ",":
                    self.pos += 1
                elif ch and ch != "}":
                    self.note("commas")  # a missing comma between members
        finally:
            self.depth -= 1
        return result

    def member(self) -> tuple[str, Any] | None:
        """One `key: value`; None when the text ends before the value (the key is dropped).
        Raises _Unreadable on garbage; `obj` keeps the members read before it."""
        start = self.pos
        try:
            key = self.key()
            self.skip()
            if self.peek() in (":", "="):
                self.pos += 1
            elif not self.peek():
                self.note("truncated")
                return None
            else:
                raise _Unreadable(f"expected ':' after key {key!r}")
            self.skip()
            if not self.peek():
                self.note("truncated")
                return None
            return key, self.value()
        except _Unreadable:
            self.pos = start
            self.note("garbage")
            raise

    def _after_comma(self) -> bool:
        i = self.pos - 1
        while i >= 0 and self.text[i].isspace():
            i -= 1
        return i >= 0 and self.text[i] == ","

    def _member_follows(self) -> bool:
        """After a member: is what follows readable (`,` `}` end, or another key)? If not, the
        object is garbled from here on (prose spilling into it)."""
        self.skip()
        ch = self.peek()
        if not ch or ch in ",}":
            return True
        if ch in _QUOTES:
            return True
        return bool(_KEY_AHEAD.match(self.text, self.pos))

    def key(self) -> str:
        ch = self.peek()
        if ch in _QUOTES:
            return str(self.string(key=True))
        match = _IDENT.match(self.text, self.pos) or _INT_KEY.match(self.text, self.pos)
        if not match:
            raise _Unreadable(f"unexpected {ch!r} where a key was expected")
        self.note("unquoted keys")
        self.pos = match.end()
        return match.group()

    def array(self) -> list[Any]:
        self.pos += 1  # past "["
        self.depth += 1
        result: list[Any] = []
        try:
            self._items(result)
        finally:
            self.depth -= 1
        return result

    def _items(self, result: list[Any]) -> None:
        while True:
            self.skip()
            ch = self.peek()
            if not ch:
                self.note("truncated")
                break
            if ch == "]":
                if self._after_comma():
                    self.note("commas")  # a trailing comma
                self.pos += 1
                break
            if ch == ",":
                self.note("commas")
                self.pos += 1
                continue
            if ch == "}":  # a mismatched closer: treat as the end of the list
                self.note("brackets")
                break
            result.append(self.value())
            self.skip()
            ch = self.peek()
            if ch == ",":
                self.pos += 1
            elif ch and ch not in "]}":
                self.note("commas")

    def string(self, key: bool = False) -> str:
        text = self.text
        opener = text[self.pos]
        closer = _QUOTES[opener]
        closers = {closer, opener}
        if opener != '"':
            self.note("quotes")
        self.pos += 1
        out: list[str] = []
        while self.pos < len(text):
            ch = text[self.pos]
            if ch == "\\" and self.pos + 1 < len(text):
                out.append(self._escape())
                continue
            if ch in closers:
                if self._closes(key):
                    self.pos += 1
                    return "".join(out)
                self.note("unescaped quotes")
            if ch == "\n" and opener == '"' and not key:
                self.note("newlines in strings")
            out.append(ch)
            self.pos += 1
        self.note("truncated")
        return "".join(out)

    def _closes(self, key: bool) -> bool:
        """A quote ends the string only if what follows could follow a string.

        That keeps `"the "Bard" of Avon"` and `'Don't know'` in one piece, which strict JSON
        would reject anyway (this reader only runs after json.loads failed)."""
        rest = self.text[self.pos + 1 : self.pos + 40].lstrip(" \t\r")
        if not rest:
            return True
        if key:
            return rest[0] in ":=" or rest[0] == "\n"
        if rest[0] == ",":
            # `"The answer is "15", but check"`: after a real end comes another member or element.
            after = rest[1:].lstrip(" \t\r")
            return not after or after[0] in _QUOTES or after[0] in "{[\n-]}" or after[0].isdigit() or bool(
                _KEY_AHEAD.match(after)
            )
        if rest[0] in "}]:\n#/":
            return True
        # Two objects or strings side by side ({"a": "x"}{"a": "x"}, or a missing comma before a key).
        return rest[0] in _QUOTES and self.depth > 0 and bool(re.match(r'.[^"\'\n]{0,40}["\'”’]?\s*:', rest))

    def _escape(self) -> str:
        text = self.text
        code = text[self.pos + 1]
        simple = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "/": "/", "\\": "\\", '"': '"', "'": "'"}
        if code == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[self.pos + 2 : self.pos + 6]):
            self.pos += 6
            return chr(int(text[self.pos - 4 : self.pos], 16))
        self.pos += 2
        return simple.get(code, code)

    def bare_word(self) -> Any:
        match = _IDENT.match(self.text, self.pos)
        if match and match.group() in _LITERALS:
            word = match.group()
            if word not in ("true", "false", "null"):
                self.note("python literals")
            self.pos = match.end()
            return _LITERALS[word]
        if match and match.group() in ("NaN", "Infinity"):
            self.pos = match.end()
            return float(match.group().lower().replace("infinity", "inf"))
        # An unquoted value ({answer: Paris}): the text up to the next delimiter.
        end = _VALUE_END.search(self.text, self.pos)
        stop = end.start() if end else len(self.text)
        word = self.text[self.pos : stop].strip()
        if not word or self.depth == 0:
            raise _Unreadable(f"unexpected {self.peek()!r} where a value was expected")
        self.pos = stop
        if not end:
            self.note("truncated")
            for literal in ("true", "false", "null"):
                if literal.startswith(word):  # cut off inside a literal: `{"ok": tr`
                    return _LITERALS[literal]
        self.note("unquoted values")
        return word


def _first_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Of duplicated keys keep the first, as the tolerant reader does (json.loads keeps the last)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        out.setdefault(key, value)
    return out


def _object_starts(text: str) -> list[int]:
    """Positions of `{` worth trying, in order: the first ones, then the last few (an answer
    object often follows code or prose full of braces). Starts inside an object are tried
    too, after it, so a schema can reach an object nested in a wrapper."""
    starts = [m.start() for m in re.finditer(r"\{", text)]
    if len(starts) <= MAX_CANDIDATES:
        return starts
    head = MAX_CANDIDATES * 2 // 3
    return starts[:head] + starts[head - MAX_CANDIDATES :]


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
        elif wanted in ("number", "integer") and isinstance(item, str) and _NUMBER.fullmatch(item.strip()):
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
    if len(text) >= 2 and text[0] in _QUOTES and text[-1] == _QUOTES[text[0]]:
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
