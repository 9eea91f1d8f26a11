from __future__ import annotations

from datetime import datetime

from togai_engine.common.schemas import Model


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
    sandbox: bool = True
