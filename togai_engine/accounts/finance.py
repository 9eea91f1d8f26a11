"""The financial section of get_account: filled from the billing domains."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts.schemas import AccountFinancial


async def financial_summary(session: AsyncSession, account_id: str, currency: str, now: datetime) -> AccountFinancial:
    return AccountFinancial(currency=currency)
