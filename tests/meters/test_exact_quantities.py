"""Quantities are added exactly, however many digits they carry.

Ingest accepts values of up to 40 digits before the point and 30 after, and PostgreSQL adds NUMERIC exactly;
the Python side (a rollup part plus a raw edge, per-account quantities summed per customer or meter, the
entitlement arithmetic, the overage past a limit) must not round either: Python's default Decimal context
keeps 28 significant digits, so 1 + 0.123456789012345678901234567890 would come out as
1.123456789012345678901234568 and the invoice would no longer bill the sum of its events.

Story: Acme is on plan "Precise" from 1 January: tokens at 1.00 per token, and feature `tokens_quota` on the
same meter with a limit of 1 token and overage past it at 0.01 per token, at most 1 overage token.
On 5 January it sends 0.123456789012345678901234567890 tokens at 10:15 and 1 token at 11:20.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import at, call, iso, tokens_meter
from togai_engine.meters.usage import meter_quantities
from togai_engine.store.database import raw_connection

SMALL = "0.123456789012345678901234567890"  # 30 decimal places, the most ingest accepts
# 1 + 0.123456789012345678901234567890: 31 significant digits, 3 more than the default context keeps
TOTAL = "1.123456789012345678901234567890"


def _rate(rate: str) -> dict[str, Any]:
    return {"ratePlan": {"pricingModel": "TIERED", "slabs": [{"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": rate}]}]}


async def _acme_with_usage(client: Any, clock: Any) -> str:
    meter = await tokens_meter(client)
    plan = await call(client, "create_price_plan", name="Precise", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 0}, rateCards={
        "usageRateCards": [{"usageMeterId": meter, **_rate("1.00")}],
        "billingEntitlementRateCards": [{"featureId": "tokens_quota", "usageMeterId": meter,
                                         "featureConfigs": [{"featureCreditLimit": "1"}]}],
        "entitlementOverageRateCards": [{"name": "tokens_overage", "featureId": "tokens_quota", "maxQuantity": "1",
                                         **_rate("0.01")}]})
    await call(client, "create_customer", id="cust_acme", name="Acme", account={
        "id": "acme", "name": "Acme", "pricePlanId": plan["id"], "effectiveFrom": iso(2026, 1, 1)})
    clock.set(at(2026, 1, 6))
    result = await call(client, "ingest_batch_events", events=[
        {"id": f"e{n}", "schemaName": "llm", "timestamp": when, "accountId": "acme", "attributes": {"tokens": tokens}}
        for n, (when, tokens) in enumerate((("2026-01-05T10:15:00Z", SMALL), ("2026-01-05T11:20:00Z", "1")))])
    assert result["accepted"] == 2
    return meter


async def test_the_invoice_bills_the_exact_sum_of_the_events(client, clock):
    await _acme_with_usage(client, clock)
    page = await call(client, "list_invoices", accountId="acme", pageSize=10)
    invoice = await call(client, "get_invoice", invoiceId=page["data"][0]["id"])
    lines = {line["type"]: line for line in invoice["lineItems"]}
    # usage: 0.123456789012345678901234567890 + 1 = 1.123456789012345678901234567890 tokens x 1.00 = 1.12
    usage = lines["USAGE_RATE_CARD_AMOUNT"]
    assert (usage["quantity"], usage["value"]) == (TOTAL, "1.12")
    # overage: 1.123456789012345678901234567890 - limit 1 = 0.123456789012345678901234567890 (below maxQuantity 1),
    # x 0.01 = 0.00123... -> 0.00
    overage = lines["ENTITLEMENT_OVERAGE_AMOUNT"]
    assert (overage["quantity"], overage["details"]["usage"], overage["value"]) == (SMALL, TOTAL, "0.00")
    # 1.12 + 0.00
    assert invoice["totalAmount"] == "1.12"


async def test_usage_metrics_add_a_raw_edge_and_rollup_hours_exactly(client, clock):
    meter = await _acme_with_usage(client, clock)
    # [10:10, next midnight): the edge [10:10, 11:00) from raw events (the 10:15 event), the hours from 11:00
    # from the rollups (the 11:20 event), added up in Python: 0.123456789012345678901234567890 + 1
    queries = [{"id": group or "all", "name": "USAGE", "aggregationPeriod": "DAY", **({"groupBy": group} if group else {}),
                "filters": [{"fieldName": "USAGE_METER_ID", "fieldValues": [meter]}]}
               for group in (None, "ACCOUNT_ID", "CUSTOMER_ID", "USAGE_METER_ID")]
    result = await call(client, "get_metrics", startTime="2026-01-05T10:10:00Z", endTime="2026-01-06T00:00:00Z",
                        metricQueries=queries)
    assert [[d["metricValues"] for d in r["data"]] for r in result["results"]] == [[[TOTAL]]] * 4


async def test_the_entitlement_check_compares_the_exact_sums(client, clock):
    await _acme_with_usage(client, clock)
    # used 1.123456789012345678901234567890; the ceiling is limit 1 + maxQuantity 1 = 2
    # 1.123456789012345678901234567890 + 0.876543210987654321098765432111 = 2.000000000000000000000000000001 > 2
    # (rounded to 28 digits it would be 2.000000000000000000000000000, and allowed)
    over = await call(client, "check_entitlement", accountId="acme", featureId="tokens_quota",
                      quantity="0.876543210987654321098765432111")
    assert (over["entitled"], over["reason"], over["used"]) == (False, "LIMIT_REACHED", TOTAL)
    # 1.123456789012345678901234567890 - 1 = 0.123456789012345678901234567890 of overage used;
    # 2 - 1.123456789012345678901234567890 = 0.876543210987654321098765432110 of it left; none of the limit left
    assert (over["usedOverage"], over["overageRemaining"], over["remaining"]) == (
        SMALL, "0.876543210987654321098765432110", "0")
    # exactly up to the ceiling: 1.123456789012345678901234567890 + 0.876543210987654321098765432110 = 2
    fits = await call(client, "check_entitlement", accountId="acme", featureId="tokens_quota",
                      quantity="0.876543210987654321098765432110")
    assert (fits["entitled"], fits["reason"]) == (True, "ENTITLED")


# values as ingest accepts them at their widest: up to 40 digits before the point and 30 after
WIDE = st.builds(lambda whole, fraction, negative: Decimal(f"{'-' if negative else ''}{whole}.{fraction:030d}"),
                 st.integers(0, 10**40 - 1), st.integers(0, 10**30 - 1), st.booleans())


async def test_any_sum_of_accepted_values_equals_the_sql_sum(client, db, clock):
    meter = await tokens_meter(client)
    cases: list[list[tuple[int, Decimal]]] = []

    @settings(max_examples=25, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, 6 * 60 - 1), WIDE), min_size=1, max_size=8))
    def draw(events: list[tuple[int, Decimal]]) -> None:
        cases.append(events)

    draw()
    base = at(2026, 1, 5)
    for case, events in enumerate(cases):
        await call(client, "create_customer", id=f"c{case}", name="C", account={"id": f"a{case}", "name": "A"})
        await call(client, "ingest_batch_events", events=[
            {"id": f"c{case}e{n}", "schemaName": "llm", "timestamp": (base + timedelta(minutes=minute)).isoformat(),
             "accountId": f"a{case}", "attributes": {"tokens": str(value)}} for n, (minute, value) in enumerate(events)])
    # windows with raw edges around rollup hours, and whole hours only
    for start, end in ((base + timedelta(minutes=17), base + timedelta(hours=5, minutes=41)),
                       (base, base + timedelta(hours=6))):
        async with db.unit_of_work() as session:
            got = await meter_quantities(session, start=start, end=end, meter_ids=[meter])
            exact = dict(await (await raw_connection(session)).fetch(
                "SELECT account_id, sum(CAST(attributes ->> 'tokens' AS numeric)) FROM events "
                "WHERE event_time >= $1 AND event_time < $2 GROUP BY 1", start, end))
        assert {account: quantity for (account, _), quantity in got.items()} == exact
