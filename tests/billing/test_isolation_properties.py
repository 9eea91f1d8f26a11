"""A failing account never stops another's reads or bill run (property).

Random good accounts with random January usage share a database with random broken ones, each broken the way
an upgrade with stricter checks or a hand edit can break stored data: a deal that no longer validates, a plan
version that no longer validates, a currency its plan does not price. Whatever the mix, and whether the reads
or the bill run come first, every good account is billed and read exactly as if it were alone: its January
invoice is 31.00 + 0.01 a token, and the bill run reports precisely the broken accounts.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from helpers import at, break_stored_deal, break_stored_version, call, iso
from test_scenarios import account, fee, tiered
from togai_engine.billing.runs import run_bill

MONTHLY = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0}
BREAKS = ("deal", "version", "currency")
_examples = itertools.count()
_broken_so_far: set[str] = set()  # the examples share one database: earlier broken accounts stay broken

good_usage = st.lists(st.lists(st.tuples(st.integers(1, 31), st.integers(0, 5000)), max_size=4), min_size=1, max_size=3)


async def _plan(client: Any, name: str, meter: str) -> str:
    """31.00 a month (not prorated) and 0.01 a token."""
    created = await call(client, "create_price_plan", name=name, pricingCycleConfig=MONTHLY, rateCards={
        "usageRateCards": [tiered(meter, ("0", "0.01"))], "fixedFeeRateCards": [fee("base", "31", prorate=False)]})
    return str(created["id"])


async def _break(client: Any, db: Any, monkeypatch: Any, how: str, account_id: str, meter: str, n: int) -> None:
    if how == "deal":  # its own price for tokens, later made invalid
        plan_id = await _plan(client, f"Deal plan {n} {account_id}", meter)
        await call(client, "create_customer", id=f"cust_{account_id}", name="Customer", account={
            "id": account_id, "name": account_id, "pricePlanId": plan_id, "effectiveFrom": iso(2026, 1, 1),
            "rateCardOverrides": {"usageRateCards": [{**tiered(meter, ("0", "0.05")), "name": meter}]}})
        await break_stored_deal(db, monkeypatch, account_id, "{usageRateCards,0,rateValues,0,slabRates,0,rate}", '"-1"')
    elif how == "version":  # its plan's only version no longer parses
        plan_id = await _plan(client, f"Broken plan {n} {account_id}", meter)
        await account(client, account_id, plan_id, iso(2026, 1, 1))
        await break_stored_version(db, monkeypatch, plan_id, 1, "{rateCards,fixedFeeRateCards,0,rateValues,0,rate}",
                                   '"31 USD"')
    else:  # its currency changed under its plan, behind the engine's back
        await account(client, account_id, await _plan(client, f"Currency plan {n} {account_id}", meter),
                      iso(2026, 1, 1))
        async with db.unit_of_work() as session:
            await session.execute(text("UPDATE accounts SET invoice_currency = 'EUR' WHERE id = :a"), {"a": account_id})
    await call(client, "ingest_event", event={"id": f"{account_id}-e", "schemaName": "llm", "accountId": account_id,
                                              "timestamp": iso(2026, 1, 3), "attributes": {"tokens": "100"}})


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(usages=good_usage, breaks=st.lists(st.sampled_from(BREAKS), min_size=1, max_size=3),
       reads_first=st.booleans())
async def test_broken_accounts_never_change_what_the_others_are_billed_or_read(
        client, clock, db, monkeypatch, usages: list[list[tuple[int, int]]], breaks: list[str],
        reads_first: bool) -> None:
    n = next(_examples)
    clock.set(at(2026, 1, 10))
    meter = str((await call(client, "create_usage_meter", name=f"tokens {n}", eventSchemaName="llm",
                            aggregation="SUM", computations=[{"computation": "tokens"}]))["id"])
    plan_id = await _plan(client, f"Pro {n}", meter)
    good = {f"good{n}_{i}": events for i, events in enumerate(usages)}
    for account_id in good:
        await account(client, account_id, plan_id, iso(2026, 1, 1))
    bad = [f"bad{n}_{i}_{how}" for i, how in enumerate(breaks)]
    for account_id, how in zip(bad, breaks, strict=True):
        await _break(client, db, monkeypatch, how, account_id, meter, n)
    _broken_so_far.update(bad)
    # One batch naming good and bad accounts alike: the good ones' events are taken
    batch = [{"id": f"{account_id}-{j}", "schemaName": "llm", "accountId": account_id,
              "timestamp": iso(2026, 1, day, 12), "attributes": {"tokens": str(tokens)}}
             for account_id, events in good.items() for j, (day, tokens) in enumerate(events)]
    batch += [{"id": f"{account_id}-late", "schemaName": "llm", "accountId": account_id,
               "timestamp": iso(2026, 1, 4), "attributes": {"tokens": "7"}} for account_id in bad]
    ingested = await call(client, "ingest_batch_events", events=batch)
    statuses = {r["eventId"]: r["status"] for r in ingested["results"]} if "results" in ingested else None
    if statuses is not None:
        assert all(statuses[e["id"]] == "ACCEPTED" for e in batch if str(e["accountId"]).startswith("good"))
    # By hand: 31.00 + 0.01 × the account's tokens in January
    expected = {account_id: str(Decimal("31") + Decimal("0.01") * sum(t for _, t in events))
                for account_id, events in good.items()}
    expected = {a: str(Decimal(v).quantize(Decimal("0.01"))) for a, v in expected.items()}

    clock.set(at(2026, 2, 5))  # January is due for everyone (no grace)

    async def reads() -> None:
        listed = (await call(client, "list_invoices", status="DUE", pageSize=100))["data"]
        january = {i["accountId"]: i["totalAmount"] for i in listed if i["accountId"] in good}
        assert january == expected
        revenue = await call(client, "get_metrics", startTime=iso(2026, 1, 1), endTime=iso(2026, 2, 1), metricQueries=[
            {"id": "r", "name": "REVENUE", "aggregationPeriod": "MONTH", "groupBy": "ACCOUNT_ID"}])
        by_account = {s["groupedBy"]["fieldValue"]: s["metricValues"] for s in revenue["results"][0]["data"]}
        assert {a: by_account[a] for a in good} == {a: [total] for a, total in expected.items()}
        for account_id in good:
            financial = (await call(client, "get_account", accountId=account_id))["financial"]
            assert financial["outstanding"] == expected[account_id] and financial["problem"] is None

    if reads_first:
        await reads()
    summary = await run_bill(db, at(2026, 2, 5))
    failed = {f.accountId: f.reason for f in summary.failed}
    # exactly the broken accounts fail (this example's and earlier ones', still broken), each with its reason
    assert set(bad) <= set(failed) <= _broken_so_far and all(failed.values()), (bad, failed)
    await reads()
