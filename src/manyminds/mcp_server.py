"""manyminds as an MCP server for agent hosts (Claude Desktop, IDEs, …): `manyminds mcp`.

Tools, over stdio, built with the official `mcp` package:

    ask(question, council?, models?, min_confidence?, no_memory?) → the Verdict JSON (structured content) + a short summary
    verify(text, collection?, council?, models?) → a verdict per claim of `text` + a summary
    councils()                         → the councils (members, models, roles, guardrails) and the roles
    memory_list(profile?) / memory_add(text, profile?) / memory_forget(id, profile?) → the personal memory

Every run is stored in the user dir's database like a run of `manyminds ask`. A failure a user
can act on (an empty question, an unknown council, a council that could not answer) comes
back as a tool error — `isError: true` with the message — never as a crash of the server.

Stdout is the protocol channel: while the server runs, the SDK points file descriptor 1 at
stderr for everything else, and logs go to stderr.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from .version import __version__
from .config import Settings, load_settings
from .errors import ManymindsError
from .memory.store import Memory, MemoryStore, resolve_profile
from .pipeline.events import Event
from .pipeline.verdict import Verdict
from .strategies.verify import VerifyReport

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "manyminds asks several language models (a council) the same question at once, compares "
    "their answers and returns one answer with a measured confidence, the dissent (who said what "
    "else) and every member's answer. Use `ask` for a question whose answer you want "
    "cross-checked; use `verify` to fact-check a text claim by claim. Confidence is the "
    "weighted share of members that agree; it is not a guarantee."
)

# Not read-only: each call runs (and may pay for) model calls and stores a run; nothing is deleted.
RUNS_MODELS = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=True)
# Reads the settings only.
READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False)

QuestionArg = Annotated[str, Field(description="The question to ask every member of the council.")]
CouncilArg = Annotated[
    str | None,
    Field(description="A council from the user's settings (default: the default council, e.g. the local one)."),
]
ModelsArg = Annotated[
    list[str] | None,
    Field(description='Ask these models instead of a council, e.g. ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"].'),
]
MinConfidenceArg = Annotated[
    float | None,
    Field(description='Abstain below this calibrated confidence (0 < x <= 1): the answer is "not sure" with the competing answers.'),
]
EffortArg = Annotated[
    str | None,
    Field(description="How much work: quick (fastest members, stops at early consensus), standard (the default "
                      "council), deep (review, revision and grounding rounds: slower) or auto (picks one, and says why)."),
]
MaxCostArg = Annotated[float | None, Field(gt=0, description="Stop at this many USD spent (needs every model's price).")]
MaxTokensArg = Annotated[int | None, Field(gt=0, description="Stop at this many tokens, input + output of every call.")]
MaxSecondsArg = Annotated[float | None, Field(gt=0, description="Stop after this many seconds; keep what finished.")]
TextArg = Annotated[str, Field(description="The text to fact-check, claim by claim.")]
NoMemoryArg = Annotated[bool, Field(description="Ask without the user's personal memory.")]
ProfileArg = Annotated[str | None, Field(description="The memory profile (default: the user's default profile).")]
CollectionArg = Annotated[
    str | None,
    Field(description="A local document collection (`manyminds docs add`) to check the claims against."),
]


def build_server(settings: Settings | None = None, *, db_path: str | None = None) -> MCPServer:
    """The MCP server with its tools (ask, verify, councils). `settings` default to the user dir's settings file,
    read on every call so an edit applies without restarting the host."""

    server = MCPServer(name="manyminds", title="manyminds council", instructions=INSTRUCTIONS, version=__version__)

    def current_settings() -> Settings:
        return settings or load_settings()

    @server.tool(
        name="ask",
        title="Ask a council of models",
        description=(
            "Ask several language models the same question at once; returns one answer with a "
            "confidence (the weighted share of members that agree), the dissent, and every member's "
            "answer (structured content: the manyminds Verdict)."
        ),
        annotations=RUNS_MODELS,
    )
    async def ask(
        question: QuestionArg, ctx: Context, council: CouncilArg = None, models: ModelsArg = None,
        min_confidence: MinConfidenceArg = None, no_memory: NoMemoryArg = False, effort: EffortArg = None,
        max_cost: MaxCostArg = None, max_tokens: MaxTokensArg = None, max_seconds: MaxSecondsArg = None,
    ) -> Annotated[CallToolResult, Verdict]:
        from .api import run_request
        from .errors import InputError
        from .request import AskRequest
        from .strategies.tiers import check_effort

        try:
            effort = check_effort(effort)
            if effort == "overnight":
                raise InputError("The overnight tier is a background job, not a tool call: queue it with "
                                 "`manyminds ask --effort overnight \"…\"` and read `manyminds runs show ID --report`.")
        except InputError as exc:
            raise ToolError(error_text(exc)) from None
        budget = {"max_cost": max_cost, "max_tokens": max_tokens, "max_seconds": max_seconds}
        request = AskRequest.model_construct(question=question, council=council, models=models or None,
                                             min_confidence=min_confidence, no_memory=bool(no_memory), effort=effort,
                                             budget=budget if any(v is not None for v in budget.values()) else None)
        return await call_tool(ctx, summarize_verdict, lambda on_event: run_request(
            request, settings=current_settings(), db_path=db_path, on_event=on_event,
        ))  # fmt: skip

    @server.tool(
        name="verify",
        title="Fact-check a text claim by claim",
        description=(
            "Split a text into atomic claims and have a council of models (and, with `collection`, "
            "the user's local documents) support or refute each one; returns a verdict per claim."
        ),
        annotations=RUNS_MODELS,
    )
    async def verify(
        text: TextArg, ctx: Context, collection: CollectionArg = None, council: CouncilArg = None, models: ModelsArg = None
    ) -> Annotated[CallToolResult, VerifyReport]:
        from .api import averify

        return await call_tool(ctx, summarize_report, lambda on_event: averify(
            text, council=council, models=models or None, collection=collection, settings=current_settings(),
            db_path=db_path, on_event=on_event,
        ))  # fmt: skip

    @server.tool(
        name="councils",
        title="Describe the councils",
        description=(
            "The councils in the user's settings: each member's model and role (a specialist's domain and "
            "the topics it answers or refuses; a critic scores the others instead of answering), the "
            "chair, the quorum and the council's guardrails; and every role a member can have."
        ),
        annotations=READ_ONLY,
    )
    async def councils() -> dict[str, Any]:
        from .council_view import councils_view, roles_view

        try:
            settings = current_settings()
            return {**councils_view(settings), **roles_view(settings)}
        except ManymindsError as exc:
            raise ToolError(error_text(exc)) from None

    add_memory_tools(server, current_settings, db_path)
    return server


def add_memory_tools(server: MCPServer, current_settings: Callable[[], Settings], db_path: str | None) -> None:
    """memory_list, memory_add, memory_forget: what `manyminds memory` does, for the host."""

    def run(action: Callable[[MemoryStore, str], Any], profile: str | None) -> Any:
        from .store import open_db

        db = open_db(db_path, check_abandoned=False)
        try:
            return action(MemoryStore(db), resolve_profile(profile, current_settings()))
        except ManymindsError as exc:
            raise ToolError(str(exc)) from None
        finally:
            db.close()

    @server.tool(name="memory_list", title="List the personal memory",
                 description="The notes the user saved about themselves (one profile), oldest first.",
                 annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False))
    async def memory_list(profile: ProfileArg = None) -> dict[str, Any]:
        def action(store: MemoryStore, name: str) -> dict[str, Any]:
            return {"profile": name, "memories": [m.model_dump() for m in store.list(name)]}

        return await asyncio.to_thread(run, action, profile)

    @server.tool(name="memory_add", title="Save a note to the personal memory",
                 description="Save a short note about the user (at most 2,000 characters). Questions later "
                             "draw on it as quoted data, never as instructions.",
                 annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=False))
    async def memory_add(text: Annotated[str, Field(description="The note to save.")],
                         profile: ProfileArg = None) -> Memory:
        return await asyncio.to_thread(run, lambda store, name: store.add(name, text, source="mcp"), profile)

    @server.tool(name="memory_forget", title="Forget a note of the personal memory",
                 description="Delete one memory for good (its text, vector and search index entries).",
                 annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True,
                                             openWorldHint=False))
    async def memory_forget(id: Annotated[str, Field(description="The memory's id (from memory_list).")],  # noqa: A002
                            profile: ProfileArg = None) -> dict[str, Any]:
        def action(store: MemoryStore, name: str) -> dict[str, Any]:
            return {"profile": name, "forgotten": 1, "id": store.forget(name, id).id}

        return await asyncio.to_thread(run, action, profile)


async def call_tool(ctx: Context, summarize: Callable[[Any], str], start: Callable[[Callable], Awaitable[Any]]) -> CallToolResult:
    """Run one tool call with progress notifications: its result as structured content plus a
    text summary; a manyminds error as a tool error (the server keeps serving)."""
    progress = Progress(ctx)
    try:
        result = await start(progress.handle)
    except ManymindsError as exc:
        raise ToolError(error_text(exc)) from None
    finally:
        await progress.drain()
    return CallToolResult(
        content=[TextContent(type="text", text=summarize(result))],
        structured_content=result.model_dump(mode="json"),
    )


# --- progress ---------------------------------------------------------------------------------


class Progress:
    """Forwards pipeline events to the host as MCP progress notifications (when the host asked
    for them with a progress token). The pipeline's sink is synchronous, so each notification is
    sent from a task; `drain` waits for them before the tool returns."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.tasks: list[asyncio.Task] = []
        self.members = 0
        self.finished = 0
        self.stage = ""

    def handle(self, event: Event) -> None:
        message = None
        if event.kind == "run_started":
            self.members = len((event.data.get("council") or {}).get("members") or [])
            message = f"asking {self.members} members"
        elif event.kind == "stage_started" and event.stage:
            self.stage = event.stage
            message = f"stage {event.stage}"
        elif event.kind in ("member_done", "member_failed") and event.stage == "fan_out":
            self.finished += 1
            status = (event.data.get("answer") or {}).get("status", "done")
            message = f"{event.member}: {status}"
        if message is None:
            return
        total = float(self.members or 1) + 1  # +1: the verdict
        done = min(self.finished, self.members)
        self._send(float(done), total, message)

    def _send(self, progress: float, total: float, message: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self.tasks.append(loop.create_task(self._report(progress, total, message)))

    async def _report(self, progress: float, total: float, message: str) -> None:
        try:
            await self.ctx.report_progress(progress, total, message)
        except Exception as exc:  # noqa: BLE001 - progress is a courtesy; the answer matters
            log.debug("progress notification not sent: %s", exc)

    async def drain(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
            self.tasks.clear()


# --- what the host reads --------------------------------------------------------------------


def error_text(exc: ManymindsError) -> str:
    text = str(exc)
    run_id = getattr(exc, "run_id", None)
    if run_id and run_id not in text:
        text += f"\n(run {run_id} was stored; `manyminds runs show {run_id}`)"
    return text


def summarize_verdict(verdict: Verdict) -> str:
    """A few lines for the model reading the tool result; the structured content has the rest."""
    lines = [verdict.answer.strip()]
    if verdict.short_answer and verdict.short_answer.strip() != verdict.answer.strip():
        lines.append(f"Short answer: {verdict.short_answer}")
    lines.append(f"Confidence: {verdict.confidence:.0%} — {verdict.confidence_explanation}")
    for d in verdict.dissent:
        lines.append(f"Dissent: {d.answer!r} from {', '.join(d.members)} ({d.share:.0%})")
    if verdict.claims and verdict.claims.claims:
        contested = verdict.claims.by_status("contested")
        lines.append(f"Claims: {len(verdict.claims.claims)} compared, {len(contested)} contested.")
        lines += [f"  contested {c.id}: {c.text}" for c in contested[:5]]
    for c in verdict.citations:
        lines.append(f"[{c.id}] {c.document}, {c.location}")
    failed = [m for m in verdict.members if not m.ok]
    for m in failed:
        lines.append(f"Member {m.member} {m.status}: {(m.error or {}).get('message', '')}")
    if getattr(verdict, "route", None) is not None:
        lines.append(f"Route: {verdict.route.tier} — {verdict.route.reason}")
    for w in verdict.warnings:
        lines.append(f"Warning: {w}")
    for n in verdict.specialists:
        lines.append(f"Specialist {n.member} ({n.role}): {n.status} — {n.reason}")
    if verdict.follow_ups:
        lines.append("Worth asking next: " + " | ".join(verdict.follow_ups))
    answered = sum(1 for m in verdict.members if m.ok)
    lines.append(f"Council {verdict.council}: {answered} of {len(verdict.members)} members answered. Run {verdict.run_id}.")
    return "\n".join(lines)


def summarize_report(report: VerifyReport) -> str:
    """The text's verdict, then one line per claim with its verdict, score and best evidence."""
    counts = ", ".join(f"{n} {v}" for v, n in report.counts.items() if n)
    lines = [f"Verdict: {report.verdict} (score {report.score:.2f}); claims: {counts or 'none'}."]
    if report.summary.strip():
        lines.append(report.summary.strip())
    for c in report.claims:
        line = f"{c.id} [{c.verdict}, {c.score:.2f}] {c.text}"
        if c.evidence:
            e = c.evidence[0]
            line += f" — {e.verdict}: {e.quote!r} ({e.document}, {e.location})"
        lines.append(line)
    for w in report.warnings:
        lines.append(f"Warning: {w}")
    lines.append(f"Council {report.council}. Run {report.run_id}.")
    return "\n".join(lines)


def main(settings: Settings | None = None, *, db_path: str | None = None) -> None:
    """Serve over stdio until the host closes stdin."""
    server = build_server(settings, db_path=db_path)
    # The SDK logs to stderr at INFO (tool failures included); one line per provider HTTP
    # request is noise in a host's log.
    for name in ("httpx", "httpcore", "openai", "anthropic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    server.run("stdio")



if __name__ == "__main__":
    main()
