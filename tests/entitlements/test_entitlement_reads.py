"""The entitlement fast path reads exactly what billing and metering read: the same plan and cycle as
billing.current.current_plan_and_usage_cycle, and the same quantities as meters.usage.meter_quantities."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import at, call
from togai_engine.billing.current import current_plan_and_usage_cycle
from togai_engine.entitlements.service import _account_and_plan
from togai_engine.meters.usage import account_usage, meter_quantities
from togai_engine.store.database import raw_connection

BASE = at(2026, 1, 1)
CHANGE = at(2026, 1, 13, 9, 17)  # Monthly -> Weekly anniversary (see _setup)


async def _setup(client) -> dict[str, str]:
    meters = {}
    for name, aggregation, computations in (
        ("count", "COUNT", []), ("sum", "SUM", [{"computation": "tokens"}]), ("max", "MAX", [{"computation": "tokens"}]),
        ("latest", "LATEST", [{"computation": "tokens"}]),
        ("users", "UNIQUE_COUNT", [{"computation": {"var": "dimensions.user"}}]),
    ):
        meters[name] = (await call(client, "create_usage_meter", name=name, eventSchemaName="api",
                                   aggregation=aggregation, computations=computations))["id"]
    cards = [{"featureId": name, "usageMeterId": meter_id, "featureConfigs": [{"featureCreditLimit": "1000"}]}
             for name, meter_id in meters.items()]
    monthly = await call(client, "create_price_plan", name="Monthly", pricingCycleConfig={"interval": "MONTHLY"},
                         rateCards={"billingEntitlementRateCards": cards})
    weekly = await call(client, "create_price_plan", name="Weekly anniversary", pricingCycleConfig={
        "interval": "WEEKLY", "anniversaryCycle": True}, rateCards={"billingEntitlementRateCards": cards})
    await call(client, "create_customer", id="c", name="C", account={
        "id": "acc", "name": "A", "aliases": ["acc-alias"], "pricePlanId": monthly["id"], "effectiveFrom": BASE.isoformat()})
    # a plan change in the middle of January, at an instant that is not on the hour
    await call(client, "update_account", accountId="acc", pricePlanId=weekly["id"],
               effectiveFrom="2026-01-13T09:17:00Z")
    await call(client, "ingest_batch_events", events=[
        {"id": f"e{n}", "schemaName": "api", "accountId": "acc",
         "timestamp": (BASE + timedelta(minutes=97 * n)).isoformat(),
         "attributes": {"tokens": str(n % 13)}, "dimensions": {"user": f"u{n % 7}"}} for n in range(600)])
    return meters


async def test_fast_reads_agree_with_billing_and_metering(client, db):
    meters = await _setup(client)

    @settings(max_examples=40, deadline=None)
    @given(st.integers(min_value=0, max_value=60 * 24 * 40), st.integers(min_value=1, max_value=60 * 24 * 12))
    def check(offset: int, length: int) -> None:
        checks.append((BASE + timedelta(minutes=offset), timedelta(minutes=length)))

    checks: list[tuple[datetime, timedelta]] = []
    # The instants the setup exists for, which random minutes rarely hit, with the plan and the cycle a quota
    # counts there (not clipped to the association, unlike billing's periods): the Monthly plan's cycle is
    # January; the weekly anniversary cycles start on the change's weekday (Tuesday) at 00:00, so after the
    # change the quota counts from 2026-01-13 00:00 (before the change: the cycle of the new plan's schedule
    # containing now), and the next cycle starts 2026-01-20 00:00.
    us = timedelta(microseconds=1)
    boundary = at(2026, 1, 20)
    tuesday = at(2026, 1, 13)
    pinned = {
        BASE: ("Monthly", BASE, at(2026, 2, 1)),
        CHANGE - us: ("Monthly", BASE, at(2026, 2, 1)),
        CHANGE: ("Weekly anniversary", tuesday, boundary),
        boundary - us: ("Weekly anniversary", tuesday, boundary),
        boundary: ("Weekly anniversary", boundary, at(2026, 1, 27)),
        CHANGE + timedelta(days=7): ("Weekly anniversary", boundary, at(2026, 1, 27)),  # a week after the change
    }
    checks += [(now, timedelta(hours=1)) for now in pinned]
    check()
    async with db.unit_of_work() as session:
        conn = await raw_connection(session)
        for now, length in checks:
            expected = await current_plan_and_usage_cycle(session, "acc", now)
            found = await _account_and_plan(session, "acc-alias", now)
            assert found.account_id == "acc", now
            assert (found.plan.id, found.cycle) == (expected[0].id, expected[1]), now
            if now in pinned:
                assert (found.plan.name, found.cycle.start, found.cycle.end) == pinned[now], now
            for start, end in ((found.cycle.start, found.cycle.end), (now, now + length)):
                quantities = await meter_quantities(session, start=start, end=end, account_ids=["acc"])
                fast = await account_usage(conn, "acc", list(meters.values()), start=start, end=end)
                assert fast == {m: quantities.get(("acc", m), 0) for m in meters.values()}, (now, start, end)


async def test_a_gap_without_a_plan_starts_the_quota_cycle_again(client, db):
    """Quotas count the whole cycle across a plan change (the run of back-to-back plans), but not across a
    gap with no plan: after it, the cycle counts from the new plan's start."""
    meter = (await call(client, "create_usage_meter", name="calls", eventSchemaName="api", aggregation="COUNT"))["id"]
    cards = [{"featureId": "calls", "usageMeterId": meter, "featureConfigs": [{"featureCreditLimit": "10"}]}]
    monthly = await call(client, "create_price_plan", name="Monthly", pricingCycleConfig={"interval": "MONTHLY"},
                         rateCards={"billingEntitlementRateCards": cards})
    weekly = await call(client, "create_price_plan", name="Weekly anniversary", pricingCycleConfig={
        "interval": "WEEKLY", "anniversaryCycle": True}, rateCards={"billingEntitlementRateCards": cards})
    await call(client, "create_customer", id="c", name="C", account={
        "id": "gap", "name": "A", "pricePlanId": monthly["id"], "effectiveFrom": BASE.isoformat()})
    await call(client, "update_account", accountId="gap", effectiveUntil="2026-01-11T00:00:00Z")
    await call(client, "update_account", accountId="gap", pricePlanId=weekly["id"],
               effectiveFrom="2026-01-15T09:00:00Z")  # a Thursday; no plan from 11 to 15 January
    now = at(2026, 1, 16)
    async with db.unit_of_work() as session:
        plan, cycle = await current_plan_and_usage_cycle(session, "gap", now)
        found = await _account_and_plan(session, "gap", now)
    # The weekly cycle holding 16 January starts Thursday 15 January 00:00; the quota counts from 09:00, when
    # the plan began after the gap (back to back with the Monthly plan it would count from 00:00).
    assert (plan.name, cycle.start, cycle.end) == ("Weekly anniversary", at(2026, 1, 15, 9), at(2026, 1, 22))
    assert found.cycle == cycle
