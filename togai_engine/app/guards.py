"""Checks that protect money when account fields change."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.billing.guards import check_plans_support_currency
from togai_engine.errors import Conflict
from togai_engine.wallets.service import has_wallet_entries


async def check_currency_change(session: AsyncSession, account_id: str, currency: str) -> None:
    """A new invoiceCurrency is refused once the wallet holds money in the old one, and when a plan the
    account is not fully invoiced for cannot price it (its DRAFTs would be invoiced in that currency)."""
    # The caller holds the wallet's currency lock exclusive (wallets.ledger.hold_wallet_currency); grant_credit
    # holds it shared while it writes, so no grant can slip in between this check and the currency change.
    if await has_wallet_entries(session, account_id):
        raise Conflict(
            f"account {account_id!r} has credit entries in its wallet, which is kept in the current "
            "invoiceCurrency; the currency cannot change once the wallet has entries. Keep the currency, or "
            "create a new account for the new currency"
        )
    await check_plans_support_currency(session, account_id, currency)
