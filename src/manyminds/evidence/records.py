"""What the document index hands back: retrieved passages, per-file results of adding, and the
errors a caller can show ("unknown collection", "empty collection").

Plain data; `to_dict` gives the JSON the CLI prints with `--json`. `Passage.score` is
mode-specific (see `index.py`); `Passage.similarity` is the cosine with the query when vectors
exist.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..errors import InputError

__all__ = ["AddProgress", "AddReport", "EmptyCollection", "FileResult", "Passage", "Status", "UnknownCollection"]

Status = Literal["added", "unchanged", "updated", "skipped"]


@dataclass
class Passage:
    """A retrieved span of evidence, with where it came from."""

    text: str
    document: str  # path or URL as added
    title: str | None
    location: str  # "page 3", "§ Heading > Sub (lines 40–52)", "lines 40–52", or a URL
    chunk_id: int | None
    score: float  # mode-specific; see the docstring of index.py
    collection: str | None
    start: int | None  # character offsets of `text` in the document's parsed text
    end: int | None
    page: int | None = None
    sha256: str | None = None  # of the document's bytes when it was indexed
    similarity: float | None = None  # cosine with the query, when vectors exist

    def find_quote(self, quote: str) -> tuple[int, int] | None:
        """Where `quote` occurs verbatim in this passage (whitespace may differ), as offsets in
        the document when they are known, else in `text`; None when it does not occur."""
        words = quote.split()
        if not words:
            return None
        match = re.search(r"\s+".join(re.escape(w) for w in words), self.text)
        if match is None:
            return None
        base = self.start or 0
        return base + match.start(), base + match.end()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class UnknownCollection(InputError):
    def __init__(self, name: str, known: list[str]):
        self.name, self.known = name, known
        listed = ", ".join(repr(k) for k in known) if known else "none yet"
        super().__init__(
            f"Unknown document collection {name!r}. Existing collections: {listed}. "
            f"Add documents with `manyminds docs add PATH --collection {name}`."
        )


class EmptyCollection(InputError):
    def __init__(self, name: str):
        self.name = name
        super().__init__(
            f"The document collection {name!r} has no documents. "
            f"Add some with `manyminds docs add PATH… --collection {name}` "
            "(text, Markdown, HTML or PDF files, or directories of them)."
        )


@dataclass
class FileResult:
    path: str
    status: Status
    chunks: int = 0
    reason: str | None = None  # why it was skipped
    kind: str | None = None
    title: str | None = None


@dataclass
class AddProgress:
    done: int  # files finished so far, this one included
    total: int
    result: FileResult


@dataclass
class AddReport:
    collection: str
    files: list[FileResult] = field(default_factory=list)

    def _with(self, status: Status) -> list[FileResult]:
        return [f for f in self.files if f.status == status]

    @property
    def added(self) -> list[FileResult]:
        return self._with("added")

    @property
    def unchanged(self) -> list[FileResult]:
        return self._with("unchanged")

    @property
    def updated(self) -> list[FileResult]:
        return self._with("updated")

    @property
    def skipped(self) -> list[FileResult]:
        return self._with("skipped")

    @property
    def chunks_indexed(self) -> int:
        return sum(f.chunks for f in self.files if f.status in ("added", "updated"))

    @property
    def ok(self) -> bool:
        """True if any file is now in the collection (indexed now, or already and unchanged)."""
        return any(f.status != "skipped" for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "ok": self.ok,
            "chunks_indexed": self.chunks_indexed,
            "counts": {s: len(self._with(s)) for s in ("added", "unchanged", "updated", "skipped")},
            "files": [asdict(f) for f in self.files],
        }
