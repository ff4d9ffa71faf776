"""What the members allow a vote to reach, as a section of the eval report.

A council can only choose among its members' answers, so its ceiling is set by them: the
oracle (an item counts when any member was right) bounds every way of choosing, and an
equal-weight vote gains over the best member only where the others agree on the right answer
against it, and loses where they agree on a wrong one. When the default falls short of its best
member, or beats it by little, these counts say whether that is the vote's fault or the
members' (docs/results.md reads them by hand; the report now prints them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from .records import ItemResult

SINGLE_PREFIX = "single:"


def ceiling_lines(results: Sequence[ItemResult]) -> list[str]:
    """Markdown lines per dataset with at least two single-member strategies (empty otherwise),
    over the items every member answered."""
    by_dataset: dict[str, dict[str, dict[str, ItemResult]]] = {}
    for r in results:
        if r.strategy.startswith(SINGLE_PREFIX):
            by_dataset.setdefault(r.dataset, {}).setdefault(r.strategy, {}).setdefault(r.item_id, r)
    lines: list[str] = []
    for dataset, members in sorted(by_dataset.items()):
        if len(members) < 2:
            continue
        items = sorted(set.intersection(*(set(m) for m in members.values())))
        if items:
            lines.append(_dataset_line(dataset, members, items))
    return lines


def _vote_key(r: ItemResult) -> str:
    """What the member said, as a vote counts it: the graded choice where there is one (a
    letter), else its short answer or answer, case and spacing ignored."""
    parsed = r.extra.get("parsed") if isinstance(r.extra, dict) else None
    text = parsed if isinstance(parsed, str) and parsed else (r.short_answer or r.answer or "")
    return " ".join(text.lower().split())


def _dataset_line(dataset: str, members: dict[str, dict[str, ItemResult]], items: list[str]) -> str:
    n = len(items)
    accuracy = {name: sum(rows[i].correct for i in items) / n for name, rows in members.items()}
    best = max(sorted(accuracy), key=lambda name: accuracy[name])
    oracle = sum(any(rows[i].correct for rows in members.values()) for i in items) / n
    gains = losses = 0
    for i in items:
        right = sum(rows[i].correct for rows in members.values())
        wrong = Counter(_vote_key(rows[i]) for rows in members.values() if not rows[i].correct)
        top_wrong = max(wrong.values(), default=0)
        if not members[best][i].correct and right > top_wrong:
            gains += 1  # the right answer outnumbers every wrong one although the best member missed it
        elif members[best][i].correct and top_wrong > right:
            losses += 1  # one wrong answer outnumbers the right one although the best member had it
    others = ", ".join(f"{name.removeprefix(SINGLE_PREFIX)} {accuracy[name]:.1%}" for name in sorted(accuracy)
                       if name != best)  # fmt: skip
    net = (gains - losses) / n
    return (f"- **{dataset}** ({n} items every member answered): the best member, "
            f"{best.removeprefix(SINGLE_PREFIX)}, is right on {accuracy[best]:.1%} (the others: {others}). Any "
            f"member is right on {oracle:.1%} (the oracle), so no way of choosing among their answers can add more "
            f"than {100 * (oracle - accuracy[best]):+.1f} points. An equal-weight vote of the members gains over the "
            f"best member where the right answer outnumbers every wrong one although it missed ({_items(gains)}) and "
            f"loses where one wrong answer outnumbers the right one although it was right ({_items(losses)}): at most "
            f"{100 * net:+.1f} points net (trust weights that let the best member win every time give up both).")  # fmt: skip


def _items(count: int) -> str:
    return f"{count} item" if count == 1 else f"{count} items"
