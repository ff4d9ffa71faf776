"""Search providers against a JSON search service on 127.0.0.1: results, field mapping, every
failure named by provider, and the key sent but never shown."""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from manyminds.config import load_settings
from manyminds.errors import ConfigError
from manyminds.evidence import (
    HTTPSearchProvider,
    Passage,
    SearchError,
    SearchProvider,
    build_search_providers,
    register_search_provider,
    search_all,
)

SECRET = "sk-search-DO-NOT-LEAK-9c8b7a6f5e4d"

RESULTS = [
    {"title": "Varnholt bridge - Wikipedia", "url": "https://en.example.org/wiki/Varnholt_bridge",
     "snippet": "The Varnholt bridge was completed in 1911."},
    {"title": "Quellen river", "url": "https://en.example.org/wiki/Quellen", "snippet": "A river."},
    {"title": "No URL, cannot be cited", "snippet": "dropped"},
    {"title": "Lindqvist foundry", "url": "https://example.com/lindqvist", "snippet": ""},
]


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass

    def _reply(self, status: int, body: str | bytes, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, body: dict | None) -> None:
        url = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.server.requests.append({"method": self.command, "path": url.path, "params": params, "body": body,
                                     "headers": {k.lower(): v for k, v in self.headers.items()}})
        route = url.path.rstrip("/").rsplit("/", 1)[-1]
        auth = self.headers.get("Authorization", "")
        if route == "search":
            q = (body or params).get("q", "")
            self._reply(200, json.dumps({"query": q, "results": RESULTS}))
        elif route == "nested":
            items = [{"headline": r["title"], "link": {"href": r.get("url")}, "summary": r["snippet"]} for r in RESULTS]
            self._reply(200, json.dumps({"data": {"items": items}}))
        elif route == "toplevel":
            self._reply(200, json.dumps(RESULTS))
        elif route == "e500":
            self._reply(500, json.dumps({"error": f"internal error while checking key {auth}"}))
        elif route == "e401":
            self._reply(401, json.dumps({"error": f"Invalid API key: {auth}"}))
        elif route == "slow":
            time.sleep(2.0)
            self._reply(200, json.dumps({"results": RESULTS}))
        elif route == "garbage":
            self._reply(200, f"<html><body>502 Bad Gateway {auth}</body></html>", "text/html")
        elif route == "moved":
            self.send_response(302)
            self.send_header("Location", "http://elsewhere.example/search")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif route == "nolist":
            self._reply(200, json.dumps({"hits": {"total": 0}, "took": 3}))
        else:
            self._reply(404, "{}")

    def do_GET(self):
        self._handle(None)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self._handle(json.loads(self.rfile.read(length) or b"{}"))


class SearchServer:
    def __enter__(self) -> SearchServer:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True  # a slow handler must not hold up shutdown
        self.httpd.requests = []
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def requests(self) -> list[dict]:
        return self.httpd.requests


@pytest.fixture
def server():
    with SearchServer() as srv:
        yield srv


@pytest.fixture
def keyed(monkeypatch):
    monkeypatch.setenv("TEST_SEARCH_KEY", SECRET)
    return "TEST_SEARCH_KEY"


# --- results -------------------------------------------------------------------------------


async def test_get_results_become_passages(server, keyed):
    provider = HTTPSearchProvider(f"{server.base}/api/search", keyed, name="web")
    passages = await provider.search("Varnholt bridge", k=5)
    assert [p.document for p in passages] == [
        "https://en.example.org/wiki/Varnholt_bridge", "https://en.example.org/wiki/Quellen",
        "https://example.com/lindqvist"]
    first = passages[0]
    assert first == Passage(text="The Varnholt bridge was completed in 1911.", document=first.document,
                            title="Varnholt bridge - Wikipedia", location=first.document, chunk_id=None,
                            score=1.0, collection=None, start=None, end=None)
    assert passages[2].text == "Lindqvist foundry"  # no snippet: the title is the text
    [request] = server.requests
    assert request["method"] == "GET" and request["params"] == {"q": "Varnholt bridge", "k": "5"}
    assert request["headers"]["authorization"] == f"Bearer {SECRET}"


async def test_k_limits_the_results(server):
    provider = HTTPSearchProvider(f"{server.base}/search", name="web")
    assert len(await provider.search("x", k=1)) == 1
    assert "authorization" not in server.requests[0]["headers"]  # no key configured: none sent


async def test_post_with_configured_fields_and_dotted_paths(server, keyed):
    provider = HTTPSearchProvider(
        f"{server.base}/nested", keyed, name="corp", method="POST", query_param="query", count_param="limit",
        params={"lang": "en"}, key_header="X-Api-Key", key_prefix="", results_field="data.items",
        title_field="headline", url_field="link.href", snippet_field="summary",
    )
    passages = await provider.search("bridge", k=2)
    assert [p.title for p in passages] == ["Varnholt bridge - Wikipedia", "Quellen river"]
    [request] = server.requests
    assert request["body"] == {"lang": "en", "query": "bridge", "limit": 2}
    assert request["headers"]["x-api-key"] == SECRET and "authorization" not in request["headers"]


async def test_top_level_list(server):
    provider = HTTPSearchProvider(f"{server.base}/toplevel", name="flat", results_field="", count_param=None)
    assert len(await provider.search("x")) == 3
    assert server.requests[0]["params"] == {"q": "x"}


def test_sync_and_async_paths_agree(server):
    import asyncio

    provider = HTTPSearchProvider(f"{server.base}/search", name="web")
    assert provider.search_sync("bridge", k=3) == asyncio.run(provider.search("bridge", k=3))


# --- failures ------------------------------------------------------------------------------


@pytest.fixture
def shown(caplog):
    """Every text a user could see of a failure: the error in each form, the log, the traceback."""
    caplog.set_level(logging.DEBUG)

    def texts(err, provider) -> list[str]:
        return [str(err), repr(err), json.dumps(err.to_dict()), repr(provider), caplog.text,
                "".join(traceback.format_exception(err))]

    return texts


@pytest.mark.parametrize(
    "route, expected, retryable",
    [
        ("e500", "search provider 'web': HTTP 500: ", True),
        ("e401", "search provider 'web': HTTP 401: ", False),
        ("garbage", "search provider 'web': the answer is not JSON: ", False),
        ("nolist", "search provider 'web': the answer has no list of results at 'results'; its keys: hits, took",
         False),
        # A redirect is not followed: a custom key header would go along to the other host.
        ("moved", "search provider 'web': HTTP 302: redirected; set the url to the final address", False),
    ],
)
async def test_failures_name_the_provider_and_never_show_the_key(server, keyed, shown, route, expected, retryable):
    provider = HTTPSearchProvider(f"{server.base}/{route}", keyed, name="web")
    with pytest.raises(SearchError) as info:
        await provider.search("bridge")
    err = info.value
    assert str(err).startswith(expected)
    assert err.provider == "web" and err.retryable is retryable
    assert err.__context__ is None and err.__cause__ is None
    # The server echoed the Authorization header into its answer; we scrub it.
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"
    for text in shown(err, provider):
        assert SECRET not in text
    if route in ("e500", "e401", "garbage"):
        assert "[key]" in str(err)


async def test_timeout(server, keyed, shown):
    provider = HTTPSearchProvider(f"{server.base}/slow", keyed, name="web", timeout=0.3)
    started = time.perf_counter()
    with pytest.raises(SearchError) as info:
        await provider.search("bridge")
    assert time.perf_counter() - started < 1.5
    assert str(info.value) == "search provider 'web': no answer within 0.3 s"
    assert info.value.retryable and info.value.__context__ is None
    assert all(SECRET not in text for text in shown(info.value, provider))


async def test_unreachable_service():
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    provider = HTTPSearchProvider(f"http://127.0.0.1:{port}/search", name="web", timeout=2)
    with pytest.raises(SearchError, match=rf"search provider 'web': cannot reach 127.0.0.1:{port} \(ConnectError\)"):
        await provider.search("bridge")


async def test_missing_key_names_the_variable(server):
    provider = HTTPSearchProvider(f"{server.base}/search", "NOT_SET_SEARCH_KEY", name="web")
    with pytest.raises(SearchError, match="needs a key: set NOT_SET_SEARCH_KEY or run `manyminds keys set web`"):
        await provider.search("bridge")
    assert server.requests == []


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match=r"\[search.web\]: snipet_field: Extra inputs"):
        HTTPSearchProvider("http://127.0.0.1:1/s", name="web", snipet_field="x")
    with pytest.raises(ConfigError, match="url must start with http"):
        HTTPSearchProvider("ftp://example.com/s", name="web")
    with pytest.raises(ConfigError, match="method"):
        HTTPSearchProvider("http://127.0.0.1:1/s", name="web", method="DELETE")


# --- settings and plugins ------------------------------------------------------------------


def write_settings(home, text: str):
    (home / "settings.toml").write_text(text)
    return load_settings()


async def test_providers_from_the_settings_file(manyminds_home, server, keyed):
    settings = write_settings(manyminds_home, f"""
[search.web]
url = "{server.base}/search"
key_env = "TEST_SEARCH_KEY"

[search.corp]
provider = "http"
url = "{server.base}/nested"
results_field = "data.items"
title_field = "headline"
url_field = "link.href"
snippet_field = "summary"
""")
    providers = build_search_providers(settings)
    assert sorted(providers) == ["corp", "web"]
    assert all(isinstance(p, HTTPSearchProvider) for p in providers.values())
    passages, errors = await search_all(providers, "bridge", k=2)
    assert errors == {} and len(passages) == 4
    sent = {r["path"]: r["headers"].get("authorization") for r in server.requests}
    assert sent == {"/search": f"Bearer {SECRET}", "/nested": None}


def test_settings_errors(manyminds_home):
    settings = write_settings(manyminds_home, '[search.web]\nprovider = "nosuch"\nurl = "http://x"\n')
    with pytest.raises(ConfigError, match=r"\[search.web\]: unknown search provider type 'nosuch' \(known: .*http"):
        build_search_providers(settings)
    settings = write_settings(manyminds_home, '[search.web]\nurl = "http://x"\nresult_field = "r"\n')
    with pytest.raises(ConfigError, match="result_field"):
        build_search_providers(settings)
    settings = write_settings(manyminds_home, "[search.web]\nkey_env = 'K'\n")
    with pytest.raises(ConfigError, match="url is required"):
        build_search_providers(settings)
    assert build_search_providers(load_settings(manyminds_home / "absent.toml")) == {}


class Canned(SearchProvider):
    def __init__(self, name: str, answer: str | None) -> None:
        self.name, self.answer = name, answer

    async def search(self, query: str, *, k: int = 5) -> list[Passage]:
        if self.answer is None:
            raise RuntimeError("the plugin's own failure")
        return [Passage(text=self.answer, document=f"canned://{self.name}", title=None, location="canned",
                        chunk_id=None, score=1.0, collection=None, start=None, end=None)]


async def test_registered_plugin_type_and_search_all_keeps_going(manyminds_home, server):
    register_search_provider("canned", lambda name, options, settings: Canned(name, options.get("answer")))
    settings = write_settings(manyminds_home, f"""
[search.good]
provider = "canned"
answer = "from the plugin"

[search.broken]
provider = "canned"

[search.down]
url = "{server.base}/e500"
""")
    providers = build_search_providers(settings)
    passages, errors = await search_all(providers, "anything")
    assert [p.text for p in passages] == ["from the plugin"]
    assert set(errors) == {"broken", "down"}
    assert str(errors["broken"]) == "search provider 'broken': RuntimeError: the plugin's own failure"
    assert errors["down"].status_code == 500
