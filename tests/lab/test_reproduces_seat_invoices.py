"""Seats in the lab: simulating an account's own plan reproduces invoices that carry license cards, to the cent.

Random seat changes (ABSOLUTE and RELATIVE, scheduled ahead) on three accounts: one starts mid-cycle in EUR,
one switches mid-month to an anniversary-cycle plan that charges the highest seat count, so prorated spans,
partial periods and a period cut by a plan change all occur. Every invoiced period's own-plan amount equals
the invoice total, and every open period's the DRAFT's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import call
from lab_helpers import account, assert_own_plan_reproduces, at, fee, invoices_of, iso
from test_reproduces_invoices import empty

START = at(2026, 1, 1)
MINUTES = 90 * 24 * 60  # January to March
FIRST_MINUTE = 11 * 24 * 60  # every account has its plan by 11 January (acc1 starts on the 10th at noon)

changes = st.lists(st.tuples(st.integers(0, 2), st.integers(FIRST_MINUTE, MINUTES - 1), st.booleans(),
                             st.integers(0, 9)), max_size=8)


def seat_card(model: str, prorate: bool, rates: dict[str, list[tuple[str, str]]]) -> dict[str, Any]:
    first = next(iter(rates.values()))
    return {"id": "seats", "enableProration": prorate, "ratePlan": {"pricingModel": model, "slabs": [
        {"order": i, "startAfter": start, "priceType": "PER_UNIT"} for i, (start, _) in enumerate(first, 1)]},
        "rateValues": [{"currency": c, "slabRates": [{"order": i, "rate": r} for i, (_, r) in enumerate(slabs, 1)]}
                       for c, slabs in rates.items()]}


BASE = {"name": "Seats base", "pricingCycleConfig": {"interval": "MONTHLY", "gracePeriod": 1},
        "supportedCurrencies": ["USD", "EUR"],
        "rateCards": {"licenseRateCards": [seat_card("TIERED", True, {"USD": [("0", "7.77"), ("5", "3.33")],
                                                                     "EUR": [("0", "6.91"), ("5", "2.99")]})],
                      "fixedFeeRateCards": [fee("platform", {"USD": "19.99", "EUR": "18.49"}, prorate=True)]},
        "minimumCommitment": {"rateValues": [{"currency": "USD", "rate": "40"}, {"currency": "EUR", "rate": "35"}]}}
ALT = {"name": "Seats alt", "pricingCycleConfig": {"interval": "MONTHLY", "anniversaryCycle": True, "gracePeriod": 2},
       "supportedCurrencies": ["USD", "EUR"],
       "rateCards": {"licenseRateCards": [seat_card("VOLUME", False, {"USD": [("0", "9.5"), ("3", "4.25")],
                                                                     "EUR": [("0", "8.5"), ("3", "3.75")]})]}}


@settings(max_examples=10)
@given(seat_changes=changes, switch_minute=st.integers(31 * 24 * 60 + 1, 59 * 24 * 60 - 1))
async def test_own_plan_reproduces_every_invoice_with_seats(
    client, clock, db, seat_changes: list[tuple[int, int, bool, int]], switch_minute: int
) -> None:
    await empty(db)
    clock.set(START)
    base = await call(client, "create_price_plan", **BASE)
    alt = await call(client, "create_price_plan", **ALT)
    await account(client, "acc0", base["id"], iso(2026, 1, 1))
    await account(client, "acc1", base["id"], iso(2026, 1, 10, 12), currency="EUR")  # starts mid-cycle
    await account(client, "acc2", base["id"], iso(2026, 1, 1))
    switch = (START + timedelta(minutes=switch_minute)).isoformat().replace("+00:00", "Z")
    await call(client, "update_account", accountId="acc2", pricePlanId=alt["id"], effectiveFrom=switch)
    for who, minute, relative, quantity in seat_changes:  # scheduled ahead while nothing is due yet
        await call(client, "update_license", accountId=f"acc{who}", licenseId="seats", quantity=quantity,
                   updateType="RELATIVE" if relative else "ABSOLUTE",
                   effectiveFrom=(START + timedelta(minutes=minute)).isoformat())

    clock.set(at(2026, 4, 2, 12))  # January to March closed (Alt's grace is 2 days: its March period may not be)
    invoices = await invoices_of(client, ("acc0", "acc1", "acc2"))
    result = await call(client, "simulate_price_plan", candidates=[base["id"], alt["id"]],
                        startTime=iso(2026, 1, 1), endTime=iso(2026, 5, 1))
    assert_own_plan_reproduces(result, invoices)
