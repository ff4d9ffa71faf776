"""Trust learned from evidence: how reliable each member is, fitted from stored eval runs, and
turned into the member weights the council votes and synthesises with.

Members are not equally reliable. A plain vote between one strong and two weak members loses
to the strong one alone; weighting each vote by the log-odds of the voter being right is the
optimal rule for independent voters (Nitzan & Paroush 1982), and it lets a strong member
outvote two weak ones that agree.

Fitting (from the `single:MEMBER` results of eval runs, graded like every other item):
  reliability of a member, overall     = Beta(1, 1) posterior mean  (c + 1) / (n + 2)
                        per dataset    = (c_d + a/K) / (n_d + a)                a = 10 pseudo-items
                        per category   = (c_c + a·dataset) / (n_c + a)          only with ≥ 20 items
So ten items move a weight only part of the way. A dataset's prior is chance (1/K): trust has to
be earned on the dataset itself. (A prior at the member's pooled record would lend a member
that got 0 of 10 open questions right the accuracy it had on yes/no questions, where 50 % is
chance — and a weight above its yes/no weight.) A category's prior is its dataset's reliability.
  weight = max(floor, ln(p / (1 − p)) + ln(K − 1))    floor 0.05
  overall weight = the per-dataset weights' mean, weighted by items
K is the number of answers a wrong voter spreads over: 2 for yes/no, the number of choices for
multiple choice, 10 for short and numeric answers (an assumption: only the order and rough
ratio of the weights matter to a vote). A member no better than chance gets the floor.

Where the weights go: `apply_weights` copies a council with each member's `weight` set, and
`Council.weights` is what `compare_answers` (cluster weights, the shares the chair sees),
`synthesize`/`decide` (confidence, majority fallback) and the vote of every vote-based strategy
read. The eval runner fits the weights *out of fold* within a run (items split in two halves by a
hash of their id; each half is weighted by the other half's fit) so that "+trust" rows are not
scored on the items they were fitted on; `--trust-from RUN` fits on other runs instead.

Where they are kept: `trust.json` in the user dir (`manyminds eval fit-trust RUN…` writes it;
the top-level trust.py reads and applies it when a question is asked), keyed by a
fingerprint of the council's members (name, model, system prompt, temperature), so a changed
council never gets stale weights. A JSON file rather than a table, because weights
are configuration like settings.toml: readable, editable, and portable without the run
database; the evidence stays in the database and the file names the runs it came from.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..pipeline.council import Council
from ..trust import fingerprint, read_trust_file, trust_path

PRIOR_STRENGTH = 10.0
MIN_CATEGORY_ITEMS = 20
WEIGHT_FLOOR = 0.05
CHANCE_ANSWERS = {"yes_no": 2, "number": 10, "short": 10}  # choice: its number of choices


def answer_count(item: Any) -> int:
    """K for an item: how many answers a wrong voter spreads over."""
    if item.kind == "choice":
        return max(2, len(item.choices))
    return CHANCE_ANSWERS.get(item.kind, 10)
# The strategies that may become a council's default, in order of preference (the plain
# council first: it is what users expect; trust only where the evidence asks for it).
DEFAULT_CANDIDATES = ("council", "council+trust", "majority+trust")
# A candidate default must be paired with the best member on at least this share of the items
# the shipped default was (a few failed items aside), or its slice counts as unmeasured.
MIN_COVERAGE = 0.9


# --- fitting ------------------------------------------------------------------------------


def weight_of(p: float, answers: int = 2) -> float:
    """Log-odds weight of a voter right with probability `p` among `answers` alternatives."""
    p = min(max(p, 1e-6), 1 - 1e-6)
    return round(max(WEIGHT_FLOOR, math.log(p / (1 - p)) + math.log(max(answers, 2) - 1)), 4)


def _stats(correct: int, n: int, prior: float, strength: float, answers: int) -> dict[str, Any]:
    p = (correct + strength * prior) / (n + strength)
    return {"correct": correct, "n": n, "accuracy": round(correct / n, 4) if n else None,
            "reliability": round(p, 4), "weight": weight_of(p, answers)}  # fmt: skip


def fit_reliability(
    rows: Iterable[dict[str, Any]],
    *,
    answers: dict[str, int] | None = None,
    strength: float = PRIOR_STRENGTH,
    min_category_items: int = MIN_CATEGORY_ITEMS,
) -> dict[str, Any]:
    """Fit every member's reliability from stored rows (`strategy` = "single:MEMBER").

    Returns {"members": [...], "overall": {member: stats}, "datasets": {dataset: {"members":
    {member: stats}, "categories": {category: {member: stats}}}}} where stats holds correct, n,
    raw accuracy, the shrunk reliability and the weight. `answers` gives K per dataset (see
    the module docstring; 10 when not given)."""
    answers = answers or {}
    counts: dict[tuple[str, str | None, str | None], list[int]] = defaultdict(lambda: [0, 0])
    members: list[str] = []
    for r in rows:
        label = r["strategy"]
        if not label.startswith("single:"):
            continue
        member = label.split(":", 1)[1]
        if member not in members:
            members.append(member)
        keys = [(member, None, None), (member, r["dataset"], None)]
        if r.get("category"):
            keys.append((member, r["dataset"], r["category"]))
        for key in keys:
            counts[key][0] += int(r["correct"])
            counts[key][1] += 1
    if not members:
        raise InputError("No single-member results to fit trust from: run the eval with --strategy single (or all).")
    dataset_kinds = {d for (_, d, _) in counts if d is not None}
    overall_k = 2 if all(answers.get(d, 10) == 2 for d in dataset_kinds) else 10
    table: dict[str, Any] = {"members": members, "prior_strength": strength, "min_category_items": min_category_items,
                             "overall": {}, "datasets": {}}  # fmt: skip
    for m in members:
        c, n = counts[(m, None, None)]
        table["overall"][m] = _stats(c, n, 0.5, 2.0, overall_k)  # Beta(1, 1)
    for d in sorted(dataset_kinds):
        k = answers.get(d, 10)
        entry: dict[str, Any] = {"answers": k, "members": {}, "categories": {}}
        for m in members:
            c, n = counts.get((m, d, None), [0, 0])
            entry["members"][m] = _stats(c, n, 1.0 / k, strength, k)
        categories = {cat for (_, dd, cat) in counts if dd == d and cat is not None}
        for cat in sorted(categories):
            ns = [counts.get((m, d, cat), [0, 0])[1] for m in members]
            if min(ns) < min_category_items:
                continue  # too few items: the dataset's weights stand for this category
            entry["categories"][cat] = {
                m: _stats(*counts[(m, d, cat)], entry["members"][m]["reliability"], strength, k) for m in members
            }
        table["datasets"][d] = entry
    # The overall weight (for questions from no known dataset, e.g. `manyminds ask`) is the
    # item-weighted mean of the per-dataset weights: a pooled accuracy mixes yes/no sets, where
    # 50 % is chance, with open ones, where it is excellent, and no single K fits it.
    for m in members:
        parts = [(e["members"][m]["n"], e["members"][m]["weight"]) for e in table["datasets"].values()]
        n = sum(k for k, _ in parts)
        if n:
            table["overall"][m]["weight"] = round(max(WEIGHT_FLOOR, sum(k * w for k, w in parts) / n), 4)
    return table


def fit_trust_table(
    rows: list[dict[str, Any]],
    *,
    folds: bool = False,
    fold_of: Callable[[str], int] | None = None,
    answers: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The fit on every row, plus (with `folds`) one fit per half of the items, so an item can
    be weighted by the half it is not in."""
    table = fit_reliability(rows, answers=answers)
    if folds:
        if fold_of is None:
            raise ValueError("fold_of is needed with folds")
        table["folds"] = {}
        for f in (0, 1):
            part = [r for r in rows if fold_of(r["item_id"]) == f]
            table["folds"][str(f)] = fit_reliability(part, answers=answers) if any(
                r["strategy"].startswith("single:") for r in part) else table  # fmt: skip
    return table


TRUST_SCOPES = ("overall", "dataset", "category")
SCOPE_OF_OLDER_RUNS = "category"  # what runs stored before `--trust-scope` existed voted with


def weights_for(table: dict[str, Any], dataset: str | None, category: str | None, *, fold: int | None = None,
                scope: str = "category") -> dict[str, float]:  # fmt: skip
    """Member weights for an item. `scope` "category": its category's where fitted, else its
    dataset's, else the overall ones; "dataset": its dataset's, else the overall ones;
    "overall": the overall ones, which is what `ask` applies (a question has no dataset or
    category). With `fold`, from the fit on the *other* half of the items."""
    if scope not in TRUST_SCOPES:
        raise ValueError(f"trust scope must be one of {', '.join(TRUST_SCOPES)}, not {scope!r}")
    if fold is not None and "folds" in table:
        table = table["folds"][str(1 - fold)]
    entry = table.get("datasets", {}).get(dataset) if dataset and scope != "overall" else None
    if entry is None:
        return {m: s["weight"] for m, s in table["overall"].items()}
    stats = entry["categories"].get(category) if category and scope == "category" else None
    return {m: s["weight"] for m, s in (stats or entry["members"]).items()}


# --- the default rule ----------------------------------------------------------------------


def default_rule(rows: list[dict[str, Any]], slices: list[str] | None = None, *, seed: int = 0) -> dict[str, Any]:
    """Apply "the default must not score below the best single member on any reported slice".

    For every slice (each dataset, and all datasets together) and every candidate default
    present in `rows` (DEFAULT_CANDIDATES), the accuracy, the best single member's on the same
    items and the paired lift with its bootstrap 95% interval. The chosen default is the first
    candidate whose accuracy is not below the best single member's on any slice; if none
    qualifies, the best single member overall (the council then adds its confidence only).
    """
    from .metrics import paired_lift

    datasets = slices or sorted({r["dataset"] for r in rows})
    slice_rows = {d: [r for r in rows if r["dataset"] == d] for d in datasets}
    if len(datasets) > 1:
        slice_rows["all"] = [r for r in rows if r["dataset"] in datasets]
    labels = {r["strategy"] for r in rows}
    candidates = [c for c in DEFAULT_CANDIDATES if c in labels]
    out: dict[str, Any] = {"slices": {}, "candidates": candidates}
    for name, srows in slice_rows.items():
        by_label: dict[str, dict[tuple[str, str], int]] = defaultdict(dict)
        for r in srows:
            by_label[r["strategy"]][(r["dataset"], r["item_id"])] = int(r["correct"])
        singles = {lab: v for lab, v in by_label.items() if lab.startswith("single:")}
        if not singles:
            continue
        best = max(singles, key=lambda lab: (sum(singles[lab].values()) / len(singles[lab]), lab))
        entry: dict[str, Any] = {"best_single": best, "best_single_accuracy": _acc(singles[best]), "candidates": {}}
        for c in candidates:
            keys = sorted(set(by_label[c]) & set(singles[best]))
            if not keys:
                continue
            a = [by_label[c][k] for k in keys]
            b = [singles[best][k] for k in keys]
            lift = paired_lift(a, b, seed=seed)
            entry["candidates"][c] = {
                "accuracy": round(sum(a) / len(a), 4), "best_single_accuracy": round(sum(b) / len(b), 4),
                "n": len(keys), "lift": _lift_dict(lift), "below": sum(a) < sum(b),
            }  # fmt: skip
        out["slices"][name] = entry
    out["shipped"] = DEFAULT_CANDIDATES[0]
    out["unmeasured"] = {c: _unmeasured_slices(out["slices"], out["shipped"], c) for c in candidates}
    chosen = next((c for c in candidates if not out["unmeasured"][c]
                   and not any(s["candidates"].get(c, {}).get("below") for s in out["slices"].values())), None)  # fmt: skip
    if chosen is None:
        overall = out["slices"].get("all") or next(iter(out["slices"].values()), {})
        chosen = overall.get("best_single")
    out["chosen"] = chosen
    out["changed"] = chosen != DEFAULT_CANDIDATES[0]
    out["sentences"] = rule_sentences(out)
    return out


def _unmeasured_slices(slices: dict[str, Any], shipped: str, candidate: str) -> list[str]:
    """The slices where `candidate` was not measured on (nearly) every item the shipped default
    was, each as "NAME" or "NAME (n of N items)". An unmeasured slice is not a slice it passed,
    and nor is a second phase stopped after 13 of 300 items: a lift on so few items says little."""
    missing = []
    for name, s in slices.items():
        reference = s["candidates"].get(shipped)
        if reference is None:
            continue
        mine = s["candidates"].get(candidate)
        if mine is None:
            missing.append(name)
        elif mine["n"] < math.ceil(MIN_COVERAGE * reference["n"]):
            missing.append(f"{name} ({mine['n']} of {reference['n']} items)")
    return missing


def _acc(values: dict[Any, int]) -> float:
    return round(sum(values.values()) / len(values), 4) if values else 0.0


def _lift_dict(lift: Any) -> dict[str, Any]:
    if isinstance(lift, tuple) and len(lift) == 3:
        return {"lift": round(lift[0], 4), "ci_low": round(lift[1], 4), "ci_high": round(lift[2], 4)}
    if isinstance(lift, dict):
        return lift
    if hasattr(lift, "to_dict"):
        return lift.to_dict()
    if hasattr(lift, "__dataclass_fields__"):
        return {k: getattr(lift, k) for k in lift.__dataclass_fields__}
    return {"value": lift}


def rule_sentences(rule: dict[str, Any]) -> list[str]:
    """Plain sentences for the report: where the default is below the best single member, and
    what the default becomes."""
    lines = []
    shipped = rule["shipped"]
    for name, s in rule["slices"].items():
        c = s["candidates"].get(shipped)
        if c and c["below"]:
            lines.append(
                f"On {name}, the default ({shipped}) scores {c['accuracy']:.1%}, below the best single member "
                f"({s['best_single']}, {c['best_single_accuracy']:.1%}) on the same {c['n']} items."
            )
    for c, missing in rule.get("unmeasured", {}).items():
        if missing and c != shipped:
            lines.append(f"{c} was not measured on the whole of {', '.join(missing)}, so it cannot be chosen as the default "
                         "from these runs.")  # fmt: skip
    if rule["changed"] and rule["chosen"] and rule["chosen"].startswith("single:"):
        lines.append(f"No council configuration ({', '.join(rule['candidates'])}) was at least as accurate as the best "
                     f"single member on every slice, so the default for this council changes to the best single "
                     f"member, {rule['chosen']} (fit-trust records it: the council then answers with that member's "
                     "answer and shows the others agreeing or dissenting).")  # fmt: skip
    elif rule["changed"]:
        lines.append(f"So the default for this council changes to {rule['chosen']}, the first configuration that is not "
                     "below the best single member on any reported slice (fit-trust records it).")  # fmt: skip
    elif shipped in rule["candidates"]:
        lines.append(f"The default ({shipped}) is not below the best single member on any reported slice; it stays.")
    return lines


# --- trust.json ---------------------------------------------------------------------------


def save_trust(council: Council, table: dict[str, Any], rule: dict[str, Any] | None, source_runs: list[str],
               path: Path | None = None) -> Path:  # fmt: skip
    """Record `council`'s fitted weights (and the default the rule chose) in trust.json."""
    path = path or trust_path()
    data = read_trust_file(path)
    table = {k: v for k, v in table.items() if k != "folds"}
    data["councils"][fingerprint(council)] = {
        "council": council.name,
        "members": [{"name": m.name, "model": m.model.name} for m in council.members],
        "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source_runs": source_runs,
        "table": table,
        "default": {"strategy": rule["chosen"], "sentences": rule["sentences"]} if rule else None,
    }
    from ..councilfile import write_council_file

    return write_council_file(path, data)
