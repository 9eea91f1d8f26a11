"""get_metrics through the MCP client: EVENTS and USAGE series, and agreement with meter_quantities."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from conftest import row_counts
from helpers import call, call_error
from togai_engine.meters.usage import meter_quantities


def event(event_id: str, at: str, tokens: str, account: str = "acc_1", schema: str = "api_call") -> dict[str, Any]:
    return {"id": event_id, "schemaName": schema, "timestamp": at, "accountId": account,
            "attributes": [{"name": "tokens", "value": tokens}]}


async def scenario(client) -> dict[str, str]:
    await call(client, "create_customer", id="cust_a", name="A", account={"id": "acc_1", "name": "A1",
                                                                          "aliases": ["a-one"]})
    await call(client, "create_account", id="acc_2", customerId="cust_a", name="A2")
    await call(client, "create_customer", id="cust_b", name="B", account={"id": "acc_3", "name": "B1"})
    meters = {}
    for name, aggregation in (("tokens", "SUM"), ("peak", "MAX")):
        created = await call(client, "create_usage_meter", name=name, eventSchemaName="api_call",
                             aggregation=aggregation, computations=[{"computation": "tokens", "order": 1}])
        meters[name] = created["id"]
    meters["calls"] = (await call(client, "create_usage_meter", name="calls", eventSchemaName="api_call",
                                  aggregation="COUNT"))["id"]
    result = await call(client, "ingest_batch_events", events=[
        event("e1", "2026-01-05T10:15:00Z", "1.5"),
        event("e2", "2026-01-05T10:45:00Z", "2.25"),
        event("e3", "2026-01-05T13:00:00Z", "4", account="acc_2"),
        event("e4", "2026-01-06T00:00:00Z", "8", account="acc_3"),
        event("e5", "2026-01-06T23:59:59.999999Z", "16"),
        event("e6", "2026-01-05T11:00:00Z", "100", schema="image_gen"),
    ])
    assert result["notBilledNoPlan"] == 6  # no account has a price plan: metered, not billable
    return meters


def series(result: dict[str, Any], index: int = 0) -> dict[str | None, list[str]]:
    data = result["results"][index]["data"]
    return {(d["groupedBy"] or {}).get("fieldValue"): d["metricValues"] for d in data}


async def metrics(client, start: str, end: str, *queries: dict[str, Any]) -> dict[str, Any]:
    return await call(client, "get_metrics", startTime=start, endTime=end, metricQueries=list(queries))


async def test_usage_by_day_grouped_by_account_meter_and_customer(client):
    meters = await scenario(client)
    result = await metrics(
        client, "2026-01-05T00:00:00Z", "2026-01-07T00:00:00Z",
        {"id": "by-account", "name": "USAGE", "aggregationPeriod": "DAY", "groupBy": "ACCOUNT_ID",
         "filters": [{"fieldName": "USAGE_METER_ID", "fieldValues": [meters["tokens"]]}]},
        {"id": "by-meter", "name": "USAGE", "aggregationPeriod": "DAY", "groupBy": "USAGE_METER_ID",
         "filters": [{"fieldName": "ACCOUNT_ID", "fieldValues": ["a-one"]}]},
        {"id": "by-customer", "name": "USAGE", "aggregationPeriod": "DAY", "groupBy": "CUSTOMER_ID",
         "filters": [{"fieldName": "USAGE_METER_ID", "fieldValues": [meters["calls"]]}]},
    )
    assert [r["id"] for r in result["results"]] == ["by-account", "by-meter", "by-customer"]
    assert result["results"][0]["data"][0]["timestamps"] == ["2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z"]
    # acc_1 tokens: day 1 = 1.5 + 2.25 = 3.75, day 2 = 16; acc_2 = 4 (day 1); acc_3 = 8 (day 2)
    assert series(result, 0) == {"acc_1": ["3.75", "16"], "acc_2": ["4", "0"], "acc_3": ["0", "8"]}
    # acc_1 through its alias: calls 2 then 1; peak 2.25 then 16; tokens as above
    assert series(result, 1) == {meters["calls"]: ["2", "1"], meters["peak"]: ["2.25", "16"],
                                 meters["tokens"]: ["3.75", "16"]}
    # calls by customer: cust_a = acc_1 + acc_2 = (2 + 1) then 1; cust_b = 1 on day 2
    assert series(result, 2) == {"cust_a": ["3", "1"], "cust_b": ["0", "1"]}


async def test_usage_summed_over_a_period_equals_meter_quantities(client, db):
    meters = await scenario(client)
    # a period that starts and ends inside hours: the edges come from raw events in both paths
    start, end = "2026-01-05T10:30:00Z", "2026-01-06T23:30:00Z"
    result = await metrics(client, start, end, {"id": "u", "name": "USAGE", "aggregationPeriod": "HOUR",
                                                 "groupBy": "USAGE_METER_ID"})
    async with db.unit_of_work() as session:
        quantities = await meter_quantities(session, start=datetime.fromisoformat(start),
                                            end=datetime.fromisoformat(end))
    by_meter = series(result)
    for name in ("tokens", "calls"):  # additive: the sum of the hours is the period's quantity
        total = sum((Decimal(v) for v in by_meter[meters[name]]), Decimal(0))
        assert total == sum((q for (_, m), q in quantities.items() if m == meters[name]), Decimal(0))
    # tokens in [10:30, 23:30 next day): e2 2.25 + e3 4 + e4 8 = 14.25 (e1 is before, e5 after)
    assert sum((Decimal(v) for v in by_meter[meters["tokens"]]), Decimal(0)) == Decimal("14.25")
    assert max(Decimal(v) for v in by_meter[meters["peak"]]) == max(
        q for (_, m), q in quantities.items() if m == meters["peak"])
    assert len(result["results"][0]["data"][0]["timestamps"]) == 38  # 10:00 on the 5th .. 23:00 on the 6th


async def test_events_by_schema_and_by_account_with_filters(client):
    await scenario(client)
    result = await metrics(
        client, "2026-01-05T00:00:00Z", "2026-01-08T00:00:00Z",
        {"id": "schemas", "name": "EVENTS", "aggregationPeriod": "DAY", "groupBy": "SCHEMA_NAME"},
        {"id": "cust-a", "name": "EVENTS", "aggregationPeriod": "DAY", "groupBy": "ACCOUNT_ID",
         "filters": [{"fieldName": "CUSTOMER_ID", "fieldValues": ["cust_a"]},
                     {"fieldName": "SCHEMA_NAME", "fieldValues": ["api_call"]}]},
        {"id": "all", "name": "EVENTS", "aggregationPeriod": "WEEK"},
    )
    assert series(result, 0) == {"api_call": ["3", "2", "0"], "image_gen": ["1", "0", "0"]}
    assert series(result, 1) == {"acc_1": ["2", "1", "0"], "acc_2": ["1", "0", "0"]}
    assert result["results"][2]["data"] == [{"groupedBy": None, "timestamps": ["2026-01-05T00:00:00Z"],
                                             "metricValues": ["6"]}]  # 2026-01-05 is a Monday


async def test_month_buckets_and_an_empty_series(client):
    await scenario(client)
    result = await metrics(client, "2025-12-15T00:00:00Z", "2026-03-01T00:00:00Z",
                           {"id": "m", "name": "USAGE", "aggregationPeriod": "MONTH"},
                           {"id": "none", "name": "EVENTS", "aggregationPeriod": "MONTH", "groupBy": "ACCOUNT_ID",
                            "filters": [{"fieldName": "SCHEMA_NAME", "fieldValues": ["nothing"]}]})
    data = result["results"][0]["data"][0]
    assert data["timestamps"] == ["2025-12-01T00:00:00Z", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"]
    # all meters summed in January: tokens 31.75 + peak (2.25 + 4 + 8 + 16, per account: 16, 4, 8 -> 28) + calls 5
    assert data["metricValues"] == ["0", str(Decimal("31.75") + 28 + 5), "0"]
    assert result["results"][1]["data"] == []


async def test_invalid_queries_are_clear_errors(client, db):
    meters = await scenario(client)
    before = await row_counts(db)
    error = await call_error(client, "get_metrics", startTime="2026-01-01T00:00:00Z", endTime="2026-01-14T00:00:00Z",
                             metricQueries=[{"id": "h", "name": "USAGE", "aggregationPeriod": "HOUR"}])
    assert "metricQueries[0].aggregationPeriod" in error and "more than 300" in error and "longer" in error
    error = await call_error(client, "get_metrics", startTime="2026-01-02T00:00:00Z", endTime="2026-01-01T00:00:00Z",
                             metricQueries=[{"id": "x", "name": "EVENTS"}])
    assert "endTime" in error
    error = await call_error(client, "get_metrics", startTime="2026-01-01T00:00:00Z", endTime="2026-01-02T00:00:00Z",
                             metricQueries=[{"id": "x", "name": "EVENTS", "groupBy": "USAGE_METER_ID"}])
    assert "metricQueries[0].groupBy" in error and "SCHEMA_NAME" in error
    error = await call_error(client, "get_metrics", startTime="2026-01-01T00:00:00Z", endTime="2026-01-02T00:00:00Z",
                             metricQueries=[{"id": "x", "name": "USAGE", "filters": [
                                 {"fieldName": "SCHEMA_NAME", "fieldValues": ["api_call"]}]}])
    assert "metricQueries[0].filters[0].fieldName" in error
    error = await call_error(client, "get_metrics", startTime="2026-01-01T00:00:00Z", endTime="2026-01-02T00:00:00Z",
                             metricQueries=[{"id": "x", "name": "USAGE", "filters": [
                                 {"fieldName": "USAGE_METER_ID", "fieldValues": [meters["calls"], "um_nope"]}]}])
    assert "um_nope" in error and "list_usage_meters" in error
    error = await call_error(client, "get_metrics", startTime="2026-01-01T00:00:00Z", endTime="2026-01-02T00:00:00Z",
                             metricQueries=[{"id": "x", "name": "EVENTS"}] * 2)
    assert "distinct id" in error
    error = await call_error(client, "get_metrics", startTime="2026-01-01T00:00:00Z", endTime="2026-01-02T00:00:00Z",
                             metricQueries=[{"id": f"q{i}", "name": "EVENTS"} for i in range(6)])
    assert "metricQueries" in error
    assert await row_counts(db) == before


async def test_a_filter_field_given_twice_is_refused_by_every_metric_alike(client, db):
    # REVENUE parsed its filters itself and merged ACCOUNT_ID twice into one list (acc_1 and acc_3 both kept),
    # where EVENTS and USAGE refuse it naming the field and the fix: one error for all three.
    await scenario(client)
    before = await row_counts(db)
    twice = [{"fieldName": "ACCOUNT_ID", "fieldValues": ["acc_1"]}, {"fieldName": "ACCOUNT_ID", "fieldValues": ["acc_3"]}]
    errors = [await call_error(client, "get_metrics", startTime="2026-01-01T00:00:00Z", endTime="2026-01-08T00:00:00Z",
                               metricQueries=[{"id": "x", "name": name, "filters": twice}])
              for name in ("EVENTS", "USAGE", "REVENUE")]
    assert "metricQueries[0].filters[1].fieldName" in errors[0] and "ACCOUNT_ID is given twice" in errors[0]
    assert "put all its values in one filter" in errors[0]
    assert errors[1] == errors[0] and errors[2] == errors[0]
    assert await row_counts(db) == before


async def test_dates_and_times_without_offset_are_utc(client):
    await call(client, "create_customer", id="c", name="C", account={"id": "acc", "name": "A"})
    await call(client, "ingest_batch_events", events=[
        {"id": "late_dec", "schemaName": "api", "timestamp": "2025-12-31T23:30:00Z", "accountId": "acc"},
        {"id": "jan1", "schemaName": "api", "timestamp": "2026-01-01T00:30:00Z", "accountId": "acc"},
        {"id": "jan2", "schemaName": "api", "timestamp": "2026-01-02T00:30:00Z", "accountId": "acc"}])
    query = [{"id": "x", "name": "EVENTS", "aggregationPeriod": "DAY"}]
    with_z = await call(client, "get_metrics", startTime="2026-01-01T00:00:00Z", endTime="2026-01-02T00:00:00Z",
                        metricQueries=query)
    assert with_z["results"][0]["data"][0] == {"groupedBy": None, "timestamps": ["2026-01-01T00:00:00Z"],
                                               "metricValues": ["1"]}  # jan1 only
    # a date is 00:00 UTC that day, a date-time without offset is UTC, one with an offset the same instant
    for start, end in (("2026-01-01", "2026-01-02"), ("2026-01-01T00:00:00", "2026-01-02T00:00"),
                       ("2026-01-01T05:30:00+05:30", "2026-01-01T19:00:00-05:00")):
        assert await call(client, "get_metrics", startTime=start, endTime=end, metricQueries=query) == with_z
