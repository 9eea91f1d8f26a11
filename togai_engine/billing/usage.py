"""Where billed quantities come from: the metering engine's `meter_quantities` (injectable in tests)."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.meters.usage import meter_quantities

Quantities = dict[tuple[str, str], Decimal]  # (account_id, meter_id) -> quantity


class UsageSource(Protocol):
    def __call__(
        self,
        session: AsyncSession,
        *,
        start: datetime,
        end: datetime,
        account_ids: Sequence[str] | None = None,
        meter_ids: Sequence[str] | None = None,
    ) -> Awaitable[Quantities]: ...


async def meter_usage(
    session: AsyncSession,
    *,
    start: datetime,
    end: datetime,
    account_ids: Sequence[str] | None = None,
    meter_ids: Sequence[str] | None = None,
) -> Quantities:
    """Exact quantities over [start, end) of billable events, from the metering engine."""
    return await meter_quantities(session, start=start, end=end, account_ids=account_ids, meter_ids=meter_ids)
