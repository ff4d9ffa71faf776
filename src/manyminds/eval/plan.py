"""The plan of an eval run: strategy labels → planned strategies, and the choices made from
measurements (self-consistency's k, the trust folds) and checked again on a resume.

Strategy labels: a registered strategy name ("council", "majority", "moa", "tier:quick"…), `single:MEMBER`
(plain "single" expands to every member), `NAME+trust` (the strategy on a council whose member
weights were fitted from the single-member results, see trust.py), or "all".

Phase 1 holds the strategies that need nothing measured; phase 2 self-consistency (k from phase
1's tokens, `choose_k`) and the "+trust" variants (weights from phase 1's single results).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from ..pipeline.council import Council
from ..strategies.base import STRATEGIES

DEFAULT_STRATEGY = "council"  # what `manyminds ask` runs; the report's reference
# What "all" means: the baselines plus the default and its trust-weighted variants.
ALL_STRATEGIES = ("single", "majority", "self-consistency", "council-rank", "moa", "debate", "council",
                  "council+trust", "majority+trust")  # fmt: skip
PHASE_2 = ("self-consistency",)
SC_K_RANGE = (1, 16)


@dataclass(frozen=True)
class Planned:
    """One strategy label of a run: which registered strategy, with which params, and whether
    the council's weights come from trust."""

    label: str
    strategy: str
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    trust: bool = False

    @property
    def phase(self) -> int:
        return 2 if self.trust or (self.strategy in PHASE_2 and not {"member", "k"} <= set(self.params)) else 1


def valid_labels(council: Council) -> list[str]:
    names = sorted(STRATEGIES)
    return ["all"] + names + [f"single:{m.name}" for m in council.members] + [f"{n}+trust" for n in names]


def expand_strategies(names: list[str], council: Council, params: dict[str, dict[str, Any]] | None = None) -> list[Planned]:
    """Labels → planned strategies, in a stable order, without duplicates. Unknown names are an
    `InputError` listing the valid ones. Self-consistency and "+trust" need single-member
    results (and self-consistency the council's tokens), so those are added when missing."""
    params = params or {}
    members = [m.name for m in council.members]
    wanted: list[str] = []
    for raw in names:
        for name in (ALL_STRATEGIES if raw.strip() == "all" else [raw.strip()]):
            base, _, trust = name.partition("+")
            base, member = split_label(base)
            if base not in STRATEGIES or (trust and trust != "trust") or (member and (base != "single" or member not in members)):
                raise InputError(f"Unknown strategy {name!r}. Valid strategies: {', '.join(valid_labels(council))}.")
            if base == "single" and not member and not trust:
                wanted += [f"single:{m}" for m in members]
            else:
                wanted.append(name)
    needs_singles = any(n.endswith("+trust") or n.startswith("self-consistency") for n in wanted)
    if needs_singles:
        wanted += [f"single:{m}" for m in members]
    if any(n.startswith("self-consistency") for n in wanted) and "k" not in params.get("self-consistency", {}):
        wanted.append(DEFAULT_STRATEGY)  # k is matched to the council's tokens per question
    planned: list[Planned] = []
    for name in dict.fromkeys(wanted):
        base, _, trust = name.partition("+")
        base, member = split_label(base)
        p = dict(params.get(base, {}))
        if member:
            p["member"] = member
        planned.append(Planned(name, base, p, trust=bool(trust)))
    return sorted(planned, key=lambda p: (p.phase, _order(p.label)))


def split_label(base: str) -> tuple[str, str]:
    """"single:MEMBER" → ("single", MEMBER); a registered name with a colon ("tier:quick") stays whole."""
    if base in STRATEGIES:
        return base, ""
    name, _, member = base.partition(":")
    return name, member


def _order(label: str) -> int:
    base = split_label(label.split("+")[0])[0]
    return ALL_STRATEGIES.index(base) if base in ALL_STRATEGIES else len(ALL_STRATEGIES)


def item_fold(item_id: str) -> int:
    """0 or 1, fixed per item: the cross-fitting halves of the trust weights."""
    return hashlib.sha256(item_id.encode()).digest()[0] & 1


def check_same_plan(run: dict[str, Any], plan: dict[str, Any], snapshot: dict[str, Any]) -> None:
    """A resume must ask the same council the same items, or its numbers would mix two runs."""
    stored = run.get("plan") or {}
    if stored.get("items") != plan["items"]:
        changed = [d for d in plan["items"] if stored.get("items", {}).get(d) != plan["items"][d]]
        raise InputError(f"Eval run {run['id']} was started on other items ({', '.join(changed) or 'datasets differ'}); "
                         "resume it with its own --dataset/--limit/--seed, or start a new run.")  # fmt: skip
    labels = [s["label"] for s in stored.get("strategies", [])]
    if labels != [s["label"] for s in plan["strategies"]]:
        raise InputError(f"Eval run {run['id']} was started with strategies {', '.join(labels)}; resume it with those.")
    old = [(m["name"], m["model"]) for m in (run.get("snapshot") or {}).get("members", [])]
    new = [(m["name"], m["model"]) for m in snapshot.get("members", [])]
    if old != new:
        raise InputError(f"Eval run {run['id']} was started with another council ({old}); resume it with that council.")


def choose_k(results: list[dict[str, Any]], datasets: list[str], members: list[str]) -> dict[str, dict[str, Any]]:
    """Per dataset: the best single member (highest accuracy; ties → fewer tokens, then member
    order) and k = round(council tokens per question ÷ that member's tokens per question),
    clamped to [1, 16] — self-consistency at the council's token budget."""
    out: dict[str, dict[str, Any]] = {}
    for dataset in datasets:
        rows = [r for r in results if r["dataset"] == dataset]
        council = [r["total_tokens"] for r in rows if r["strategy"] == DEFAULT_STRATEGY]
        stats = []
        for i, m in enumerate(members):
            mine = [r for r in rows if r["strategy"] == f"single:{m}"]
            if mine:
                acc = sum(r["correct"] for r in mine) / len(mine)
                tokens = sum(r["total_tokens"] for r in mine) / len(mine)
                stats.append((-acc, tokens, i, m, acc, len(mine)))
        if not stats or not council:
            out[dataset] = {"member": members[0], "k": 5, "reason": "no single or council results to measure: default k"}
            continue
        _, tokens, _, member, acc, n = min(stats)
        per_q = sum(council) / len(council)
        raw = per_q / tokens if tokens else float(SC_K_RANGE[1])
        k = max(SC_K_RANGE[0], min(SC_K_RANGE[1], math.floor(raw + 0.5)))
        out[dataset] = {
            "member": member, "k": k, "member_accuracy": round(acc, 4), "items": n,
            "council_tokens_per_question": round(per_q, 1), "member_tokens_per_question": round(tokens, 1),
            "reason": f"{per_q:.0f} council tokens ÷ {tokens:.0f} tokens of {member} per question = {raw:.2f} → k={k}"
                      + (" (clamped)" if k != math.floor(raw + 0.5) else ""),
        }  # fmt: skip
    return out
