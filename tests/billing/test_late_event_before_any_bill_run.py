"""An event that arrives after its cycle's grace period, before any bill run or read, is not billed."""

from __future__ import annotations

from datetime import UTC, datetime

from helpers import call
from test_scenarios import account, tiered, tokens_meter, usage


async def test_ingest_closes_the_due_cycle_before_judging_a_late_event(client, clock):
    meter = await tokens_meter(client)
    plan = await call(client, "create_price_plan", name="Late", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 2},
        rateCards={"usageRateCards": [tiered(meter, ("0", "1"))]})
    await account(client, "acme", plan["id"], "2026-01-01T00:00:00Z")
    await usage(client, "acme", "2026-01-10T00:00:00Z", "5", "on_time")
    # January's grace ends 3 Feb 00:00. Nobody bills or reads; the next call is this ingest.
    clock.set(datetime(2026, 2, 5, tzinfo=UTC))
    late = await usage(client, "acme", "2026-01-20T00:00:00Z", "1000", "too_late")
    assert late["status"] == "NOT_BILLED_CYCLE_CLOSED"
    january = (await call(client, "list_invoices", accountId="acme", status="DUE"))["data"]
    # 5 tokens x 1.00 = 5.00; the late 1000 tokens are stored but not on the invoice
    assert [(i["startDate"], i["totalAmount"]) for i in january] == [("2026-01-01T00:00:00Z", "5.00")]
