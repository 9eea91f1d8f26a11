"""A quota counts the whole billing cycle, across a mid-cycle plan change, against the new plan's limit."""

from __future__ import annotations

from typing import Any

from helpers import at, call, iso


async def _plan(client: Any, name: str, meter_id: str, limit: str) -> str:
    plan = await call(client, "create_price_plan", name=name, pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0},
        rateCards={"billingEntitlementRateCards": [
            {"featureId": "api", "displayName": "API calls", "usageMeterId": meter_id,
             "featureConfigs": [{"featureCreditLimit": limit}]}]})
    return str(plan["id"])


async def _calls(client: Any, event_id: str, when: str, calls: int) -> None:
    await call(client, "ingest_event", event={"id": event_id, "schemaName": "api", "timestamp": when,
                                              "accountId": "acme", "attributes": {"calls": str(calls)}})


async def _check(client: Any, quantity: int = 1) -> tuple[Any, ...]:
    r = await call(client, "check_entitlement", accountId="acme", featureId="api", quantity=quantity)
    return r["entitled"], r["reason"], r["used"], r["limit"], r["remaining"], r["cycleStart"], r["resetsAt"]


async def test_a_mid_cycle_plan_change_keeps_counting_the_cycle(client, clock) -> None:
    meter = await call(client, "create_usage_meter", name="api calls", eventSchemaName="api", aggregation="SUM",
                       computations=[{"computation": "calls"}])
    plan_a = await _plan(client, "A", meter["id"], "100")
    plan_b = await _plan(client, "B", meter["id"], "150")
    plan_c = await _plan(client, "C", meter["id"], "100")
    await call(client, "create_customer", id="cust_acme", name="Acme", account={
        "id": "acme", "name": "Acme", "pricePlanId": plan_a, "effectiveFrom": iso(2026, 1, 1)})

    clock.set(at(2026, 1, 10))
    await _calls(client, "jan-a", iso(2026, 1, 5), 60)
    # plan A: 60 of 100 used, 40 left
    assert await _check(client) == (True, "ENTITLED", "60", "100", "40", iso(2026, 1, 1), iso(2026, 2, 1))

    clock.set(at(2026, 1, 16))
    await call(client, "update_account", accountId="acme", pricePlanId=plan_b, effectiveFrom=iso(2026, 1, 16))
    await _calls(client, "jan-b", iso(2026, 1, 20), 50)
    clock.set(at(2026, 1, 21))
    # plan B counts the whole January cycle: 60 (under A, before the change) + 50 = 110 of 150, 40 left;
    # 110 + 40 = 150 fits exactly, 110 + 41 = 151 does not
    assert await _check(client, 40) == (True, "ENTITLED", "110", "150", "40", iso(2026, 1, 1), iso(2026, 2, 1))
    assert (await _check(client, 41))[:2] == (False, "LIMIT_REACHED")
    listed = await call(client, "get_entitlements", accountId="acme")
    assert (listed["pricePlanId"], listed["cycleStart"], listed["resetsAt"]) == (plan_b, iso(2026, 1, 1), iso(2026, 2, 1))
    assert [(f["featureId"], f["entitled"], f["used"], f["limit"], f["remaining"]) for f in listed["data"]] == [
        ("api", True, "110", "150", "40")]

    clock.set(at(2026, 1, 25))
    await call(client, "update_account", accountId="acme", pricePlanId=plan_c, effectiveFrom=iso(2026, 1, 25))
    # plan C (limit 100) at 110 used: over the limit, nothing left until the cycle ends
    assert await _check(client) == (False, "LIMIT_REACHED", "110", "100", "0", iso(2026, 1, 1), iso(2026, 2, 1))
    listed = await call(client, "get_entitlements", accountId="acme")
    assert [(f["entitled"], f["reason"], f["used"], f["remaining"]) for f in listed["data"]] == [
        (False, "LIMIT_REACHED", "110", "0")]

    clock.set(at(2026, 2, 1))  # February: a new cycle, 0 of plan C's 100 used
    assert await _check(client, 100) == (True, "ENTITLED", "0", "100", "100", iso(2026, 2, 1), iso(2026, 3, 1))


async def test_the_cycle_never_starts_before_the_accounts_plans(client, clock) -> None:
    meter = await call(client, "create_usage_meter", name="api calls", eventSchemaName="api", aggregation="SUM",
                       computations=[{"computation": "calls"}])
    plan_a = await _plan(client, "A", meter["id"], "100")
    plan_b = await _plan(client, "B", meter["id"], "150")
    await call(client, "create_customer", id="cust_acme", name="Acme", account={"id": "acme", "name": "Acme"})
    clock.set(at(2026, 1, 8))
    await _calls(client, "before", iso(2026, 1, 5), 70)  # before the account has any plan: never counted
    await call(client, "update_account", accountId="acme", pricePlanId=plan_a, effectiveFrom=iso(2026, 1, 10))
    clock.set(at(2026, 1, 12))
    await _calls(client, "on-a", iso(2026, 1, 11), 30)
    clock.set(at(2026, 1, 16))
    await call(client, "update_account", accountId="acme", pricePlanId=plan_b, effectiveFrom=iso(2026, 1, 16))
    await _calls(client, "on-b", iso(2026, 1, 17), 20)
    clock.set(at(2026, 1, 18))
    # the cycle starts when the account's plans began (10 Jan), not at 1 Jan, nor at the change (16 Jan):
    # 30 + 20 = 50 of 150 used, 100 left; the 70 of 5 Jan do not count
    assert await _check(client) == (True, "ENTITLED", "50", "150", "100", iso(2026, 1, 10), iso(2026, 2, 1))
