"""Entitlement overage rate cards: usage of a feature past its featureCreditLimit, billed and allowed.

Plan "Quota": monthly on the 1st, no grace, a 20.00 platform fee, feature `tokens_quota` counting the
`tokens` meter with a limit of 1000 per cycle, and an overage card on it at 0.02 per token, at most 500
overage tokens per cycle. No usage rate card prices `tokens`: the overage alone needs its usage loaded.

Acme is on the plan from 1 January; Late joins on 16 January (a partial first period: the limit is not
prorated, as check_entitlement grants the whole limit in that period too).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from helpers import at, call, call_error, iso, tokens_meter

FEATURE = "tokens_quota"


def _plan(meter: str, **overage: Any) -> dict[str, Any]:
    return {
        "name": "Quota",
        "pricingCycleConfig": {"interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 0},
        "rateCards": {
            "fixedFeeRateCards": [{"name": "platform", "rateValues": [{"currency": "USD", "rate": "20.00"}]}],
            "billingEntitlementRateCards": [{"featureId": FEATURE, "usageMeterId": meter,
                                             "featureConfigs": [{"featureCreditLimit": "1000"}]}],
            "entitlementOverageRateCards": [{
                "name": "tokens_overage", "displayName": "Tokens over quota", "featureId": FEATURE,
                "maxQuantity": "500",
                "ratePlan": {"pricingModel": "TIERED", "slabs": [{"order": 1, "startAfter": 0, "priceType": "PER_UNIT"}]},
                "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.02"}]}],
                **overage}],
        },
    }


async def _setup(client: Any) -> tuple[str, str]:
    meter = await tokens_meter(client)
    plan = await call(client, "create_price_plan", **_plan(meter))
    for account, since in (("acme", iso(2026, 1, 1)), ("late", iso(2026, 1, 16))):
        await call(client, "create_customer", id=f"cust_{account}", name=account, account={
            "id": account, "name": account, "pricePlanId": plan["id"], "effectiveFrom": since})
    return meter, str(plan["id"])


async def _tokens(client: Any, account: str, event_id: str, when: str, tokens: str) -> None:
    await call(client, "ingest_event", event={"id": event_id, "schemaName": "llm", "timestamp": when,
                                              "accountId": account, "attributes": {"tokens": tokens}})


async def _invoice(client: Any, account: str, start: str) -> dict[str, Any]:
    page = await call(client, "list_invoices", accountId=account, pageSize=100)
    summary = next(i for i in page["data"] if i["startDate"] == start)
    return await call(client, "get_invoice", invoiceId=summary["id"])


def _overage(invoice: dict[str, Any]) -> tuple[Decimal, str, Any, Any]:
    """(overage quantity, value, usage, capped) of the invoice's overage line."""
    [line] = [li for li in invoice["lineItems"] if li["type"] == "ENTITLEMENT_OVERAGE_AMOUNT"]
    assert line["rateCardName"] == "tokens_overage"
    return Decimal(line["quantity"]), line["value"], Decimal(line["details"]["usage"]), line["details"]["capped"]


async def test_overage_is_billed_past_the_limit_capped_and_allowed_by_the_check(client, clock) -> None:
    meter, plan_id = await _setup(client)

    # January: Acme uses 800 of its 1000 tokens; Late (from the 16th) uses 1300.
    clock.set(at(2026, 1, 20))
    await _tokens(client, "acme", "a1", iso(2026, 1, 10), "800")
    await _tokens(client, "late", "l1", iso(2026, 1, 18), "1300")
    draft = await _invoice(client, "acme", iso(2026, 1, 1))
    # below the limit: the overage line is there, 0 units, 0.00; the DRAFT is 20.00 (platform fee only)
    assert (draft["status"], draft["totalAmount"]) == ("DRAFT", "20.00")
    assert _overage(draft) == (Decimal(0), "0.00", Decimal(800), False)
    check = await call(client, "check_entitlement", accountId="acme", featureId=FEATURE, quantity="700")
    # 800 + 700 = 1500 <= 1000 + maxQuantity 500: allowed, the last 500 as overage
    assert (check["entitled"], check["overage"], check["overageLimit"], check["usedOverage"],
            check["overageRemaining"], check["remaining"]) == (True, True, "500", "0", "500", "200")
    assert (await call(client, "check_entitlement", accountId="acme", featureId=FEATURE, quantity="701"))[
        "reason"] == "LIMIT_REACHED"  # 800 + 701 = 1501 > 1500

    # February 1: January closes.
    clock.set(at(2026, 2, 1))
    january = await _invoice(client, "acme", iso(2026, 1, 1))
    assert (january["status"], january["totalAmount"]) == ("DUE", "20.00")
    assert _overage(january) == (Decimal(0), "0.00", Decimal(800), False)
    late = await _invoice(client, "late", iso(2026, 1, 16))
    # Late's partial period keeps the whole limit: 1300 - 1000 = 300 × 0.02 = 6.00; fee 20.00 (no proration)
    assert (late["status"], late["totalAmount"]) == ("DUE", "26.00")
    assert _overage(late) == (Decimal(300), "6.00", Decimal(1300), False)
    assert "300 units over the limit of 1000" in next(
        li["description"] for li in late["lineItems"] if li["type"] == "ENTITLEMENT_OVERAGE_AMOUNT")

    # February: Acme uses 1100 tokens, then consumes 150 more through the check (overage allows it).
    clock.set(at(2026, 2, 12))
    await _tokens(client, "acme", "a2", iso(2026, 2, 10), "1100")
    consumed = await call(client, "check_entitlement", accountId="acme", featureId=FEATURE, quantity="150",
                          consume={"id": "a3", "schemaName": "llm", "attributes": {"tokens": "150"}})
    # 1100 + 150 = 1250 <= 1500: recorded; usage after 1250
    assert (consumed["entitled"], consumed["consumed"], Decimal(consumed["usedAfter"])) == (True, True, Decimal(1250))
    refused = await call(client, "check_entitlement", accountId="acme", featureId=FEATURE, quantity="251",
                         consume={"id": "a4", "schemaName": "llm", "attributes": {"tokens": "251"}})
    # 1250 + 251 = 1501 > 1500: not entitled, nothing stored; 250 overage units used, 250 left
    assert (refused["entitled"], refused["consumed"], refused["usedOverage"], refused["overageRemaining"]) == (
        False, False, "250", "250")

    # March: plain ingest is not held back by the quota: 2000 tokens, billed overage capped at 500.
    clock.set(at(2026, 3, 5))
    await _tokens(client, "acme", "a5", iso(2026, 3, 2), "2000")
    clock.set(at(2026, 4, 1))
    february = await _invoice(client, "acme", iso(2026, 2, 1))
    # 1250 - 1000 = 250 × 0.02 = 5.00; + 20.00
    assert (february["totalAmount"], _overage(february)) == ("25.00", (Decimal(250), "5.00", Decimal(1250), False))
    march = await _invoice(client, "acme", iso(2026, 3, 1))
    # 2000 - 1000 = 1000, capped at maxQuantity 500 × 0.02 = 10.00; + 20.00
    assert (march["totalAmount"], _overage(march)) == ("30.00", (Decimal(500), "10.00", Decimal(2000), True))
    assert march["usageInfo"] == []  # the overage quantity is not the meter's usage

    # The lab prices the plan exactly as the invoices did, every period of both accounts.
    result = await call(client, "simulate_price_plan", candidates=[plan_id], startTime=iso(2026, 1, 1),
                        endTime=iso(2026, 4, 1))
    cycles = {(a["accountId"], c["startDate"]): (c["actual"], c["candidates"][0]["amount"])
              for a in result["accounts"] for c in a["cycles"]}
    assert cycles == {
        ("acme", iso(2026, 1, 1)): ("20.00", "20.00"), ("acme", iso(2026, 2, 1)): ("25.00", "25.00"),
        ("acme", iso(2026, 3, 1)): ("30.00", "30.00"), ("late", iso(2026, 1, 16)): ("26.00", "26.00"),
        ("late", iso(2026, 2, 1)): ("20.00", "20.00"), ("late", iso(2026, 3, 1)): ("20.00", "20.00")}
    # calculate_revenue: 1800 tokens -> 800 over, capped at 500 × 0.02 = 10.00; + 20.00
    quote = await call(client, "calculate_revenue", pricePlanId=plan_id, usage={meter: "1800"})
    [card] = quote["entitlementOverageRateCards"]
    assert (card["name"], Decimal(card["quantity"]), card["amount"], quote["total"], quote["unpricedMeters"]) == (
        "tokens_overage", Decimal(500), "10.00", "30.00", [])


async def test_without_max_quantity_overage_has_no_ceiling(client, clock) -> None:
    meter = await tokens_meter(client)
    plan = _plan(meter)
    del plan["rateCards"]["entitlementOverageRateCards"][0]["maxQuantity"]
    created = await call(client, "create_price_plan", **plan)
    await call(client, "create_customer", id="c", name="c", account={
        "id": "acme", "name": "acme", "pricePlanId": created["id"], "effectiveFrom": iso(2026, 1, 1)})
    clock.set(at(2026, 1, 20))
    await _tokens(client, "acme", "a1", iso(2026, 1, 10), "5000")
    check = await call(client, "check_entitlement", accountId="acme", featureId=FEATURE, quantity="1000000")
    assert (check["entitled"], check["overageLimit"], check["usedOverage"], check["overageRemaining"]) == (
        True, None, "4000", None)
    clock.set(at(2026, 2, 1))
    # 5000 - 1000 = 4000 × 0.02 = 80.00; + 20.00
    assert _overage(await _invoice(client, "acme", iso(2026, 1, 1))) == (Decimal(4000), "80.00", Decimal(5000), False)
    assert (await _invoice(client, "acme", iso(2026, 1, 1)))["totalAmount"] == "100.00"


async def test_overage_cards_that_cannot_be_honoured_are_refused_naming_the_field(client) -> None:
    meter = await tokens_meter(client)
    path = "rateCards.entitlementOverageRateCards[0]"

    async def refused(plan: dict[str, Any]) -> str:
        return await call_error(client, "create_price_plan", **plan)

    unknown = await refused(_plan(meter, featureId="nope"))
    assert f"{path}.featureId" in unknown and "billingEntitlementRateCard" in unknown
    boolean = _plan(meter)
    del boolean["rateCards"]["billingEntitlementRateCards"][0]["usageMeterId"]
    assert f"{path}.featureId" in (message := await refused(boolean)) and "usageMeterId" in message
    assert f"{path}.billingConfig" in await refused(_plan(meter, billingConfig={"interval": "MONTHLY"}))
    assert f"{path}.maxQuantity" in await refused(_plan(meter, maxQuantity="-1"))
    assert f"{path}.rateValues" in await refused(_plan(meter, rateValues=[
        {"currency": "EUR", "slabRates": [{"order": 1, "rate": "0.02"}]}]))
    twice = _plan(meter)
    cards = twice["rateCards"]["entitlementOverageRateCards"]
    cards.append({**cards[0], "name": "again"})
    message = await refused(twice)
    assert "rateCards.entitlementOverageRateCards[1].featureId" in message and "one per feature" in message


async def test_late_usage_past_the_limit_bills_only_the_overage_it_adds(client, clock) -> None:
    # The overage's meter has no usage card: the invoice's billed usage is read from the overage line.
    meter = await tokens_meter(client)
    created = await call(client, "create_price_plan", **_plan(meter), lateUsage="BILL_ON_NEXT_INVOICE")
    await call(client, "create_customer", id="c", name="c", account={
        "id": "acme", "name": "acme", "pricePlanId": created["id"], "effectiveFrom": iso(2026, 1, 1)})
    clock.set(at(2026, 1, 20))
    await _tokens(client, "acme", "a1", iso(2026, 1, 10), "1200")
    clock.set(at(2026, 2, 3))
    # January closed at 1200: 200 over × 0.02 = 4.00; + 20.00
    assert (await _invoice(client, "acme", iso(2026, 1, 1)))["totalAmount"] == "24.00"
    await _tokens(client, "acme", "late", iso(2026, 1, 20), "100")
    draft = await _invoice(client, "acme", iso(2026, 2, 1))
    [line] = [li for li in draft["lineItems"] if li["type"] == "LATE_USAGE_AMOUNT"]
    # January again with 1300: 300 × 0.02 = 6.00 + 20.00 = 26.00; 26.00 - 24.00 invoiced = 2.00
    assert (line["value"], draft["totalAmount"]) == ("2.00", "22.00")
    assert {k: Decimal(v) for k, v in line["details"]["quantities"][meter].items()} == {
        "onInvoice": Decimal(1200), "now": Decimal(1300)}
