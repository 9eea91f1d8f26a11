"""An event attribute edited by hand into what ingest refuses never fails another account's reads or bill run.

Ingest stores attribute values as plain decimal strings (events/validation.py), so no ingested event can hold
"abc"; a hand edit (or an old bug) can. The meters' SQL reads attributes of many accounts' raw events in one
statement: the partial hours at a period's edges, UNIQUE_COUNT meters, a bill run's windows, verify, a new meter's
backfill. Such a value gives its event no value for the meter (as a missing attribute does): the event is
not metered, every other event is, and verify_rollups reports the event by id, as the rollups written from it at
ingest (its valid value then) now disagree with the raw row.

Story: acc_bad and acc_good are on plan "Pro" from 1 January 00:30 (so their periods do not start on the hour):
31.00 a month and 0.01 a token. On 1 January acc_bad sends 100 tokens at 00:40 and acc_good 200 tokens at 00:45
and 300 at 05:00; each event has a user dimension. Then acc_bad's event is edited to tokens "abc".
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text

from helpers import at, call
from togai_engine.billing.runs import run_bill
from togai_engine.events.ingest import FAST_PATH_MIN_EVENTS, ingest_events
from togai_engine.meters.compiler import compile_meter
from togai_engine.meters.rollups import rebuild_rollups, verify_rollups
from togai_engine.meters.usage import meter_quantities
from togai_engine.store.database import raw_connection


async def account(client: Any, account_id: str, plan_id: str, since: str) -> None:
    await call(client, "create_customer", id=f"cust_{account_id}", name="Customer", account={
        "id": account_id, "name": account_id, "invoiceCurrency": "USD", "pricePlanId": plan_id, "effectiveFrom": since})


def _card(meter_id: str) -> dict[str, Any]:
    """0.01 a token (PER_UNIT, USD)."""
    return {"usageMeterId": meter_id, "ratePlan": {"pricingModel": "TIERED", "slabs": [
        {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
        "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.01"}]}]}


MONTHLY = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0}


async def _story(client: Any, db: Any, clock: Any, bad_value: str = '"abc"') -> dict[str, str]:
    meters = {}
    for name, aggregation, computations in (
            ("tokens", "SUM", [{"computation": "tokens"}]),
            # counts the users of events with tokens: its matcher reads the attribute
            ("users", "UNIQUE_COUNT", [{"matcher": {">": [{"var": "attributes.tokens"}, 0]},
                                        "computation": "dimensions.user"}])):
        meters[name] = str((await call(client, "create_usage_meter", name=name, eventSchemaName="llm",
                                       aggregation=aggregation, computations=computations))["id"])
    plan = await call(client, "create_price_plan", name="Pro", pricingCycleConfig=MONTHLY, rateCards={
        "usageRateCards": [_card(meters["tokens"])],
        "fixedFeeRateCards": [{"id": "base", "rateValues": [{"currency": "USD", "rate": "31"}],
                               "invoiceTiming": "IN_ARREARS", "enableProration": False}]})
    for account_id in ("acc_bad", "acc_good"):
        await account(client, account_id, str(plan["id"]), "2026-01-01T00:30:00Z")
    clock.set(at(2026, 1, 10))
    events = [("acc_bad", "b1", "2026-01-01T00:40:00Z", "100", "u1"),
              ("acc_good", "g1", "2026-01-01T00:45:00Z", "200", "u2"),
              ("acc_good", "g2", "2026-01-01T05:00:00Z", "300", "u3")]
    result = await call(client, "ingest_batch_events", events=[
        {"id": event_id, "schemaName": "llm", "accountId": account_id, "timestamp": when,
         "attributes": {"tokens": tokens}, "dimensions": {"user": user}}
        for account_id, event_id, when, tokens, user in events])
    assert result["accepted"] == 3
    async with db.unit_of_work() as session:  # the hand edit: only the raw row changes, not its rollups
        await session.execute(text(
            "UPDATE events SET attributes = jsonb_set(attributes, '{tokens}', CAST(:v AS jsonb)) "
            "WHERE account_id = 'acc_bad' AND id = 'b1'"), {"v": bad_value})
    return meters


async def test_metrics_over_part_of_an_hour_and_unique_counts_read_the_other_accounts(client, db, clock):
    meters = await _story(client, db, clock)
    # [00:30, 06:00): the edge [00:30, 01:00) from raw events, the hours from 01:00 from the rollups
    result = await call(client, "get_metrics", startTime="2026-01-01T00:30:00Z", endTime="2026-01-01T06:00:00Z",
                        metricQueries=[{"id": name, "name": "USAGE", "groupBy": "ACCOUNT_ID",
                                        "filters": [{"fieldName": "USAGE_METER_ID", "fieldValues": [meter]}]}
                                       for name, meter in meters.items()])
    by_query = {r["id"]: {s["groupedBy"]["fieldValue"]: s["metricValues"] for s in r["data"]}
                for r in result["results"]}
    # acc_good: 200 + 300 tokens, users u2 and u3; acc_bad's event has no value: no tokens, no user
    assert by_query["tokens"]["acc_good"] == ["500"]
    assert by_query["users"]["acc_good"] == ["2"]
    assert by_query["tokens"].get("acc_bad", ["0"]) == ["0"] and by_query["users"].get("acc_bad", ["0"]) == ["0"]
    async with db.unit_of_work() as session:
        quantities = await meter_quantities(session, start=at(2026, 1, 1, 0, 30), end=at(2026, 1, 1, 6))
    assert quantities == {("acc_good", meters["tokens"]): 500, ("acc_good", meters["users"]): 2}


async def test_a_bill_run_of_periods_not_on_the_hour_bills_the_other_accounts(client, db, clock):
    await _story(client, db, clock)
    summary = await run_bill(db, at(2026, 2, 5))  # January [00:30 1 Jan, 1 Feb) is due for both
    assert summary.failed == []
    totals = {i["accountId"]: i["totalAmount"]
              for i in (await call(client, "list_invoices", status="DUE", pageSize=10))["data"]}
    # acc_good: 31.00 + 0.01 x (200 + 300) = 36.00; acc_bad: 31.00 + 0.01 x 0 (its event has no value) = 31.00
    assert totals == {"acc_good": "36.00", "acc_bad": "31.00"}


async def test_verify_names_the_event_and_backfill_and_rebuild_count_the_others(client, db, clock):
    meters = await _story(client, db, clock)
    async with db.unit_of_work() as session:
        differences = await verify_rollups(session)
    # ingest rolled b1 up with its 100 tokens; from the raw row it has none. Its hour (00:00) and day differ for
    # acc_bad (tokens and users meters: the users matcher reads tokens), and the all-account tokens total of the hour
    assert {(d.grain, d.account_id, d.meter_id) for d in differences} == {
        ("hour", "acc_bad", meters["tokens"]), ("hour", "acc_bad", meters["users"]), ("hour", "*", meters["tokens"]),
        ("hour", "*", meters["users"])}
    assert all(d.hour == at(2026, 1, 1) for d in differences)
    bad = next(d for d in differences if d.account_id == "acc_bad" and d.meter_id == meters["tokens"])
    assert bad.stored is not None and bad.stored[:2] == (1, 100) and bad.recomputed is None
    assert bad.unreadable == ("event 'b1': attributes.tokens is '\"abc\"', not a decimal",)
    # a new meter over the schema backfills from every stored event: acc_good's 200 + 300
    created = await call(client, "create_usage_meter", name="tokens again", eventSchemaName="llm",
                         aggregation="SUM", computations=[{"computation": "tokens"}])
    async with db.unit_of_work() as session:
        assert await rebuild_rollups(session) > 0
        assert await verify_rollups(session) == []  # rebuilt from raw events: b1 contributes nothing anywhere
        quantities = await meter_quantities(session, start=at(2026, 1, 1), end=at(2026, 1, 2))
        assert quantities[("acc_good", created["id"])] == 500 and ("acc_bad", created["id"]) not in quantities


async def test_ingest_reads_its_validated_values_with_plain_casts(client, db, clock):
    """The guard costs ~1 us per attribute read; ingest's own statements read only the values parse_event has
    just validated (always the stored form), so they cast them plainly. Every ingest form: the claiming
    statement (a small batch), the plain INSERT (FAST_PATH_MIN_EVENTS or more) and the REJECT meter's check."""
    meters = await _story(client, db, clock)  # tokens (SUM) and users (UNIQUE_COUNT, its matcher reads tokens)
    await call(client, "create_usage_meter", name="no negatives", eventSchemaName="llm", aggregation="MAX",
               computations=[{"computation": {"-": [{"var": "attributes.tokens"}, 1]}}], negativeValues="REJECT")
    sent: list[str] = []

    def record(query: Any) -> None:
        sent.append(query.query)

    def event(event_id: str, tokens: str) -> dict[str, Any]:
        return {"id": event_id, "schemaName": "llm", "accountId": "acc_good", "timestamp": "2026-01-02T10:00:00Z",
                "attributes": {"tokens": tokens}, "dimensions": {"user": "u9"}}

    async with db.unit_of_work() as session:
        raw = await raw_connection(session)
        raw.add_query_logger(record)
        try:
            small = await ingest_events(session, [event("s1", "2"), event("s2", "0")], clock.now())
            large = await ingest_events(session, [event(f"l{n}", "1") for n in range(FAST_PATH_MIN_EVENTS)],
                                        clock.now())
            await asyncio.sleep(0)  # asyncpg calls its query loggers soon after each query
        finally:
            raw.remove_query_logger(record)
    # s2's value for "no negatives" is 0 - 1 = -1: rejected; s1 (2 - 1 = 1) and the large batch (1 - 1 = 0) stored
    assert [r.event_id for r in small.rejected] == ["s2"] and large.rejected == []
    storing = [q for q in sent if "INSERT INTO events" in q]
    checking = [q for q in sent if "negative AS" in q]
    assert len(storing) == 2 and len(checking) == 2  # claiming, then plain INSERT; a check per batch
    plain = "CAST((e.attributes ->> 'tokens') AS numeric)"
    for query in storing + checking:
        assert "SIMILAR TO" not in query and plain in query
    # the same meters' reads of stored rows keep the guard (their SQL: compile_meter's value_sql, distinct_sql)
    users = compile_meter("UNIQUE_COUNT", [{"matcher": {">": [{"var": "attributes.tokens"}, 0]},
                                            "computation": "dimensions.user", "order": 1}])
    assert "SIMILAR TO" in users.value_sql and "SIMILAR TO" in str(users.distinct_sql)
    assert "SIMILAR TO" not in users.input_value_sql + str(users.input_distinct_sql)
    async with db.unit_of_work() as session:
        # what ingest rolled up agrees with the guarded raw reads, but for the hand-edited b1 (test above)
        assert {(d.account_id, d.meter_id) for d in await verify_rollups(session) if d.account_id != "*"} == {
            ("acc_bad", meters["tokens"]), ("acc_bad", meters["users"])}
        quantities = await meter_quantities(session, start=at(2026, 1, 2), end=at(2026, 1, 3))
    # acc_good on 2 January: s1's 2 tokens + 200 x 1 = 202; one user, u9
    assert quantities[("acc_good", meters["tokens"])] == 202 and quantities[("acc_good", meters["users"])] == 1
