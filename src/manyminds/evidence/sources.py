"""Where a claim's passages come from: a document collection in the run store and/or search
providers. The grounding stage (pipeline/stages/ground.py) is handed a `Sources` by its
strategy and only asks it for passages; opening the database is this layer's business."""

from __future__ import annotations

from typing import Any, Iterable

K = 3  # passages per claim, per source


class Sources:
    """Where passages come from: a document collection in the run store and/or search
    providers (objects with `async search(query, k=…)` returning passages)."""

    def __init__(
        self,
        collection: str | None = None,
        *,
        db: Any = None,
        providers: Iterable[Any] | dict[str, Any] | None = None,
        k: int = K,
    ) -> None:
        self.collection = collection
        self._db = db
        self.providers = list(providers.values()) if isinstance(providers, dict) else list(providers or [])
        self.k = k

    @property
    def active(self) -> bool:
        return bool(self.collection or self.providers)

    @property
    def db(self) -> Any:
        if self._db is None or isinstance(self._db, (str, bytes)) or hasattr(self._db, "__fspath__"):
            from ..store import open_db

            self._db = open_db(self._db)
        return self._db

    def check(self) -> None:
        """Fail before any model call when the collection does not exist or holds nothing
        (`UnknownCollection` / `EmptyCollection`, both input errors: exit code 2)."""
        if not self.collection:
            return
        from . import DocumentIndex, EmptyCollection, UnknownCollection

        found = {c["name"]: c for c in DocumentIndex(self.db).collections()}
        if self.collection not in found:
            raise UnknownCollection(self.collection, sorted(found))
        if not found[self.collection]["chunks"]:
            raise EmptyCollection(self.collection)

    async def passages(self, query: str) -> tuple[list[Any], list[str]]:
        """(passages, warnings): the collection's best `k` and each provider's; a provider that
        fails is a warning, not a failed run."""
        warnings: list[str] = []
        found: list[Any] = []
        if self.collection:
            from . import retrieve

            found += retrieve(self.db, self.collection, query, k=self.k)
        if self.providers:
            from . import search_all

            more, errors = await search_all(self.providers, query, k=self.k)
            found += more
            warnings += [f"search provider {name!r} failed: {err}" for name, err in errors.items()]
        return found, warnings
