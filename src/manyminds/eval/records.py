"""`ItemResult`: one strategy's graded answer to one item — the row the runner stores and the
metrics and the report read. Plain data, so it round-trips through JSON (`to_dict`/`from_dict`);
`to_item_result` reads one from a row of the eval store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["ItemResult", "to_item_result"]


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


def to_item_result(row: dict[str, Any]) -> ItemResult:
    """A stored row as the metrics' `ItemResult` (tokens as if uncached; error as text)."""
    error = row.get("error")
    return ItemResult(
        run_id=row["run_id"], item_id=row["item_id"], dataset=row["dataset"], category=row.get("category"),
        strategy=row["strategy"], correct=bool(row["correct"]), confidence=row.get("confidence"),
        answer=row.get("answer") or "", short_answer=row.get("short_answer"), raw_text=row.get("raw_text") or "",
        grade_method=row.get("grade_method") or "none", grade_error=row.get("grade_error"),
        tokens=int(row.get("total_tokens") or 0), cost_usd=row.get("cost_usd"), seconds=float(row.get("seconds") or 0.0),
        error=(error.get("message") or error.get("type")) if isinstance(error, dict) else error,
        extra=row.get("extra") or {},
    )  # fmt: skip
