"""MCP progress notifications for long tools (the client asks for them with a progressToken in _meta)."""

from __future__ import annotations

from mcp.server.mcpserver import Context

from togai_engine.common.progress import ProgressCallback


def progress_notifier(ctx: Context) -> ProgressCallback:
    """The engine's progress callback as `notifications/progress` of this call (nothing is sent when the
    client gave no progressToken). Only progress that moves forward is sent, as the spec requires of each
    notification: a unit of work that is retried (a deadlock) starts its phases again."""
    sent: float | None = None

    async def notify(done: float, total: float | None, message: str | None) -> None:
        nonlocal sent
        if sent is not None and done <= sent:
            return
        sent = done
        await ctx.report_progress(done, total, message)

    return notify
