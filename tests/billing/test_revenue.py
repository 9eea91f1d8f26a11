"""REVENUE and USAGE metrics agree with invoices: hand-worked buckets and a property over random usage."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import call, call_error

D = Decimal
JAN, FEB = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
_accounts = itertools.count()


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def setup(client: Any) -> tuple[str, str, str]:
    """Meters tokens (SUM) and requests (COUNT); a plan pricing both. -> (plan, tokens, requests)."""
    tokens = (await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
                         computations=[{"computation": "tokens"}]))["id"]
    requests = (await call(client, "create_usage_meter", name="requests", eventSchemaName="llm",
                           aggregation="COUNT"))["id"]
    plan = await call(client, "create_price_plan", name="Metered", pricingCycleConfig={
        "interval": "MONTHLY", "gracePeriod": 1}, rateCards={
        "usageRateCards": [
            {"usageMeterId": tokens, "ratePlan": {"pricingModel": "TIERED", "slabs": [
                {"order": 1, "startAfter": 0, "priceType": "PER_UNIT"},
                {"order": 2, "startAfter": 100, "priceType": "PER_UNIT"}]},
             "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.10"},
                                                              {"order": 2, "rate": "0.05"}]}]},
            {"usageMeterId": requests, "ratePlan": {"pricingModel": "VOLUME", "slabs": [
                {"order": 1, "startAfter": 0, "priceType": "FLAT"},
                {"order": 2, "startAfter": 2, "priceType": "PER_UNIT"}]},
             "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "5"},
                                                              {"order": 2, "rate": "0.333"}]}]}],
        "fixedFeeRateCards": [{"id": "platform", "rateValues": [{"currency": "USD", "rate": "10"}]}]})
    return plan["id"], tokens, requests


async def metric(client: Any, name: str, start: datetime, end: datetime, period: str, account: str,
                 group: str = "USAGE_METER_ID") -> dict[str, list[Decimal]]:
    result = await call(client, "get_metrics", startTime=iso(start), endTime=iso(end), metricQueries=[{
        "id": "q", "name": name, "aggregationPeriod": period, "groupBy": group,
        "filters": [{"fieldName": "ACCOUNT_ID", "fieldValues": [account]}]}])
    return {series["groupedBy"]["fieldValue"]: [D(v) for v in series["metricValues"]]
            for series in result["results"][0]["data"]}


async def test_revenue_buckets_by_hand(client, clock) -> None:
    plan, tokens, requests = await setup(client)
    await call(client, "create_customer", id="c", name="C", account={
        "id": "acc", "name": "A", "pricePlanId": plan, "effectiveFrom": iso(JAN)})
    for day, amount in ((2, "80"), (3, "40"), (5, "100")):
        await call(client, "ingest_event", event={"id": f"e{day}", "schemaName": "llm", "accountId": "acc",
                                                  "timestamp": iso(JAN + timedelta(days=day - 1, hours=12)),
                                                  "attributes": {"tokens": amount}})
    clock.set(datetime(2026, 2, 5, tzinfo=UTC))
    revenue = await metric(client, "REVENUE", JAN, JAN + timedelta(days=7), "DAY", "acc")
    # tokens, cumulative R(t): after 2 Jan 80 × 0.10 = 8.00; after 3 Jan 120 -> 100 × 0.10 + 20 × 0.05 = 11.00;
    # after 5 Jan 220 -> 10 + 120 × 0.05 = 16.00. Daily deltas: 0, 8, 3, 0, 5, 0, 0
    assert revenue[tokens] == [D("0.00"), D("8.00"), D("3.00"), D(0), D("5.00"), D(0), D(0)]
    # requests (VOLUME): 0-2 requests pay the FLAT 5.00 (a base fee, in the first bucket); the 3rd request moves
    # all 3 to 0.333 each = 0.999 -> 1.00: on 5 Jan the amount drops by 4.00
    assert revenue[requests] == [D("5.00"), D(0), D(0), D(0), D("-4.00"), D(0), D(0)]
    month = await metric(client, "REVENUE", JAN, FEB, "MONTH", "acc")
    invoice = (await call(client, "list_invoices", accountId="acc", status="DUE"))["data"][0]
    full = await call(client, "get_invoice", invoiceId=invoice["id"])
    by_meter = {line["usageMeterId"]: D(line["value"]) for line in full["lineItems"] if line["usageMeterId"]}
    assert by_meter == {tokens: D("16.00"), requests: D("1.00")}
    assert {m: sum(v) for m, v in month.items()} == by_meter
    error = await call_error(client, "get_metrics", startTime=iso(JAN), endTime=iso(FEB), metricQueries=[{
        "id": "q", "name": "REVENUE", "groupBy": "SCHEMA_NAME"}])
    assert "groupBy" in error and "USAGE_METER_ID" in error


events = st.lists(st.tuples(st.integers(0, 31 * 24 * 60 - 1), st.integers(0, 500)), min_size=0, max_size=12)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(usage=events, period=st.sampled_from(["HOUR", "DAY", "WEEK"]))
async def test_usage_and_revenue_over_a_closed_period_equal_the_invoice(
    client, clock, usage: list[tuple[int, int]], period: str
) -> None:
    clock.set(JAN)
    plan, tokens, requests = await setup(client)
    account = f"p{next(_accounts)}"
    await call(client, "create_customer", id=f"c_{account}", name="C", account={
        "id": account, "name": "A", "pricePlanId": plan, "effectiveFrom": iso(JAN)})
    if usage:
        await call(client, "ingest_batch_events", events=[
            {"id": f"{account}-{i}", "schemaName": "llm", "accountId": account, "attributes": {"tokens": str(amount)},
             "timestamp": iso(JAN + timedelta(minutes=minute))} for i, (minute, amount) in enumerate(usage)])
    clock.set(datetime(2026, 2, 3, tzinfo=UTC))  # January is DUE (1 day of grace)
    invoice = (await call(client, "list_invoices", accountId=account, status="DUE"))["data"][0]
    lines = [line for line in (await call(client, "get_invoice", invoiceId=invoice["id"]))["lineItems"]
             if line["usageMeterId"]]
    # HOUR buckets over a month would exceed the 300 points a series may have: use the first 12 days there
    end = JAN + timedelta(days=12) if period == "HOUR" else FEB
    in_range = [(m, a) for m, a in usage if JAN + timedelta(minutes=m) < end]
    quantities = await metric(client, "USAGE", JAN, end, period, account)
    revenue = await metric(client, "REVENUE", JAN, end, period, account)
    if end == FEB:
        assert {line["usageMeterId"]: D(line["quantity"]) for line in lines} == {
            tokens: sum((D(a) for _, a in usage), D(0)), requests: D(len(usage))}
        for line in lines:
            assert sum(quantities.get(line["usageMeterId"], [D(0)])) == D(line["quantity"])
            assert sum(revenue[line["usageMeterId"]]) == D(line["value"])
    else:
        assert sum(quantities.get(tokens, [D(0)])) == sum((D(a) for _, a in in_range), D(0))
        assert sum(quantities.get(requests, [D(0)])) == len(in_range)
