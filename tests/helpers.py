"""Small helpers for calling tools through a real MCP client and reading structured results."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from mcp import Client
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from conftest import pg_connection, row_counts
from togai_engine.events.ingest import ingest_events
from togai_engine.plans import overrides
from togai_engine.plans import service as plans_service
from togai_engine.store.clones import clone_rows  # noqa: F401 (tests import it from here)
from togai_engine.store.database import raw_connection


async def call(client: Client, tool: str, /, **arguments: Any) -> dict[str, Any]:
    """Calls a tool that must succeed; returns its structured result."""
    result = await client.call_tool(tool, arguments)
    text = result.content[0].text if result.content else ""
    assert not result.is_error, f"{tool} failed: {text}"
    assert result.structured_content is not None, f"{tool} returned no structured content"
    return result.structured_content


async def call_error(client: Client, tool: str, /, **arguments: Any) -> str:
    """Calls a tool that must fail with a tool error; returns the error text."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} unexpectedly succeeded: {result.structured_content}"
    return result.content[0].text


async def scalar(db: Any, sql: str) -> Any:
    """The one value of a read-only SQL query."""
    async with db.unit_of_work() as session:
        return await session.scalar(text(sql))


async def backend_pid(session: AsyncSession) -> int:
    """The server process of the session's transaction (pg_stat_activity.pid), for wait_until_lock_waiting."""
    return int(await session.scalar(text("SELECT pg_backend_pid()")))


LOCK_WAIT_TIMEOUT = 20.0  # seconds; a lock wait shows up within milliseconds unless the code under test is wrong


async def wait_until_lock_waiting(database_url: str, pid: int, *, timeout: float = LOCK_WAIT_TIMEOUT) -> None:
    """Returns once server process `pid` waits for a lock (pg_stat_activity.wait_event_type 'Lock'): a
    test that holds a lock knows the other transaction reached it, where a sleep only guesses. Fails
    after `timeout` seconds, saying what `pid` was doing instead."""
    await _wait_for_lock_wait(database_url, "pid = $1", pid, f"server process {pid}", timeout)


async def wait_until_blocked_by(database_url: str, holder_pid: int, *, timeout: float = LOCK_WAIT_TIMEOUT) -> None:
    """Returns once some server process waits for a lock that process `holder_pid` holds (pg_blocking_pids),
    for a blocked transaction the test cannot get the pid of (one the code under test opens itself)."""
    await _wait_for_lock_wait(database_url, "$1 = ANY(pg_blocking_pids(pid))", holder_pid,
                              f"any server process blocked by {holder_pid}", timeout)


async def _wait_for_lock_wait(database_url: str, condition: str, pid: int, what: str, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    # A connection of its own, outside any transaction: pg_stat_activity is read once per transaction,
    # so each poll (autocommit) sees the backends as they are now.
    async with pg_connection(database_url) as conn:
        while not await conn.fetchval(
                f"SELECT EXISTS (SELECT FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND {condition})", pid):
            if loop.time() > deadline:
                seen = await conn.fetch("SELECT pid, state, wait_event_type, wait_event, left(query, 200) AS query "
                                        "FROM pg_stat_activity WHERE datname = current_database()")
                raise AssertionError(f"{what} was not waiting for a lock after {timeout} s; sessions: "
                                     f"{[dict(row) for row in seen]}")
            await asyncio.sleep(0.005)


def at(*parts: int) -> datetime:
    """A UTC instant: at(2026, 2, 1) is 2026-02-01T00:00:00Z."""
    return datetime(*parts, tzinfo=UTC)


def iso(*parts: int) -> str:
    return at(*parts).isoformat().replace("+00:00", "Z")


JAN_1 = "2026-01-01T00:00:00Z"  # the test clock's start (conftest.START)


async def basic_plan(client: Client) -> str:
    """A monthly price plan without rate cards (the same one on every call); returns its id."""
    plan = await call(client, "create_price_plan", name="Basic",
                      pricingCycleConfig={"interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 3})
    return str(plan["id"])


async def on_plan(client: Client, since: str = JAN_1) -> dict[str, str]:
    """create_account / create_customer account fields putting the account on basic_plan from `since`:
    its usage from then on is billable (ACCEPTED), not NOT_BILLED_NO_PLAN."""
    return {"pricePlanId": await basic_plan(client), "effectiveFrom": since}


async def tokens_meter(client: Client, name: str = "tokens") -> str:
    """A SUM meter over the `tokens` attribute of `llm` events; returns its id."""
    meter = await call(client, "create_usage_meter", name=name, eventSchemaName="llm", aggregation="SUM",
                       computations=[{"computation": "tokens"}])
    return str(meter["id"])


def events_of_hour(prefix: str, values: list[tuple[str, str]]) -> list[dict[str, object]]:
    """Events of account acc on 2026-01-05 10:xx: (minute:second, tokens)."""
    return [{"id": f"{prefix}{n}", "schemaName": "llm", "timestamp": f"2026-01-05T10:{at}Z", "accountId": "acc",
             "attributes": {"tokens": tokens}} for n, (at, tokens) in enumerate(values)]


async def rows_by_stripe(db: Any, table: str = "usage_rollups") -> dict[int, int]:
    async with db.unit_of_work() as session:
        rows = await (await raw_connection(session)).fetch(f"SELECT stripe, count(*) FROM {table} GROUP BY 1")
    return {r[0]: r[1] for r in rows}


async def ingest_in_two_stripes(client: Client, db: Any, clock: Any) -> dict[str, str]:
    """Four rollup meters of schema llm on account acc, a priming event (Jan 4), then two transactions open
    at once on the same rollup keys (Jan 5 10:00): the second takes stripe 1. Returns the meter ids."""
    await call(client, "create_customer", id="c", name="C", account={"id": "acc", "name": "A"})
    meters = {}
    for name, aggregation in (("sum", "SUM"), ("max", "MAX"), ("latest", "LATEST"), ("count", "COUNT")):
        created = await call(client, "create_usage_meter", name=f"tokens {name}", eventSchemaName="llm",
                             aggregation=aggregation,
                             computations=[] if aggregation == "COUNT" else [{"computation": "tokens"}])
        meters[name] = created["id"]
    # the schema learns its attribute first (registering it locks the schema row until commit)
    await call(client, "ingest_event", event={"id": "x", "schemaName": "llm", "timestamp": "2026-01-04T00:00:00Z",
                                              "accountId": "acc", "attributes": {"tokens": "1"}})
    first_open, second_done = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with db.unit_of_work() as session:
            await ingest_events(session, events_of_hour("a", [("00:00", "5"), ("59:00", "7")]), clock.now())
            first_open.set()
            await second_done.wait()

    async def second() -> None:
        await first_open.wait()
        async with db.unit_of_work() as session:
            await ingest_events(session, events_of_hour("b", [("30:00", "11"), ("59:00", "2")]), clock.now())
        second_done.set()

    await asyncio.wait_for(asyncio.gather(first(), second()), timeout=20)
    return meters


async def break_stored_deal(db: Any, monkeypatch: Any, account_id: str, path: str, value: str) -> None:
    """An upgrade with stricter checks, or a hand edit: the account's stored deal (rateCardOverrides) gets `value`
    (a JSON text) at `path` (a jsonb_set path such as '{fixedFeeRateCards,0,rateValues,0,rate}'), and the engine
    restarts: nothing it priced before is cached."""
    async with db.unit_of_work() as session:
        await session.execute(text(
            "UPDATE plan_associations SET rate_card_overrides = jsonb_set(rate_card_overrides, CAST(CAST(:path AS text) AS text[]), "
            "CAST(:value AS jsonb)) WHERE account_id = :account"), {"path": path, "value": value, "account": account_id})
    monkeypatch.setattr(overrides, "_EFFECTIVE", {})


async def break_stored_version(db: Any, monkeypatch: Any, plan_id: str, version: int, path: str, value: str) -> None:
    """An upgrade with stricter checks, or a hand edit: version `version` of the plan gets `value` (a JSON text) at
    `path` of its stored definition (a jsonb_set path such as '{rateCards,fixedFeeRateCards,0,rateValues,0,rate}'),
    and the engine restarts: no plan version is cached."""
    async with db.unit_of_work() as session:
        await session.execute(text(
            "UPDATE price_plan_versions SET definition = jsonb_set(definition, CAST(CAST(:path AS text) AS text[]), "
            "CAST(:value AS jsonb)) WHERE plan_id = :plan AND version = :version"),
            {"path": path, "value": value, "plan": plan_id, "version": version})
    monkeypatch.setattr(plans_service, "_CACHE", {})


async def void_refused_after_its_invoice_was_voided(client: Client, db: Any, invoice: dict[str, Any],
                                                    account_id: str, event_id: str) -> None:
    """The invoice that billed `event_id` is voided; void_event of that event is then refused without sending the
    caller to a credit note (a VOID invoice takes none: nothing is owed on it), and leaves nothing behind."""
    await call(client, "update_invoice_status", invoiceId=invoice["id"], status="VOID")
    assert "is VOID" in await call_error(client, "create_credit_note", invoiceId=invoice["id"],
                                         amount=invoice["totalAmount"], reason="DUPLICATE", idempotencyKey="k")
    counts = await row_counts(db)
    events = (await call(client, "list_events", accountId=account_id))["data"]
    error = await call_error(client, "void_event", accountId=account_id, eventId=event_id, reason="sent twice")
    assert invoice["id"] in error and "VOID" in error and "nothing is owed" in error
    assert "create_credit_note" not in error and "nothing was voided" in error
    # refused means nothing written: not even an audit record, and the event keeps its status
    assert await row_counts(db) == counts
    assert (await call(client, "list_events", accountId=account_id))["data"] == events
