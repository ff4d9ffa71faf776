"""Accuracy against effort: which strategies are on the Pareto frontier of accuracy against
tokens per question and against wall time per question, as a table and two figures.

A strategy is on a frontier when no other strategy is at least as accurate at no more effort
and strictly better in one of the two (identical points are all on it). Every strategy of the
run is a point — baselines, the council, and tiers once they run as strategies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PARETO_TOKENS_PNG = "pareto_tokens.png"
PARETO_SECONDS_PNG = "pareto_seconds.png"
AXES = {"tokens": ("tokens_per_q", "tokens per question (all calls)"),
        "seconds": ("seconds_per_q", "wall time per question (s)")}  # fmt: skip


def frontier(points: dict[str, tuple[float, float]]) -> list[str]:
    """The names whose (effort, accuracy) no other point dominates, cheapest first."""

    def dominated(name: str) -> bool:
        x, acc = points[name]
        return any(ox <= x and oacc >= acc and (ox < x or oacc > acc) for other, (ox, oacc) in points.items() if other != name)

    return sorted((n for n in points if not dominated(n)), key=lambda n: (points[n][0], -points[n][1]))


def frontiers(stats: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """{"tokens": [...], "seconds": [...]}: the frontier on each axis for one slice's stats."""
    return {axis: frontier({name: (s[key], s["accuracy"]) for name, s in stats.items()}) for axis, (key, _) in AXES.items()}


def pareto_section(stats: dict[str, dict[str, Any]], label: str, figures: dict[str, str | None], md: Any, cost: Any) -> list[str]:
    """The report's Markdown: a table of every strategy with its frontier marks, then the figures."""
    on = frontiers(stats)
    lines = ["", "## Accuracy against effort (Pareto frontier)", "",
             f"On {md(label)}: a strategy is on a frontier when no other is at least as accurate with fewer tokens "
             "(or less wall time) per question. ✓ marks the frontier.", "",
             "| Strategy | Accuracy | Tokens/q | s/q | Cost/q | Tokens frontier | Time frontier |",
             "|---|---:|---:|---:|---:|:---:|:---:|"]  # fmt: skip
    for name, s in sorted(stats.items(), key=lambda kv: kv[1]["tokens_per_q"]):
        marks = ["✓" if name in on[axis] else "" for axis in AXES]
        lines.append(f"| {md(name)} | {100 * s['accuracy']:.1f}% | {s['tokens_per_q']:.0f} | {s['seconds_per_q']:.2f} "
                     f"| {cost(s['cost_per_q'])} | {marks[0]} | {marks[1]} |")  # fmt: skip
    for axis, title in (("tokens", "tokens"), ("seconds", "wall time")):
        if figures.get(axis):
            lines += ["", f"![Accuracy against {title}, with the frontier]({figures[axis]})"]
    return lines


def pareto_figures(stats: dict[str, dict[str, Any]], out: Path, label: str, canvas: Any) -> dict[str, str | None]:
    """pareto_tokens.png and pareto_seconds.png beside report.md; their file names."""
    out_names = {"tokens": PARETO_TOKENS_PNG, "seconds": PARETO_SECONDS_PNG}
    on = frontiers(stats)
    names: dict[str, str | None] = {}
    for axis, (key, xlabel) in AXES.items():
        fig, (ax,) = canvas(7, 5)
        for name, s in stats.items():
            marker = "o" if name in on[axis] else "x"
            ax.plot([s[key]], [s["accuracy"]], marker=marker, linestyle="none", color="tab:blue" if marker == "o" else "grey")
            ax.annotate(name, (s[key], s["accuracy"]), textcoords="offset points", xytext=(6, 6), fontsize="small")
        edge = [(stats[n][key], stats[n]["accuracy"]) for n in on[axis]]
        if len(edge) > 1:
            ax.step([x for x, _ in edge], [y for _, y in edge], where="post", color="tab:blue", alpha=0.6, label="frontier")
            ax.legend(fontsize="small")
        xs = [s[key] for s in stats.values()]
        if xs and min(xs) > 0 and max(xs) / min(xs) > 20:
            ax.set_xscale("log")
        ax.margins(x=0.15)
        ax.set(xlabel=xlabel, ylabel="accuracy", ylim=(0, 1), title=f"Accuracy against {xlabel.split(' (')[0]} ({label})")
        ax.grid(alpha=0.3)
        fig.savefig(out / out_names[axis])
        names[axis] = out_names[axis]
    return names


__all__ = ["PARETO_SECONDS_PNG", "PARETO_TOKENS_PNG", "frontier", "frontiers", "pareto_figures", "pareto_section"]
