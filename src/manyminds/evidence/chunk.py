"""Parsed documents → chunks of about 800–1,200 characters, each an exact span of the text.

Within one section (a page, a heading's section, or the whole file) the text is cut into units
— sentences, or lines where there is no sentence punctuation — that remember whether they start
a paragraph. Units are packed greedily: a chunk closes at a paragraph boundary once it holds
`TARGET_MIN` characters, and before any unit that would take it past `TARGET_MAX`. When a chunk
closes inside a paragraph, the next one starts again with its last sentence (up to `OVERLAP`
characters), so a fact cut in two by the boundary is still whole in one chunk. At paragraph
boundaries there is no overlap: a paragraph is a unit of meaning of its own.

Chunks never cross a section boundary, so each has one exact location: "page 3",
"§ Install > Linux (lines 40–52)", "lines 40–52". The chunk's text is
`document.text[start:end]` exactly; quoting it back is always faithful.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass

from .parse import ParsedDocument, Section

TARGET_MIN = 800
TARGET_MAX = 1200
OVERLAP = 200


@dataclass(frozen=True)
class Chunk:
    seq: int  # order within the document
    text: str
    start: int
    end: int
    location: str
    headings: tuple[str, ...] = ()
    page: int | None = None


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    para_start: bool


_PARAGRAPH = re.compile(r"\n[ \t]*\n")
# A sentence ends at . ! ? (or …) plus any closing quotes/brackets, followed by whitespace.
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*(?=\s)|\n")


def chunk_document(doc: ParsedDocument, *, target_min: int = TARGET_MIN, target_max: int = TARGET_MAX,
                   overlap: int = OVERLAP) -> list[Chunk]:
    text = doc.text
    line_starts = _line_starts(text) if doc.kind in ("text", "markdown") else None
    chunks: list[Chunk] = []
    for section in doc.sections:
        for start, end in _pack(_units(text, section, target_max), target_min, target_max, overlap):
            chunks.append(
                Chunk(
                    seq=len(chunks),
                    text=text[start:end],
                    start=start,
                    end=end,
                    location=_location(doc, section, start, end, line_starts),
                    headings=section.headings,
                    page=section.page,
                )
            )
    return chunks


# --- units ---------------------------------------------------------------------------------


def _units(text: str, section: Section, limit: int) -> list[_Unit]:
    units: list[_Unit] = []
    for p_start, p_end in _spans_between(text, section.start, section.end, _PARAGRAPH):
        first = True
        for s_start, s_end in _sentences(text, p_start, p_end):
            for h_start, h_end in _hard_split(text, s_start, s_end, limit):
                units.append(_Unit(h_start, h_end, first))
                first = False
    return units


def _spans_between(text: str, start: int, end: int, separator: re.Pattern[str]) -> Iterator[tuple[int, int]]:
    """Non-blank spans of text[start:end] between matches of `separator`, trimmed of whitespace."""
    pos = start
    for m in separator.finditer(text, start, end):
        yield from _trimmed(text, pos, m.start())
        pos = m.end()
    yield from _trimmed(text, pos, end)


def _trimmed(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        yield start, end


def _sentences(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    pos = start
    for m in _SENTENCE_END.finditer(text, start, end):
        cut = m.end()
        yield from _trimmed(text, pos, cut)
        pos = cut
    yield from _trimmed(text, pos, end)


def _hard_split(text: str, start: int, end: int, limit: int) -> Iterator[tuple[int, int]]:
    """A 'sentence' longer than a chunk (a table row, minified text) is cut at whitespace, or
    at the limit when there is none."""
    while end - start > limit:
        cut = text.rfind(" ", start + limit // 2, start + limit)
        if cut <= start:
            cut = start + limit
        yield from _trimmed(text, start, cut)
        start = cut
    yield from _trimmed(text, start, end)


# --- packing -------------------------------------------------------------------------------


def _pack(units: list[_Unit], target_min: int, target_max: int, overlap: int) -> Iterator[tuple[int, int]]:
    i = 0
    n = len(units)
    while i < n:
        first = i
        if units[-1].end - units[first].start <= target_max:
            # The rest of the section fits in one chunk: take it all rather than leave a stub.
            yield units[first].start, units[-1].end
            return
        j = i + 1
        while j < n:
            size = units[j - 1].end - units[first].start
            if units[j].para_start and size >= target_min:
                break
            if units[j].end - units[first].start > target_max:
                break
            j += 1
        yield units[first].start, units[j - 1].end
        if j >= n:
            return
        # Closed inside a paragraph: start the next chunk with the last sentence(s) again.
        back = j
        if not units[j].para_start:
            while back - 1 > first and units[j - 1].end - units[back - 1].start <= overlap:
                back -= 1
        i = min(j, back)


# --- locations -----------------------------------------------------------------------------


def _line_starts(text: str) -> list[int]:
    starts = [0]
    starts.extend(m.end() for m in re.finditer("\n", text))
    return starts


def _line_of(line_starts: list[int], offset: int) -> int:
    return bisect.bisect_right(line_starts, offset)  # 1-based


def _location(doc: ParsedDocument, section: Section, start: int, end: int, line_starts: list[int] | None) -> str:
    parts: list[str] = []
    if section.page is not None:
        parts.append(f"page {section.page}")
    if section.headings:
        parts.append("§ " + " > ".join(section.headings))
    if line_starts is not None:
        first, last = _line_of(line_starts, start), _line_of(line_starts, max(start, end - 1))
        lines = f"line {first}" if first == last else f"lines {first}–{last}"
        parts.append(f"({lines})" if parts else lines)
    if not parts:
        # HTML without headings: character offsets are the only exact location.
        parts.append(f"characters {start}–{end}")
    return " ".join(parts)
