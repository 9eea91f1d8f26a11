"""Checks other domains call before changing what billing depends on."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.billing.state import load_states
from togai_engine.errors import InvalidInput


async def check_plans_support_currency(session: AsyncSession, account_id: str, currency: str) -> None:
    """Refuses an invoiceCurrency that a plan the account has not been fully invoiced for cannot price
    (its open DRAFTs, and every later period, are invoiced in the account's currency)."""
    states, plans = await load_states(session, [account_id])
    state = states.get(account_id)
    if state is None:
        return
    for association in state.associations:
        if state.billed_until is not None and association.effective_until is not None \
                and association.effective_until <= state.billed_until:
            continue  # fully invoiced: its invoices keep their own currency
        plan = plans[association.plan_key]
        if currency not in plan.supportedCurrencies:
            raise InvalidInput(
                "invoiceCurrency", f"price plan {plan.name!r} ({plan.id}), which account {account_id!r} is on from "
                f"{association.effective_from.isoformat()}, does not support {currency} (it supports "
                f"{', '.join(plan.supportedCurrencies)}); attach a plan that does first, or keep the currency")
