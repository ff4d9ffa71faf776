"""The llama.cpp server that runs each bundled local model, and its lifecycle.

Each model file is served by one child process (`python -m manyminds.models.local.server …`)
that runs xllamacpp — llama.cpp's own HTTP server, in-process — on 127.0.0.1 with several
parallel slots. A child process rather than a thread in ours, because:
  * llama.cpp logs a lot from C++ straight to file descriptor 2; in a child that descriptor is
    a log file under `user_dir()/logs/`, so nothing reaches the user's terminal;
  * a crash in C++ takes down the child, not the user's program;
  * the child can be killed when it hangs.
The child stops on SIGTERM and also by itself when its parent disappears (it polls
`os.getppid()`), so a killed manyminds never leaves a model server behind.

The parent starts one server per model on first use (`ensure_server`) and reuses it for every
call in the process; two concurrent first calls start one server. Each server gets a random API
key, so other local users and web pages cannot use it. `shutdown_all` (also run at exit) stops
them: terminate → wait → kill.

`MANYMINDS_LOCAL_SERVER_URL_<KEY>` (KEY e.g. `SMOLLM2`, `GEMMA3_270M`) points a model at a
server that is already running (benchmarks, tests, a shared machine); its key, if it has one,
goes in `MANYMINDS_LOCAL_SERVER_KEY_<KEY>`.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import http.client
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ...errors import ConfigError, ModelError
from .catalog import LocalModelSpec, get_spec
from .install import locate_model

_KEY_ENV = "MANYMINDS_LOCAL_SERVER_KEY"  # the child reads its API key from here, not from argv (visible in ps)
_URL_OVERRIDE_ENV = "MANYMINDS_LOCAL_SERVER_URL_"
_KEY_OVERRIDE_ENV = "MANYMINDS_LOCAL_SERVER_KEY_"
_START_TIMEOUT_ENV = "MANYMINDS_LOCAL_START_TIMEOUT"
_THREADS_ENV = "MANYMINDS_LOCAL_THREADS"
_LOGS_KEPT = 10  # per model: old server logs beyond this are deleted at the next start


class LocalServerError(ModelError):
    """A local model server could not be started or died."""



# --- serving: the parent side -----------------------------------------------------------


@dataclass
class LocalServer:
    """One running llama.cpp server (ours, or an external one named by an env variable)."""

    key: str
    url: str  # http://127.0.0.1:PORT, no trailing slash
    api_key: str | None = field(repr=False)
    model_path: str = ""
    process: subprocess.Popen | None = None  # None: an external server we do not own
    log_path: Path | None = None
    owner_pid: int = field(default_factory=os.getpid)
    start_seconds: float = 0.0

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL (`…/v1`)."""
        return self.url + "/v1"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is None or self.process.poll() is None

    def rss_mb(self) -> float | None:
        """Resident memory of the server process in MB (Linux only; None elsewhere)."""
        if self.process is None:
            return None
        try:
            text = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return None

    def stop(self, timeout: float = 5.0) -> None:
        """terminate → wait → kill. Only the process that started a server stops it (a forked
        worker inheriting our table must not kill its parent's servers)."""
        proc = self.process
        if proc is None or os.getpid() != self.owner_pid or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout)


_servers: dict[str, LocalServer] = {}
_table_lock = threading.Lock()
_key_locks: dict[str, threading.Lock] = {}


def running_servers() -> dict[str, LocalServer]:
    """The servers this process uses now, by model key (a copy)."""
    with _table_lock:
        return {k: s for k, s in _servers.items() if s.alive()}


def _usable(server: LocalServer | None) -> bool:
    return server is not None and server.owner_pid == os.getpid() and server.alive()


async def ensure_server(key: str) -> str:
    """The OpenAI-style base URL (`http://127.0.0.1:PORT/v1`) of a running server for `key`,
    starting it on first use."""
    return (await get_server(key)).base_url


async def get_server(key: str) -> LocalServer:
    """Like `ensure_server`, but the whole handle (URL, API key, process, log file)."""
    server = _servers.get(key)
    if _usable(server):
        return server  # type: ignore[return-value]
    # Starting blocks for about a second (model load + health polling); do it in a thread
    # under a threading lock, which — unlike an asyncio.Lock — also works across event loops
    # (the sync API runs each call in its own loop) and across threads.
    return await asyncio.to_thread(get_server_sync, key)


def ensure_server_sync(key: str) -> str:
    return get_server_sync(key).base_url


def get_server_sync(key: str) -> LocalServer:
    spec = get_spec(key)
    with _table_lock:
        lock = _key_locks.setdefault(key, threading.Lock())
    with lock:
        server = _servers.get(key)
        if _usable(server):
            return server  # type: ignore[return-value]
        override = os.environ.get(_URL_OVERRIDE_ENV + spec.env_suffix)
        if override:
            url = override.rstrip("/").removesuffix("/v1")
            server = LocalServer(key, url, os.environ.get(_KEY_OVERRIDE_ENV + spec.env_suffix))
        else:
            server = _start(spec, locate_model(key))
        with _table_lock:
            _servers[key] = server
        return server


def _threads() -> int:
    env = os.environ.get(_THREADS_ENV)
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ConfigError(f"{_THREADS_ENV} must be a whole number, not {env!r}") from None
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 2
    # The default council runs two servers at once, and llama.cpp's threads spin while they
    # wait: oversubscribing the cores is far worse than leaving one idle. Measured on 2 cores,
    # cold `manyminds ask` fan-out: 1.4 s with one thread per server, 4.8–6.4 s with two.
    # Beyond that, llama.cpp gains little past 4 threads for models this small.
    return max(1, min(4, cpus // 2))


def _start_timeout() -> float:
    try:
        return float(os.environ.get(_START_TIMEOUT_ENV, "60"))
    except ValueError:
        raise ConfigError(f"{_START_TIMEOUT_ENV} must be a number of seconds") from None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_path(key: str) -> Path:
    from ...config import user_dir

    logs = user_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    old = sorted(logs.glob(f"local-{key}-*.log"), key=lambda p: p.stat().st_mtime)
    for stale in old[: max(0, len(old) - _LOGS_KEPT + 1)]:
        stale.unlink(missing_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return logs / f"local-{key}-{stamp}-{os.getpid()}-{secrets.token_hex(2)}.log"


def log_tail(path: Path | None, lines: int = 15) -> str:
    if path is None:
        return ""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 8192))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _start(spec: LocalModelSpec, model_path: Path, attempts: int = 3) -> LocalServer:
    """Start a child server, retrying on another port if ours was taken meanwhile."""
    last: LocalServerError | None = None
    for _ in range(attempts):
        try:
            return _start_once(spec, model_path)
        except _PortTaken as exc:
            last = exc.error
    assert last is not None
    raise last


class _PortTaken(Exception):
    def __init__(self, error: LocalServerError):
        self.error = error


def _start_once(spec: LocalModelSpec, model_path: Path) -> LocalServer:
    port = _free_port()
    api_key = secrets.token_urlsafe(24)
    log_path = _log_path(spec.key)
    command = [
        sys.executable, "-m", "manyminds.models.local.server",
        "--model-path", str(model_path), "--port", str(port),
        "--parallel", str(spec.n_parallel), "--ctx", str(spec.ctx_per_slot * spec.n_parallel),
        "--threads", str(_threads()), "--parent-pid", str(os.getpid()),
    ]  # fmt: skip
    env = dict(os.environ)
    env[_KEY_ENV] = api_key
    # The child must import the same manyminds as we do, also when we run from a source tree.
    # Not for an installed copy: a site-packages dir on PYTHONPATH would go before the stdlib.
    src_root = str(Path(__file__).resolve().parents[3])
    if src_root not in _site_dirs():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src_root, env.get("PYTHONPATH", "")) if p)
    started = time.perf_counter()
    with open(log_path, "ab") as log:
        log.write(f"# manyminds: {' '.join(command)}\n".encode())
        log.flush()
        # Own session: a Ctrl-C in the terminal reaches only us, and we stop the child in order.
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, close_fds=True, start_new_session=True,
        )  # fmt: skip
    server = LocalServer(
        spec.key, f"http://127.0.0.1:{port}", api_key, str(model_path), process, log_path
    )
    try:
        _wait_ready(server, _start_timeout())
    except BaseException:
        server.stop(timeout=2.0)
        raise
    server.start_seconds = time.perf_counter() - started
    return server


def _site_dirs() -> set[str]:
    import site

    dirs = set(getattr(site, "getsitepackages", lambda: [])())
    dirs.add(site.getusersitepackages())
    return {str(Path(d).resolve()) for d in dirs}


def _http_get(url: str, path: str, api_key: str | None = None, timeout: float = 2.0) -> tuple[int, bytes]:
    """A bare GET on loopback: http.client ignores HTTP(S)_PROXY, which must not apply here."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _wait_ready(server: LocalServer, timeout: float) -> None:
    """Poll /health until it answers 200 (it answers 503 while the model loads), then check that
    the server on that port is ours: another program could have taken the port between our
    probe and the child's bind."""
    deadline = time.monotonic() + timeout
    proc = server.process
    assert proc is not None
    model_name = f"local/{server.key}"
    while True:
        code = proc.poll()
        if code is not None:
            tail = log_tail(server.log_path)
            error = LocalServerError(
                f"the local model server exited with status {code} while starting. "
                f"Log {server.log_path}:\n{tail}",
                provider="local", model=model_name,
            )  # fmt: skip
            if "couldn't bind" in tail:
                raise _PortTaken(error)
            raise error
        try:
            status, _ = _http_get(server.url, "/health", timeout=1.0)
        except OSError:
            status = 0
        if status == 200:
            break
        if time.monotonic() > deadline:
            raise LocalServerError(
                f"the local model server did not become ready within {timeout:.0f} s "
                f"(set {_START_TIMEOUT_ENV} to wait longer). Log {server.log_path}:\n"
                f"{log_tail(server.log_path)}",
                provider="local", model=model_name,
            )  # fmt: skip
        time.sleep(0.05)
    try:
        status, body = _http_get(server.url, "/v1/models", server.api_key)
        ours = status == 200 and server.model_path in body.decode("utf-8", "replace")
    except OSError:
        ours = False
    if not ours:
        raise _PortTaken(
            LocalServerError(
                f"another program answered on port {server.port}", provider="local", model=model_name
            )
        )


def shutdown_all(timeout: float = 5.0) -> None:
    """Stop every server this process started (external ones are only forgotten)."""
    with _table_lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.stop(timeout)


async def ashutdown_all(timeout: float = 5.0) -> None:
    await asyncio.to_thread(shutdown_all, timeout)


atexit.register(shutdown_all)


# --- serving: the child side ------------------------------------------------------------


def serve(
    model_path: str, port: int, *, parallel: int, ctx: int, threads: int, parent_pid: int | None
) -> int:
    """Run llama.cpp's server until SIGTERM/SIGINT/SIGHUP or until the parent is gone."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, lambda *_: stop.set())
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = model_path
    params.n_parallel = parallel
    params.n_ctx = ctx
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.ui = False  # no web UI on a port nobody is meant to browse
    api_key = os.environ.pop(_KEY_ENV, "")
    if api_key:
        params.api_keys = [api_key]
    try:
        server = xllamacpp.Server(params)
    except RuntimeError as exc:  # bind or load failure; llama.cpp logged the details above
        print(f"manyminds: server failed to start: {exc}", file=sys.stderr, flush=True)
        return 3
    print(f"manyminds: serving {model_path} on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    try:
        while not stop.wait(0.5):
            # Reparented (to init or a subreaper): the parent died without stopping us.
            if parent_pid is not None and os.getppid() != parent_pid:
                print("manyminds: parent process gone, exiting", file=sys.stderr, flush=True)
                break
    finally:
        # The destructor stops the HTTP server cleanly when idle, but waits forever for a
        # request in flight (seen: SIGTERM during a generation). An orphan has nobody to kill
        # it, so arm the kernel's default SIGALRM action (terminate) as a watchdog first: it
        # works even if the destructor holds the GIL.
        if hasattr(signal, "SIGALRM"):
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(1)
        del server
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m manyminds.models.local.server")
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--ctx", type=int, default=8192, help="total context, shared by the slots")
    parser.add_argument("--threads", type=int, default=_threads())
    parser.add_argument("--parent-pid", type=int, default=None)
    args = parser.parse_args(argv)
    return serve(
        args.model_path, args.port, parallel=args.parallel, ctx=args.ctx, threads=args.threads,
        parent_pid=args.parent_pid,
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "LocalServer",
    "LocalServerError",
    "ashutdown_all",
    "ensure_server",
    "ensure_server_sync",
    "get_server",
    "get_server_sync",
    "log_tail",
    "running_servers",
    "shutdown_all",
]
