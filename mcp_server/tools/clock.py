"""Sandbox clock tools: get_clock, advance_clock (a server started with `togai-engine serve --sandbox`)."""

from __future__ import annotations

import logging
from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from mcp_server.registry import app_of, tool, uow
from togai_engine.billing.close import close_due_cycles
from togai_engine.sandbox.schemas import ClockAdvance, SandboxClock
from togai_engine.sandbox.service import HOW_TO_START, NotASandbox, advance, parse_step, read_clock
from togai_engine.store.partitions import ensure_ahead

log = logging.getLogger("togai_engine.tools")


def refuse_outside_sandbox(ctx: Context, tool_name: str) -> None:
    if not app_of(ctx).sandbox:
        raise NotASandbox(f"{tool_name} works only on a sandbox server, whose time is kept in its database; "
                          f"this server runs on the real clock. To try billing over time, {HOW_TO_START}.")


@tool("get_clock", scope="clock:read", read_only=True, idempotent=True, title="Get sandbox clock")
async def get_clock(ctx: Context) -> SandboxClock:
    """The sandbox server's current time (every call reads and writes at it) and when the sandbox started.
    Refused on a server on the real clock."""
    refuse_outside_sandbox(ctx, "get_clock")
    async with uow(ctx) as u:
        return await read_clock(u.session)


@tool("advance_clock", scope="clock:write", title="Advance sandbox clock")
async def advance_clock(
    ctx: Context,
    to: Annotated[str | None, Field(description="the new time, an ISO 8601 instant ('2026-03-01' or "
                                                "'2026-03-01T12:00:00Z'); not before the current time")] = None,
    by: Annotated[str | None, Field(description="how far to move, an ISO 8601 duration: 'P1M', 'PT36H', "
                                                "'P2W'")] = None,
) -> ClockAdvance:
    """Move the sandbox clock forward (give exactly one of `to` or `by`; it never goes back) and bill
    everything that came due in between, as the server's bill run would have: periods that started get
    DRAFT invoices, periods past their grace end become DUE. An account whose data cannot be billed is
    listed in `failed` with the reason; the clock still moves and the others are billed. Refused on a
    server on the real clock."""
    step = parse_step(to, by)
    refuse_outside_sandbox(ctx, "advance_clock")
    async with uow(ctx, moves_clock=True) as u:
        moved = await advance(u.session, step)
        # One run at the new time equals runs at every instant up to it (cycles close in time order).
        summary = await close_due_cycles(u.session, moved.now)
        u.changed(*summary.accountIds)  # the accounts it billed, what list_audit_log(entityId) is searched by
    # After the commit: creating a partition waits for transactions that read the events table. The advance is
    # done by then, so a failure here must not turn the answer into an error (a caller retrying `by` would move
    # the clock twice): a month still without a partition gets one from the first ingest that needs it.
    try:
        await ensure_ahead(u.app.db.engine, moved.now)
    except Exception:
        log.exception("advance_clock moved the clock to %s, but the event partitions ahead of it could not be made "
                      "now (ingest makes a missing one when it needs it)", moved.now.isoformat())
    return ClockAdvance(now=moved.now, previous=moved.previous, invoicesDue=summary.invoicesDue,
                        draftsOpened=summary.draftsOpened, failed=summary.failed)
