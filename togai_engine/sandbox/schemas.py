from __future__ import annotations

from datetime import datetime

from pydantic import Field

from togai_engine.common.schemas import CloseFailure, Model


class SandboxClock(Model):
    now: datetime
    startedAt: datetime
    sandbox: bool = True


class ClockAdvance(Model):
    """An advance of the sandbox clock and the bill run it made at the new time."""

    now: datetime
    previous: datetime
    invoicesDue: int  # invoices that became DUE between `previous` and `now`
    draftsOpened: int  # DRAFT invoices opened for periods that started in between
    # The clock moves even when an account cannot be billed: the others are, and it is retried by the next
    # advance or read (after its data is fixed).
    failed: list[CloseFailure] = Field(default_factory=list, description=(
        "accounts that could not be billed at the new time, and why; the clock moved and every other account "
        "was billed. Fix the account's data: the next advance_clock (or a read of it) bills it. A reason "
        "starting 'late usage not billed' means the account's own invoices were billed and only its late "
        "usage waits, for the account's next invoice"))
    sandbox: bool = True
