"""The forgiving half of `jsonparse`: a recursive-descent reader for the JSON-ish text models write.

`jsonparse.extract_json_object` tries `json.loads` first; only when that fails does it run
`TolerantReader` from each candidate `{` (`object_starts`). The reader accepts single,
typographic and backtick quotes, unquoted keys and values, Python literals, comments, trailing
or missing commas and text cut off at `max_tokens`, and records each repair by name ("quotes",
"truncated", …) so a caller can tell clean JSON from a guess.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MAX_CANDIDATES", "MAX_DEPTH", "NUMBER", "QUOTES", "TolerantReader", "Unreadable", "first_wins",
           "object_starts"]  # fmt: skip

# At most this many `{` positions are tried as object starts (the first two thirds and the last
# third): bounds the work on long prose.
MAX_CANDIDATES = 24
# Nesting deeper than this is not an answer object; the limit keeps the recursive reader safe.
MAX_DEPTH = 64

_SMART_OPEN = {"“": "”", "„": "“", "‘": "’", "«": "»"}
QUOTES = {'"': '"', "'": "'", "`": "`", **_SMART_OPEN, "”": "”", "’": "’"}
_LITERALS: dict[str, Any] = {
    "true": True, "True": True, "TRUE": True,
    "false": False, "False": False, "FALSE": False,
    "null": None, "None": None, "NULL": None, "nil": None, "undefined": None,
}
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_IDENT = re.compile(r"[A-Za-z_$][\w$-]*")
_KEY_AHEAD = re.compile(r"[A-Za-z_$][\w$-]*\s*[:=]")  # an unquoted key and its colon
_INT_KEY = re.compile(r"\d+")
_VALUE_END = re.compile(r"[,}\]\n]")


class Unreadable(ValueError):
    pass


class TolerantReader:
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
            raise Unreadable("end of text where a value was expected")
        if ch in "{[" and self.depth >= MAX_DEPTH:
            raise Unreadable("nested too deeply")
        if ch == "{":
            return self.obj()
        if ch == "[":
            return self.array()
        if ch in QUOTES:
            return self.string()
        match = NUMBER.match(self.text, self.pos)
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
                except Unreadable:
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
        Raises Unreadable on garbage; `obj` keeps the members read before it."""
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
                raise Unreadable(f"expected ':' after key {key!r}")
            self.skip()
            if not self.peek():
                self.note("truncated")
                return None
            return key, self.value()
        except Unreadable:
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
        if ch in QUOTES:
            return True
        return bool(_KEY_AHEAD.match(self.text, self.pos))

    def key(self) -> str:
        ch = self.peek()
        if ch in QUOTES:
            return str(self.string(key=True))
        match = _IDENT.match(self.text, self.pos) or _INT_KEY.match(self.text, self.pos)
        if not match:
            raise Unreadable(f"unexpected {ch!r} where a key was expected")
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
        closer = QUOTES[opener]
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
            return not after or after[0] in QUOTES or after[0] in "{[\n-]}" or after[0].isdigit() or bool(
                _KEY_AHEAD.match(after)
            )
        if rest[0] in "}]:\n#/":
            return True
        # Two objects or strings side by side ({"a": "x"}{"a": "x"}, or a missing comma before a key).
        return rest[0] in QUOTES and self.depth > 0 and bool(re.match(r'.[^"\'\n]{0,40}["\'”’]?\s*:', rest))

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
            raise Unreadable(f"unexpected {self.peek()!r} where a value was expected")
        self.pos = stop
        if not end:
            self.note("truncated")
            for literal in ("true", "false", "null"):
                if literal.startswith(word):  # cut off inside a literal: `{"ok": tr`
                    return _LITERALS[literal]
        self.note("unquoted values")
        return word


def first_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Of duplicated keys keep the first, as the tolerant reader does (json.loads keeps the last)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        out.setdefault(key, value)
    return out


def object_starts(text: str) -> list[int]:
    """Positions of `{` worth trying, in order: the first ones, then the last few (an answer
    object often follows code or prose full of braces). Starts inside an object are tried
    too, after it, so a schema can reach an object nested in a wrapper."""
    starts = [m.start() for m in re.finditer(r"\{", text)]
    if len(starts) <= MAX_CANDIDATES:
        return starts
    head = MAX_CANDIDATES * 2 // 3
    return starts[:head] + starts[head - MAX_CANDIDATES :]
