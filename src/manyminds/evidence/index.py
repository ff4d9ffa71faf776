"""The local document index: collections of files in the run store, searched by words and meaning.

Adding a file: check its size (before reading it), read it, hash it; a file already in the
collection with the same sha256 is left alone ("unchanged": nothing parsed, nothing embedded).
Otherwise parse → chunk → embed outside any transaction, then write the document and all its
chunks in one short write transaction (a changed file's old chunks are replaced in the same
transaction, so a search never sees half a document).

Retrieval is hybrid, fused by reciprocal rank (RRF):
- words: SQLite FTS5 with BM25 over each chunk's text and its context (title and heading path),
  porter-stemmed. The user's query never reaches FTS syntax: it is cut into word tokens, each
  quoted, joined with OR (BM25 ranks chunks matching more and rarer words first).
- meaning: cosine similarity of the query's MiniLM embedding with every chunk's, brute force with
  numpy over the collection's vectors held in memory (`vectors.py`). At 10,000 chunks the product
  with the query takes under a millisecond; embedding the query (~12 ms) is most of a vector
  search. No ANN index needed at this size.
- fusion: score = Σ 1 / (60 + rank) over the two rankings (Cormack et al. 2009). RRF needs no
  calibration between BM25 and cosine scales, and a passage found by both ranks first.

The result types and errors are in `records.py`. `Passage.score` is therefore mode-specific: the RRF sum (hybrid), -BM25 (fts, higher is better)
or the cosine (vector). `Passage.similarity` is always the cosine with the query when vectors
exist, whatever the mode — the comparable number for "is this passage even about the claim".
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import sqlite_utils

from .. import embeddings
from ..errors import InputError
from ..store.db import now_iso, write_transaction
from .chunk import Chunk, chunk_document
from .parse import ParsedDocument, ParseError, detect_kind, parse_bytes
from .records import AddProgress, AddReport, EmptyCollection, FileResult, Passage, UnknownCollection
from .vectors import collection_matrix, forget_matrix, similarities, top

MAX_FILE_BYTES = 50 * 1024 * 1024  # larger files are skipped unread
DEFAULT_COLLECTION = "default"
RRF_K = 60  # the constant from the RRF paper; damps the weight of the very first ranks
CANDIDATES = 50  # per ranking, before fusion (at least 4 × k)
MAX_QUERY_TERMS = 64

SearchMode = Literal["hybrid", "fts", "vector"]
ProgressCallback = Callable[[AddProgress], None]
EmbedFunction = Callable[[Sequence[str]], np.ndarray]


# --- the index -----------------------------------------------------------------------------

_NAME = re.compile(r"^[\w][\w.\- ]{0,63}$")


def check_collection_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or name != name.strip():
        raise InputError(
            f"Invalid collection name {name!r}: use 1–64 letters, digits, '_', '-', '.' or spaces, "
            "starting with a letter or digit."
        )
    return name


class DocumentIndex:
    """Document collections stored in `db` (opened with `manyminds.store.open_db`)."""

    def __init__(self, db: sqlite_utils.Database, *, max_bytes: int = MAX_FILE_BYTES,
                 embed: EmbedFunction | None = None) -> None:
        self.db = db
        self.max_bytes = max_bytes
        self._embed = embed or embeddings.embed
        self._has_fts = db["doc_chunks_fts"].exists()

    # adding -----------------------------------------------------------------------------
    def add(self, collection: str, paths: Iterable[str | Path], *,
            on_progress: ProgressCallback | None = None) -> AddReport:
        """Index files and directories (recursively; hidden entries are left out)."""
        check_collection_name(collection)
        report = AddReport(collection)
        files, missing = expand_paths(paths)
        total = len(files) + len(missing)
        for result in missing:
            report.files.append(result)
            if on_progress:
                on_progress(AddProgress(len(report.files), total, result))
        for path in files:
            result = self._add_file(collection, path)
            report.files.append(result)
            if on_progress:
                on_progress(AddProgress(len(report.files), total, result))
        return report

    def _add_file(self, collection: str, path: Path) -> FileResult:
        shown = str(path)
        try:
            size = path.stat().st_size
        except OSError as exc:
            return FileResult(shown, "skipped", reason=f"cannot read: {exc.strerror or exc}")
        if size > self.max_bytes:
            return FileResult(
                shown, "skipped",
                reason=f"too large: {_megabytes(size)} (the limit is {_megabytes(self.max_bytes)})",
            )
        try:
            kind = detect_kind(path, b"") if path.suffix else None  # refuse by suffix before reading
            data = path.read_bytes()
            kind = kind or detect_kind(path, data[:8192])
        except ParseError as exc:
            return FileResult(shown, "skipped", reason=exc.reason)
        except OSError as exc:
            return FileResult(shown, "skipped", reason=f"cannot read: {exc.strerror or exc}")
        if not data:
            return FileResult(shown, "skipped", reason="empty file", kind=kind)
        digest = hashlib.sha256(data).hexdigest()
        existing = self._document_row(collection, shown)
        if existing is not None and existing["sha256"] == digest:
            return FileResult(shown, "unchanged", chunks=existing["chunk_count"], kind=kind, title=existing["title"])
        try:
            parsed = parse_bytes(path, data, kind)
        except ParseError as exc:
            return FileResult(shown, "skipped", reason=exc.reason, kind=kind)
        del data
        chunks = chunk_document(parsed)
        contexts = [_context(parsed.title, c) for c in chunks]
        # Embedding the context with the text lets a chunk under "§ Pricing" match "cost".
        vectors = self._embed([f"{ctx}\n{c.text}" if ctx else c.text for ctx, c in zip(contexts, chunks)])
        replaced = self._store(collection, shown, digest, size, parsed, chunks, contexts, vectors)
        return FileResult(shown, "updated" if replaced else "added", chunks=len(chunks), kind=parsed.kind,
                          title=parsed.title)

    def _store(self, collection: str, path: str, digest: str, size: int, parsed: ParsedDocument,
               chunks: list[Chunk], contexts: list[str], vectors: np.ndarray) -> bool:
        """Write one document and its chunks; True if it replaced an older version."""
        now = now_iso()
        with write_transaction(self.db):
            coll_id = self._collection_id(collection, create=True)
            # Looked up again inside the transaction: another process may have added it since.
            row = self.db.execute(
                "SELECT id FROM doc_documents WHERE collection_id = ? AND path = ?", [coll_id, path]
            ).fetchone()
            values = [parsed.title, parsed.kind, digest, size, len(parsed.text), parsed.pages, len(chunks), now]
            if row:
                doc_id = row[0]
                self.db.execute("DELETE FROM doc_chunks WHERE document_id = ?", [doc_id])
                self.db.execute(
                    "UPDATE doc_documents SET title = ?, kind = ?, sha256 = ?, size_bytes = ?, chars = ?, "
                    "pages = ?, chunk_count = ?, updated_at = ? WHERE id = ?", [*values, doc_id],
                )
            else:
                doc_id = self.db.execute(
                    "INSERT INTO doc_documents (title, kind, sha256, size_bytes, chars, pages, chunk_count, "
                    "updated_at, collection_id, path, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [*values, coll_id, path, now],
                ).lastrowid
            blobs = np.ascontiguousarray(vectors, dtype="<f4")
            self.db.conn.executemany(
                "INSERT INTO doc_chunks (document_id, collection_id, seq, text, context, location, page, "
                "start_char, end_char, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (doc_id, coll_id, c.seq, c.text, ctx, c.location, c.page, c.start, c.end, blobs[i].tobytes())
                    for i, (c, ctx) in enumerate(zip(chunks, contexts))
                ],
            )
            self._touch(coll_id, now)
        return bool(row)

    # collections ------------------------------------------------------------------------
    def collections(self) -> list[dict[str, Any]]:
        """Every collection with its document and chunk counts, by name."""
        return list(
            self.db.query(
                "SELECT c.name, COUNT(d.id) AS documents, COALESCE(SUM(d.chunk_count), 0) AS chunks, "
                "COALESCE(SUM(d.size_bytes), 0) AS bytes, c.created_at, c.updated_at, c.embedding_model "
                "FROM doc_collections c LEFT JOIN doc_documents d ON d.collection_id = c.id "
                "GROUP BY c.id ORDER BY c.name"
            )
        )

    def documents(self, collection: str) -> list[dict[str, Any]]:
        coll_id = self._require(collection)
        return list(
            self.db.query(
                "SELECT path, title, kind, sha256, size_bytes, chars, pages, chunk_count AS chunks, added_at, "
                "updated_at FROM doc_documents WHERE collection_id = ? ORDER BY path", [coll_id],
            )
        )

    def remove(self, collection: str, path: str | Path | None = None) -> dict[str, int]:
        """Remove one document (or every document under a directory), or with no path the whole
        collection. Returns how many documents and chunks went."""
        coll_id = self._require(collection)
        with write_transaction(self.db):
            if path is None:
                where, args = "collection_id = ?", [coll_id]
            else:
                target = str(Path(path).expanduser().resolve())
                where = "collection_id = ? AND (path = ? OR substr(path, 1, ?) = ?)"
                prefix = target.rstrip(os.sep) + os.sep
                args = [coll_id, target, len(prefix), prefix]
            docs = [r[0] for r in self.db.execute(f"SELECT id FROM doc_documents WHERE {where}", args).fetchall()]
            if path is not None and not docs:
                raise InputError(f"No document at {path} in the collection {collection!r} "
                                 f"(see `manyminds docs list {collection}`).")
            chunks = 0
            for doc_id in docs:
                chunks += self.db.execute("DELETE FROM doc_chunks WHERE document_id = ?", [doc_id]).rowcount
                self.db.execute("DELETE FROM doc_documents WHERE id = ?", [doc_id])
            if path is None:
                self.db.execute("DELETE FROM doc_collections WHERE id = ?", [coll_id])
            else:
                self._touch(coll_id, now_iso())
        forget_matrix(self.db, coll_id)
        return {"documents": len(docs), "chunks": chunks}

    # searching --------------------------------------------------------------------------
    def search(self, collection: str, query: str, *, k: int = 5, mode: SearchMode = "hybrid") -> list[Passage]:
        if mode not in ("hybrid", "fts", "vector"):
            raise InputError(f"Unknown search mode {mode!r}: use hybrid, fts or vector.")
        if not isinstance(k, int) or k < 1:
            raise InputError(f"k must be a positive integer, not {k!r}.")
        if not query or not query.strip():
            raise InputError("The search query is empty.")
        coll_id = self._require(collection)
        count = self.db.execute("SELECT COUNT(*) FROM doc_chunks WHERE collection_id = ?", [coll_id]).fetchone()[0]
        if count == 0:
            raise EmptyCollection(collection)
        want = max(CANDIDATES, 4 * k)
        # Full text first: right after an embedding, onnxruntime's threads still spin on the cores
        # and slow SQLite down (measured: 11 ms before vs 14 ms after, at 10,000 chunks).
        ranked = self._fts(coll_id, query, k if mode == "fts" else want) if mode != "vector" else []
        query_vector: np.ndarray | None = None
        ids = matrix = None
        if mode != "fts":
            query_vector = self._embed([query])[0]
            ids, matrix = collection_matrix(self.db, coll_id)

        cosine: dict[int, float] = {}
        if mode == "fts":
            scores = {cid: -bm25 for cid, bm25 in ranked}
            order = [cid for cid, _ in ranked]
        elif mode == "vector":
            order, sims = top(ids, similarities(matrix, query_vector), k)
            scores = dict(zip(order, sims))
        else:
            vec_order, _ = top(ids, similarities(matrix, query_vector), want)
            fts_order = [cid for cid, _ in ranked]
            fused: dict[int, float] = {}
            for ranking in (fts_order, vec_order):
                for rank, cid in enumerate(ranking):
                    fused[cid] = fused.get(cid, 0.0) + 1.0 / (RRF_K + rank + 1)
            order = sorted(fused, key=lambda cid: (-fused[cid], cid))[:k]
            scores = fused
        if matrix is not None and query_vector is not None and len(ids) and order:
            # A chunk written by another process since the matrix was read has no row in it.
            positions = np.searchsorted(ids, order).clip(max=len(ids) - 1)
            sims = (matrix[positions] @ query_vector).tolist()
            cosine = {cid: sim for cid, pos, sim in zip(order, positions, sims) if ids[pos] == cid}
        return self._passages(collection, order, scores, cosine)

    def _fts(self, coll_id: int, query: str, limit: int) -> list[tuple[int, float]]:
        match = fts_query(query)
        if not self._has_fts or match is None:
            return []
        rows = self.db.execute(
            "SELECT f.rowid, bm25(doc_chunks_fts, 1.0, 0.5) AS rank FROM doc_chunks_fts f "
            "JOIN doc_chunks c ON c.id = f.rowid "
            "WHERE doc_chunks_fts MATCH ? AND c.collection_id = ? ORDER BY rank LIMIT ?",
            [match, coll_id, limit],
        ).fetchall()
        return [(int(r[0]), float(r[1])) for r in rows]

    def _passages(self, collection: str, order: list[int], scores: dict[int, float],
                  cosine: dict[int, float]) -> list[Passage]:
        if not order:
            return []
        marks = ",".join("?" * len(order))
        rows = {
            r["id"]: r
            for r in self.db.query(
                "SELECT c.id, c.text, c.location, c.page, c.start_char, c.end_char, d.path, d.title, d.sha256 "
                f"FROM doc_chunks c JOIN doc_documents d ON d.id = c.document_id WHERE c.id IN ({marks})", order,
            )
        }
        return [
            Passage(
                text=r["text"], document=r["path"], title=r["title"], location=r["location"], chunk_id=cid,
                score=float(scores[cid]), collection=collection, start=r["start_char"], end=r["end_char"],
                page=r["page"], sha256=r["sha256"], similarity=cosine.get(cid),
            )
            for cid in order
            if (r := rows.get(cid)) is not None
        ]

    # helpers ----------------------------------------------------------------------------
    def _collection_id(self, name: str, *, create: bool = False) -> int | None:
        row = self.db.execute("SELECT id FROM doc_collections WHERE name = ?", [name]).fetchone()
        if row:
            return row[0]
        if not create:
            return None
        now = now_iso()
        return self.db.execute(
            "INSERT INTO doc_collections (name, created_at, updated_at, embedding_model) VALUES (?, ?, ?, ?)",
            [name, now, now, embeddings.MODEL_ID],
        ).lastrowid

    def _require(self, name: str) -> int:
        coll_id = self._collection_id(name)
        if coll_id is None:
            known = [r[0] for r in self.db.execute("SELECT name FROM doc_collections ORDER BY name").fetchall()]
            raise UnknownCollection(name, known)
        return coll_id

    def _document_row(self, collection: str, path: str) -> dict[str, Any] | None:
        rows = list(
            self.db.query(
                "SELECT d.id, d.sha256, d.chunk_count, d.title FROM doc_documents d "
                "JOIN doc_collections c ON c.id = d.collection_id WHERE c.name = ? AND d.path = ?",
                [collection, path],
            )
        )
        return rows[0] if rows else None

    def _touch(self, coll_id: int, now: str) -> None:
        self.db.execute(
            "UPDATE doc_collections SET version = version + 1, updated_at = ? WHERE id = ?", [now, coll_id]
        )


def retrieve(db: sqlite_utils.Database, collection: str, query: str, *, k: int = 5,
             mode: SearchMode = "hybrid") -> list[Passage]:
    """The top `k` passages for `query` in `collection` (hybrid retrieval unless `mode` says).

    Raises `UnknownCollection` (listing the existing ones) or `EmptyCollection`."""
    return DocumentIndex(db).search(collection, query, k=k, mode=mode)


async def retrieve_async(collection: str, query: str, *, k: int = 5, mode: SearchMode = "hybrid",
                         db_path: str | Path | None = None) -> list[Passage]:
    """`retrieve` off the event loop: in a worker thread, on a connection of its own (a sqlite3
    connection may only be used by the thread that opened it). `db_path` defaults to the run
    store. The vector matrix cache is per database file, so these calls share it."""
    import asyncio

    from ..store import open_db

    def run() -> list[Passage]:
        db = open_db(db_path, check_abandoned=False)
        try:
            return retrieve(db, collection, query, k=k, mode=mode)
        finally:
            db.close()

    return await asyncio.to_thread(run)


# --- module helpers ------------------------------------------------------------------------

# Common English function words: as OR terms they match most chunks, cost time (BM25 scores every
# chunk a term matches) and add next to nothing to the ranking. Dropped only when other words remain.
_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who
    whom whose why will with would you your yours yourself yourselves""".split()
)


def fts_query(query: str) -> str | None:
    """An FTS5 MATCH expression for free text: its word tokens, each quoted, joined with OR.

    Quoting makes every token a plain string, so operators (AND, NOT, NEAR), column filters
    (`text:`), prefixes (`*`), `^`, parentheses and quotes in user text are inert. None when the
    text has no word characters at all."""
    tokens = re.findall(r"\w+", query)
    content = [t for t in tokens if t.lower() not in _STOPWORDS]
    tokens = list(dict.fromkeys(t.lower() for t in (content or tokens)))[:MAX_QUERY_TERMS]
    if not tokens:
        return None
    return " OR ".join(f'"{t}"' for t in tokens)


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[FileResult]]:
    """Files to index (absolute, de-duplicated, in a stable order) and results for paths that
    do not exist. Directories are walked recursively, leaving out hidden files and directories
    (.git, .venv…) and not following symbolic links to directories (no cycles)."""
    files: list[Path] = []
    missing: list[FileResult] = []
    seen: set[Path] = set()

    def keep(path: Path) -> None:
        path = path.resolve()
        if path not in seen:
            seen.add(path)
            files.append(path)

    if isinstance(paths, (str, Path)):
        paths = [paths]
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    if not name.startswith("."):
                        keep(Path(root) / name)
        elif path.is_file():
            keep(path)
        elif path.exists():
            missing.append(FileResult(str(path.resolve()), "skipped", reason="not a regular file"))
        else:
            missing.append(FileResult(str(path.absolute()), "skipped", reason="no such file or directory"))
    return files, missing


def _context(title: str | None, chunk: Chunk) -> str:
    parts = [title] if title else []
    parts += [h for h in chunk.headings if h != title]
    return " > ".join(parts)


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
