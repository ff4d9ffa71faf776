"""The evaluation harness: datasets from registry packages, graders, metrics and the report.

Datasets: `datasets` (the registry, specs, items), `fetch` (the download into the cache),
`loading` (cached files → sampled items). A run: `runner` (the loop), `plan` (strategy labels →
phases), `items` (prompts and views), `cache` (calls shared across strategies). The stored runs
and the CLI (`manyminds eval …`) build on these; each module's docstring says what it decides
and why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:
    from .datasets import (
        DATASETS,
        DatasetError,
        DatasetMissing,
        DatasetSpec,
        Item,
        UnknownDataset,
        dataset_names,
    )
    from .fetch import fetch_dataset
    from .loading import load_dataset, sample_items
    from .graders import Grade, grade, judge_agreement, judge_grade
    from .metrics import (
        accuracy,
        auroc,
        bootstrap_ci,
        confidently_wrong_rate,
        ece,
        paired_lift,
        reliability_bins,
        summarise,
    )
    from .records import ItemResult
    from .report import write_report

# Lazy, like `manyminds/__init__.py`: importing one submodule (e.g. `eval.schema`, which every
# `open_db` imports for its migration) must not import the rest of the package.
_EXPORTS = {
    "DATASETS": "datasets",
    "DatasetError": "datasets",
    "DatasetMissing": "datasets",
    "DatasetSpec": "datasets",
    "Item": "datasets",
    "UnknownDataset": "datasets",
    "dataset_names": "datasets",
    "fetch_dataset": "fetch",
    "load_dataset": "loading",
    "sample_items": "loading",
    "Grade": "graders",
    "grade": "graders",
    "judge_agreement": "graders",
    "judge_grade": "graders",
    "accuracy": "metrics",
    "auroc": "metrics",
    "bootstrap_ci": "metrics",
    "confidently_wrong_rate": "metrics",
    "ece": "metrics",
    "paired_lift": "metrics",
    "reliability_bins": "metrics",
    "summarise": "metrics",
    "ItemResult": "records",
    "write_report": "report",
}

__all__ = [
    "DATASETS",
    "DatasetError",
    "DatasetMissing",
    "DatasetSpec",
    "Grade",
    "Item",
    "ItemResult",
    "UnknownDataset",
    "accuracy",
    "auroc",
    "bootstrap_ci",
    "confidently_wrong_rate",
    "dataset_names",
    "ece",
    "fetch_dataset",
    "grade",
    "judge_agreement",
    "judge_grade",
    "load_dataset",
    "paired_lift",
    "reliability_bins",
    "sample_items",
    "summarise",
    "write_report",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
