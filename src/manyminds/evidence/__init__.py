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

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:
    from .index import DEFAULT_COLLECTION, MAX_FILE_BYTES, DocumentIndex, retrieve, retrieve_async
    from .records import AddProgress, AddReport, EmptyCollection, FileResult, Passage, UnknownCollection
    from .parse import ParseError
    from .search import (
        HTTPSearchProvider,
        SearchError,
        SearchProvider,
        build_search_providers,
        register_search_provider,
        search_all,
    )

# Lazy, like `manyminds/__init__.py`: importing one submodule (e.g. `evidence.schema`, which every
# `open_db` imports for its migration) must not import the rest of the package.
_EXPORTS = {
    "DEFAULT_COLLECTION": "index",
    "MAX_FILE_BYTES": "index",
    "AddProgress": "records",
    "AddReport": "records",
    "DocumentIndex": "index",
    "EmptyCollection": "records",
    "FileResult": "records",
    "Passage": "records",
    "UnknownCollection": "records",
    "retrieve": "index",
    "retrieve_async": "index",
    "ParseError": "parse",
    "HTTPSearchProvider": "search",
    "SearchError": "search",
    "SearchProvider": "search",
    "build_search_providers": "search",
    "register_search_provider": "search",
    "search_all": "search",
}

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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
