"""Memories in the run store: add, list, forget, export and search, per profile.

A memory is a short note the user saves about themselves ("I am vegetarian", "I live in
Lyon"). It is stored as given (stripped) — text that reads like an instruction is kept as data
like any other; what keeps it from being obeyed is how it is shown to a model (`context.py`).

Search is by meaning: the query's MiniLM embedding against every memory of the profile, brute
force (`evidence/vectors.py`: a person has hundreds of memories, not millions). Without the
embedding model, FTS5 over the text (`evidence/index.fts_query` makes user text inert there).

Forgetting deletes for real: the row, its vector, its full-text entries (the FTS index is
merged afterwards, so no segment keeps the deleted terms), with `secure_delete` on so freed
pages are zeroed, and the WAL checkpointed and truncated so no old page image stays in it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from ..errors import InputError
from ..store.db import now_iso, write_transaction

if TYPE_CHECKING:
    import numpy as np
    import sqlite_utils

    from ..config import Settings

MAX_MEMORY_CHARS = 2000  # per memory, after stripping: a note, not a document
DEFAULT_PROFILE = "default"
PROFILE_ENV = "MANYMINDS_PROFILE"
Source = Literal["cli", "api", "mcp", "python"]
EmbedFunction = Callable[[Sequence[str]], "np.ndarray"]

_PROFILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class Memory(BaseModel):
    id: str
    profile: str
    text: str
    source: str
    created_at: str


class MemoryHit(BaseModel):
    """A memory found for a query; `score` is the cosine similarity (or -BM25 without vectors)."""

    id: str
    text: str
    score: float


class UnknownMemory(InputError):
    def __init__(self, memory_id: str, profile: str) -> None:
        self.memory_id, self.profile = memory_id, profile
        super().__init__(
            f"No memory {memory_id!r} in the profile {profile!r} (see `manyminds memory list --profile {profile}`)."
        )


def check_profile(name: Any) -> str:
    if not isinstance(name, str) or not _PROFILE.match(name):
        raise InputError(
            f"Invalid profile name {name!r}: use 1–64 letters, digits, '_', '-' or '.', starting with a letter or digit."
        )
    return name


def resolve_profile(explicit: str | None = None, settings: "Settings | None" = None) -> str:
    """The profile to use: the one given > `$MANYMINDS_PROFILE` > `[memory] profile` > "default"."""
    name = explicit or os.environ.get(PROFILE_ENV) or (settings.memory.profile if settings is not None else None)
    return check_profile(name or DEFAULT_PROFILE)


def check_text(text: Any) -> str:
    """The memory text, stripped; `InputError` for anything that cannot be stored as given."""
    if not isinstance(text, str):
        raise InputError(f"A memory must be text, not {type(text).__name__}.")
    stripped = text.strip()
    if not stripped:
        raise InputError('The memory is empty. Save a note, e.g. manyminds memory add "I am vegetarian."')
    if len(stripped) > MAX_MEMORY_CHARS:
        raise InputError(
            f"The memory is {len(stripped):,} characters long; the limit is {MAX_MEMORY_CHARS:,}. "
            "Save shorter notes, one fact each."
        )
    if "\x00" in stripped:
        raise InputError("The memory contains a NUL character.")
    try:
        stripped.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates, e.g. undecodable argv bytes
        raise InputError(f"The memory is not valid UTF-8 (at character {exc.start}).") from None
    return stripped


class MemoryStore:
    """The memories in `db` (opened with `manyminds.store.open_db`)."""

    def __init__(self, db: "sqlite_utils.Database", *, embed: EmbedFunction | None = None) -> None:
        self.db = db
        self._embed = embed
        self._has_fts = db["memories_fts"].exists()
        # Deleted rows are overwritten with zeros, not just unlinked (this connection only).
        db.execute("PRAGMA secure_delete = ON")

    def embed(self, texts: Sequence[str]) -> "np.ndarray":
        if self._embed is None:
            from .. import embeddings

            self._embed = embeddings.embed
        return self._embed(list(texts))

    # writing ----------------------------------------------------------------------------
    def add(self, profile: str, text: Any, *, source: Source = "cli") -> Memory:
        """Store one memory; its vector is computed first, outside the write transaction."""
        import numpy as np

        from .. import embeddings
        from ..ids import new_ulid

        profile, text = check_profile(profile), check_text(text)
        vector = np.ascontiguousarray(self.embed([text])[0], dtype="<f4")
        memory = Memory(id=new_ulid(), profile=profile, text=text, source=source, created_at=now_iso())
        with write_transaction(self.db):
            self.db.execute(
                "INSERT INTO memories (id, profile, text, source, created_at) VALUES (?, ?, ?, ?, ?)",
                [memory.id, profile, text, source, memory.created_at],
            )
            self.db.execute(
                "INSERT INTO memory_vectors (memory_id, model, embedding) VALUES (?, ?, ?)",
                [memory.id, embeddings.MODEL_ID, vector.tobytes()],
            )
        return memory

    def forget(self, profile: str, memory_id: str) -> Memory:
        """Delete one memory and every trace of it; `UnknownMemory` if the profile has none by that id."""
        profile = check_profile(profile)
        with write_transaction(self.db):
            found = self._rows("WHERE profile = ? AND id = ?", [profile, memory_id])
            if not found:
                raise UnknownMemory(memory_id, profile)
            self._delete("profile = ? AND id = ?", [profile, memory_id])
        self._truncate_wal()
        return found[0]

    def forget_all(self, profile: str) -> int:
        profile = check_profile(profile)
        with write_transaction(self.db):
            count = self.count(profile)
            self._delete("profile = ?", [profile])
        self._truncate_wal()
        return count

    def _delete(self, where: str, args: list[Any]) -> None:
        self.db.execute(f"DELETE FROM memory_vectors WHERE memory_id IN (SELECT id FROM memories WHERE {where})", args)
        self.db.execute(f"DELETE FROM memories WHERE {where}", args)  # the trigger removes the FTS entries
        if self._has_fts:
            # A delete only adds a tombstone segment; merging drops the old terms from the index.
            self.db.execute("INSERT INTO memories_fts (memories_fts) VALUES ('optimize')")

    def _truncate_wal(self) -> None:
        # Old page images (with the deleted text) live in the WAL until it is checkpointed and
        # reset. A reader elsewhere can hold the checkpoint back; it then happens later.
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    # reading ----------------------------------------------------------------------------
    def list(self, profile: str) -> list[Memory]:
        return self._rows("WHERE profile = ? ORDER BY seq", [check_profile(profile)])

    def count(self, profile: str) -> int:
        return self.db.execute("SELECT COUNT(*) FROM memories WHERE profile = ?", [profile]).fetchone()[0]

    def profiles(self) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT profile, COUNT(*) AS memories FROM memories GROUP BY profile ORDER BY profile"))

    def _rows(self, where: str, args: list[Any]) -> list[Memory]:
        return [Memory(**r) for r in self.db.query(f"SELECT id, profile, text, source, created_at FROM memories {where}", args)]

    def search(self, profile: str, query: str, *, k: int = 5, min_score: float | None = None) -> list[MemoryHit]:
        """The `k` memories of `profile` closest in meaning to `query`, best first, at least
        `min_score` (cosine) when given."""
        import numpy as np

        from ..evidence.vectors import similarities, top

        profile = check_profile(profile)
        if not isinstance(query, str) or not query.strip():
            raise InputError("The search query is empty.")
        if not isinstance(k, int) or k < 1:
            raise InputError(f"k must be a positive integer, not {k!r}.")
        rows = self.db.execute(
            "SELECT m.seq, m.id, m.text, v.embedding FROM memories m JOIN memory_vectors v ON v.memory_id = m.id "
            "WHERE m.profile = ? ORDER BY m.seq", [profile],
        ).fetchall()
        if not rows:
            return []
        from .. import embeddings

        seqs = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        matrix = np.frombuffer(b"".join(r[3] for r in rows), dtype="<f4").reshape(len(rows), embeddings.DIMENSIONS)
        order, scores = top(seqs, similarities(matrix, self.embed([query])[0]), k)
        by_seq = {r[0]: r for r in rows}
        hits = [MemoryHit(id=by_seq[s][1], text=by_seq[s][2], score=round(float(sc), 4)) for s, sc in zip(order, scores)]
        return [h for h in hits if min_score is None or h.score >= min_score]

    def search_words(self, profile: str, query: str, *, k: int = 5) -> list[MemoryHit]:
        """Full-text search (BM25) — for when the embedding model is not installed."""
        from ..evidence.index import fts_query

        match = fts_query(query)
        if not self._has_fts or match is None:
            return []
        rows = self.db.execute(
            "SELECT m.id, m.text, bm25(memories_fts) AS rank FROM memories_fts f JOIN memories m ON m.seq = f.rowid "
            "WHERE memories_fts MATCH ? AND m.profile = ? ORDER BY rank LIMIT ?", [match, check_profile(profile), k],
        ).fetchall()
        return [MemoryHit(id=r[0], text=r[1], score=round(-float(r[2]), 4)) for r in rows]
