"""Stored eval runs turned into what people read: the report (report.py renders the tables and
figures; this adds what only the stored runs know — the choices made during the run, trust,
the default rule, the judge's agreement) and the trust fit written to trust.json.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..store.db import parse_iso
from .store import EvalStore
from .trust import DEFAULT_CANDIDATES, default_rule, fit_trust_table, save_trust

DEFAULT_STRATEGY = DEFAULT_CANDIDATES[0]


def load_runs(store: EvalStore, run_ids: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(runs, rows) of one or more eval runs; pooling needs one council."""
    runs = [store.get_run(r) for r in run_ids]
    councils = {tuple((m["name"], m["model"]) for m in (r["snapshot"] or {}).get("members", [])) for r in runs}
    if len(councils) > 1:
        raise InputError("These eval runs asked different councils; report or fit them one council at a time.")
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    for run in runs:  # a pair two runs both made (overlapping slices) counts once: the first run's
        for row in store.items(run["id"]):
            key = (row["dataset"], row["item_id"], row["strategy"])
            if key not in seen:
                seen.add(key)
                rows.append(row)
        run["wall_minutes"] = wall_minutes(run, store.items(run["id"]))
    if not rows:
        raise InputError(f"Eval run(s) {', '.join(r['id'] for r in runs)} have no stored results yet.")
    return runs, rows


def command_for(config: dict[str, Any]) -> str:
    """The `manyminds eval run` command that reproduces a run's config."""
    args = ["manyminds", "eval", "run"]
    for d in config["datasets"]:
        args += ["-d", d]
    for s in config["strategies"]:
        args += ["-s", s]
    if config.get("models"):
        for m in config["models"]:
            args += ["-m", m]
    elif config.get("council"):
        args += ["--council", config["council"]]
    if config.get("limit") is not None:
        args += ["--limit", str(config["limit"])]
    args += ["--seed", str(config.get("seed", 0))]
    for c in config.get("categories") or []:
        args += ["--category", c]
    for strategy, params in (config.get("params") or {}).items():
        for k, v in params.items():
            args += ["--param", f"{strategy}.{k}={v}"]
    if config.get("judge"):
        args += ["--judge", config["judge"], "--judge-sample", str(config.get("judge_sample", 50))]
    for run_id in config.get("trust_from") or []:
        args += ["--trust-from", run_id]
    from .trust import SCOPE_OF_OLDER_RUNS

    scope = config.get("trust_scope", SCOPE_OF_OLDER_RUNS)
    if scope != "overall":
        args += ["--trust-scope", scope]
    for run_id in config.get("cache_from") or []:
        args += ["--cache-from", run_id]
    args += ["--concurrency", str(config.get("concurrency", 4))]
    return shlex.join(args)


def wall_minutes(run: dict[str, Any], rows: list[dict[str, Any]]) -> float | None:
    """Minutes from the run's start to its last stored item (a resumed run includes the gap)."""
    ends = [r["finished_at"] for r in rows if r.get("finished_at")]
    if not ends:
        return None
    return round((parse_iso(max(ends)) - parse_iso(run["created_at"])).total_seconds() / 60, 1)


def build_report(store: EvalStore, run_ids: list[str], out_dir: Path, *, title: str | None = None) -> Path:
    """report.md (+ figures, summary.json) for the runs, with the harness's own sections."""
    from .records import to_item_result
    from .report import write_report
    from .tiers import AUTO, router_section

    runs, rows = load_runs(store, run_ids)
    results = [to_item_result(r) for r in rows]
    first = runs[0]
    members = first["snapshot"]["members"]
    meta = {
        "runs": ", ".join(r["id"] for r in runs),
        "council": f"{first['council']}: " + "; ".join(f"{m['name']} = {m['model']}" for m in members)
                   + f"; chair {first['snapshot']['chair']['member']}",
        "datasets": sorted({r["dataset"] for r in rows}),
        "limit and seed": "; ".join(f"limit {r['config']['limit']}, seed {r['config']['seed']}" for r in runs),
        "date": first["created_at"][:10],
        "wall time": "; ".join(f"{r['wall_minutes']} min" for r in runs),
        "command": " && ".join(command_for(r["config"]) for r in runs),
        "default_strategy": DEFAULT_STRATEGY,
    }  # fmt: skip
    limited = [r["id"] for r in runs if (r.get("meta") or {}).get("budget_limited")]
    if limited:
        meta["budget_limited"] = f"yes — {', '.join(limited)} stopped on a budget (see How the runs were made)"
    labels = {r["strategy"] for r in rows}
    baselines = {"the default (council)": DEFAULT_STRATEGY} if DEFAULT_STRATEGY in labels and len(labels) > 1 else None
    path = write_report(results, out_dir, title=title or f"manyminds evaluation {first['id']}", meta=meta, baselines=baselines)
    extra = harness_sections(runs, rows)
    if AUTO in labels:
        routes: dict[tuple[str, str], Any] = {}
        for run in runs:  # as with the rows, a pair two runs made counts once: the first run's
            for r in store.items(run["id"], strategy=AUTO, with_verdict=True):
                routes.setdefault((r["dataset"], r["item_id"]), (r.get("verdict") or {}).get("route"))
        extra = router_section(rows, routes) + extra
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n" + "\n".join(extra) + "\n")
    return path


def harness_sections(runs: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[str]:
    lines = ["## How the runs were made", ""]
    calls = sum((r.get("extra") or {}).get("calls", 0) for r in rows)
    cached = sum((r.get("extra") or {}).get("cached_calls", 0) for r in rows)
    lines.append(
        f"- Identical deterministic calls (temperature 0, or seeded samples) were made once per run and shared "
        f"between strategies: {cached} of {calls} model calls came from that cache. Tokens and cost above are "
        "counted as if every strategy had made its own calls; seconds per question are wall time with the cache, "
        "so they understate the time of strategies whose calls others had already made."
    )
    borrowed = sum((r.get("extra") or {}).get("borrowed_calls", 0) for r in rows)
    sources = sorted({s for run in runs for s in (run["config"].get("cache_from") or [])})
    if sources:
        lines.append(
            f"- {borrowed} of the cached calls came from the caches of earlier runs (`--cache-from` {', '.join(sources)}): "
            "made, and timed, by those runs, so seconds per question understate every strategy that used them."
        )
    errors = [r for r in rows if r.get("error")]
    if errors:
        kinds: dict[str, int] = {}
        for r in errors:
            kinds[r["error"].get("type", "Error")] = kinds.get(r["error"].get("type", "Error"), 0) + 1
        lines.append(f"- {len(errors)} (item, strategy) pairs produced no answer "
                     f"({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}); each counts as wrong.")  # fmt: skip
    for run in runs:
        for dataset, c in ((run.get("meta") or {}).get("self_consistency") or {}).items():
            lines.append(f"- Self-consistency on {dataset} sampled **{c['member']}** (the best single member there) "
                         f"k={c['k']} times at temperature 0.7: {c['reason']}.")  # fmt: skip
    lines += budget_lines(runs)
    lines += trust_section(runs, rows)
    lines += judge_section(rows)
    return lines


def budget_lines(runs: list[dict[str, Any]]) -> list[str]:
    """One line per attempt of a run that a budget (--max-cost/--max-tokens/--max-seconds) stopped."""
    from ..budget import limit_sentence

    lines = []
    for run in runs:
        for report in (run.get("meta") or {}).get("budget_limited") or []:
            state = "is still incomplete" if run["status"] == "incomplete" else f"was resumed and is now {run['status']}"
            lines.append(f"- **Budget-limited**: eval run {run['id']} stopped on its budget — {limit_sentence(report)} "
                         f"{report.get('pairs_left', '?')} (item, strategy) pair(s) were left; the run {state}, "
                         "so the tables above cover only the pairs finished in budget.")  # fmt: skip
    return lines


def trust_section(runs: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[str]:
    lines = ["", "## Trust learned from evidence", ""]
    tables = [(r["id"], (r.get("meta") or {}).get("trust")) for r in runs if (r.get("meta") or {}).get("trust")]
    if tables:
        lines.append("Member weights fitted from the single-member results (reliability shrunk toward chance "
                     "with 10 pseudo-items; weight = log-odds, floor 0.05). Within a run "
                     "the +trust strategies use weights fitted on the *other* half of the items.")  # fmt: skip
        for run_id, table in tables:
            for dataset, entry in table["datasets"].items():
                lines += ["", f"{dataset} (run {run_id}):", "", "| Member | Right / n | Reliability | Weight |",
                          "|---|---:|---:|---:|"]  # fmt: skip
                for m, s in entry["members"].items():
                    lines.append(f"| {m} | {s['correct']} / {s['n']} | {s['reliability']:.3f} | {s['weight']:.3f} |")
    rule = default_rule(rows)
    lines += ["", "### The default against the best single member", "",
              "Paired on the same items; lift in percentage points with a 95% bootstrap interval.", "",
              "| Slice | Configuration | Accuracy | Best single member | Lift [95% CI] |", "|---|---|---:|---|---|"]  # fmt: skip
    for name, s in rule["slices"].items():
        for c, v in s["candidates"].items():
            lift = v["lift"]
            lines.append(f"| {name} | {c} | {v['accuracy']:.1%} | {s['best_single']} ({v['best_single_accuracy']:.1%}) | "
                         f"{100 * lift['lift']:+.1f} [{100 * lift['ci_low']:+.1f}, {100 * lift['ci_high']:+.1f}] |")  # fmt: skip
    lines += [""] + (rule["sentences"] or ["No slice has the default and single-member results to compare."])
    return lines


def judge_section(rows: list[dict[str, Any]]) -> list[str]:
    from .graders import Grade, judge_agreement

    judged = [r for r in rows if (r.get("extra") or {}).get("judge")]
    if not judged:
        return []
    lines = ["", "## The LLM judge against the rule-based grader", "", "| Dataset | Judge | n | Agreement | Cohen's kappa |",
             "|---|---|---:|---:|---:|"]  # fmt: skip
    for dataset in sorted({r["dataset"] for r in judged}):
        part = [r for r in judged if r["dataset"] == dataset]
        exact = [Grade(bool(r["correct"]), r["grade_method"] or "", None) for r in part]
        judge = [Grade(bool(r["extra"]["judge"]["correct"]), "judge", r["extra"]["judge"].get("parsed")) for r in part]
        a = judge_agreement(exact, judge)
        kappa = "n/a" if a["kappa"] is None else f"{a['kappa']:.2f}"
        lines.append(f"| {dataset} | {part[0]['extra']['judge']['model']} | {a['n']} | {a['agreement']:.1%} | {kappa} |")
    return lines


def fit_and_save(run_ids: list[str], *, dry_run: bool = False) -> dict[str, Any]:
    """Fit trust from the runs' single-member results, apply the default rule to their rows and
    (unless `dry_run`) record both in trust.json for the runs' council."""
    from ..api import resolve_council
    from ..config import load_settings
    from ..store import open_db

    store = EvalStore(open_db())
    runs, rows = load_runs(store, run_ids)
    answers: dict[str, int] = {}
    for r in runs:
        answers.update((r.get("plan") or {}).get("answers") or {})
    table = fit_trust_table(rows, answers=answers)
    rule = default_rule(rows)
    out: dict[str, Any] = {"runs": [r["id"] for r in runs], "table": table, "rule": rule, "path": None}
    if not dry_run:
        config = runs[0]["config"]
        council = resolve_council(load_settings(), config.get("council"), config.get("models"))
        try:
            out["path"] = str(save_trust(council, table, rule, [r["id"] for r in runs]))
        finally:
            import asyncio

            asyncio.run(council.aclose())
    return out
