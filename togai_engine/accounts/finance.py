"""The financial section of get_account: filled from the billing domains."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.accounts.schemas import AccountFinancial


async def financial_summary(session: AsyncSession, account_id: str, currency: str, now: datetime) -> AccountFinancial:
    from togai_engine.billing.finance import billing_financials
    from togai_engine.wallets.service import wallet_summary  # wallets import accounts: import here

    financial = AccountFinancial(currency=currency, **await billing_financials(session, account_id, currency, now))
    financial.wallet = await wallet_summary(session, account_id, now)
    return financial
