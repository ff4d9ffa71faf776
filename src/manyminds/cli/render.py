"""How a run looks in a terminal: a live panel per member while it runs, then the agreement and
the verdict. Plain text for pipes and files. Both read the pipeline's own events and `Verdict`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..pipeline.events import Event
from ..pipeline.verdict import Verdict

STATUS_STYLE = {
    "waiting": "dim",
    "streaming": "cyan",
    "retrying": "yellow",
    "ok": "green",
    "failed": "red",
    "timeout": "red",
    "cut": "dim",
}


@dataclass
class MemberView:
    name: str
    model: str = ""
    status: str = "waiting"
    text: str = ""
    started: float | None = None
    latency_s: float | None = None
    tokens: int | None = None
    note: str = ""


@dataclass
class LiveState:
    """Folds events into what the live view shows."""

    members: dict[str, MemberView] = field(default_factory=dict)
    stage: str = "starting"
    run_id: str = ""

    def handle(self, event: Event) -> None:
        data = event.data
        if event.kind == "run_started":
            self.run_id = event.run_id
            for m in data.get("council", {}).get("members", []):
                self.members[m["name"]] = MemberView(m["name"], m.get("model", ""))
        elif event.kind == "stage_started":
            self.stage = event.stage or ""
        elif event.member and event.member in self.members:
            view = self.members[event.member]
            if event.kind == "member_started":
                view.status, view.started = "streaming", time.perf_counter()
            elif event.kind == "member_delta":
                view.status = "streaming"
                view.text += data.get("text", "")
            elif event.kind == "member_retry":
                view.status, view.text = "retrying", ""
                view.note = f"retry {data.get('attempt')}: {data.get('cause', '')}"
            elif event.kind in ("member_done", "member_failed"):
                answer = data.get("answer", {})
                view.status = answer.get("status", "ok")
                view.latency_s = answer.get("latency_s")
                view.tokens = (answer.get("usage") or {}).get("output_tokens")
                if answer.get("text"):
                    view.text = answer["text"]
                if answer.get("error"):
                    view.note = answer["error"].get("cause") or answer["error"].get("message", "")
            elif event.kind == "member_cut":
                view.status, view.note = "cut", "not waited for: the vote was settled"

    def renderable(self) -> Any:
        from rich.columns import Columns
        from rich.console import Group
        from rich.panel import Panel
        from rich.text import Text

        panels = []
        for view in self.members.values():
            elapsed = view.latency_s
            if elapsed is None and view.started is not None:
                elapsed = time.perf_counter() - view.started
            meta = [view.status]
            if elapsed is not None:
                meta.append(f"{elapsed:.1f}s")
            if view.tokens is not None:
                meta.append(f"{view.tokens} tok")
            body = Text(view.text[-600:] or "…", style="" if view.status != "waiting" else "dim")
            if view.note:
                body.append(f"\n{view.note}", style="red" if view.status in ("failed", "timeout") else "yellow")
            panels.append(
                Panel(
                    body,
                    title=f"[bold]{view.name}[/] [dim]{view.model}[/]",
                    subtitle=" · ".join(meta),
                    border_style=STATUS_STYLE.get(view.status, "white"),
                    width=44,
                )
            )
        return Group(Text(f"stage: {self.stage}", style="dim"), Columns(panels))


def render_verdict(verdict: Verdict) -> Any:
    """The agreement table and the verdict panel, for a terminal."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    agreement = Table(title="Agreement", show_lines=False)
    agreement.add_column("answer")
    agreement.add_column("members")
    agreement.add_column("share", justify="right")
    for c in verdict.agreement.clusters:
        agreement.add_row(c.answer, ", ".join(c.members), f"{c.share:.0%}")
    for m in verdict.members:
        if not m.ok:
            agreement.add_row(Text(f"({m.status})", style="red"), m.member, "—")
    if verdict.claims is not None:
        # Long answers: the claims × members matrix says more than short-answer clusters.
        agreement = claims_table(verdict)

    body = Text()
    if verdict.abstained:
        body.append("NOT SURE", style="bold yellow")
        body.append(" — the confidence is below the minimum asked for; competing answers:\n")
        for a in verdict.alternatives:
            body.append(f"  • {a.answer!r}: {', '.join(a.members) or 'the chair'} ({a.share:.0%})\n")
        body.append("\n")
    else:
        body.append(verdict.answer + "\n\n")
        if _explains(verdict):
            body.append(verdict.explanation + "\n\n", style="italic")
    if verdict.short_answer and verdict.short_answer != verdict.answer:
        body.append("Short answer: ", style="bold")
        body.append(verdict.short_answer + "\n")
    body.append(f"Confidence {verdict.confidence:.0%} ({confidence_kind(verdict)})", style="bold")
    body.append(f" — {verdict.confidence_explanation}\n", style="dim")
    for line in effort_lines(verdict):
        body.append(line + "\n", style="cyan")
    if verdict.dissent and not verdict.abstained:
        body.append("\nDissent:\n", style="bold")
        for d in verdict.dissent:
            body.append(f"  • {d.answer!r}: {', '.join(d.members)} ({d.share:.0%})\n")
    if verdict.citations:
        body.append("\nSources:\n", style="bold")
        for c in verdict.citations:
            body.append(f"  [{c.id}] {c.document} ({c.location}): ")
            body.append(f"“{_clip(c.quote, 200)}”\n", style="italic")
    if verdict.follow_ups:
        body.append("\nYou might also ask:\n", style="bold")
        for q in verdict.follow_ups:
            body.append(f"  • {q}\n")
    memory = memory_lines(verdict)
    if memory:
        body.append(f"\n{memory[0]}\n", style="bold")
        for line in memory[1:]:
            body.append(line + "\n")
    if verdict.specialists:
        body.append("\nSpecialists:\n", style="bold")
        for line in specialist_lines(verdict):
            body.append(f"  • {line}\n")
    for w in verdict.warnings:
        body.append(f"\n⚠ {w}", style="yellow")
    body.append(f"\n{cost_line(verdict)}", style="dim")
    footer = " · ".join([run_summary(verdict, " · ")] + [f"{k} {v:.1f}s" for k, v in verdict.timings.items()])
    return Group(agreement, Panel(body, title="Verdict", subtitle=footer, border_style="green"))


STANCE_MARK = {"supports": "✓", "contradicts": "✗", "silent": "·"}
CLAIM_STATUS_STYLE = {"consensus": "green", "contested": "red", "unique": "yellow"}
EVIDENCE_STYLE = {"supported": "green", "refuted": "red", "not_found": "dim", "unchecked": "dim"}


def claims_table(verdict: Verdict) -> Any:
    """The claim matrix for a terminal: one row per claim, a column per member
    (✓ supports, ✗ contradicts, · silent), its status and what the sources said."""
    from rich.table import Table
    from rich.text import Text

    matrix = verdict.claims
    table = Table(title="Claims (✓ supports · ✗ contradicts · silent)", show_lines=False)
    table.add_column("", style="dim")
    table.add_column("claim")
    for member in matrix.members:
        table.add_column(member, justify="center")
    table.add_column("status")
    table.add_column("source")
    for c in matrix.claims:
        marks = [Text(STANCE_MARK[c.stances.get(m, "silent")], style="red" if c.stances.get(m) == "contradicts" else "")
                 for m in matrix.members]
        cited = [str(x.id) for x in verdict.citations if c.id in x.claim_ids]
        source = Text(c.evidence_verdict + (f" [{','.join(cited)}]" if cited else ""), style=EVIDENCE_STYLE[c.evidence_verdict])
        table.add_row(c.id, _clip(c.text, 120), *marks, Text(c.status, style=CLAIM_STATUS_STYLE[c.status]), source)
    for m in verdict.members:
        if not m.ok:
            table.add_row("", Text(f"{m.member}: {m.status}", style="red"), *[""] * len(matrix.members), "", "")
    return table


def plain_claims(verdict: Verdict) -> list[str]:
    """The claim matrix, citations and follow-up questions as plain lines."""
    lines: list[str] = []
    if verdict.claims is not None:
        members = verdict.claims.members
        lines.append(f"Claims ({', '.join(members)}; + supports, x contradicts, . silent):")
        for c in verdict.claims.claims:
            marks = "".join({"supports": "+", "contradicts": "x", "silent": "."}[c.stances.get(m, "silent")] for m in members)
            evidence = f", source: {c.evidence_verdict}" if c.evidence_verdict != "unchecked" else ""
            lines.append(f"  {c.id} [{marks}] {c.status}{evidence}: {c.text}")
    if verdict.citations:
        lines.append("Sources:")
        lines += [f"  [{c.id}] {c.document} ({c.location}): \"{c.quote}\"" for c in verdict.citations]
    if verdict.follow_ups:
        lines.append("Follow-up questions:")
        lines += [f"  - {q}" for q in verdict.follow_ups]
    return lines


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _explains(verdict: Verdict) -> bool:
    """Whether the explanation says more than the answer ("Shakespeare" under "William Shakespeare" does not)."""
    text = (verdict.explanation or "").strip().rstrip(".").lower()
    return bool(text) and text not in verdict.answer.lower()


def plain_verdict(verdict: Verdict) -> str:
    """The verdict as plain text, for pipes and files."""
    if verdict.abstained:
        lines = [f"Answer: NOT SURE. {verdict.answer}", "Competing answers:"]
        lines += [f"  - {a.answer}: {', '.join(a.members) or 'the chair'} ({a.share:.0%})" for a in verdict.alternatives]
    else:
        lines = [f"Answer: {verdict.answer}"]
        if _explains(verdict):
            lines.append(f"Explanation: {verdict.explanation}")
    if verdict.short_answer and verdict.short_answer != verdict.answer:
        lines.append(f"Short answer: {verdict.short_answer}")
    lines.append(f"Confidence: {verdict.confidence:.2f}, {confidence_kind(verdict)} ({verdict.confidence_explanation})")
    lines += effort_lines(verdict)
    if verdict.dissent and not verdict.abstained:
        lines.append("Dissent:")
        lines += [f"  - {d.answer}: {', '.join(d.members)} ({d.share:.0%})" for d in verdict.dissent]
    lines += plain_claims(verdict)
    lines += memory_lines(verdict)
    lines.append("Members:")
    for m in verdict.members:
        if m.ok:
            lines.append(f"  - {m.member} ({m.model}, {m.latency_s:.1f}s, {m.usage.total_tokens} tokens, "
                         f"{cost_text(m.cost_usd)}): {m.short_answer}")  # fmt: skip
            lines.append("      " + m.text.replace("\n", "\n      "))
        else:
            why = "not waited for, the vote was settled (early consensus)" if m.status == "cut" else (m.error or {}).get("message", "")
            lines.append(f"  - {m.member} ({m.model}): {m.status}: {why}")
    if verdict.specialists:
        lines.append("Specialists:")
        lines += [f"  - {line}" for line in specialist_lines(verdict)]
    lines.append(cost_line(verdict))
    lines += plain_footer(verdict)
    return "\n".join(lines)


def memory_lines(verdict: Verdict) -> list[str]:
    """"Used from memory (profile P; given to A, B):" and one line per memory; [] if none."""
    used = getattr(verdict, "memory_used", None)
    if not used:
        return []
    head = f"Used from memory (profile {verdict.memory_profile}; given to {', '.join(verdict.memory_members)}"
    head += f"; withheld from {', '.join(verdict.memory_withheld)}):" if verdict.memory_withheld else "):"
    return [head] + [f"  - [{m.id}] {_clip(m.text, 200)}" for m in used]


def cost_text(cost: float | None) -> str:
    """A cost as shown everywhere: "$0.0012", or "cost unknown" (a price missing), never $0."""
    return "cost unknown" if cost is None else f"${cost:.4f}"


def cost_line(verdict: Verdict) -> str:
    """"Cost: $0.0031 (a $0.0010, b cost unknown; chair $0.0004)" — total and per call."""
    parts = [f"{m.member} {cost_text(m.cost_usd if m.ok else 0.0 if not m.usage.total_tokens else m.cost_usd)}"
             for m in verdict.members]
    if verdict.chair is not None and verdict.chair.status == "ok":
        parts.append(f"chair {cost_text(verdict.chair.cost_usd)}")
    return f"Cost: {cost_text(verdict.cost_usd)} ({', '.join(parts)})"


def specialist_lines(verdict: Verdict) -> list[str]:
    """One line per member with a role: what it did and why ("maths-bot (maths): skipped — …")."""
    out = []
    for n in verdict.specialists:
        line = f"{n.member} ({n.role}): {n.status}"
        if n.reason:
            line += f" — {n.reason}"
        if n.scores:
            line += " [" + ", ".join(f"{m} {s:.2f}" for m, s in n.scores.items()) + "]"
        if n.weight is not None and n.kind == "answer":
            line += f" (weight {n.weight:g})"
        out.append(line)
    return out


def effort_lines(verdict: Verdict) -> list[str]:
    """The effort tier, the router's choice and what early consensus cut, as lines."""
    lines = []
    route = getattr(verdict, "route", None)
    if route is not None:
        lines.append(f"Route: {route.tier} — {route.reason}")
    elif getattr(verdict, "effort", None):
        lines.append(f"Effort: {verdict.effort}")
    early = getattr(verdict, "early_consensus", None)
    if early is not None and early.cut:
        lines.append(f"Early consensus after {early.after_s:.1f}s: cut {', '.join(early.cut)} ({early.reason})")
    if getattr(verdict, "report", None):
        lines.append(f"Report: manyminds runs show {verdict.run_id} --report")
    return lines


def confidence_kind(verdict: Verdict) -> str:
    """"calibrated (logistic, 120 items; raw 0.67)" or "uncalibrated"."""
    if not getattr(verdict, "calibrated", False):
        return "uncalibrated"
    c = verdict.calibration or {}
    raw = f"; raw {verdict.confidence_raw:.2f}" if verdict.confidence_raw is not None else ""
    return f"calibrated ({c.get('method', '?')}, {c.get('items', '?')} items{raw})"


def run_summary(result, sep: str) -> str:  # noqa: ANN001
    """"run ID · N tokens · $cost" of a verdict or a verify report (the cost when known)."""
    parts = [f"run {result.run_id}", f"{result.usage.total_tokens} tokens"]
    parts.append(cost_text(result.cost_usd))
    return sep.join(parts)


def plain_footer(result) -> list[str]:  # noqa: ANN001
    """The last lines of plain output, for a verdict or a verify report: warnings, then the run."""
    cost = f", {cost_text(result.cost_usd)}"
    total = result.timings.get("total", 0)
    return [f"Warning: {w}" for w in result.warnings] + [
        f"Run: {result.run_id} ({result.usage.total_tokens} tokens{cost}, {total:.1f}s)"
    ]
