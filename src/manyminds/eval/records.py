"""`ItemResult`: one strategy's graded answer to one item — the row the runner stores and the
metrics and the report read. Plain data, so it round-trips through JSON (`to_dict`/`from_dict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["ItemResult"]


@dataclass
class ItemResult:
    run_id: str
    item_id: str
    dataset: str
    category: str | None
    strategy: str  # "single:<model>", "self-consistency…", "manyminds", …
    correct: bool
    confidence: float | None  # in [0, 1]; None when the strategy gives none
    answer: str
    short_answer: str | None
    raw_text: str
    grade_method: str
    grade_error: str | None
    tokens: int
    cost_usd: float | None  # None: unknown (not free)
    seconds: float
    error: str | None = None  # the strategy failed on this item (counted as wrong)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ItemResult:
        """Build from a stored dict; keys this version does not know are ignored, so older
        code can read rows written by newer code."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
