"""Reading a batch file: one JSON object per line, each checked on its own.

    {"question": "Who wrote Hamlet?", "id": "q1", "council": "trio"}
    {"text": "The Eiffel Tower is in Rome.", "id": "v1"}              a text to verify

Keys: `question` or `text` (exactly one; with `--verify` every line needs `text`), and optional
`id` (default `line-N`; unique in the file: a resumed batch skips lines by it), `council`,
`models` (a list of model names), `strategy`, `collection` (documents to check against). Blank
lines are skipped. A line that is not such an object becomes a `LineError` naming its number and
what is wrong; the other lines still run.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InputError

MAX_FILE_BYTES = 200 * 1024 * 1024


class BatchLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line: int = Field(description="1-based line number in the file.")
    key: str = Field(description="The line's id, or line-N.")
    question: str | None = None
    text: str | None = None
    council: str | None = None
    models: list[str] | None = None
    strategy: str | None = None
    collection: str | None = None

    @property
    def verify(self) -> bool:
        return self.text is not None


class LineError(BaseModel):
    line: int
    key: str
    message: str

    def to_error(self) -> dict[str, str]:
        return {"type": "BadLine", "message": f"line {self.line}: {self.message}"}


_FIELDS = ("question", "text", "id", "council", "models", "strategy", "collection")


def parse_line(number: int, raw: str, *, verify: bool) -> BatchLine | LineError:
    key = f"line-{number}"
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        return LineError(line=number, key=key, message=f"not valid JSON ({exc.msg} at column {exc.colno}).")
    if not isinstance(doc, dict):
        return LineError(line=number, key=key, message=f"expected a JSON object, got {type(doc).__name__}.")
    if isinstance(doc.get("id"), (str, int)) and str(doc["id"]).strip():
        key = str(doc["id"]).strip()
    elif "id" in doc:
        return LineError(line=number, key=key, message="'id' must be a non-empty string or a number.")
    unknown = sorted(set(doc) - set(_FIELDS))
    if unknown:
        return LineError(line=number, key=key, message=f"unknown key(s) {', '.join(map(repr, unknown))}; "
                                                       f"known keys: {', '.join(_FIELDS)}.")  # fmt: skip
    has_q, has_t = "question" in doc, "text" in doc
    if verify and not has_t:
        return LineError(line=number, key=key, message="--verify needs a 'text' key on every line.")
    if has_q == has_t:
        return LineError(line=number, key=key, message="needs exactly one of 'question' or 'text'.")
    try:
        return BatchLine(line=number, key=key, **{k: v for k, v in doc.items() if k != "id"})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return LineError(line=number, key=key, message=f"{where!r}: {first['msg']}.")


def read_lines(path: Path, *, verify: bool = False) -> list[BatchLine | LineError]:
    """Every non-blank line of `path`, parsed. A file that cannot be read at all (missing, not
    UTF-8, too big) is an `InputError`; a second line with an id already used is a `LineError`."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"Cannot read the batch file {str(path)!r}: {exc.strerror or exc}.") from None
    if size > MAX_FILE_BYTES:
        raise InputError(f"The batch file is {size:,} bytes; split it into files of at most {MAX_FILE_BYTES:,}.")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"The batch file is not valid UTF-8: byte 0x{data[exc.start]:02x} on line {line}.") from None
    out: list[BatchLine | LineError] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        parsed = parse_line(number, raw, verify=verify)
        if parsed.key in seen:
            parsed = LineError(line=number, key=f"line-{number}",
                               message=f"id {parsed.key!r} is already used on line {seen[parsed.key]}.")  # fmt: skip
        else:
            seen[parsed.key] = number
        out.append(parsed)
    if not out:
        raise InputError(f"The batch file {str(path)!r} has no lines.")
    return out
