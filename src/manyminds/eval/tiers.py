"""The router against the fixed effort tiers, as a section of the eval report.

When a run has `tier:auto` beside fixed tiers, the report compares them on the items every one
of them answered: accuracy, auto minus each tier paired (bootstrap interval), auto's tokens and
seconds as a share of each tier's, where the router sent the items, and the effort issue's
target — auto within 1 point of deep's accuracy at no more than half its tokens — as met or
not, with the reason when not (docs/effort.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from .metrics import N_BOOT, paired_lift

AUTO = "tier:auto"
FIXED = ("tier:quick", "tier:standard", "tier:deep")
TARGET_POINTS = 1.0  # auto may trail deep by at most this many accuracy points…
TARGET_TOKEN_SHARE = 0.5  # …at no more than this share of deep's tokens


def router_section(
    rows: Sequence[dict[str, Any]], routes: dict[tuple[str, str], dict[str, Any] | None], *, n_boot: int = N_BOOT,
    seed: int = 0,
) -> list[str]:  # fmt: skip
    """Markdown lines (empty when the rows hold no `tier:auto` beside a fixed tier). `rows`
    are stored eval items; `routes` maps (dataset, item id) to the route of auto's verdict."""
    by_dataset: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for r in rows:
        if r["strategy"] == AUTO or r["strategy"] in FIXED:
            by_dataset.setdefault(r["dataset"], {}).setdefault(r["strategy"], {}).setdefault(r["item_id"], r)
    lines: list[str] = []
    for dataset, per_tier in sorted(by_dataset.items()):
        fixed = [t for t in FIXED if t in per_tier]
        if AUTO not in per_tier or not fixed:
            continue
        common = sorted(set.intersection(*(set(per_tier[t]) for t in [AUTO, *fixed])))
        if not common:
            continue
        lines += _dataset_lines(dataset, per_tier, fixed, common, routes, n_boot=n_boot, seed=seed)
    if lines:
        lines = ["## The router against the fixed tiers", "", *lines]
    return lines


def _dataset_lines(dataset: str, per_tier: dict[str, dict[str, dict[str, Any]]], fixed: list[str], common: list[str],
                   routes: dict[tuple[str, str], dict[str, Any] | None], *, n_boot: int, seed: int) -> list[str]:  # fmt: skip
    n = len(common)

    def correct(tier: str) -> list[bool]:
        return [bool(per_tier[tier][i]["correct"]) for i in common]

    def mean(tier: str, column: str) -> float:
        return sum(float(per_tier[tier][i].get(column) or 0) for i in common) / n

    auto_tokens = mean(AUTO, "total_tokens")
    lines = [f"**{dataset}**, the {n} items every tier answered:", "",
             "| tier | accuracy | tokens / q | s / q | auto − tier, points [95%] | auto's tokens ÷ tier's |",
             "|---|---:|---:|---:|---|---:|"]  # fmt: skip
    lifts: dict[str, tuple[float, float, float]] = {}
    for tier in [AUTO, *fixed]:
        acc, tokens = sum(correct(tier)) / n, mean(tier, "total_tokens")
        if tier == AUTO:
            versus, share = "—", "—"
        else:
            lifts[tier] = paired_lift(correct(AUTO), correct(tier), n_boot=n_boot, seed=seed)
            d, lo, hi = (100 * v for v in lifts[tier])
            versus = f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]"
            share = f"{auto_tokens / tokens:.0%}" if tokens else "n/a"
        lines.append(f"| {tier} | {acc:.1%} | {tokens:,.0f} | {mean(tier, 'seconds'):.1f} | {versus} | {share} |")
    chosen = [routes.get((dataset, i)) or {} for i in common]
    tiers = Counter(r.get("tier", "unknown") for r in chosen)
    escalated = sum(1 for r in chosen if r.get("escalated"))
    lines += ["", "Where the router sent them: " + ", ".join(f"{tiers[t]} {t}" for t in sorted(tiers, key=lambda t: -tiers[t]))
              + (f" ({escalated} of them escalated after quick disagreed)" if escalated else "") + "."]  # fmt: skip
    if "tier:deep" in lifts:
        lines += ["", _target_line(dataset, per_tier, common, chosen, lifts["tier:deep"], auto_tokens,
                                   mean("tier:deep", "total_tokens"))]  # fmt: skip
    return lines + [""]


def _target_line(dataset: str, per_tier: dict[str, dict[str, dict[str, Any]]], common: list[str],
                 chosen: list[dict[str, Any]], lift: tuple[float, float, float], auto_tokens: float,
                 deep_tokens: float) -> str:  # fmt: skip
    d, lo, hi = (100 * v for v in lift)
    share = auto_tokens / deep_tokens if deep_tokens else float("inf")
    close, cheap = d >= -TARGET_POINTS, share <= TARGET_TOKEN_SHARE
    head = (f"Target (auto within {TARGET_POINTS:g} point of deep's accuracy at ≤ {TARGET_TOKEN_SHARE:.0%} of its "
            f"tokens): **{'met' if close and cheap else 'not met'}** — auto − deep {d:+.1f} points "
            f"[{lo:+.1f}, {hi:+.1f}], at {share:.0%} of deep's tokens.")  # fmt: skip
    why: list[str] = []
    caveat = ""
    if close and lo < -TARGET_POINTS:
        caveat = (f" Not shown at 95%: the interval reaches {lo:+.1f}, so more items are needed to show auto is "
                  f"within {TARGET_POINTS:g} point of deep.")  # fmt: skip
    if not close:
        lost = Counter(route.get("tier", "unknown") for i, route in zip(common, chosen)
                       if per_tier["tier:deep"][i]["correct"] and not per_tier[AUTO][i]["correct"])  # fmt: skip
        won = sum(1 for i in common if per_tier[AUTO][i]["correct"] and not per_tier["tier:deep"][i]["correct"])
        where = ", ".join(f"{v} routed to {k}" for k, v in sorted(lost.items(), key=lambda kv: -kv[1]))
        why.append(f"deep was right where auto was wrong on {sum(lost.values())} items ({where}), the reverse on {won}")
    if not cheap:
        deep = [r for r in chosen if r.get("tier") == "deep"]
        kinds = Counter("escalated" if r.get("escalated") else r.get("kind", "unknown") for r in deep)
        why.append(f"{len(deep)} of {len(common)} items went to deep (" + ", ".join(f"{v} {k}" for k, v in
                   sorted(kinds.items(), key=lambda kv: -kv[1])) + "), each at about deep's cost")  # fmt: skip
    return head + (" Why: " + "; ".join(why) + "." if why else "") + caveat
