"""The evaluation report: `report.md`, two figures and `summary.json` in one directory.

The Markdown holds a table per slice (all, each dataset, each category), the Pareto frontier of
accuracy against tokens and wall time (pareto.py, two more figures), the lift of every
strategy over the best single member and over self-consistency with paired bootstrap intervals,
and plain sentences wherever the default strategy scores below the best single member — the
claim manyminds has to earn. Figures are drawn with matplotlib's Agg canvas (no display, no
pyplot global state) and linked by relative paths, so the directory can be moved or published
as it is.

"Best single member" is chosen per slice *after* seeing the results (the single:* strategy
with the highest accuracy there). That favours the baseline, so a lift over it is a
conservative figure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from .ceiling import SINGLE_PREFIX, ceiling_lines
from .metrics import (
    CONFIDENT,
    LEVEL,
    N_BOOT,
    aurc,
    paired_by_item,
    paired_lift,
    reliability_bins,
    risk_coverage,
    slices,
    summarise,
)
from .pareto import pareto_figures, pareto_section
from .records import ItemResult

__all__ = ["RELIABILITY_PNG", "REPORT_MD", "RISK_COVERAGE_PNG", "SUMMARY_JSON", "TOKENS_PNG", "lifts", "write_report"]

REPORT_MD = "report.md"
RELIABILITY_PNG = "reliability.png"
TOKENS_PNG = "accuracy_tokens.png"
RISK_COVERAGE_PNG = "risk_coverage.png"
SUMMARY_JSON = "summary.json"
TABLE_HEAD = "| Strategy | n | Accuracy [95% CI] | AUROC | ECE | Confidently wrong | Tokens/q | Cost/q | s/q |"
SELF_CONSISTENCY_PREFIX = "self-consistency"


def write_report(
    results: list[ItemResult],
    out_dir: Path,
    *,
    title: str,
    meta: dict[str, Any],
    baselines: dict[str, str] | None = None,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> Path:
    """Write the report for `results` into `out_dir` and return the path of `report.md`.

    `meta` is shown in the header (models, datasets, limit, seed, command, …);
    `meta["default_strategy"]` names the strategy whose shortfalls are spelled out.
    `baselines` maps a label to a strategy name for extra lift sections ("majority vote" →
    "majority"), beside the built-in best single member and self-consistency."""
    if not results:
        raise ValueError("no results to report")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(results, n_boot=n_boot, seed=seed)
    lift_rows = lifts(results, summary, baselines=baselines, n_boot=n_boot, seed=seed)
    first_slice = next(iter(summary))
    figures = {
        "reliability": _reliability_figure(results, out / RELIABILITY_PNG),
        "tokens": _tokens_figure(summary[first_slice], out / TOKENS_PNG, first_slice),
        "risk_coverage": _risk_coverage_figure(results, out / RISK_COVERAGE_PNG),
        "pareto": pareto_figures(summary[first_slice], out, first_slice, _canvas),
    }
    text = _markdown(results, summary, lift_rows, figures, title=title, meta=meta, n_boot=n_boot)
    path = out / REPORT_MD
    path.write_text(text, encoding="utf-8")
    (out / SUMMARY_JSON).write_text(
        json.dumps({"title": title, "meta": meta, "slices": summary, "lifts": lift_rows}, indent=2, default=str) + "\n",
        encoding="utf-8",
    )
    return path


# --- lifts ---------------------------------------------------------------------------------


def lifts(
    results: Sequence[ItemResult],
    summary: dict[str, dict[str, dict[str, Any]]],
    *,
    baselines: dict[str, str] | None = None,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per (slice, baseline, strategy): the paired accuracy difference strategy −
    baseline on the items both answered, with its bootstrap interval."""
    rows: list[dict[str, Any]] = []
    for label, records in slices(results):
        stats = summary[label]
        groups: list[tuple[str, str | None, set[str]]] = [
            ("best single member", _best(stats, SINGLE_PREFIX), {s for s in stats if s.startswith(SINGLE_PREFIX)}),
            ("self-consistency", _best(stats, SELF_CONSISTENCY_PREFIX),
             {s for s in stats if s.startswith(SELF_CONSISTENCY_PREFIX)}),
        ]  # fmt: skip
        for name, strategy in (baselines or {}).items():
            groups.append((name, strategy if strategy in stats else None, {strategy}))
        for kind, baseline, skip in groups:
            if baseline is None:
                continue
            for strategy in stats:
                if strategy in skip:
                    continue
                a, b = paired_by_item(records, strategy, baseline)
                if not a:
                    continue
                diff, low, high = paired_lift(a, b, n_boot=n_boot, seed=seed)
                rows.append({
                    "slice": label, "baseline_kind": kind, "baseline": baseline, "strategy": strategy,
                    "n": len(a), "lift": diff, "ci_low": low, "ci_high": high,
                })  # fmt: skip
    return rows


def _best(stats: dict[str, dict[str, Any]], prefix: str) -> str | None:
    """The strategy named `prefix…` with the highest accuracy (ties: the first name in order)."""
    names = sorted(s for s in stats if s.startswith(prefix))
    return max(names, key=lambda s: stats[s]["accuracy"], default=None)


# --- Markdown ------------------------------------------------------------------------------


def _markdown(
    results: Sequence[ItemResult],
    summary: dict[str, dict[str, dict[str, Any]]],
    lift_rows: list[dict[str, Any]],
    figures: dict[str, str | None],
    *,
    title: str,
    meta: dict[str, Any],
    n_boot: int,
) -> str:
    lines = [f"# {title}", ""]
    for key, value in meta.items():
        lines.append(f"- **{_label(key)}**: {_meta_value(key, value)}")
    methods: dict[str, int] = {}
    for r in results:
        methods[r.grade_method] = methods.get(r.grade_method, 0) + 1
    grading = ", ".join(f"{m} {n}" for m, n in sorted(methods.items()))
    failed = sum(1 for r in results if r.error)
    unread = sum(1 for r in results if r.grade_error and not r.error)  # a failed run's grade error is not news
    lines.append(f"- **Graded by**: {grading}; {unread} response(s) unreadable and {failed} failed run(s), "
                 "all counted as wrong")  # fmt: skip
    lines += [
        "",
        (
            f"Accuracy with a {LEVEL:.0%} percentile-bootstrap interval ({n_boot} resamples). AUROC: the chance that "
            "a right answer got a higher confidence than a wrong one (0.5 = no signal). ECE: expected calibration "
            f"error over 10 equal-width bins. Confidently wrong: share of all items answered wrongly with confidence "
            f"≥ {CONFIDENT:g}. Cost n/a: some price unknown."
        ),
        "",
        "## Results",
    ]
    for label, stats in summary.items():
        lines += ["", f"### {_md(label)}", "", TABLE_HEAD, "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
        for name, s in stats.items():
            lines.append(
                f"| {_md(name)} | {s['n']} | {_pct(s['accuracy'])} [{_pct(s['ci_low'])}–{_pct(s['ci_high'])}] "
                f"| {_num(s['auroc'])} | {_num(s['ece'])} | {_pct(s['confidently_wrong'])} "
                f"| {s['tokens_per_q']:.0f} | {_cost(s['cost_per_q'])} | {s['seconds_per_q']:.2f} |"
            )
    first = next(iter(summary))
    lines += pareto_section(summary[first], first, figures["pareto"], _md, _cost)
    lines += risk_coverage_section(results, summary)
    lines += ["", "## Lift"]
    if not lift_rows:
        lines.append("")
        lines.append("No baseline strategy (single:…, self-consistency…) was run, so there is no lift to show.")
    for kind in dict.fromkeys(r["baseline_kind"] for r in lift_rows):
        lines += ["", f"### Over the {kind}" if kind in ("best single member",) else f"### Over {kind}", "",
                  "Paired on the same items: accuracy of the strategy minus the baseline's, in percentage points.",
                  "", "| Slice | Strategy | Baseline | n | Lift [95% CI] |", "|---|---|---|---:|---|"]  # fmt: skip
        for r in (r for r in lift_rows if r["baseline_kind"] == kind):
            lines.append(f"| {_md(r['slice'])} | {_md(r['strategy'])} | {_md(r['baseline'])} | {r['n']} | "
                         f"{_pts(r['lift'])} [{_pts(r['ci_low'])}, {_pts(r['ci_high'])}] |")  # fmt: skip
    lines += ["", "## Where the default strategy falls short", ""]
    lines += _flags(summary, lift_rows, meta.get("default_strategy"))
    ceiling = ceiling_lines(results)
    if ceiling:
        lines += ["", "### What the members allow", "", *ceiling]
    lines += ["", "## Figures", ""]
    if figures["reliability"]:
        lines += [f"![Reliability diagram]({figures['reliability']})", ""]
    else:
        lines += ["No strategy reported confidences, so there is no reliability diagram.", ""]
    lines += [f"![Accuracy against tokens per question]({figures['tokens']})", ""]
    if figures.get("risk_coverage"):
        lines += [f"![Risk against coverage]({figures['risk_coverage']})", ""]
    return "\n".join(lines)


COVERAGES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)


def risk_coverage_section(results: Sequence[ItemResult], summary: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Abstention (`--min-confidence`): the error rate among the answers kept when the least
    confident are withheld, at fixed coverages, and the area under that curve (AURC), per
    strategy on all items."""
    by_strategy: dict[str, list[ItemResult]] = {}
    for r in results:
        by_strategy.setdefault(r.strategy, []).append(r)
    shown = {s: rs for s, rs in by_strategy.items() if any(r.confidence is not None for r in rs)}
    lines = ["", "## Risk against coverage (abstention)", ""]
    if not shown:
        return lines + ["No strategy reported confidences, so there is no risk–coverage curve."]
    lines += ["Keeping only the most confident answers (the rest abstain): the share of kept answers that are wrong "
              "at each coverage, and AURC, the area under that curve (lower is better; without any signal it equals "
              "the error rate). Tied confidences are kept or withheld together, so a coverage is the nearest reachable "
              "one at or above the column's.", "",
              "| Strategy | n | AURC | Error rate | " + " | ".join(f"risk @ {c:.0%}" for c in COVERAGES) + " |",
              "|---|---:|---:|---:|" + "---:|" * len(COVERAGES)]  # fmt: skip
    for name, rs in shown.items():
        conf, right = [r.confidence for r in rs], [r.correct for r in rs]
        points = risk_coverage(conf, right)
        cells = []
        for c in COVERAGES:
            p = next((p for p in points if p["coverage"] >= c - 1e-9), None)
            cells.append("n/a" if p is None else f"{p['risk']:.1%} ({p['coverage']:.0%})")
        n = sum(x is not None for x in conf)
        errors = 1 - sum(r for r, x in zip(right, conf) if x is not None) / n
        lines.append(f"| {_md(name)} | {n} | {aurc(conf, right):.3f} | {errors:.1%} | " + " | ".join(cells) + " |")
    return lines


def _risk_coverage_figure(results: Sequence[ItemResult], path: Path) -> str | None:
    by_strategy: dict[str, list[ItemResult]] = {}
    for r in results:
        by_strategy.setdefault(r.strategy, []).append(r)
    shown = {s: rs for s, rs in by_strategy.items() if any(r.confidence is not None for r in rs)}
    if not shown:
        return None
    fig, (ax,) = _canvas(7, 5)
    for name, rs in shown.items():
        conf, right = [r.confidence for r in rs], [r.correct for r in rs]
        points = risk_coverage(conf, right)
        ax.step([p["coverage"] for p in points], [p["risk"] for p in points], where="post", marker="o", markersize=3,
                label=f"{name} (AURC {aurc(conf, right):.3f})")  # fmt: skip
    ax.set(xlim=(0, 1.02), ylim=(0, 1), xlabel="coverage (share of items answered)",
           ylabel="risk (share of answered items wrong)", title="Risk against coverage (all items)")  # fmt: skip
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.savefig(path)
    return path.name


def _flags(summary: dict[str, dict[str, dict[str, Any]]], lift_rows: list[dict[str, Any]], default: Any) -> list[str]:
    if not default:
        return ["No default strategy was named (meta[\"default_strategy\"]), so nothing is checked here."]
    out = []
    for label, stats in summary.items():
        best = _best(stats, SINGLE_PREFIX)
        if default not in stats or best is None:
            continue
        mine, theirs = stats[default]["accuracy"], stats[best]["accuracy"]
        if mine >= theirs:
            continue
        row = next((r for r in lift_rows if r["slice"] == label and r["strategy"] == default
                    and r["baseline_kind"] == "best single member"), None)  # fmt: skip
        sentence = (f"- On **{_md(label)}**, {_md(default)} ({_pct(mine)}) scores below the best single member, "
                    f"{_md(best)} ({_pct(theirs)})")  # fmt: skip
        if row:
            clear = row["ci_high"] < 0
            sentence += (f": {_pts(row['lift'])} [{_pts(row['ci_low'])}, {_pts(row['ci_high'])}] on {row['n']} "
                         f"paired items — {'a clear shortfall' if clear else 'within noise'}")  # fmt: skip
        out.append(sentence + ".")
    if not out:
        checked = [label for label, stats in summary.items() if default in stats and _best(stats, SINGLE_PREFIX)]
        if checked:
            return [f"{_md(str(default))} scores at least as well as the best single member on every slice."]
        return [f"No slice has both {_md(str(default))} and a single-member baseline to compare."]
    return out


def _label(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _meta_value(key: str, value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_md(str(v)) for v in value)
    if key == "command":
        return f"`{value}`"
    return _md(str(value))


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _cost(x: float | None) -> str:
    return "n/a" if x is None else f"${x:.4f}"


# --- figures -------------------------------------------------------------------------------


def _canvas(width: float, height: float, rows: int = 1, heights: list[int] | None = None):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, gridspec_kw={"height_ratios": heights} if heights else None, squeeze=False)
    return fig, [row[0] for row in axes]


def _reliability_figure(results: Sequence[ItemResult], path: Path, n_bins: int = 10) -> str | None:
    by_strategy: dict[str, list[ItemResult]] = {}
    for r in results:
        by_strategy.setdefault(r.strategy, []).append(r)
    shown = {s: rs for s, rs in by_strategy.items() if any(r.confidence is not None for r in rs)}
    if not shown:
        return None
    fig, (top, bottom) = _canvas(7, 7.5, rows=2, heights=[3, 1])
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    width = 1 / n_bins / (len(shown) + 1)
    for k, (name, rs) in enumerate(shown.items()):
        bins = reliability_bins([r.confidence for r in rs], [r.correct for r in rs], n_bins)
        full = [b for b in bins if b["count"]]
        top.plot([b["mean_confidence"] for b in full], [b["accuracy"] for b in full], marker="o", label=name)
        bottom.bar([b["lo"] + (k + 0.5) * width for b in bins], [b["count"] for b in bins], width=width, label=name)
    top.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean confidence in bin", ylabel="accuracy in bin",
            title="Reliability (all items)")  # fmt: skip
    top.legend(fontsize="small")
    top.grid(alpha=0.3)
    bottom.set(xlim=(0, 1), xlabel="confidence bin", ylabel="answers")
    fig.savefig(path)
    return path.name


def _tokens_figure(stats: dict[str, dict[str, Any]], path: Path, label: str) -> str:
    fig, (ax,) = _canvas(7, 5)
    xs = [s["tokens_per_q"] for s in stats.values()]
    for name, s in stats.items():
        acc = s["accuracy"]
        ax.errorbar([s["tokens_per_q"]], [acc], yerr=[[acc - s["ci_low"]], [s["ci_high"] - acc]], fmt="o", capsize=4)
        ax.annotate(name, (s["tokens_per_q"], acc), textcoords="offset points", xytext=(6, 6), fontsize="small")
    if xs and min(xs) > 0 and max(xs) / min(xs) > 20:
        ax.set_xscale("log")
    ax.margins(x=0.15)  # room for the labels of the outermost points
    ax.set(xlabel="tokens per question (all calls)", ylabel="accuracy", ylim=(0, 1),
           title=f"Accuracy against tokens per question ({label}, 95% CI)")  # fmt: skip
    ax.grid(alpha=0.3)
    fig.savefig(path)
    return path.name
