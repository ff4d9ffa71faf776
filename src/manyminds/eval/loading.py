"""Loading a dataset: its cached files read into `Item`s, filtered by category and sampled.

Sampling (`sample_items`): with categories, the limit is split over categories in proportion to
their size (largest remainder), and each category contributes a prefix of its own seeded
shuffle. So the same (limit, seed) gives the same items, and a larger limit gives a superset of
a smaller one whenever no category's share shrinks (largest remainder can, rarely, take one item
from a category as the limit grows: the Alabama paradox).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..errors import InputError
from .datasets import DatasetSpec, Item, get_spec, parse_items
from .fetch import data_path, dataset_missing, fetch_dataset, is_fetched

__all__ = ["OFFLINE_ENV", "load_dataset", "sample_items"]

OFFLINE_ENV = "MANYMINDS_OFFLINE"


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
            raise dataset_missing(spec, "its files are not in the cache and fetching is off (offline)")
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
