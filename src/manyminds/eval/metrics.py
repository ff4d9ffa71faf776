"""The figures of an evaluation, in plain numpy: accuracy with a bootstrap interval, how well
confidence separates right from wrong answers (AUROC), how well it is calibrated (ECE,
reliability bins), how often a strategy is confidently wrong, and the paired lift of one
strategy over another.

Conventions:
- `correct` is a sequence of bools; `confidences` are in [0, 1] (None: the strategy gave none;
  such items are left out of the confidence metrics, and `n_confidence` says how many were in).
- AUROC uses score = confidence and positive = correct: the probability that a randomly chosen
  right answer got a higher confidence than a randomly chosen wrong one (ties count half). Read
  as "confidence as a detector of wrong answers" it is the same number: 0.5 is no better than a
  coin, 1.0 means every wrong answer had a lower confidence than every right one.
- Intervals are percentile bootstraps, seeded, so a report is reproducible to the digit.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .records import ItemResult

__all__ = [
    "ItemResult",
    "accuracy",
    "auroc",
    "bootstrap_ci",
    "confidently_wrong_rate",
    "ece",
    "paired_by_item",
    "paired_lift",
    "reliability_bins",
    "risk_coverage",
    "aurc",
    "slices",
    "strategy_stats",
    "summarise",
]

N_BOOT = 2000
LEVEL = 0.95
CONFIDENT = 0.8


def accuracy(correct: Sequence[bool]) -> float:
    values = _bools(correct)
    if values.size == 0:
        raise ValueError("accuracy of no items")
    return float(values.mean())


def bootstrap_ci(
    values: Sequence[float],
    stat: Callable[[np.ndarray], float] = np.mean,
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = LEVEL,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `stat` over `values` (resampled with replacement,
    `n_boot` times, from a generator seeded with `seed`)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("bootstrap of no values")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, not {level}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, data.size, size=(n_boot, data.size))
    if stat is np.mean:
        stats = data[idx].mean(axis=1)  # vectorised: the common case, 2000 × n in one go
    else:
        stats = np.array([stat(data[row]) for row in idx], dtype=float)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return float(low), float(high)


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """P(score of a random positive > score of a random negative), ties counted half — the
    Mann–Whitney U statistic over n_pos × n_neg. None when either class is empty."""
    s = np.asarray(scores, dtype=float)
    y = _bools(labels)
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores but {y.size} labels")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _midranks(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def _midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size, dtype=float)
    sorted_vals = values[order]
    i = 0
    while i < values.size:
        j = i
        while j + 1 < values.size and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _bin_index(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bins over [0, 1]; a confidence on an edge goes to the bin above it (0.3 in
    [0.3, 0.4)), and 1.0 to the last bin. Rounding first keeps 0.7 * 10 = 7.000000000000001 and
    0.3 * 10 from landing on either side of an edge by float noise."""
    if conf.size and (np.nanmin(conf) < 0 or np.nanmax(conf) > 1):
        raise ValueError("confidences must lie in [0, 1]")
    return np.minimum(np.floor(np.round(conf * n_bins, 9)).astype(int), n_bins - 1)


def reliability_bins(
    confidences: Sequence[float | None], correct: Sequence[bool], n_bins: int = 10
) -> list[dict[str, Any]]:
    """One dict per equal-width bin: lo, hi, count, mean_confidence, accuracy (the last two
    None for an empty bin). Items without a confidence are left out."""
    conf, ok = _with_confidence(confidences, correct)
    idx = _bin_index(conf, n_bins)
    bins = []
    for b in range(n_bins):
        mask = idx == b
        count = int(mask.sum())
        bins.append({
            "lo": b / n_bins, "hi": (b + 1) / n_bins, "count": count,
            "mean_confidence": float(conf[mask].mean()) if count else None,
            "accuracy": float(ok[mask].mean()) if count else None,
        })  # fmt: skip
    return bins


def ece(confidences: Sequence[float | None], correct: Sequence[bool], n_bins: int = 10) -> float | None:
    """Expected calibration error: Σ_bins (count / N) · |accuracy − mean confidence|, over the
    items that have a confidence. None when none has."""
    bins = reliability_bins(confidences, correct, n_bins)
    total = sum(b["count"] for b in bins)
    if total == 0:
        return None
    return float(sum(b["count"] / total * abs(b["accuracy"] - b["mean_confidence"]) for b in bins if b["count"]))


def risk_coverage(confidences: Sequence[float | None], correct: Sequence[bool]) -> list[dict[str, float]]:
    """Abstaining below a threshold: for each distinct confidence (highest first), the share of
    items answered at or above it (coverage) and the share of those answered wrongly (risk).
    Items without a confidence are left out; tied confidences are accepted together."""
    conf, ok = _with_confidence(confidences, correct)
    if conf.size == 0:
        return []
    order = np.argsort(-conf, kind="mergesort")
    conf, ok = conf[order], ok[order]
    points, wrong = [], 0
    for i in range(conf.size):
        wrong += int(not ok[i])
        if i + 1 == conf.size or conf[i + 1] != conf[i]:
            points.append({"threshold": float(conf[i]), "coverage": (i + 1) / conf.size, "risk": wrong / (i + 1)})
    return points


def aurc(confidences: Sequence[float | None], correct: Sequence[bool]) -> float | None:
    """Area under the risk–coverage curve: the mean over k = 1…N of the risk when the k most
    confident answers are kept (ties kept together, each at its group's risk). Lower is better;
    with no signal it is the error rate. None when no item has a confidence."""
    points = risk_coverage(confidences, correct)
    if not points:
        return None
    area, previous = 0.0, 0.0
    for p in points:
        area += (p["coverage"] - previous) * p["risk"]
        previous = p["coverage"]
    return float(area)


def confidently_wrong_rate(
    confidences: Sequence[float | None], correct: Sequence[bool], threshold: float = CONFIDENT
) -> float:
    """The share of *all* items answered wrongly with confidence ≥ `threshold` (an item without
    a confidence is never confidently wrong, but counts in the denominator)."""
    ok = _bools(correct)
    if len(confidences) != ok.size:
        raise ValueError(f"{len(confidences)} confidences but {ok.size} results")
    if ok.size == 0:
        raise ValueError("rate of no items")
    hits = sum(1 for c, good in zip(confidences, ok) if c is not None and c >= threshold and not good)
    return hits / ok.size


def paired_lift(
    a_correct: Sequence[bool],
    b_correct: Sequence[bool],
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = LEVEL,
) -> tuple[float, float, float]:
    """Accuracy of A minus accuracy of B on the same items, with a paired bootstrap interval:
    item indices are resampled once and both strategies scored on the same resample, so the
    between-item variance cancels and only their disagreements count."""
    a, b = _bools(a_correct), _bools(b_correct)
    if a.shape != b.shape:
        raise ValueError(f"paired results differ in length: {a.size} and {b.size}")
    diff = a.astype(float) - b.astype(float)
    low, high = bootstrap_ci(diff, n_boot=n_boot, seed=seed, level=level)
    return float(diff.mean()), low, high


def _bools(values: Iterable[bool]) -> np.ndarray:
    return np.asarray([bool(v) for v in values], dtype=bool)


def _with_confidence(confidences: Sequence[float | None], correct: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    ok = _bools(correct)
    if len(confidences) != ok.size:
        raise ValueError(f"{len(confidences)} confidences but {ok.size} results")
    keep = np.array([c is not None for c in confidences], dtype=bool)
    conf = np.array([c for c in confidences if c is not None], dtype=float)
    return conf, ok[keep]


# --- over ItemResults --------------------------------------------------------------------


def strategy_stats(
    records: Sequence[ItemResult],
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = LEVEL,
    threshold: float = CONFIDENT,
    n_bins: int = 10,
) -> dict[str, Any]:
    """Every figure for one strategy's records (one slice)."""
    if not records:
        raise ValueError("no records")
    correct = [r.correct for r in records]
    confidences = [r.confidence for r in records]
    conf, ok = _with_confidence(confidences, correct)
    low, high = bootstrap_ci(np.asarray(correct, dtype=float), n_boot=n_boot, seed=seed, level=level)
    costs = [r.cost_usd for r in records]
    return {
        "n": len(records),
        "accuracy": accuracy(correct),
        "ci_low": low,
        "ci_high": high,
        "auroc": auroc(conf, ok) if conf.size else None,
        "ece": ece(confidences, correct, n_bins),
        "aurc": aurc(confidences, correct),
        "confidently_wrong": confidently_wrong_rate(confidences, correct, threshold),
        "n_confidence": int(conf.size),
        "n_errors": sum(1 for r in records if r.error),
        "n_grade_errors": sum(1 for r in records if r.grade_error),
        "tokens_per_q": float(np.mean([r.tokens for r in records])),
        "cost_per_q": None if any(c is None for c in costs) else float(np.mean(costs)),
        "seconds_per_q": float(np.mean([r.seconds for r in records])),
    }


def slices(records: Sequence[ItemResult]) -> list[tuple[str, list[ItemResult]]]:
    """The slices a report shows, in order: "all" (only when there are several datasets), each
    dataset, then each category of a dataset that has two or more ("simpleqa / Art")."""
    datasets: dict[str, list[ItemResult]] = {}
    for r in records:
        datasets.setdefault(r.dataset, []).append(r)
    out: list[tuple[str, list[ItemResult]]] = []
    if len(datasets) > 1:
        out.append(("all", list(records)))
    out += list(datasets.items())
    for name, rows in datasets.items():
        cats: dict[str, list[ItemResult]] = {}
        for r in rows:
            if r.category:
                cats.setdefault(r.category, []).append(r)
        if len(cats) >= 2:
            out += [(f"{name} / {cat}", cats[cat]) for cat in sorted(cats)]
    return out


def summarise(records: Sequence[ItemResult], **options: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """slice → strategy → `strategy_stats`, for every slice of `slices(records)`; strategies in
    the order they first appear. `options` go to `strategy_stats` (n_boot, seed, level, …)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for label, rows in slices(records):
        by_strategy: dict[str, list[ItemResult]] = {}
        for r in rows:
            by_strategy.setdefault(r.strategy, []).append(r)
        out[label] = {name: strategy_stats(rs, **options) for name, rs in by_strategy.items()}
    return out


def paired_by_item(records: Sequence[ItemResult], a: str, b: str) -> tuple[list[bool], list[bool]]:
    """The `correct` flags of strategies `a` and `b` on the items both answered, aligned by
    (dataset, item_id). When a strategy has several records for one item the first counts."""
    first: dict[str, dict[tuple[str, str], bool]] = {a: {}, b: {}}
    for r in records:
        if r.strategy in first:
            first[r.strategy].setdefault((r.dataset, r.item_id), r.correct)
    common = [key for key in first[a] if key in first[b]]
    return [first[a][k] for k in common], [first[b][k] for k in common]
