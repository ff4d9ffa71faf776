"""Evidence for grounding claims: local document collections and web search plugins.

    from manyminds.store import open_db
    from manyminds.evidence import DocumentIndex, retrieve

    index = DocumentIndex(open_db())
    report = index.add("papers", ["notes/", "paper.pdf"])      # idempotent: same sha256, no work
    passages = retrieve(index.db, "papers", "boiling point of water at altitude", k=5)

Modules: `parse` (files → text with sections), `chunk` (text → ~1,000-character chunks with
locations), `index` (SQLite storage, hybrid FTS5 + vector retrieval), `vectors` (the in-memory
vector matrix and cosine top-k), `records` (passages, add reports, errors), `search` (the search
provider plugin interface and a generic HTTP JSON provider).
"""

from __future__ import annotations

from .index import DEFAULT_COLLECTION, MAX_FILE_BYTES, DocumentIndex, retrieve, retrieve_async
from .parse import ParseError
from .records import AddProgress, AddReport, EmptyCollection, FileResult, Passage, UnknownCollection
from .search import (
    HTTPSearchProvider,
    SearchError,
    SearchProvider,
    build_search_providers,
    register_search_provider,
    search_all,
)

__all__ = [
    "DEFAULT_COLLECTION",
    "MAX_FILE_BYTES",
    "AddProgress",
    "AddReport",
    "DocumentIndex",
    "EmptyCollection",
    "FileResult",
    "HTTPSearchProvider",
    "ParseError",
    "Passage",
    "SearchError",
    "SearchProvider",
    "UnknownCollection",
    "build_search_providers",
    "register_search_provider",
    "retrieve",
    "retrieve_async",
    "search_all",
]
