"""calculate_revenue for an account (accountId): its own plan is priced with its deal (rateCardOverrides), so the
quote of a cycle's usage is that cycle's invoice to the cent; simulate_price_plan agrees (one rule, priced_for).

Plan "Team" (USD): tokens 0.10 each, a 31.00 monthly fee, a 150.00 minimum commitment. Acme's deal: tokens at
0.05, the fee at 20.00, a 60.00 commitment. Monthly cycles from the 1st, gracePeriod 2 (DUE on the 3rd).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from helpers import at, call, call_error, iso, tokens_meter
from lab_helpers import MONTHLY, account, fee, message, per_unit_card, tokens


def team(meter: str) -> dict[str, Any]:
    return {"name": "Team", "pricingCycleConfig": MONTHLY,
            "rateCards": {"usageRateCards": [{**per_unit_card(meter, "TIERED", {"USD": [("0", "0.10")]}),
                                              "name": "tokens"}],
                          "fixedFeeRateCards": [fee("platform", {"USD": "31"})]},
            "minimumCommitment": {"rateValues": [{"currency": "USD", "rate": "150"}]}}


def deal(meter: str) -> dict[str, Any]:
    return {"usageRateCards": [{**per_unit_card(meter, "TIERED", {"USD": [("0", "0.05")]}), "name": "tokens"}],
            "fixedFeeRateCards": [fee("platform", {"USD": "20"})],
            "minimumCommitment": {"rateValues": [{"currency": "USD", "rate": "60"}]}}


async def test_an_accounts_quote_is_priced_with_its_deal_and_equals_its_invoices(client, clock) -> None:
    meter = await tokens_meter(client)
    plan = await call(client, "create_price_plan", **team(meter))
    await account(client, "acme")
    await call(client, "update_account", accountId="acme", pricePlanId=plan["id"], effectiveFrom=iso(2026, 1, 1),
               rateCardOverrides=deal(meter))
    await account(client, "plain", plan["id"], iso(2026, 1, 1))
    clock.set(at(2026, 1, 2))
    for account_id in ("acme", "plain"):
        await tokens(client, account_id, iso(2026, 1, 10), "600", f"{account_id}_1")
        await tokens(client, account_id, iso(2026, 1, 20), "400", f"{account_id}_2")
    clock.set(at(2026, 2, 4))  # January is DUE
    invoices = (await call(client, "list_invoices", accountId="acme", status="DUE"))["data"]
    # acme, January: 1000 × 0.05 = 50.00 + fee 20.00 = 70.00, above its 60.00 commitment: no true-up -> 70.00
    assert [(i["startDate"], i["isOverridden"], i["totalAmount"]) for i in invoices] == [
        (iso(2026, 1, 1), True, "70.00")]
    usage = {meter: "1000"}

    quote = await call(client, "calculate_revenue", accountId="acme", usage=usage)
    assert (quote["accountId"], quote["pricePlanId"], quote["pricePlanVersion"], quote["isOverridden"],
            quote["currency"]) == ("acme", plan["id"], 1, True, "USD")
    # the same lines as the invoice: 1000 × 0.05 = 50.00; fee 20.00; subTotal 70.00; commitment 60.00, trueUp 0
    assert [(c["name"], c["amount"]) for c in quote["usageRateCards"]] == [("tokens", "50.00")]
    assert [(f["name"], f["amount"]) for f in quote["fixedFees"]] == [("platform", "20.00")]
    assert (quote["subTotal"], quote["minimumCommitment"], quote["trueUp"], quote["total"]) == (
        "70.00", "60", "0.00", "70.00")
    assert quote["total"] == sum_of(invoices)
    # naming the account's own plan is the same quote: the deal prices it (as in simulate_price_plan)
    named = await call(client, "calculate_revenue", accountId="acme", pricePlanId=plan["id"], usage=usage)
    assert (named["isOverridden"], named["total"]) == (True, "70.00")
    simulated = await call(client, "simulate_price_plan", candidates=[plan["id"]], accountIds=["acme"],
                           startTime=iso(2026, 1, 1), endTime=iso(2026, 2, 1))
    assert simulated["accounts"][0]["cycles"][0]["candidates"][0]["amount"] == quote["total"]

    # without the account, the plan as it is: 1000 × 0.10 = 100.00 + 31.00 = 131.00, trueUp 150 - 131 = 19.00
    bare = await call(client, "calculate_revenue", pricePlanId=plan["id"], usage=usage)
    assert (bare["accountId"], bare["isOverridden"], bare["trueUp"], bare["total"]) == (None, False, "19.00", "150.00")
    plain = await call(client, "calculate_revenue", accountId="plain", usage=usage)
    assert (plain["isOverridden"], plain["total"]) == (False, "150.00")
    assert plain["total"] == sum_of((await call(client, "list_invoices", accountId="plain", status="DUE"))["data"])
    # an inline plan for the account is not its plan: no deal
    inline = await call(client, "calculate_revenue", accountId="acme", pricePlan={**team(meter), "name": "Try"},
                        usage=usage)
    assert (inline["isOverridden"], inline["total"]) == (False, "150.00")


async def test_an_account_without_a_plan_needs_one_named(client, clock) -> None:
    meter = await tokens_meter(client)
    plan = await call(client, "create_price_plan", **team(meter))
    await account(client, "bare")
    error = message(await call_error(client, "calculate_revenue", accountId="bare", usage={}))
    assert error.startswith("accountId: account 'bare' has no price plan in effect") and "pricePlanId" in error
    assert "does not exist" in await call_error(client, "calculate_revenue", accountId="nobody", usage={})
    # a plan named for it is quoted in its invoiceCurrency: 31.00 fee, trueUp 150 - 31 = 119.00
    assert (await call(client, "calculate_revenue", accountId="bare", pricePlanId=plan["id"], usage={}))[
        "total"] == "150.00"
    await account(client, "euro", currency="EUR")
    error = message(await call_error(client, "calculate_revenue", accountId="euro", pricePlanId=plan["id"], usage={}))
    assert error == "currency: 'Team' does not price EUR (the account's invoiceCurrency); it supports USD"


def sum_of(invoices: list[dict[str, Any]]) -> str:
    return str(sum((Decimal(i["totalAmount"]) for i in invoices), Decimal("0.00")))
