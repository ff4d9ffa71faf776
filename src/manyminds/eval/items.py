"""What the harness asks: the prompt for an item, and the items of a dataset or of a *view*.

Views: a dataset asked another way, for councils of small models that score zero on the
open-ended original. They live here, not in datasets.py, because they are framings of the
question (what the harness asks), not new data; each item keeps its source id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..errors import InputError

PROMPT_SUFFIX = {
    "yes_no": "Reply with yes or no.",
    "number": "Reply with the final answer as a number.",
    "choice": "Reply with the letter of the correct choice.",
    "short": "",
}


def prompt_for(item: Any) -> str:
    """The question a council is asked for `item`: the context first (HaluEval's knowledge),
    then the question, then how to answer for its kind. Recorded in each run's config."""
    parts = [f"Context: {item.context.strip()}", ""] if item.context else []
    parts.append(item.question.strip())
    suffix = PROMPT_SUFFIX.get(item.kind, "")
    if suffix:
        parts.append(suffix)
    return "\n".join(parts)


# --- views -------------------------------------------------------------------------------


def _halueval_yes_no(item: Any) -> Any:
    """HaluEval with its knowledge: is this proposed answer (the right or the hallucinated one,
    chosen per item by a hash, so about half of each) correct? `metadata["shown"]` says which."""
    right = hashlib.sha256(f"view:{item.id}".encode()).digest()[0] & 1 == 0
    shown = item.answers[0] if right else item.incorrect[0]
    question = f"Question: {item.question}\nProposed answer: {shown}\nIs the proposed answer correct?"
    # Which answer was shown is the label itself: it stays out of `category`, which trust
    # weights are fitted on (per-category weights would read the answer key).
    shown_kind = "right answer shown" if right else "hallucinated answer shown"
    return replace(item, dataset="halueval:yes-no", question=question, answers=("Yes" if right else "No",),
                   incorrect=("No" if right else "Yes",), kind="yes_no", category=None,
                   metadata={**dict(item.metadata or {}), "shown": shown_kind})  # fmt: skip


def _truthfulqa_ab(item: Any) -> Any:
    """TruthfulQA as two choices: its best answer against its first false answer, in an order
    chosen per item by a hash. Categories are TruthfulQA's."""
    true, false = item.answers[0], item.incorrect[0]
    first = hashlib.sha256(f"view:{item.id}".encode()).digest()[0] & 1 == 0
    choices = (true, false) if first else (false, true)
    letter = "A" if first else "B"
    question = f"{item.question}\n\nA. {choices[0]}\nB. {choices[1]}"
    return replace(item, dataset="truthfulqa:ab", question=question, answers=(letter, true), incorrect=(false,),
                   kind="choice", choices=choices)  # fmt: skip


VIEWS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "halueval:yes-no": ("halueval", _halueval_yes_no),
    "truthfulqa:ab": ("truthfulqa", _truthfulqa_ab),
}


def dataset_choices() -> list[str]:
    from .datasets import dataset_names

    return dataset_names() + list(VIEWS)


def load_items(name: str, *, limit: int | None, seed: int, categories: list[str] | None = None) -> list[Any]:
    """The items of a dataset or a view, sampled like `loading.load_dataset` (stratified by
    category, deterministic in `seed`). Unknown names list the valid ones."""
    from .datasets import DATASETS
    from .loading import load_dataset, sample_items

    if limit is not None and limit < 1:
        raise InputError("--limit must be at least 1 (leave it out to use every item).")
    if name in DATASETS:
        return load_dataset(name, limit=limit, seed=seed, categories=categories or None)
    if name not in VIEWS:
        raise InputError(f"Unknown dataset {name!r}. Choose one of: {', '.join(dataset_choices())}.")
    base, view = VIEWS[name]
    items = [view(i) for i in load_dataset(base, seed=seed) if i.incorrect]
    if categories:
        wanted = {c.casefold() for c in categories}
        items = [i for i in items if i.category and i.category.casefold() in wanted]
        if not items:
            raise InputError(f"No items of {name!r} in the categories {', '.join(categories)}.")
    return sample_items(items, limit, seed)
