"""Consume if entitled: check_entitlement with `consume` records the usage it allows, atomically, through
real MCP clients (two servers on one database for the races)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from mcp import Client
from sqlalchemy import text

from conftest import hosted, row_counts
from helpers import at, backend_pid, call, call_error, wait_until_blocked_by
from mcp_server.server import build_server
from togai_engine.app.consume import consume_if_entitled
from togai_engine.billing.fence import FENCE_LOCK_CLASS
from togai_engine.common.clock import FixedClock
from togai_engine.events.ingest import ingest_events
from togai_engine.sandbox.service import start

JAN_10 = datetime(2026, 1, 10, tzinfo=UTC)


async def set_up(client: Any, accounts: tuple[str, ...] = ("acme",), **plan_fields: Any) -> str:
    """Plan Quota (monthly from the 1st, grace 0): feature api = COUNT of `api` events, limit 3, billed 0.25
    per call; feature tokens = SUM of `tokens` on `llm` events, limit 100; sso is BOOLEAN. `plan_fields`: more
    fields of the plan (lateUsage)."""
    api = await call(client, "create_usage_meter", name="api calls", eventSchemaName="api", aggregation="COUNT")
    tokens = await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
                        computations=[{"computation": "tokens"}])
    plan = await call(client, "create_price_plan", name="Quota", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0},
        rateCards={
            "billingEntitlementRateCards": [
                {"featureId": "api", "usageMeterId": api["id"], "featureConfigs": [{"featureCreditLimit": "3"}]},
                {"featureId": "tokens", "usageMeterId": tokens["id"],
                 "featureConfigs": [{"featureCreditLimit": "100"}]},
                {"featureId": "sso"}],
            "usageRateCards": [{"usageMeterId": api["id"], "ratePlan": {"pricingModel": "TIERED", "slabs": [
                {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
                "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.25"}]}]}]}, **plan_fields)
    for account in accounts:
        await call(client, "create_customer", id=f"c_{account}", name=account, account={
            "id": account, "name": account, "invoiceCurrency": "USD", "pricePlanId": plan["id"],
            "effectiveFrom": "2026-01-01T00:00:00Z"})
    return str(api["id"])


async def consume(client: Any, event_id: str, *, account: str = "acme", feature: str = "api",
                  quantity: str = "1", **event: Any) -> dict[str, Any]:
    body = {"id": event_id, "schemaName": "api" if feature == "api" else "llm", "attributes": {}} | event
    return await call(client, "check_entitlement", accountId=account, featureId=feature, quantity=quantity,
                      consume=body)


def outcome(answer: dict[str, Any]) -> tuple[Any, ...]:
    return (answer["entitled"], answer["reason"], answer["consumed"], answer["eventStatus"], answer["used"],
            answer["usedAfter"], answer["remainingAfter"])


async def event_ids(client: Any, account: str = "acme") -> list[str]:
    return sorted(e["id"] for e in (await call(client, "list_events", accountId=account, pageSize=100))["data"])


async def bigger_from_jan_16(client: Any, clock: Any, api: str) -> None:
    """On Jan 10, acme changes to plan Bigger (feature `api` on the meter `api`, limit 10, no price) from Jan 16;
    the clock is then Jan 20, when Quota's period [Jan 1, Jan 16) is invoiced (grace 0)."""
    bigger = await call(client, "create_price_plan", name="Bigger", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0},
        rateCards={"billingEntitlementRateCards": [
            {"featureId": "api", "usageMeterId": api, "featureConfigs": [{"featureCreditLimit": "10"}]}]})
    clock.set(JAN_10)
    await call(client, "update_account", accountId="acme", pricePlanId=bigger["id"], effectiveFrom="2026-01-16T00:00:00Z")
    clock.set(at(2026, 1, 20))


async def test_consume_to_the_limit_replay_and_the_invoice_bills_it(client, clock):
    await set_up(client)
    clock.set(JAN_10)
    # limit 3: each consume of 1 fits while used + 1 <= 3, i.e. at used 0, 1 and 2
    assert outcome(await consume(client, "c1")) == (True, "ENTITLED", True, "ACCEPTED", "0", "1", "2")
    assert outcome(await consume(client, "c2")) == (True, "ENTITLED", True, "ACCEPTED", "1", "2", "1")
    last = await consume(client, "c3")
    assert outcome(last) == (True, "ENTITLED", True, "ACCEPTED", "2", "3", "0")
    assert (last["eventId"], last["remaining"], last["limit"]) == ("c3", "1", "3")
    # used 3: 3 + 1 = 4 > 3, refused, nothing written
    refused = await consume(client, "c4")
    assert outcome(refused) == (False, "LIMIT_REACHED", False, None, "3", None, None)
    assert refused["eventId"] == "c4"
    # a replay of c3 is the first answer (entitled, consumed), recorded once: used stays 3
    assert outcome(await consume(client, "c3")) == (True, "ENTITLED", True, "DUPLICATE", "3", "3", "0")
    assert await event_ids(client) == ["c1", "c2", "c3"]
    event = (await call(client, "list_events", accountId="acme", pageSize=1))["data"][0]
    assert (event["timestamp"], event["status"]) == ("2026-01-10T00:00:00Z", "ACCEPTED")  # default: now

    # a refused id stays free: in February's cycle (used resets to 0) the same c4 consumes
    clock.set(at(2026, 2, 1, 12))
    assert outcome(await consume(client, "c4")) == (True, "ENTITLED", True, "ACCEPTED", "0", "1", "2")
    invoices = (await call(client, "list_invoices", accountId="acme"))["data"]
    january = next(i for i in invoices if i["startDate"].startswith("2026-01-01"))
    # January: the 3 consumed calls (c4 is February's) at 0.25 each: 3 x 0.25 = 0.75
    assert (january["status"], january["totalAmount"]) == ("DUE", "0.75")


async def test_a_sum_meter_consumes_the_event_value(client, clock):
    await set_up(client)
    clock.set(JAN_10)
    # tokens limit 100: 60 fits (0 + 60), then 40 fits exactly (60 + 40 = 100), then 1 more does not
    assert outcome(await consume(client, "t1", feature="tokens", quantity="60", attributes={"tokens": "60"})) == (
        True, "ENTITLED", True, "ACCEPTED", "0", "60", "40")
    assert outcome(await consume(client, "t2", feature="tokens", quantity="40", attributes={"tokens": "40"})) == (
        True, "ENTITLED", True, "ACCEPTED", "60", "100", "0")
    assert outcome(await consume(client, "t3", feature="tokens", quantity="0.5", attributes={"tokens": "0.5"})) == (
        False, "LIMIT_REACHED", False, None, "100", None, None)


async def test_bad_consume_input_names_the_field_and_stores_nothing(client, clock, db):
    await set_up(client)
    clock.set(JAN_10)
    before = await row_counts(db)

    async def error(quantity: str = "1", feature: str = "api", **body: Any) -> str:
        return await call_error(client, "check_entitlement", accountId="acme", featureId=feature, quantity=quantity,
                                consume=body)

    assert "consume.id: is required" in await error(schemaName="api")
    assert "consume.accountId: leave it out" in await error(id="x", schemaName="api", accountId="acme")
    assert "consume.meterId: is not a field of consume" in await error(id="x", schemaName="api", meterId="m")
    assert "consume.schemaName: is required: the event type" in await error(id="x")
    assert "consume.attributes.tokens" in await error(id="x", schemaName="llm", attributes={"tokens": "lots"})
    # a COUNT meter counts 1 per event: quantity 2 would be a lie
    assert ("consume.attributes: the event would add 1 to usage meter" in await error(quantity="2", id="x",
                                                                                      schemaName="api"))
    # tokens 7 moves the tokens meter by 7, not 10
    assert "would add 7" in await error(quantity="10", feature="tokens", id="x", schemaName="llm",
                                        attributes={"tokens": "7"})
    # another schema feeds no meter of the feature: it would add 0
    assert "would add 0" in await error(id="x", schemaName="llm", attributes={"tokens": "1"})
    # dated in December (no cycle of the quota) or in the next cycle: the quota does not count it
    assert "consume.timestamp: 2025-12-31T00:00:00+00:00 is outside the current cycle" in await error(
        id="x", schemaName="api", timestamp="2025-12-31T00:00:00Z")
    assert ("consume.timestamp: 2026-02-01T00:00:00+00:00 is outside the current cycle [2026-01-01T00:00:00+00:00, "
            "2026-02-01T00:00:00+00:00)") in await error(id="x", schemaName="api", timestamp="2026-02-01T00:00:00Z")
    assert "feature 'sso' is BOOLEAN" in await error(feature="sso", id="x", schemaName="api")
    assert "consume: must be an object" in await call_error(client, "check_entitlement", accountId="acme",
                                                            featureId="api", consume="c1")
    assert await row_counts(db) == before  # failed calls roll back whole, audit record included
    # not entitled: no event, only the call's audit record
    await call(client, "ingest_batch_events", events=[{"id": f"u{n}", "schemaName": "api", "accountId": "acme",
                                                       "timestamp": "2026-01-05T00:00:00Z"} for n in range(3)])
    filled = await row_counts(db)
    assert (await consume(client, "x"))["consumed"] is False
    assert await row_counts(db) == filled | {"audit_log": filled["audit_log"] + 1}


async def test_a_voided_id_cannot_be_consumed_again(client, clock):
    await set_up(client)
    clock.set(JAN_10)
    await consume(client, "v1")
    await call(client, "void_event", accountId="acme", eventId="v1", reason="test")
    assert "consume.id: 'v1' is the id of a stored event with status VOIDED" in await call_error(
        client, "check_entitlement", accountId="acme", featureId="api", consume={"id": "v1", "schemaName": "api"})


async def test_two_consumers_of_the_last_unit_exactly_one_wins(client, clock, db):
    accounts = tuple(f"race{i}" for i in range(20))
    await set_up(client, accounts)
    clock.set(JAN_10)
    async with hosted(Client(build_server(db, clock=clock), raise_exceptions=False)) as other:
        for account in accounts:
            await consume(client, f"{account}-1", account=account)
            await consume(client, f"{account}-2", account=account)  # used 2 of 3: one unit left
            answers = await asyncio.gather(consume(client, f"{account}-a", account=account),
                                           consume(other, f"{account}-b", account=account))
            assert sorted(a["consumed"] for a in answers) == [False, True], answers
            loser = next(a for a in answers if not a["consumed"])
            assert (loser["reason"], loser["used"]) == ("LIMIT_REACHED", "3")
            check = await call(client, "check_entitlement", accountId=account, featureId="api")
            assert (check["used"], check["consumed"]) == ("3", None)  # the limit, never more
            assert len(await event_ids(client, account)) == 3


async def test_a_consumer_waits_for_the_one_holding_the_account(client, clock, db, database_url):
    # Deterministic: a transaction consumes the last unit and stays open; a consume through MCP must wait
    # for it (not read the usage before it), then find the limit reached.
    await set_up(client)
    clock.set(JAN_10)
    await consume(client, "c1")
    await consume(client, "c2")
    async with db.unit_of_work() as session:
        held = await consume_if_entitled(session, "acme", "api", Decimal(1),
                                         {"id": "held", "schemaName": "api"}, clock.now())
        assert held.consumed is True
        waiting = asyncio.create_task(consume(client, "late"))
        await wait_until_blocked_by(database_url, await backend_pid(session))
    answer = await asyncio.wait_for(waiting, timeout=20)
    assert outcome(answer) == (False, "LIMIT_REACHED", False, None, "3", None, None)
    assert await event_ids(client) == ["c1", "c2", "held"]


async def test_sandbox_consume_is_dated_at_the_sandbox_time(db):
    async with db.unit_of_work() as session:
        await start(session, at(2026, 1, 1))
    far_away = FixedClock(at(2031, 7, 4))
    async with hosted(Client(build_server(db, clock=far_away, sandbox=True), raise_exceptions=False)) as sandbox:
        await set_up(sandbox)
        await call(sandbox, "advance_clock", to="2026-01-10T08:00:00Z")
        answer = await consume(sandbox, "s1")
        assert outcome(answer) == (True, "ENTITLED", True, "ACCEPTED", "0", "1", "2")
        event = (await call(sandbox, "list_events", accountId="acme"))["data"][0]
        assert event["timestamp"] == "2026-01-10T08:00:00Z"
        # later in the cycle, but after the sandbox clock: it has not happened yet
        assert "consume.timestamp" in (text := await call_error(
            sandbox, "check_entitlement", accountId="acme", featureId="api",
            consume={"id": "s2", "schemaName": "api", "timestamp": "2026-01-11T00:00:00Z"}))
        assert "EVENT_IN_FUTURE" in text


async def test_usage_ingested_meanwhile_by_another_client_does_not_fail_the_consume(client, clock, db, database_url):
    # A plain ingest commits between the consume's usage read and its write: the consume's event still
    # adds exactly 1 to the meter, so it is consumed; usedAfter counts both (0 + 1 other + 1 consumed = 2).
    await set_up(client)
    clock.set(JAN_10)
    async with db.unit_of_work() as session:
        await ingest_events(session, [{"id": "other", "schemaName": "api", "accountId": "acme",
                                       "timestamp": "2026-01-05T00:00:00Z"}], clock.now())
        # the account's billing fence held as a bill run holds it: the consume reads usage (0), then waits at
        # its own ingest
        await session.execute(text(f"SELECT pg_advisory_xact_lock({FENCE_LOCK_CLASS}, hashtext('acme'))"))
        waiting = asyncio.create_task(consume(client, "mine"))
        await wait_until_blocked_by(database_url, await backend_pid(session))
    answer = await asyncio.wait_for(waiting, timeout=20)
    assert outcome(answer) == (True, "ENTITLED", True, "ACCEPTED", "0", "2", "1")
    assert await event_ids(client) == ["mine", "other"]


async def test_a_consume_dated_in_an_invoiced_part_of_the_cycle_names_the_timestamp(client, clock):
    # Plan Quota until Jan 16, then plan Bigger: the quota's cycle is still [Jan 1, Feb 1) (README), but
    # Quota's period [Jan 1, Jan 16) is invoiced (grace 0) by Jan 20, so an event dated Jan 10 would be
    # stored NOT_BILLED_CYCLE_CLOSED and count nothing: the timestamp is what to fix, not the attributes.
    api = await set_up(client)
    await bigger_from_jan_16(client, clock, api)
    assert outcome(await consume(client, "now")) == (True, "ENTITLED", True, "ACCEPTED", "0", "1", "9")
    text = await call_error(client, "check_entitlement", accountId="acme", featureId="api",
                            consume={"id": "back", "schemaName": "api", "timestamp": "2026-01-10T00:00:00Z"})
    # January's cycle of the quota is [Jan 1, Feb 1), but [Jan 1, Jan 16) was invoiced on the old plan
    assert ("consume.timestamp: 2026-01-10T00:00:00Z is in a period already invoiced, so the event would count no "
            "usage") in text, text
    assert await event_ids(client) == ["now"]  # the refused event was not stored


async def test_a_consume_dated_in_an_invoiced_period_that_bills_late_usage_is_answered_and_billed_late(client, clock):
    # As above, but Quota bills late usage: an event dated Jan 10 is stored ACCEPTED_LATE, counts in the quota's
    # cycle and is billed on the next invoice; the answer says so (eventStatus ACCEPTED_LATE) in the tool's schema.
    api = await set_up(client, lateUsage="BILL_ON_NEXT_INVOICE")
    await bigger_from_jan_16(client, clock, api)
    late = await consume(client, "back", timestamp="2026-01-10T00:00:00Z")
    # Bigger's limit 10, 0 used: 0 + 1 fits; 10 - 1 = 9 left
    assert outcome(late) == (True, "ENTITLED", True, "ACCEPTED_LATE", "0", "1", "9")
    assert outcome(await consume(client, "back", timestamp="2026-01-10T00:00:00Z")) == (  # a replay
        True, "ENTITLED", True, "DUPLICATE", "1", "1", "9")
    # Bigger's period [Jan 16, Feb 1) carries Quota's late call: 1 × 0.25 = 0.25 (Bigger prices nothing itself)
    draft = await call(client, "get_invoice", accountId="acme")
    assert [(line["type"], line["value"]) for line in draft["lineItems"]] == [("LATE_USAGE_AMOUNT", "0.25")]
    assert draft["totalAmount"] == "0.25"


async def test_a_consume_dated_after_the_plan_ends_is_refused_as_no_invoice_would_bill_it(client, clock):
    # Quota ends on Jan 20 with no plan after it: the quota's cycle is still [Jan 1, Feb 1) (resetsAt), but an
    # event dated Jan 25 would be stored NOT_BILLED_NO_PLAN, usage no invoice bills: the timestamp is what to fix.
    await set_up(client)
    clock.set(JAN_10)
    await call(client, "update_account", accountId="acme", effectiveUntil="2026-01-20T00:00:00Z")
    text = await call_error(client, "check_entitlement", accountId="acme", featureId="api",
                            consume={"id": "ahead", "schemaName": "api", "timestamp": "2026-01-25T00:00:00Z"})
    assert ("consume.timestamp: 2026-01-25T00:00:00Z is a time when the account has no price plan in effect, so "
            "no invoice would bill the usage") in text, text
    assert await event_ids(client) == []  # the refused event was not stored
    # the id is free: dated now, while Quota is in effect, it consumes
    assert outcome(await consume(client, "ahead")) == (True, "ENTITLED", True, "ACCEPTED", "0", "1", "2")


async def test_an_id_replayed_for_other_usage_is_refused_not_reported_consumed(client, clock):
    await set_up(client)
    clock.set(JAN_10)
    await consume(client, "t1", feature="tokens", quantity="60", attributes={"tokens": "60"})
    # the same key for 50 tokens: the stored event adds 60, so the 50 were never recorded; saying
    # "consumed" would be false
    message = await call_error(client, "check_entitlement", accountId="acme", featureId="tokens", quantity="50",
                               consume={"id": "t1", "schemaName": "llm", "attributes": {"tokens": "50"}})
    assert "consume.id" in message and "adds 60" in message and "not the quantity 50" in message
    # the same key under another feature (api counts `api` events; t1 is an `llm` event): refused too
    message = await call_error(client, "check_entitlement", accountId="acme", featureId="api",
                               consume={"id": "t1", "schemaName": "api", "attributes": {}})
    assert "consume.id" in message and "adds 0" in message
    # the same usage again is the replay: consumed once, used stays 60
    replay = await consume(client, "t1", feature="tokens", quantity="60", attributes={"tokens": "60"})
    assert outcome(replay) == (True, "ENTITLED", True, "DUPLICATE", "60", "60", "40")


async def test_a_feature_counted_by_a_max_meter_cannot_be_consumed(client, clock, db):
    peak = await call(client, "create_usage_meter", name="peak", eventSchemaName="gauge", aggregation="MAX",
                      computations=[{"computation": "seats"}])
    plan = await call(client, "create_price_plan", name="Peak", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0},
        rateCards={"billingEntitlementRateCards": [
            {"featureId": "seats", "usageMeterId": peak["id"], "featureConfigs": [{"featureCreditLimit": "10"}]}]})
    await call(client, "create_customer", id="c_acme", name="acme", account={
        "id": "acme", "name": "acme", "invoiceCurrency": "USD", "pricePlanId": plan["id"],
        "effectiveFrom": "2026-01-01T00:00:00Z"})
    clock.set(JAN_10)
    before = await row_counts(db)
    message = await call_error(client, "check_entitlement", accountId="acme", featureId="seats", quantity="2",
                               consume={"id": "s1", "schemaName": "gauge", "attributes": {"seats": "2"}})
    assert "consume:" in message and "by MAX" in message and "COUNT and SUM" in message
    after = await row_counts(db)
    assert {t: n for t, n in after.items() if n != before[t]} == {}  # nothing stored, no audit row either
