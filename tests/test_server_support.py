"""Shared by the server tests (no tests here): scripted councils, and a real uvicorn server on a
free loopback port in a thread (`LiveServer`) or a `manyminds serve` subprocess (`ServeProcess`).

Imported by the test_server*.py / test_jobs.py modules (pytest puts tests/ on sys.path)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from manyminds.config import CouncilSettings, MemberSettings, Settings
from manyminds.testing import ScriptedModel

SCRIPTS = {
    "alpha": "William Shakespeare",
    "beta": "Shakespeare wrote Hamlet.",
    "gamma": "Christopher Marlowe",
    "chair": "William Shakespeare wrote Hamlet.",
}


def scripted_settings(**councils: CouncilSettings) -> Settings:
    """Settings with a scripted council `trio` (the default: alpha and beta say Shakespeare,
    gamma Marlowe, the chair Shakespeare), `duo`, and any `councils` given."""
    for name, script in SCRIPTS.items():
        ScriptedModel.register_script(name, script)

    def council(names: list[str], quorum: int) -> CouncilSettings:
        return CouncilSettings(
            members=[MemberSettings(name=n, model=f"scripted/{n}", temperature=0.0, max_tokens=100) for n in names],
            chair="scripted/chair", quorum=quorum, timeout=10, retries=0, short_answer="heuristic",
        )

    all_councils = {"trio": council(["alpha", "beta", "gamma"], 2), "duo": council(["alpha", "beta"], 1), **councils}
    return Settings(default_council="trio", councils=all_councils)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`with LiveServer(app) as srv: httpx.get(srv.url + "/healthz")` — uvicorn in a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.app = app
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    @property
    def state(self) -> Any:
        return self.app.state.mm


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(interval)


def read_sse(response: httpx.Response) -> list[dict[str, Any]]:
    """The messages of an SSE response as [{"event", "id", "data"}] (data parsed as JSON)."""
    messages, current = [], {}
    for line in response.iter_lines():
        if line == "":
            if current:
                messages.append(current)
            current = {}
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            current[field] = json.loads(value) if field == "data" and value.startswith("{") else value
    if current:
        messages.append(current)
    return messages


def write_fake_settings(home: Path, base_url: str, members: list[str], *, council: str = "fake", quorum: int = 1,
                        timeout: float = 30, key_env: str | None = None) -> None:
    """A settings.toml whose default council asks `members` on a FakeOpenAIServer."""
    lines = [f'default_council = "{council}"', "", "[providers.fake]", f'base_url = "{base_url}"']
    if key_env:
        lines += [f'key_env = "{key_env}"', "needs_key = true"]
    lines += ["", f"[councils.{council}]", f"quorum = {quorum}", f"timeout = {timeout}", "retries = 0",
              'short_answer = "heuristic"']
    for m in members:
        lines += [f"[[councils.{council}.members]]", f'name = "{m}"', f'model = "fake/{m}"']
    (home / "settings.toml").write_text("\n".join(lines) + "\n")


class ServeProcess:
    """`manyminds serve` in a subprocess, on a free port, with the test's environment."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = ["--port", str(self.port), *args]
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "ServeProcess":
        # Files, not pipes: a server that logs more than a pipe holds would block on a full pipe.
        self.out, self.err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-m", "manyminds.cli", "serve", *self.args], env=self.env,
                                     stdout=self.out, stderr=self.err)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited {self.proc.returncode}: {self.stop()[1][-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("serve did not come up")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no lifespan shutdown."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> tuple[str, str]:
        """Terminate (SIGTERM: a clean shutdown) and return (stdout, stderr)."""
        if self.proc is None:
            return "", ""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.output()

    def output(self) -> tuple[str, str]:
        texts = []
        for f in (self.out, self.err):
            f.seek(0)
            texts.append(f.read().decode(errors="replace"))
        return texts[0], texts[1]

    def __enter__(self) -> "ServeProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
