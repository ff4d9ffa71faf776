"""Search providers: web (or any remote) search services as a source of evidence.

A provider is one small class with one async method, `search(query, k=…) -> list[Passage]`.
Implementations register a factory under a type name with `register_search_provider`; the
built-in `http` type is the generic JSON provider below. A third-party plugin registers from the
same hook its model providers use — the `register(registry)` function of an entry point in the
group `manyminds` — by calling `register_search_provider` there:

    # in a plugin package, entry point  [project.entry-points.manyminds] mysearch = "mysearch:register"
    def register(registry):
        from manyminds.evidence.search import register_search_provider
        register_search_provider("mysearch", lambda name, options, settings: MySearch(name, **options))

Which services are used comes from the settings file, one table per service:

    [search.web]
    provider = "http"                     # the default
    url = "https://search.example.com/api/search"
    key_env = "EXAMPLE_SEARCH_KEY"        # sent as `Authorization: Bearer …` by default
    results_field = "data.items"          # where the result list is (dotted path)
    snippet_field = "summary"

`build_search_providers(settings)` turns those tables into provider objects. Every failure is a
`SearchError` naming the provider and the cause; keys never appear in an error or a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError, ManymindsError
from .records import Passage

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger(__name__)

# factory(name, options, settings) -> SearchProvider; `options` is the [search.NAME] table
# without `provider`.
SearchFactory = Callable[[str, dict[str, Any], "Settings"], "SearchProvider"]


class SearchError(ManymindsError):
    """A search provider failed. Names the provider and the cause; never holds a key."""

    exit_code = 3

    def __init__(self, provider: str, cause: str, *, status_code: int | None = None, retryable: bool = False):
        self.provider, self.cause = provider, cause
        self.status_code, self.retryable = status_code, retryable
        super().__init__(f"search provider {provider!r}: {cause}")

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "provider": self.provider, "cause": self.cause,
                "status_code": self.status_code, "retryable": self.retryable}


class SearchProvider(ABC):
    """One search service. `search` returns passages whose `document` and `location` are the
    result's URL, `title` its title and `text` its snippet, best first."""

    name: str

    @abstractmethod
    async def search(self, query: str, *, k: int = 5) -> list[Passage]: ...

    def search_sync(self, query: str, *, k: int = 5) -> list[Passage]:
        """`search` for callers without an event loop."""
        return asyncio.run(self.search(query, k=k))

    async def aclose(self) -> None:
        """Release connections; the built-in provider holds none between calls."""


# --- registry ------------------------------------------------------------------------------

_factories: dict[str, SearchFactory] = {}
_plugins_loaded = False


def register_search_provider(name: str, factory: SearchFactory) -> None:
    """Make `provider = "NAME"` usable in `[search.…]` tables. A later registration of the
    same name replaces the earlier one (as with model providers)."""
    _factories[name] = factory


def search_provider_types(settings: Settings | None = None) -> list[str]:
    _load_plugins(settings)
    return sorted(_factories)


def build_search_providers(settings: Settings) -> dict[str, SearchProvider]:
    """One provider per `[search.NAME]` table of the settings, by name.

    Plugins are loaded only when a table asks for a type that is not built in. Raises
    `ConfigError` for an unknown type or invalid options."""
    configured = getattr(settings, "search", None) or {}
    if any(cfg.provider not in _factories for cfg in configured.values()):
        _load_plugins(settings)
    providers: dict[str, SearchProvider] = {}
    for name, cfg in configured.items():
        factory = _factories.get(cfg.provider)
        if factory is None:
            known = ", ".join(sorted(_factories))
            raise ConfigError(f"[search.{name}]: unknown search provider type {cfg.provider!r} (known: {known}).")
        options = cfg.model_dump(exclude={"provider"}, exclude_none=True)
        providers[name] = factory(name, options, settings)
    return providers


def _load_plugins(settings: Settings | None) -> None:
    """Run every `manyminds` entry point's register hook once (through the model registry,
    which owns that loop), so that plugins' `register_search_provider` calls happen."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    from ..models.registry import build_registry

    build_registry(settings)
    _plugins_loaded = True


async def search_all(providers: dict[str, SearchProvider] | list[SearchProvider], query: str, *,
                     k: int = 5) -> tuple[list[Passage], dict[str, SearchError]]:
    """Ask every provider at once. Returns the passages of those that answered, in provider
    order, and the error of each that did not — one failing service does not lose the others."""
    items = list(providers.items()) if isinstance(providers, dict) else [(p.name, p) for p in providers]
    outcomes = await asyncio.gather(*(p.search(query, k=k) for _, p in items), return_exceptions=True)
    passages: list[Passage] = []
    errors: dict[str, SearchError] = {}
    for (name, _), outcome in zip(items, outcomes):
        if isinstance(outcome, SearchError):
            errors[name] = outcome
        elif isinstance(outcome, BaseException):
            if not isinstance(outcome, Exception):
                raise outcome  # cancellation and interrupts are not a provider's failure
            # A plugin's own exception: reported against it, with its type, like a SearchError.
            errors[name] = SearchError(name, f"{type(outcome).__name__}: {outcome}")
        else:
            passages.extend(outcome)
    return passages, errors


# --- the generic HTTP JSON provider -------------------------------------------------------


class HTTPSearchOptions(BaseModel):
    """The options of `provider = "http"`; unknown keys are refused (a typo must not silently
    fall back to a default field name)."""

    model_config = ConfigDict(extra="forbid")
    url: str
    method: Literal["GET", "POST"] = "GET"
    key_env: str | None = None
    key_header: str = "Authorization"
    key_prefix: str = "Bearer "
    query_param: str = "q"
    count_param: str | None = "k"  # how many results to ask for; None: not sent
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)  # sent with every request
    headers: dict[str, str] = Field(default_factory=dict)
    results_field: str = "results"  # dotted path to the list of results ("" for a top-level list)
    title_field: str = "title"
    url_field: str = "url"
    snippet_field: str = "snippet"
    timeout: float = Field(default=10.0, gt=0)


class HTTPSearchProvider(SearchProvider):
    """Any JSON search API: the query goes out as a GET parameter or a POST JSON body, and each
    result's title, URL and snippet are read from configurable (dotted) field names."""

    def __init__(self, url: str, api_key_env: str | None = None, *, name: str = "http",
                 api_key: str | None = None, **options: Any) -> None:
        self.name = name
        try:
            self.options = HTTPSearchOptions(url=url, key_env=api_key_env, **options)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"[search.{name}]: {problems}") from None
        if urlsplit(self.options.url).scheme not in ("http", "https"):
            raise ConfigError(f"[search.{name}]: url must start with http:// or https://, not {self.options.url!r}")
        self._explicit_key = api_key

    def __repr__(self) -> str:  # no key here, ever
        return f"HTTPSearchProvider(name={self.name!r}, url={self.options.url!r})"

    @classmethod
    def from_settings(cls, name: str, options: dict[str, Any], settings: Settings | None = None) -> HTTPSearchProvider:
        options = dict(options)
        if "url" not in options:
            raise ConfigError(f"[search.{name}]: url is required")
        url = options.pop("url")
        return cls(url, options.pop("key_env", None), name=name, **options)

    def _key(self) -> str | None:
        from ..config import resolve_key

        key = resolve_key(self.name, self._explicit_key, self.options.key_env)
        if key is None and self.options.key_env:
            raise SearchError(
                self.name, f"needs a key: set {self.options.key_env} or run `manyminds keys set {self.name}`"
            )
        return key

    async def search(self, query: str, *, k: int = 5) -> list[Passage]:
        import httpx

        o = self.options
        key = self._key()
        headers = {"Accept": "application/json", **o.headers}
        if key:
            headers[o.key_header] = f"{o.key_prefix}{key}"
        fields: dict[str, Any] = {**o.params, o.query_param: query}
        if o.count_param:
            fields[o.count_param] = k
        request: dict[str, Any] = {"params": fields} if o.method == "GET" else {"json": fields}
        log.debug("search provider %s: %s %s (k=%d)", self.name, o.method, o.url, k)
        failure: SearchError | None = None
        try:
            # No redirects: httpx drops Authorization on a cross-origin redirect, but not a custom
            # key header, which would then reach whichever host the service points us to.
            async with httpx.AsyncClient(timeout=o.timeout, follow_redirects=False) as client:
                response = await client.request(o.method, o.url, headers=headers, **request)
            status, body = response.status_code, response.text
        except httpx.TimeoutException:
            failure = SearchError(self.name, f"no answer within {o.timeout:g} s", retryable=True)
        except httpx.HTTPError as exc:
            failure = SearchError(
                self.name, f"cannot reach {urlsplit(o.url).netloc} ({type(exc).__name__})", retryable=True
            )
        # Raised outside the except blocks: a chained httpx exception would carry the request,
        # and the request carries the key.
        if failure is not None:
            raise failure
        if 300 <= status < 400:
            raise SearchError(self.name, f"HTTP {status}: redirected; set the url to the final address")
        if status >= 400:
            raise SearchError(
                self.name, f"HTTP {status}: {_excerpt(_scrub(body, key))}", status_code=status,
                retryable=status == 429 or status >= 500,
            )
        return self._passages(body, key, k)

    def _passages(self, body: str, key: str | None, k: int) -> list[Passage]:
        o = self.options
        try:
            data = json.loads(body)
        except ValueError:
            data = _NOT_JSON
        if data is _NOT_JSON:
            raise SearchError(self.name, f"the answer is not JSON: {_excerpt(_scrub(body, key))!r}")
        results = _dig(data, o.results_field)
        if not isinstance(results, list):
            where = f"at {o.results_field!r}" if o.results_field else "at the top level"
            found = f"; its keys: {', '.join(sorted(map(str, data)))[:200]}" if isinstance(data, dict) else ""
            raise SearchError(self.name, f"the answer has no list of results {where}{found}")
        passages: list[Passage] = []
        for item in results:
            url, title, snippet = (_text(_dig(item, f)) for f in (o.url_field, o.title_field, o.snippet_field))
            if not url or not (snippet or title):
                continue  # nothing to cite or nothing to read
            passages.append(
                Passage(text=snippet or title or "", document=url, title=title, location=url, chunk_id=None,
                        score=1.0 / (len(passages) + 1), collection=None, start=None, end=None)
            )
            if len(passages) >= k:
                break
        return passages


_NOT_JSON = object()


def _dig(data: Any, path: str) -> Any:
    for part in (p for p in path.split(".") if p):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = " ".join(str(value).split())
    return text or None


def _scrub(text: str, key: str | None) -> str:
    return text.replace(key, "[key]") if key else text


def _excerpt(text: str, n: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


register_search_provider("http", HTTPSearchProvider.from_settings)
