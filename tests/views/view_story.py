"""A small billing story made through the MCP tools, whose results the views render: every amount is
worked out by hand here, so the browser tests can assert what a page must show.

Plan "Pro" (monthly from the 1st, no grace period, late usage billed on the next invoice): tokens at 0.01
each up to 10,000 and 0.005 above, plus a 31.00 platform fee in arrears. Accounts acme and globex, USD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcp import Client

from helpers import at, call, tokens_meter
from togai_engine.common.clock import FixedClock

MONTHLY = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0}

# The candidate the lab compares with Pro: a flat 0.008 per token and a 25.00 fee.
FLAT_CANDIDATE: dict[str, Any] = {
    "name": "Flat",
    "pricingCycleConfig": MONTHLY,
    "supportedCurrencies": ["USD"],
    "rateCards": {
        "usageRateCards": [],  # filled in with the meter id
        "fixedFeeRateCards": [{"id": "platform", "rateValues": [{"currency": "USD", "rate": "25"}],
                               "invoiceTiming": "IN_ARREARS", "enableProration": False}]},
}


@dataclass
class Story:
    meter_id: str
    plan_id: str
    january: dict[str, Any]  # acme's January invoice (DUE)
    february: dict[str, Any]  # acme's February invoice (DUE), as get_invoice returns it after the credit note
    metrics: dict[str, Any]  # get_metrics: acme's USAGE and REVENUE per day, 1-15 February
    simulation: dict[str, Any]  # simulate_price_plan: Pro vs Flat over January and February
    metrics_arguments: dict[str, Any]
    simulation_arguments: dict[str, Any]


async def events(client: Client, account_id: str, *usage: tuple[str, str, str]) -> None:
    for event_id, when, tokens in usage:
        await call(client, "ingest_event", event={"id": event_id, "schemaName": "llm", "timestamp": when,
                                                  "accountId": account_id, "attributes": {"tokens": tokens}})


def tiered_tokens(meter_id: str) -> dict[str, Any]:
    return {"name": "tokens", "usageMeterId": meter_id, "ratePlan": {"pricingModel": "TIERED", "slabs": [
        {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"},
        {"order": 2, "startAfter": "10000", "priceType": "PER_UNIT"}]},
        "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.01"}, {"order": 2, "rate": "0.005"}]}]}


def flat_tokens(meter_id: str) -> dict[str, Any]:
    return {"name": "tokens", "usageMeterId": meter_id, "ratePlan": {"pricingModel": "TIERED", "slabs": [
        {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
        "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.008"}]}]}


async def billing_story(client: Client, clock: FixedClock) -> Story:
    meter = await tokens_meter(client)
    plan = await call(client, "create_price_plan", name="Pro", pricingCycleConfig=MONTHLY,
                      lateUsage="BILL_ON_NEXT_INVOICE", rateCards={
                          "usageRateCards": [tiered_tokens(meter)],
                          "fixedFeeRateCards": [{"id": "platform", "rateValues": [{"currency": "USD", "rate": "31"}],
                                                 "invoiceTiming": "IN_ARREARS", "enableProration": False}]})
    for account_id, name in (("acme", "Acme Corp"), ("globex", "Globex")):
        await call(client, "create_customer", id=f"cust_{account_id}", name=name, account={
            "id": account_id, "name": name, "invoiceCurrency": "USD", "pricePlanId": plan["id"],
            "effectiveFrom": "2026-01-01T00:00:00Z"})
    await events(client, "acme", ("a-jan", "2026-01-10T09:00:00Z", "9000"))
    await events(client, "globex", ("g-jan", "2026-01-12T09:00:00Z", "20000"))

    clock.set(at(2026, 2, 1))  # January closes (no grace period) on the next read
    (january,) = (await call(client, "list_invoices", accountId="acme", status="DUE"))["data"]
    # acme January: 9,000 × 0.01 = 90.00 + 31.00 = 121.00
    assert january["totalAmount"] == "121.00", january

    clock.set(at(2026, 2, 2))
    await call(client, "grant_credit", accountId="acme", amount="25.00", purpose="PROMOTIONAL",
               idempotencyKey="promo-feb")
    # 3,000 January tokens after January closed: January at 12,000 tokens would be 100.00 + 2,000 × 0.005
    # = 110.00, + 31.00 = 141.00; 141.00 - 121.00 invoiced = 20.00, billed on February's invoice
    await events(client, "acme", ("a-jan-late", "2026-01-20T09:00:00Z", "3000"))
    await events(client, "acme", ("a-feb-1", "2026-02-02T10:00:00Z", "4000"),
                 ("a-feb-2", "2026-02-05T10:00:00Z", "5000"), ("a-feb-3", "2026-02-10T10:00:00Z", "3000"))

    clock.set(at(2026, 3, 1))  # February closes
    (february,) = [i for i in (await call(client, "list_invoices", accountId="acme", status="DUE"))["data"]
                   if i["startDate"] == "2026-02-01T00:00:00Z"]
    # acme February: 12,000 tokens = 10,000 × 0.01 = 100.00 + 2,000 × 0.005 = 10.00 -> 110.00; fee 31.00;
    # late January usage 20.00: total 161.00; the 25.00 credit pays part: amount due 136.00
    assert (february["totalAmount"], february["creditsApplied"], february["amountDue"]) == (
        "161.00", "25.00", "136.00"), february
    await call(client, "list_invoices", accountId="globex")  # globex's January and February close too
    await call(client, "create_credit_note", invoiceId=february["id"], reason="PRODUCT_UNSATISFACTORY",
               lines=[{"rateCardName": "platform", "amount": "11.00"}], memo="outage on 10 February",
               idempotencyKey="cn-feb")
    february = await call(client, "get_invoice", invoiceId=february["id"])
    # the note takes 11.00 off what is still owed: 136.00 - 11.00 = 125.00
    assert (february["creditNotesTotal"], february["amountDue"]) == ("11.00", "125.00"), february

    metrics_arguments = {
        "startTime": "2026-02-01T00:00:00Z", "endTime": "2026-02-15T00:00:00Z",
        "metricQueries": [
            {"id": "tokens", "name": "USAGE", "aggregationPeriod": "DAY",
             "filters": [{"fieldName": "ACCOUNT_ID", "fieldValues": ["acme"]}]},
            {"id": "revenue", "name": "REVENUE", "aggregationPeriod": "DAY",
             "filters": [{"fieldName": "ACCOUNT_ID", "fieldValues": ["acme"]}]}]}
    metrics = await call(client, "get_metrics", **metrics_arguments)

    candidate = FLAT_CANDIDATE | {"rateCards": FLAT_CANDIDATE["rateCards"] | {"usageRateCards": [flat_tokens(meter)]}}
    simulation_arguments = {"candidates": [plan["id"], candidate], "accountIds": ["acme", "globex"],
                            "startTime": "2026-01-01T00:00:00Z", "endTime": "2026-03-01T00:00:00Z"}
    simulation = await call(client, "simulate_price_plan", **simulation_arguments)
    return Story(meter_id=meter, plan_id=str(plan["id"]), january=january, february=february, metrics=metrics,
                 simulation=simulation, metrics_arguments=metrics_arguments,
                 simulation_arguments=simulation_arguments)
