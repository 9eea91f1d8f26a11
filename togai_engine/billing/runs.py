"""Entry points for `togai-engine bill [--as-of]` and the server's background billing loop."""

from __future__ import annotations

from datetime import datetime

from togai_engine.billing.close import CloseSummary, close_due_cycles
from togai_engine.store.database import Database


async def run_bill(database: Database, as_of: datetime, *, log_failures: bool = True) -> CloseSummary:
    """One bill run in its own transaction: every account with a period that started or became due by
    `as_of` is brought up to date. Safe to run at any time, concurrently, and repeatedly. Accounts it cannot bill
    are in the summary's `failed`, and logged as warnings unless `log_failures` is False (then at DEBUG)."""
    async with database.unit_of_work() as session:
        return await close_due_cycles(session, as_of, log_failures=log_failures)
