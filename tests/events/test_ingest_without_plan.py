"""Usage dated when its account has no price plan in effect is stored, metered and reported
NOT_BILLED_NO_PLAN (Togai: INGESTION_COMPLETED_EVENT_NOT_METERED), not ACCEPTED; it is billed only if
a plan is later attached over its time. Through ingest_event, ingest_batch_events and list_events."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from helpers import at, call, iso, tokens_meter
from togai_engine.meters.rollups import verify_rollups
from togai_engine.meters.usage import meter_quantities


async def account(client: Any, account_id: str, plan_id: str | None = None, since: str | None = None) -> None:
    fields: dict[str, Any] = {"id": account_id, "name": account_id}
    if plan_id:
        fields |= {"pricePlanId": plan_id, "effectiveFrom": since}
    await call(client, "create_customer", id=f"cust_{account_id}", name="Customer", account=fields)


def usage(when: str, tokens: str, event_id: str, account_id: str = "acme") -> dict[str, Any]:
    return {"id": event_id, "schemaName": "llm", "timestamp": when, "accountId": account_id,
            "attributes": {"tokens": tokens}}


async def penny_plan(client: Any, meter: str) -> str:
    """Monthly from the 1st, 3 days of grace, 0.01 USD per token."""
    card = {"usageMeterId": meter, "ratePlan": {"pricingModel": "TIERED", "slabs": [
        {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
        "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.01"}]}]}
    plan = await call(client, "create_price_plan", name="Penny", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 3},
        rateCards={"usageRateCards": [card]})
    return str(plan["id"])


async def quantity(db: Any, account_id: str, meter: str, start: Any, end: Any) -> Decimal:
    async with db.unit_of_work() as session:
        return (await meter_quantities(session, start=start, end=end)).get((account_id, meter), Decimal(0))


async def test_usage_before_the_plan_starts_is_metered_but_not_billed_until_a_plan_covers_it(client, db, clock):
    meter = await tokens_meter(client)
    plan = await penny_plan(client, meter)
    clock.set(at(2026, 1, 25))
    await account(client, "acme", plan, iso(2026, 2, 1))  # on the plan from 1 February

    early = await call(client, "ingest_event", event=usage("2026-01-20T00:00:00Z", "300", "early"))
    assert early["status"] == "NOT_BILLED_NO_PLAN"
    assert "no price plan in effect" in early["message"] and "effectiveFrom" in early["message"]
    assert early["usageMeters"] == [meter]  # it feeds the meter all the same
    # the plan's first instant is covered (from inclusive); the microsecond before is not
    batch = await call(client, "ingest_batch_events", events=[
        usage("2026-02-01T00:00:00Z", "40", "first"), usage("2026-01-31T23:59:59.999999Z", "2", "last_jan"),
        usage("2026-02-10T00:00:00Z", "60", "feb")])
    assert (batch["accepted"], batch["notBilledNoPlan"], batch["notBilledNoPlanIndexes"]) == (2, 1, [1])
    assert (batch["notBilled"], batch["rejected"], batch["duplicates"]) == (0, 0, 0)
    listed = await call(client, "list_events", status="NOT_BILLED_NO_PLAN")
    assert sorted(e["id"] for e in listed["data"]) == ["early", "last_jan"]
    # a not-billed event still shows the value it feeds its meter with
    assert {e["id"]: e["usageMeters"] for e in listed["data"]}["early"] == [{"usageMeterId": meter, "value": "300"}]
    assert await quantity(db, "acme", meter, at(2026, 1, 1), at(2026, 3, 1)) == Decimal(402)  # 300 + 40 + 2 + 60

    # February's DRAFT bills February only: (40 + 60) tokens x 0.01 = 1.00
    clock.set(at(2026, 2, 5))
    draft = await call(client, "get_invoice", accountId="acme")
    assert (draft["startDate"], draft["totalAmount"]) == (iso(2026, 2, 1), "1.00")

    # The plan attached from 1 January after all (effectiveFrom in the past): January's usage was
    # metered, so it is billed now: January (300 + 2) x 0.01 = 3.02. The stored status stays what it
    # was at ingest.
    await call(client, "update_account", accountId="acme", pricePlanId=plan, effectiveFrom=iso(2026, 1, 1))
    january = [i for i in (await call(client, "list_invoices", accountId="acme"))["data"]
               if i["startDate"] == iso(2026, 1, 1)]
    assert [i["totalAmount"] for i in january] == ["3.02"]
    # the stored statuses stay what they were at ingest
    listed = (await call(client, "list_events", status="NOT_BILLED_NO_PLAN"))["data"]
    assert sorted(e["id"] for e in listed) == ["early", "last_jan"]


async def test_usage_after_a_plan_ended_and_between_plans_is_not_billed(client, db, clock):
    meter = await tokens_meter(client)
    plan = await penny_plan(client, meter)
    await account(client, "acme", plan, iso(2026, 1, 1))
    # on the plan over [1 Jan, 15 Jan)
    await call(client, "update_account", accountId="acme", effectiveUntil=iso(2026, 1, 15))
    clock.set(at(2026, 1, 17))  # the period [1 Jan, 15 Jan) is in its grace period (until 18 Jan)
    # and on the plan again from 20 January: no plan in [15 Jan, 20 Jan)
    await call(client, "update_account", accountId="acme", pricePlanId=plan, effectiveFrom=iso(2026, 1, 20))

    batch = await call(client, "ingest_batch_events", events=[
        usage("2026-01-14T23:59:59.999999Z", "1", "in_first"),  # 0 ACCEPTED
        usage("2026-01-15T00:00:00Z", "10", "ended"),  # 1 until is exclusive
        usage("2026-01-19T12:00:00Z", "100", "gap"),  # 2
        usage("2026-01-20T00:00:00Z", "1000", "in_second"),  # 3 ACCEPTED
    ])
    assert (batch["accepted"], batch["notBilledNoPlan"], batch["notBilledNoPlanIndexes"]) == (2, 2, [1, 2])
    single = await call(client, "ingest_event", event=usage("2026-01-16T00:00:00Z", "10000", "gap_2"))
    assert single["status"] == "NOT_BILLED_NO_PLAN" and single["usageMeters"] == [meter]

    # January's invoice covers the two plan periods only: (1 + 1000) tokens x 0.01 = 10.01
    clock.set(at(2026, 2, 4))
    due = (await call(client, "list_invoices", accountId="acme", status="DUE"))["data"]
    assert sum(Decimal(i["totalAmount"]) for i in due) == Decimal("10.01")
    # the meter has everything: 1 + 10 + 100 + 1000 + 10000
    assert await quantity(db, "acme", meter, at(2026, 1, 1), at(2026, 2, 1)) == Decimal(11111)


async def test_an_account_without_any_plan_meters_its_usage_but_never_reports_it_billable(client, db):
    meter = await tokens_meter(client)
    await account(client, "free")  # no plan at all
    plan = await penny_plan(client, meter)
    await account(client, "paid", plan, iso(2026, 1, 1))
    batch = await call(client, "ingest_batch_events", events=[
        usage("2026-01-05T00:00:00Z", "7", "a", "free"), usage("2026-01-05T00:00:00Z", "8", "b", "paid")])
    assert (batch["accepted"], batch["notBilledNoPlan"], batch["notBilledNoPlanIndexes"]) == (1, 1, [0])
    single = await call(client, "ingest_event", event=usage("2030-06-01T00:00:00Z", "9", "c", "free"))
    assert single["status"] == "NOT_BILLED_NO_PLAN"
    stored = {e["id"]: e["status"] for e in (await call(client, "list_events", pageSize=10))["data"]}
    assert stored == {"a": "NOT_BILLED_NO_PLAN", "b": "ACCEPTED", "c": "NOT_BILLED_NO_PLAN"}
    assert await quantity(db, "free", meter, at(2026, 1, 1), at(2026, 2, 1)) == Decimal(7)
    # a retry is a DUPLICATE, like any other
    again = await call(client, "ingest_event", event=usage("2026-01-05T00:00:00Z", "7", "a", "free"))
    assert again["status"] == "DUPLICATE"


async def test_a_large_batch_mixing_statuses_stores_each_with_its_own(client, db):
    meter = await tokens_meter(client)
    plan = await penny_plan(client, meter)
    await account(client, "acme", plan, iso(2026, 1, 15))
    # 300 events (the plain-INSERT fast path), one per 2 hours from 1 Jan: 0..167 are before 15 Jan
    events = [usage((at(2026, 1, 1) + timedelta(hours=2 * n)).isoformat(), str(n), f"e{n}") for n in range(300)]
    batch = await call(client, "ingest_batch_events", events=events)
    assert (batch["accepted"], batch["notBilledNoPlan"]) == (132, 168)
    assert batch["notBilledNoPlanIndexes"] == list(range(168))
    # what the fast path stored, per status: 168 events before 15 Jan (the last at 14 Jan 22:00), 132 from it
    async with db.unit_of_work() as session:
        stored = (await session.execute(text(
            "SELECT status, count(*), min(event_time), max(event_time) FROM events GROUP BY status ORDER BY status"
        ))).all()
    assert [tuple(r) for r in stored] == [
        ("ACCEPTED", 132, at(2026, 1, 15), at(2026, 1, 1) + timedelta(hours=2 * 299)),
        ("NOT_BILLED_NO_PLAN", 168, at(2026, 1, 1), at(2026, 1, 14, 22))]
    # every event is metered: 0 + 1 + ... + 299 = 44850
    assert await quantity(db, "acme", meter, at(2026, 1, 1), at(2026, 2, 1)) == Decimal(44850)
    async with db.unit_of_work() as session:
        assert await verify_rollups(session) == []
