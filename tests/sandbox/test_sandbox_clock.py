"""The sandbox clock through a real MCP client: a server whose time is a row in its database, moved by
advance_clock, bills exactly what a server on the real clock bills at the same instants."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from mcp import Client
from mcp_types import PromptReference
from sqlalchemy import text

from conftest import START, TABLES, hosted
from helpers import at, call, call_error
from mcp_server.server import build_server
from togai_engine.billing.runs import run_bill
from togai_engine.common.clock import FixedClock
from togai_engine.sandbox.service import start
from togai_engine.store.database import Database


async def make_sandbox(db: Database, at_time: datetime = START) -> None:
    async with db.unit_of_work() as session:
        await start(session, at_time)


@pytest.fixture
async def sandbox(db: Database) -> AsyncIterator[Client]:
    """A sandbox server at 2026-01-01T00:00Z (the wall clock it is given is far away, so a call that used
    it instead of the sandbox time would show)."""
    await make_sandbox(db)
    far_away = FixedClock(at(2031, 7, 4))
    async with hosted(Client(build_server(db, clock=far_away, sandbox=True), raise_exceptions=False)) as c:
        yield c


async def test_get_and_advance_by_and_to(sandbox: Client) -> None:
    clock = await call(sandbox, "get_clock")
    assert (clock["now"], clock["startedAt"], clock["sandbox"]) == ("2026-01-01T00:00:00Z",) * 2 + (True,)
    moved = await call(sandbox, "advance_clock", by="PT36H")
    assert (moved["previous"], moved["now"]) == ("2026-01-01T00:00:00Z", "2026-01-02T12:00:00Z")
    moved = await call(sandbox, "advance_clock", by="P1M")  # calendar month: Jan 2 -> Feb 2
    assert moved["now"] == "2026-02-02T12:00:00Z"
    moved = await call(sandbox, "advance_clock", by="P2W")
    assert moved["now"] == "2026-02-16T12:00:00Z"
    moved = await call(sandbox, "advance_clock", to="2026-03-01")
    assert moved["now"] == "2026-03-01T00:00:00Z"
    assert (await call(sandbox, "get_clock"))["now"] == "2026-03-01T00:00:00Z"


async def test_every_call_writes_at_the_sandbox_time(sandbox: Client, db: Database) -> None:
    await call(sandbox, "advance_clock", to="2026-01-20T08:00:00Z")
    await call(sandbox, "create_customer", id="c", name="C", account={"id": "a", "name": "A"})
    await call(sandbox, "ingest_event", event={"id": "e", "schemaName": "llm", "timestamp": "2026-01-19T00:00:00Z",
                                               "accountId": "a", "attributes": {"tokens": "1"}})
    async with db.unit_of_work() as session:
        audited = await session.scalar(text("SELECT max(at) FROM audit_log WHERE tool = 'create_customer'"))
        received = await session.scalar(text("SELECT received_at FROM events WHERE id = 'e'"))
    assert audited == received == at(2026, 1, 20, 8)


async def test_month_and_day_completions_count_back_from_the_sandbox_time(sandbox: Client) -> None:
    await call(sandbox, "advance_clock", to="2026-02-02T12:00:00Z")  # the wall clock it was given is 2031-07-04

    async def completed(prompt: str, argument: str) -> list[str]:
        result = await sandbox.complete(PromptReference(name=prompt), {"name": argument, "value": ""})
        return result.completion.values[:3]

    assert await completed("close_month", "month") == ["2026-02", "2026-01", "2025-12"]
    assert await completed("load_daily_usage", "day") == ["2026-02-02", "2026-02-01", "2026-01-31"]


async def test_backwards_and_bad_arguments_are_refused(sandbox: Client) -> None:
    await call(sandbox, "advance_clock", to="2026-02-01")
    message = await call_error(sandbox, "advance_clock", to="2026-01-15")
    assert "to:" in message and "before the sandbox time 2026-02-01" in message and "only moves forward" in message
    assert "by: '-P1D' is not an ISO-8601 duration; use e.g. 'P1M'" in await call_error(sandbox, "advance_clock",
                                                                                       by="-P1D")
    assert "by: moves the clock past the year 9999" in await call_error(sandbox, "advance_clock", by="P9000Y")
    assert "exactly one of `to`" in await call_error(sandbox, "advance_clock")
    assert "exactly one of `to`" in await call_error(sandbox, "advance_clock", to="2026-03-01", by="P1D")
    assert (await call(sandbox, "get_clock"))["now"] == "2026-02-01T00:00:00Z"  # nothing moved


async def test_clock_tools_are_refused_outside_sandbox_mode(client: Client) -> None:
    for tool, arguments in (("get_clock", {}), ("advance_clock", {"by": "P1D"})):
        message = await call_error(client, tool, **arguments)
        assert "togai-engine serve --sandbox" in message and "real clock" in message


async def test_an_event_after_the_clock_is_refused(sandbox: Client) -> None:
    await call(sandbox, "create_customer", id="c", name="C", account={"id": "a", "name": "A"})
    event = {"id": "e1", "schemaName": "llm", "timestamp": "2026-01-01T00:00:01Z", "accountId": "a",
             "attributes": {"tokens": "1"}}
    message = await call_error(sandbox, "ingest_event", event=event)
    assert "event.timestamp" in message and "EVENT_IN_FUTURE" in message and "advance_clock" in message
    batch = await call(sandbox, "ingest_batch_events", events=[event, {**event, "id": "e0",
                                                                       "timestamp": "2026-01-01T00:00:00Z"}])
    # the one dated at the clock is stored (not billed: the account has no plan)
    assert (batch["notBilledNoPlan"], [r["code"] for r in batch["rejectedEvents"]]) == (1, ["EVENT_IN_FUTURE"])
    await call(sandbox, "advance_clock", by="PT1S")
    assert (await call(sandbox, "ingest_event", event=event))["eventId"] == "e1"


# Monthly cycles from Jan 1, one day of grace, 0.50 a token. Each step: the instant, then events at it.
STEPS: list[tuple[str, list[tuple[str, str, str]]]] = [
    ("2026-01-10T00:00:00Z", [("a1", "e1", "8")]),   # Jan: a1 8 x 0.50 = 4.00
    ("2026-01-20T00:00:00Z", [("a2", "e2", "3")]),   # Jan: a2 3 x 0.50 = 1.50
    ("2026-02-10T00:00:00Z", [("a1", "e3", "10")]),  # Feb: a1 10 x 0.50 = 5.00
    ("2026-03-15T00:00:00Z", [("a2", "e4", "4"), ("a1", "e5", "1")]),  # Mar: a2 2.00, a1 0.50
    ("2026-04-02T00:00:00Z", []),                    # March's grace ends: three cycles DUE
]


async def set_up(client: Client) -> None:
    meter = await call(client, "create_usage_meter", name="tokens", eventSchemaName="llm", aggregation="SUM",
                       computations=[{"computation": "tokens"}])
    plan = await call(client, "create_price_plan", name="Tokens", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 1}, rateCards={"usageRateCards": [
            {"usageMeterId": meter["id"], "ratePlan": {"pricingModel": "TIERED", "slabs": [
                {"order": 1, "startAfter": "0", "priceType": "PER_UNIT"}]},
             "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": "0.5"}]}]}]})
    for account_id in ("a1", "a2"):
        await call(client, "create_customer", id=f"c_{account_id}", name="C", account={
            "id": account_id, "name": account_id, "invoiceCurrency": "USD", "pricePlanId": plan["id"],
            "effectiveFrom": "2026-01-01T00:00:00Z"})


async def ingest(client: Client, events: list[tuple[str, str, str]], when: str) -> None:
    for account_id, event_id, tokens in events:
        await call(client, "ingest_event", event={"id": event_id, "schemaName": "llm", "timestamp": when,
                                                  "accountId": account_id, "attributes": {"tokens": tokens}})


async def invoices(db: Database) -> list[tuple[Any, ...]]:
    async with db.unit_of_work() as session:
        rows = await session.execute(text(
            "SELECT account_id, to_char(period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD'), status, total_amount "
            "FROM invoices ORDER BY account_id, period_start"))
        return [tuple(r) for r in rows]


async def test_advancing_across_three_cycles_bills_as_step_by_step_bill_runs(db: Database) -> None:
    # The twin on the real-clock path: a server at each step's instant, and `bill --as-of` at each one.
    twin_clock = FixedClock(START)
    async with hosted(Client(build_server(db, clock=twin_clock), raise_exceptions=False)) as twin:
        await set_up(twin)
        for when, events in STEPS:
            twin_clock.set(datetime.fromisoformat(when))
            await run_bill(db, twin_clock.now())
            await ingest(twin, events, when)
    stepwise = await invoices(db)
    async with db.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    assert await invoices(db) == []

    await make_sandbox(db)
    async with hosted(Client(build_server(db, clock=FixedClock(at(2031, 7, 4)), sandbox=True),
                             raise_exceptions=False)) as sandbox:
        await set_up(sandbox)
        for when, events in STEPS[:-1]:
            await call(sandbox, "advance_clock", to=when)
            await ingest(sandbox, events, when)
        # No step in between: one advance across March's close and grace end.
        last = await call(sandbox, "advance_clock", by="P18D")  # Mar 15 + 18 days = Apr 2
        assert last["now"] == STEPS[-1][0]
        # Two accounts' March invoices became DUE; April's two drafts opened.
        assert (last["invoicesDue"], last["draftsOpened"]) == (2, 2)
    in_sandbox = await invoices(db)

    assert in_sandbox == stepwise
    assert [(a, p, s, t) for a, p, s, t in stepwise if s == "DUE"] == [
        ("a1", "2026-01-01", "DUE", Decimal("4.00")),  # 8 x 0.50
        ("a1", "2026-02-01", "DUE", Decimal("5.00")),  # 10 x 0.50
        ("a1", "2026-03-01", "DUE", Decimal("0.50")),  # 1 x 0.50
        ("a2", "2026-01-01", "DUE", Decimal("1.50")),  # 3 x 0.50
        ("a2", "2026-02-01", "DUE", Decimal("0.00")),  # no usage
        ("a2", "2026-03-01", "DUE", Decimal("2.00")),  # 4 x 0.50
    ]


async def test_accounts_and_invoices_say_sandbox_only_on_a_sandbox(sandbox: Client, client: Client) -> None:
    # Both servers run on the test database (the sandbox one reads its clock row, the other the wall clock).
    plan = await call(client, "create_price_plan", name="Basic", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 1})
    for server, account_id, expected in ((sandbox, "in_sandbox", {"sandbox": True}), (client, "real", {})):
        await call(server, "create_customer", id=f"c_{account_id}", name="C", account={
            "id": account_id, "name": "A", "pricePlanId": plan["id"], "effectiveFrom": "2026-01-01T00:00:00Z"})
        account = await call(server, "get_account", accountId=account_id)
        invoice = await call(server, "get_invoice", accountId=account_id)
        listed = (await call(server, "list_invoices", accountId=account_id))["data"]
        assert listed, "the open cycle's draft is listed"
        marks = [{k: v for k, v in record.items() if k == "sandbox"} for record in (account, invoice, *listed)]
        assert marks == [expected] * (2 + len(listed)), account_id


async def test_a_grant_retried_after_it_expired_returns_the_first_grant(sandbox: Client) -> None:
    # A script grants a promotion with its idempotencyKey and no effectiveFrom (it starts at the call's time),
    # then runs again after the clock moved past the grant's expiry: the same key and content is a retry.
    await call(sandbox, "create_customer", id="c", name="C", account={"id": "a", "name": "A"})
    promo = {"accountId": "a", "amount": "25.00", "effectiveUntil": "2026-01-15", "idempotencyKey": "promo-1"}
    first = await call(sandbox, "grant_credit", **promo)  # Jan 1: 25.00 usable until Jan 15
    assert (first["replayed"], first["balance"]) == (False, "25.00")
    await call(sandbox, "advance_clock", to="2026-01-20")
    # Jan 20: its default effectiveFrom would now be Jan 20, after its expiry; the retry is still the first grant,
    # nothing granted again: balance 25.00 granted - 25.00 expired on Jan 15 = 0.00
    again = await call(sandbox, "grant_credit", **promo)
    assert (again["replayed"], again["grant"]["id"], again["grant"]["amount"], again["balance"]) == (
        True, first["grant"]["id"], "25.00", "0.00")


async def test_a_duration_past_the_last_instant_billing_computes_with_is_refused(sandbox: Client) -> None:
    # `to` is refused after 9000-01-01 (the range of every instant a tool takes); `by` took the clock there anyway:
    # 2026-01-01 + 6975 years = 9001-01-01, after which every call attaching a plan at now was refused on an
    # effectiveFrom it never sent, with a fix (an earlier instant) the clock can never reach.
    assert "to: '9001-01-01' is out of the range" in await call_error(sandbox, "advance_clock", to="9001-01-01")
    message = await call_error(sandbox, "advance_clock", by="P6975Y")
    assert message.startswith("Error executing tool advance_clock: by:") and "9000-01-01T00:00:00Z" in message, message
    assert "shorter duration" in message
    assert (await call(sandbox, "get_clock"))["now"] == "2026-01-01T00:00:00Z"  # nothing moved
    # up to the last instant is fine: 2026-01-01 + 6974 years = 9000-01-01
    assert (await call(sandbox, "advance_clock", by="P6974Y"))["now"] == "9000-01-01T00:00:00Z"


async def test_an_advance_is_found_in_the_audit_log_by_the_accounts_it_billed(sandbox: Client) -> None:
    # advance_clock closes and opens invoices: list_audit_log(entityId=account) finds the advance that billed it
    plan = await call(sandbox, "create_price_plan", name="Basic", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 1})
    await call(sandbox, "create_customer", id="c", name="C", account={"id": "billed", "name": "A",
                                                                    "pricePlanId": plan["id"]})
    await call(sandbox, "create_customer", id="d", name="D", account={"id": "planless", "name": "B"})
    moved = await call(sandbox, "advance_clock", to="2026-02-03")
    assert (moved["invoicesDue"], moved["draftsOpened"]) == (1, 1)  # January closed, February opened
    [advance] = (await call(sandbox, "list_audit_log", tool="advance_clock"))["data"]
    assert advance["changedIds"] == ["billed"]
    assert [r["tool"] for r in (await call(sandbox, "list_audit_log", entityId="billed"))["data"]] == [
        "advance_clock", "create_customer"]
    await call(sandbox, "advance_clock", by="PT1H")  # nothing due: nothing billed, no id
    assert (await call(sandbox, "list_audit_log", tool="advance_clock"))["data"][0]["changedIds"] == []
