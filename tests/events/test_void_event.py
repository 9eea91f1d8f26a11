"""void_event through the MCP client: a voided event stays stored, its usage leaves every quantity of its
open period (rollups recomputed, the DRAFT invoice and metrics follow), and a closed period is refused.

Every amount is worked out by hand in the comments next to it.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from conftest import row_counts
from helpers import (
    at,
    call,
    call_error,
    ingest_in_two_stripes,
    iso,
    rows_by_stripe,
    tokens_meter,
    void_refused_after_its_invoice_was_voided,
)
from togai_engine.events.ingest import ingest_events
from togai_engine.events.service import is_retryable
from togai_engine.meters.rollups import verify_rollups
from togai_engine.meters.usage import meter_quantities
from togai_engine.store.database import raw_connection

JAN, FEB = at(2026, 1, 1), at(2026, 2, 1)


async def account(client: Any, account_id: str, plan_id: str, since: str) -> None:
    await call(client, "create_customer", id=f"cust_{account_id}", name="Customer", account={
        "id": account_id, "name": account_id, "pricePlanId": plan_id, "effectiveFrom": since})


async def usage(client: Any, account_id: str, when: str, tokens: str, event_id: str) -> dict[str, Any]:
    return await call(client, "ingest_event", event={
        "id": event_id, "schemaName": "llm", "timestamp": when, "accountId": account_id,
        "attributes": {"tokens": tokens}})


async def per_token_plan(client: Any, meter_id: str, rate: str, grace_days: int) -> str:
    """A monthly plan (cycles start on the 1st) charging `rate` USD per token."""
    plan = await call(client, "create_price_plan", name=f"Per token {rate}", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": grace_days},
        rateCards={"usageRateCards": [{"usageMeterId": meter_id, "ratePlan": {"pricingModel": "TIERED", "slabs": [
            {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": rate}]}]}]})
    return str(plan["id"])


async def no_rollup_difference(db: Any) -> None:
    async with db.unit_of_work() as session:
        assert await verify_rollups(session) == []  # `togai-engine verify` finds nothing


async def quantities(db: Any, start=JAN, end=FEB) -> dict[tuple[str, str], Decimal]:
    async with db.unit_of_work() as session:
        return await meter_quantities(session, start=start, end=end)


async def usage_metric(client: Any, meter_id: str, period: str = "MONTH", start: str = iso(2026, 1, 1),
                       end: str = iso(2026, 2, 1)) -> list[str]:
    result = await call(client, "get_metrics", startTime=start, endTime=end, metricQueries=[
        {"id": "u", "name": "USAGE", "aggregationPeriod": period,
         "filters": [{"fieldName": "USAGE_METER_ID", "fieldValues": [meter_id]}]}])
    return result["results"][0]["data"][0]["metricValues"]


async def events_metric(client: Any, **query: Any) -> dict[str | None, list[str]]:
    result = await call(client, "get_metrics", startTime=iso(2026, 1, 1), endTime=iso(2026, 2, 1), metricQueries=[
        {"id": "e", "name": "EVENTS", "aggregationPeriod": "MONTH", **query}])
    return {(d["groupedBy"] or {}).get("fieldValue"): d["metricValues"] for d in result["results"][0]["data"]}


async def draft_usage(client: Any, account_id: str) -> tuple[str, str]:
    draft = await call(client, "get_invoice", accountId=account_id)
    assert draft["status"] == "DRAFT"
    line = draft["lineItems"][0]
    return line["quantity"], draft["totalAmount"]


async def test_voiding_an_event_takes_its_usage_off_the_draft_invoice_and_the_metrics(client, db, clock):
    meter = await tokens_meter(client)
    await account(client, "acme", await per_token_plan(client, meter, "0.10", 3), iso(2026, 1, 1))
    await call(client, "update_account", accountId="acme", aliases=["acme-alias"])
    await usage(client, "acme", "2026-01-05T10:15:00Z", "100", "e1")
    await usage(client, "acme", "2026-01-05T10:45:00Z", "250", "e2")  # sent by mistake
    await usage(client, "acme", "2026-01-20T08:30:00Z", "40", "e3")
    clock.set(at(2026, 1, 25))
    # 100 + 250 + 40 = 390 tokens x 0.10 = 39.00
    assert await draft_usage(client, "acme") == ("390", "39.00")
    assert await usage_metric(client, meter) == ["390"]

    voided = await call(client, "void_event", accountId="acme-alias", eventId="e2", reason="sent twice by the SDK")
    assert (voided["id"], voided["accountId"], voided["status"]) == ("e2", "acme", "VOIDED")
    assert (voided["voidedAt"], voided["voidReason"], voided["usageMeters"]) == (
        iso(2026, 1, 25), "sent twice by the SDK", [])

    # 100 + 40 = 140 tokens x 0.10 = 14.00: the DRAFT follows at once, and so does the USAGE metric,
    # by month and by hour (the 10:00 hour of 5 January now holds e1 alone)
    assert await draft_usage(client, "acme") == ("140", "14.00")
    assert await usage_metric(client, meter) == ["140"]
    assert await usage_metric(client, meter, "HOUR", iso(2026, 1, 5, 9), iso(2026, 1, 5, 12)) == ["0", "100", "0"]
    await no_rollup_difference(db)

    # the event stays stored, listed with its status; EVENTS counts usage, so it leaves the count
    listed = (await call(client, "list_events", accountId="acme"))["data"]
    assert [(e["id"], e["status"]) for e in listed] == [("e3", "ACCEPTED"), ("e2", "VOIDED"), ("e1", "ACCEPTED")]
    assert [e["id"] for e in (await call(client, "list_events", status="VOIDED"))["data"]] == ["e2"]
    assert await events_metric(client) == {None: ["2"]}
    assert await events_metric(client, groupBy="EVENT_STATUS", filters=[
        {"fieldName": "EVENT_STATUS", "fieldValues": ["ACCEPTED", "VOIDED"]}]) == {"ACCEPTED": ["2"], "VOIDED": ["1"]}

    # the audit log has the call: who, the arguments with the reason, the account and event changed
    audit = (await call(client, "list_audit_log", tool="void_event"))["data"]
    assert [(a["actor"], a["arguments"], a["changedIds"]) for a in audit] == [
        ("local", {"accountId": "acme-alias", "eventId": "e2", "reason": "sent twice by the SDK"}, ["acme", "e2"])]

    # voiding again returns the event as it was voided (idempotent); nothing moves
    clock.set(at(2026, 1, 26))
    again = await call(client, "void_event", accountId="acme", eventId="e2", reason="another reason")
    assert (again["status"], again["voidedAt"], again["voidReason"]) == ("VOIDED", iso(2026, 1, 25),
                                                                         "sent twice by the SDK")
    # its id stays taken: re-sending it is a DUPLICATE and stores nothing; a correction needs a new id
    assert (await usage(client, "acme", "2026-01-05T10:45:00Z", "25", "e2"))["status"] == "DUPLICATE"
    assert await draft_usage(client, "acme") == ("140", "14.00")
    assert (await usage(client, "acme", "2026-01-05T10:45:00Z", "25", "e2-corrected"))["status"] == "ACCEPTED"
    # 140 + 25 = 165 tokens x 0.10 = 16.50
    assert await draft_usage(client, "acme") == ("165", "16.50")
    await no_rollup_difference(db)

    # at the end of the grace period January closes with the corrected usage
    clock.set(at(2026, 2, 4))
    january = (await call(client, "list_invoices", accountId="acme", status="DUE"))["data"]
    assert [(i["startDate"], i["totalAmount"]) for i in january] == [(iso(2026, 1, 1), "16.50")]


async def test_a_void_keeps_the_all_account_totals_exact(client, db, clock):
    # values of 30 decimal places, as ingest accepts them: their sums need more digits than Python's default
    # Decimal context keeps (28), and the void moves the hour's all-account total in Python
    meter = await tokens_meter(client)
    await account(client, "acme", await per_token_plan(client, meter, "1.00", 3), iso(2026, 1, 1))
    await usage(client, "acme", "2026-01-05T10:15:00Z", "0.123456789012345678901234567890", "e1")
    await usage(client, "acme", "2026-01-05T10:30:00Z", "1", "e2")
    await usage(client, "acme", "2026-01-05T10:45:00Z", "5", "e3")  # sent by mistake
    clock.set(at(2026, 1, 25))
    await call(client, "void_event", accountId="acme", eventId="e3", reason="sent by mistake")
    # 6.123456789012345678901234567890 - 5 = 1.123456789012345678901234567890 in the 10:00 hour's total (the
    # series over all accounts reads it), as in the account's rollup (its DRAFT reads that)
    assert await usage_metric(client, meter) == ["1.123456789012345678901234567890"]
    assert await draft_usage(client, "acme") == ("1.123456789012345678901234567890", "1.12")
    await no_rollup_difference(db)


async def test_max_and_latest_are_recomputed_when_their_event_is_voided(client, db, clock):
    # Stripe 0: a0 10:00:00 = 5, a1 10:59:00 = 7; stripe 1: b0 10:30:00 = 11, b1 10:59:00 = 2; all on
    # 5 January, plus the priming event x (4 January, 1). MAX is b0's 11; LATEST at 10:59:00 is the id
    # sorting last, "b1" (2).
    meters = await ingest_in_two_stripes(client, db, clock)
    assert await rows_by_stripe(db) == {0: 8, 1: 4}  # 4 meters x (4 Jan 00:00, 5 Jan 10:00) + 4 meters in stripe 1
    before = await quantities(db)
    assert {name: before[("acc", m)] for name, m in meters.items()} == {
        "sum": Decimal(26), "max": Decimal(11), "latest": Decimal(2), "count": Decimal(5)}

    await call(client, "void_event", accountId="acc", eventId="b0", reason="wrong value")
    after = await quantities(db)
    # without b0: sum 26 - 11 = 15; max of 1, 5, 7, 2 = 7; latest still b1 (2); count 4
    assert {name: after[("acc", m)] for name, m in meters.items()} == {
        "sum": Decimal(15), "max": Decimal(7), "latest": Decimal(2), "count": Decimal(4)}
    await no_rollup_difference(db)  # hourly, daily and the all-account totals all agree with raw events
    # the hour's stripes are folded into one row per meter in stripe 0
    assert await rows_by_stripe(db) == {0: 8}

    await call(client, "void_event", accountId="acc", eventId="b1", reason="wrong value")
    after = await quantities(db)
    # without b1: sum 15 - 2 = 13; max 7; latest now a1 (7, 10:59:00); count 3
    assert {name: after[("acc", m)] for name, m in meters.items()} == {
        "sum": Decimal(13), "max": Decimal(7), "latest": Decimal(7), "count": Decimal(3)}
    await no_rollup_difference(db)
    # USAGE by day over all accounts (MAX and LATEST from the daily rows): 5 January has max 7, latest 7
    for name, expected in (("max", "7"), ("latest", "7"), ("sum", "12")):
        assert (await usage_metric(client, meters[name], "DAY"))[3:5] == [
            "1", expected], name  # 4 January: the priming event's 1

    # the whole hour voided: its rows and totals go, as a recompute from raw events has none
    for event_id in ("a0", "a1"):
        await call(client, "void_event", accountId="acc", eventId=event_id, reason="test account")
    await no_rollup_difference(db)
    async with db.unit_of_work() as session:
        conn = await raw_connection(session)
        for table, column in (("usage_rollups", "hour"), ("usage_totals", "hour"), ("usage_rollups_daily", "day")):
            assert await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {column} >= '2026-01-05'") == 0, table
    after = await quantities(db)
    assert {name: after[("acc", m)] for name, m in meters.items()} == {  # the priming event alone
        "sum": Decimal(1), "max": Decimal(1), "latest": Decimal(1), "count": Decimal(1)}


async def test_unique_count_and_a_meter_created_after_the_void(client, db, clock):
    await call(client, "create_customer", id="c", name="C", account={"id": "acc", "name": "A"})
    users = await call(client, "create_usage_meter", name="users", eventSchemaName="login",
                       aggregation="UNIQUE_COUNT", computations=[{"computation": "dimensions.user"}])

    def login(event_id: str, minute: int, user: str) -> dict[str, Any]:
        return {"id": event_id, "schemaName": "login", "timestamp": f"2026-01-05T10:{minute:02}:00Z",
                "accountId": "acc", "dimensions": {"user": user}}

    await call(client, "ingest_batch_events", events=[login("l1", 1, "ann"), login("l2", 2, "bob"),
                                                      login("l3", 3, "ann")])
    assert (await quantities(db))[("acc", users["id"])] == Decimal(2)  # ann, bob
    await call(client, "void_event", accountId="acc", eventId="l2", reason="bot")
    assert (await quantities(db))[("acc", users["id"])] == Decimal(1)  # ann
    await call(client, "void_event", accountId="acc", eventId="l1", reason="bot")
    assert (await quantities(db))[("acc", users["id"])] == Decimal(1)  # ann, through l3
    # a meter created later meters the events already stored: the billable ones (l3 alone)
    logins = await call(client, "create_usage_meter", name="logins", eventSchemaName="login", aggregation="COUNT")
    assert (await quantities(db))[("acc", logins["id"])] == Decimal(1)
    await no_rollup_difference(db)


async def test_a_period_already_invoiced_is_refused_and_nothing_changes(client, db, clock):
    meter = await tokens_meter(client)
    await account(client, "acme", await per_token_plan(client, meter, "1", 2), iso(2026, 1, 1))
    await usage(client, "acme", "2026-01-10T00:00:00Z", "5", "jan")
    # January's grace ends 3 February 00:00; nobody billed or read since: the void closes it first
    clock.set(at(2026, 2, 5))
    await usage(client, "acme", "2026-02-02T00:00:00Z", "7", "feb")
    january = (await call(client, "list_invoices", accountId="acme", status="DUE"))["data"][0]
    late = await usage(client, "acme", "2026-01-20T00:00:00Z", "1000", "late")
    assert late["status"] == "NOT_BILLED_CYCLE_CLOSED"
    counts = await row_counts(db)

    error = await call_error(client, "void_event", accountId="acme", eventId="jan", reason="wrong")
    assert "already invoiced" in error and january["id"] in error and "create_credit_note" in error
    error = await call_error(client, "void_event", accountId="acme", eventId="late", reason="wrong")
    assert "NOT_BILLED_CYCLE_CLOSED" in error and "never billed" in error
    assert "list_events" in await call_error(client, "void_event", accountId="acme", eventId="nope", reason="x")
    assert "list_accounts" in await call_error(client, "void_event", accountId="ghost", eventId="jan", reason="x")
    assert "reason" in await call_error(client, "void_event", accountId="acme", eventId="feb", reason="  ")
    assert "255" in await call_error(client, "void_event", accountId="acme", eventId="feb", reason="x" * 256)
    assert await row_counts(db) == counts  # failed calls leave nothing behind, not even an audit record
    listed = {e["id"]: e["status"] for e in (await call(client, "list_events", accountId="acme"))["data"]}
    assert listed == {"jan": "ACCEPTED", "feb": "ACCEPTED", "late": "NOT_BILLED_CYCLE_CLOSED"}
    # January stays 5 x 1 = 5.00; February's open period can still be corrected: 7 -> 0
    assert january["totalAmount"] == "5.00"
    assert await draft_usage(client, "acme") == ("7", "7.00")
    await call(client, "void_event", accountId="acme", eventId="feb", reason="test traffic")
    draft = await call(client, "get_invoice", accountId="acme")
    assert (draft["startDate"], draft["totalAmount"]) == (iso(2026, 2, 1), "0.00")


async def test_an_event_of_a_voided_invoice_is_refused_without_asking_for_a_credit_note(client, db, clock):
    meter = await tokens_meter(client)
    await account(client, "acme", await per_token_plan(client, meter, "1", 0), iso(2026, 1, 1))
    await usage(client, "acme", "2026-01-10T00:00:00Z", "5", "jan")
    clock.set(at(2026, 2, 2))
    (january,) = (await call(client, "list_invoices", accountId="acme", status="DUE"))["data"]
    assert january["totalAmount"] == "5.00"  # 5 tokens x 1
    await void_refused_after_its_invoice_was_voided(client, db, january, "acme", "jan")


async def test_an_event_of_a_gap_without_plan_is_refused_as_never_billed(client, db, clock):
    meter = await tokens_meter(client)
    plan = await per_token_plan(client, meter, "1", 0)
    await account(client, "acme", plan, iso(2026, 1, 1))
    await call(client, "update_account", accountId="acme", effectiveUntil=iso(2026, 1, 10))  # a gap from 10 Jan
    clock.set(at(2026, 1, 20))
    gap = await usage(client, "acme", "2026-01-15T00:00:00Z", "1000", "gap")
    assert gap["status"] == "NOT_BILLED_NO_PLAN"
    await call(client, "update_account", accountId="acme", pricePlanId=plan, effectiveFrom=iso(2026, 2, 1))
    clock.set(at(2026, 3, 2))  # February is DUE (no grace): the billing watermark moves to 1 March, past the event
    invoices = (await call(client, "list_invoices", accountId="acme", status="DUE"))["data"]
    # 1-10 January and February: no invoiced period holds 15 January, so no invoice charged its 1000 tokens
    assert sorted((i["startDate"], i["endDate"], i["totalAmount"]) for i in invoices) == [
        (iso(2026, 1, 1), iso(2026, 1, 10), "0.00"), (iso(2026, 2, 1), iso(2026, 3, 1), "0.00")]

    before = await row_counts(db)
    error = await call_error(client, "void_event", accountId="acme", eventId="gap", reason="wrong")
    assert await row_counts(db) == before  # refused: nothing written, not even an audit record
    # still refused (only events of open periods are voided), but it must not send the caller to a credit note
    # on an invoice that does not exist
    assert "never billed" in error and "no invoice charged it" in error and "nothing to correct" in error
    assert "already invoiced" not in error and "create_credit_note" not in error and "nothing was voided" in error
    listed = {e["id"]: e["status"] for e in (await call(client, "list_events", accountId="acme"))["data"]}
    assert listed == {"gap": "NOT_BILLED_NO_PLAN"}


async def test_an_event_in_the_grace_period_can_still_be_voided(client, db, clock):
    meter = await tokens_meter(client)
    await account(client, "acme", await per_token_plan(client, meter, "0.5", 3), iso(2026, 1, 1))
    await usage(client, "acme", "2026-01-31T23:59:59Z", "10", "a")
    await usage(client, "acme", "2026-01-31T23:59:59.5Z", "30", "b")
    clock.set(at(2026, 2, 2))  # January is in its grace period (DRAFT until 4 February)
    await call(client, "void_event", accountId="acme", eventId="b", reason="duplicate")
    clock.set(at(2026, 2, 4))
    january = (await call(client, "list_invoices", accountId="acme", status="DUE"))["data"]
    # 10 tokens x 0.5 = 5.00 (b's 30 tokens are gone)
    assert [i["totalAmount"] for i in january] == ["5.00"]


async def test_voids_and_concurrent_ingest_of_the_same_hour_keep_the_totals_exact(client, db, clock):
    meter = await tokens_meter(client)
    for n in range(3):
        await call(client, "create_customer", id=f"c{n}", name="C", account={"id": f"acc{n}", "name": "A"})
    await call(client, "ingest_batch_events", events=[
        {"id": f"v{i}", "schemaName": "llm", "timestamp": f"2026-01-05T10:{i:02}:00Z", "accountId": "acc0",
         "attributes": {"tokens": "1"}} for i in range(10)])

    async def ingest(n: int) -> None:
        events = [{"id": f"w{n}-{i}", "schemaName": "llm", "timestamp": f"2026-01-05T10:{i:02}:30Z",
                   "accountId": f"acc{1 + n % 2}", "attributes": {"tokens": "3"}} for i in range(20)]
        for _ in range(3):  # a deadlock victim is run again, as the tools do
            try:
                async with db.unit_of_work() as session:
                    await ingest_events(session, events, clock.now())
                return
            except Exception as exc:
                if not is_retryable(exc):
                    raise

    async def void(i: int) -> None:
        await call(client, "void_event", accountId="acc0", eventId=f"v{i}", reason="concurrent")

    await asyncio.wait_for(asyncio.gather(*(ingest(n) for n in range(4)), *(void(i) for i in range(0, 10, 2))),
                           timeout=60)
    await no_rollup_difference(db)
    found = await quantities(db)
    # acc0: 10 events of 1, 5 voided = 5; acc1 and acc2: 2 batches of 20 x 3 = 120 each
    assert (found[("acc0", meter)], found[("acc1", meter)], found[("acc2", meter)]) == (
        Decimal(5), Decimal(120), Decimal(120))
    assert await usage_metric(client, meter) == ["245"]  # from usage_totals: 5 + 120 + 120


async def test_void_events_voids_a_batch_all_or_none(client, db, clock):
    meter = await tokens_meter(client)
    await account(client, "acme", await per_token_plan(client, meter, "1", 0), iso(2026, 1, 1))
    await call(client, "update_account", accountId="acme", aliases=["acme-alias"])
    await call(client, "ingest_batch_events", events=[
        {"id": f"d{i}", "schemaName": "llm", "timestamp": f"2026-01-{5 + i:02}T12:00:00Z", "accountId": "acme",
         "attributes": {"tokens": str(10 * (i + 1))}} for i in range(4)])
    clock.set(at(2026, 1, 20))
    # 10 + 20 + 30 + 40 = 100 tokens x 1 = 100.00
    assert await draft_usage(client, "acme") == ("100", "100.00")
    await call(client, "void_event", accountId="acme", eventId="d0", reason="first")
    counts = await row_counts(db)

    # one unknown event fails the whole batch, naming it; nothing is voided
    error = await call_error(client, "void_events", events=[
        {"accountId": "acme", "eventId": "d1"}, {"accountId": "acme", "eventId": "d9"}], reason="sent twice")
    assert "events[1].eventId: " in error and "list_events" in error
    assert await row_counts(db) == counts
    assert await draft_usage(client, "acme") == ("90", "90.00")  # 20 + 30 + 40

    voided = await call(client, "void_events", events=[
        {"accountId": "acme", "eventId": "d2"}, {"accountId": "acme-alias", "eventId": "d1"},
        {"accountId": "acme", "eventId": "d0"}], reason="sent twice")
    assert [(e["id"], e["status"], e["voidReason"]) for e in voided["data"]] == [
        ("d2", "VOIDED", "sent twice"), ("d1", "VOIDED", "sent twice"), ("d0", "VOIDED", "first")]
    assert await draft_usage(client, "acme") == ("40", "40.00")  # d3 alone
    await no_rollup_difference(db)
    audit = (await call(client, "list_audit_log", tool="void_events"))["data"]
    assert [a["changedIds"] for a in audit] == [["acme", "d2", "d1", "d0"]]

    # a batch with an event of an invoiced period is refused as a whole (the cycle has no grace period)
    clock.set(at(2026, 2, 1))
    await call(client, "ingest_event", event={"id": "f1", "schemaName": "llm", "timestamp": "2026-02-01T00:00:00Z",
                                              "accountId": "acme", "attributes": {"tokens": "5"}})
    counts = await row_counts(db)
    error = await call_error(client, "void_events", events=[
        {"accountId": "acme", "eventId": "f1"}, {"accountId": "acme", "eventId": "d3"}], reason="late")
    assert "events[1].eventId: " in error and "already invoiced" in error
    assert await row_counts(db) == counts
    assert await draft_usage(client, "acme") == ("5", "5.00")
