"""finalize_price_plan against calls that put accounts on the plan, or close an account on it, at the same time
(billing README, "Lock order": a plan's lock comes before the accounts' locks). Each pair runs through two real MCP
client sessions, one held at a chosen step so that the other reaches its locks meanwhile; neither may fail, and the
outcome is one of the two orders: an account attached while the plan's next version is finalized is either migrated
by the finalize or attached to the new version, never left on the old one.

Growth v1: tokens 0.10, platform fee 31.00 a month; v2: 0.20, 62.00 (no enableProration: a first partial cycle pays
the whole fee). Monthly from the 1st, gracePeriod 0.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import pytest
from mcp import Client
from sqlalchemy import text

from conftest import hosted
from helpers import at, call, call_error, iso, tokens_meter, wait_until_blocked_by
from mcp_server.server import build_server
from test_lock_order import outcomes
from togai_engine.app import plan_changes, plan_versions
from togai_engine.billing import close
from togai_engine.billing.state import transaction_connection

MONTHLY = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0}


def cards(meter: str, rate: str, monthly_fee: str) -> dict[str, Any]:
    return {"usageRateCards": [{"name": "api_calls", "usageMeterId": meter, "ratePlan": {
        "pricingModel": "TIERED", "slabs": [{"order": 1, "startAfter": 0, "priceType": "PER_UNIT"}]},
        "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": rate}]}]}],
        "fixedFeeRateCards": [{"id": "platform", "rateValues": [{"currency": "USD", "rate": monthly_fee}]}]}


async def clients(stack: AsyncExitStack, db: Any, clock: Any) -> list[Client]:
    return [await stack.enter_async_context(hosted(Client(build_server(db, clock=clock), raise_exceptions=False)))
            for _ in range(2)]


async def growth(client: Client) -> tuple[str, str]:
    """Growth v1, acme on it from 1 January, newco on no plan -> (plan id, meter id)."""
    meter = await tokens_meter(client)
    plan_id = (await call(client, "create_price_plan", name="Growth", pricingCycleConfig=MONTHLY,
                          rateCards=cards(meter, "0.10", "31")))["id"]
    await call(client, "create_customer", id="cust_acme", name="Acme", account={
        "id": "acme", "name": "acme", "pricePlanId": plan_id, "effectiveFrom": iso(2026, 1, 1)})
    await call(client, "create_customer", id="cust_newco", name="Newco", account={"id": "newco", "name": "newco"})
    return plan_id, meter


def held(monkeypatch: Any, module: Any, name: str) -> tuple[
        asyncio.Future[int], asyncio.Event]:
    """Holds the first call of `module.name` (its first argument the session) until the returned event is set; the
    future gets the server process of its transaction as it stops."""
    original = getattr(module, name)
    stopped: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    release = asyncio.Event()

    async def holding(session: Any, *args: Any, **kwargs: Any) -> Any:
        if not stopped.done():
            stopped.set_result((await transaction_connection(session)).get_server_pid())
            await release.wait()
        return await original(session, *args, **kwargs)

    monkeypatch.setattr(module, name, holding)
    return stopped, release


async def draft(client: Client, account_id: str) -> tuple[str, int, str]:
    """(start, pricePlanVersion, total) of the account's DRAFT."""
    invoice = await call(client, "get_invoice", accountId=account_id)
    assert invoice["status"] == "DRAFT", invoice
    return invoice["startDate"], invoice["pricePlanVersion"], invoice["totalAmount"]


@pytest.mark.parametrize("tool", ["update_account", "create_account"])
@pytest.mark.parametrize("first", ["attach", "finalize"])
async def test_an_account_attached_during_a_finalize_ends_on_the_new_version(db, clock, database_url, monkeypatch,
                                                                             first, tool) -> None:
    """update_account(newco, Growth) and finalize_price_plan(Growth, IMMEDIATE) at 16 January, the one started first
    held after it read the plan (the attach: its version; the finalize: the accounts on it). Whichever commits
    first, newco is on version 2 from 16 January: migrated by the finalize (attach first) or attached to the version
    the finalize made ACTIVE (finalize first). It was left on version 1: the finalize read the plan's accounts
    before the attach committed, and the attach read the version before the finalize committed. The same for an
    account created on the plan (create_account with pricePlanId: newco2, from 16 January)."""
    async with AsyncExitStack() as stack:
        attaching, finalizing = await clients(stack, db, clock)
        plan_id, meter = await growth(attaching)
        clock.set(at(2026, 1, 16))
        await call(finalizing, "update_price_plan", pricePlanId=plan_id, rateCards=cards(meter, "0.20", "62"))

        attached = "newco" if tool == "update_account" else "newco2"

        def attach() -> asyncio.Task[Any]:
            if tool == "update_account":
                return asyncio.create_task(call(attaching, "update_account", accountId="newco", pricePlanId=plan_id))
            return asyncio.create_task(call(attaching, "create_account", id="newco2", customerId="cust_newco",
                                            name="newco2", pricePlanId=plan_id))

        def finalize() -> asyncio.Task[Any]:
            return asyncio.create_task(call(finalizing, "finalize_price_plan", pricePlanId=plan_id,
                                            migrationMode="IMMEDIATE"))

        if first == "attach":  # held after its version read (the seat check comes right before the insert)
            pid, release = held(monkeypatch, plan_changes, "check_plan_allows_seats")
        else:  # held once it holds acme's fences, before its first close
            pid, release = held(monkeypatch, plan_versions, "close_due_cycles")
        started = attach() if first == "attach" else finalize()
        try:
            holder = await pid
            second = finalize() if first == "attach" else attach()
            waiting = asyncio.create_task(wait_until_blocked_by(database_url, holder))
            await asyncio.wait([second, waiting], return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
        finally:
            release.set()
        results = await outcomes(started, second)
        moved = results[1] if first == "attach" else results[0]
        # acme moves from 16 January; newco with it when it was attached first, else it starts on version 2
        assert sorted(m["accountId"] for m in moved["migratedAccounts"]) == (
            ["acme", attached] if first == "attach" else ["acme"])
        # newco from 16 January on version 2: the whole fee 62.00 (its first partial cycle, no enableProration), no
        # usage -> 62.00 (on version 1 it would be 31.00)
        assert await draft(finalizing, attached) == (iso(2026, 1, 16), 2, "62.00")
        # acme's January from 16 January on version 2: the fee by time share, 62.00 x 16/31 = 32.00
        assert await draft(finalizing, "acme") == (iso(2026, 1, 16), 2, "32.00")


async def test_a_finalize_never_deadlocks_with_a_read_closing_an_account_on_the_plan(db, clock, database_url,
                                                                                  monkeypatch) -> None:
    """get_account(acme) at 1 February 12:00 closes acme's January and opens its February (a new invoice row naming
    the plan); the finalize, started while the read holds acme's lock and fence, waits for acme's lock. The plan's
    row was locked FOR UPDATE by the finalize, which the February row's foreign key check (FOR KEY SHARE on the
    plan's row) waits for: each waited for the other and PostgreSQL aborted one."""
    async with AsyncExitStack() as stack:
        reading, finalizing = await clients(stack, db, clock)
        plan_id, meter = await growth(reading)
        await call(reading, "ingest_event", event={"id": "u1", "schemaName": "llm", "timestamp": "2026-01-10T00:00:00Z",
                                                   "accountId": "acme", "attributes": {"tokens": "100"}})
        await call(finalizing, "update_price_plan", pricePlanId=plan_id, rateCards=cards(meter, "0.20", "62"))
        clock.set(at(2026, 2, 1, 12))
        pid, release = held(monkeypatch, close, "load_states")  # the read's close, after acme's lock and fence
        read = asyncio.create_task(call(reading, "get_account", accountId="acme"))
        try:
            holder = await pid
            finalized = asyncio.create_task(call(finalizing, "finalize_price_plan", pricePlanId=plan_id,
                                                 migrationMode="NEXT_CYCLE"))
            await wait_until_blocked_by(database_url, holder)  # the finalize waits for acme's lock
        finally:
            release.set()
        _, moved = await outcomes(read, finalized)
        # NEXT_CYCLE at 1 February 12:00: from 1 March
        assert [(m["accountId"], m["effectiveFrom"]) for m in moved["migratedAccounts"]] == [
            ("acme", iso(2026, 3, 1))]
        page = await call(reading, "list_invoices", accountId="acme", pageSize=10)
        # January on version 1: 31.00 + 100 x 0.10 = 41.00, DUE once; February's DRAFT on version 1: 31.00
        assert sorted((i["startDate"], i["status"], i["pricePlanVersion"], i["totalAmount"], i["sequenceId"])
                      for i in page["data"]) == [
            (iso(2026, 1, 1), "DUE", 1, "41.00", "INV-000001"), (iso(2026, 2, 1), "DRAFT", 1, "31.00", None)]


async def test_finalizes_racing_attaches_ingest_and_reads_never_fail_and_leave_no_account_behind(db, clock) -> None:
    """Four rounds, each at the 1st of a month 12:00 (acme's previous month is due): a finalize (IMMEDIATE) of the
    plan's next version, an attach of a new account to the plan, an ingest batch for acme (which closes its due
    month) and a get_account of acme, all at once from four sessions. None may fail (no deadlock), and after each
    round every account on the plan is on the version that round made ACTIVE: the attach ran either before the
    finalize (migrated) or after it (attached to the new version)."""
    async with AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(hosted(Client(build_server(db, clock=clock),
                                                                  raise_exceptions=False))) for _ in range(4)]
        plan_id, meter = await growth(sessions[0])
        for round_ in range(1, 5):
            clock.set(at(2026, round_ + 1, 1, 12))
            await call(sessions[0], "update_price_plan", pricePlanId=plan_id,
                       rateCards=cards(meter, f"0.{round_ + 1}0", "31"))
            await call(sessions[1], "create_customer", id=f"cust_n{round_}", name="New",
                       account={"id": f"n{round_}", "name": f"n{round_}"})
            finalized, _, ingested, _ = await outcomes(
                asyncio.create_task(call(sessions[0], "finalize_price_plan", pricePlanId=plan_id,
                                         migrationMode="IMMEDIATE")),
                asyncio.create_task(call(sessions[1], "update_account", accountId=f"n{round_}", pricePlanId=plan_id)),
                asyncio.create_task(call(sessions[2], "ingest_batch_events", events=[
                    {"id": f"u{round_}", "schemaName": "llm", "timestamp": clock.now().isoformat(),
                     "accountId": "acme", "attributes": {"tokens": "1"}}])),
                asyncio.create_task(call(sessions[3], "get_account", accountId="acme")))
            assert finalized["version"] == round_ + 1
            assert ingested["accepted"] == 1
            async with db.unit_of_work() as session:
                on_plan = (await session.execute(text(
                    "SELECT account_id, version FROM plan_associations WHERE price_plan_id = :plan AND "
                    "effective_until IS NULL ORDER BY account_id"), {"plan": plan_id})).all()
            assert [tuple(r) for r in on_plan] == [("acme", round_ + 1)] + [
                (f"n{n}", round_ + 1) for n in range(1, round_ + 1)], round_
        # every invoice closed in the rounds numbered once, without a gap (no round's numbering rolled back)
        numbers = []
        for name in ["acme"] + [f"n{n}" for n in range(1, 5)]:
            page = await call(sessions[0], "list_invoices", accountId=name, pageSize=100)
            numbers += [i["sequenceId"] for i in page["data"] if i["sequenceId"]]
        assert sorted(numbers) == [f"INV-{n:06d}" for n in range(1, len(numbers) + 1)]


async def test_an_account_changing_currency_during_a_finalize_is_never_moved_to_a_version_without_it(
        db, clock, database_url, monkeypatch) -> None:
    """Growth v1 supports USD and EUR; its v2 drops EUR. finalize_price_plan(IMMEDIATE) at 16 January checked the
    currencies of the plan's accounts (acme: USD) under the plan's lock only, then took the accounts' locks; an
    update_account(acme, invoiceCurrency EUR) that committed between the two (it checks the plans acme is on, v1,
    which supports EUR, and holds no plan lock) was moved to v2 anyway: acme invoiced in EUR on a version that
    cannot price EUR, its DRAFT from 16 January never composed. The finalize re-checks the currencies under the
    accounts' locks: it is refused as it is when the currency change commits first."""
    async with AsyncExitStack() as stack:
        updating, finalizing = await clients(stack, db, clock)
        meter = await tokens_meter(updating)
        both = cards(meter, "0.10", "31")
        both["usageRateCards"][0]["rateValues"].append({"currency": "EUR", "slabRates": [{"order": 1, "rate": "0.10"}]})
        both["fixedFeeRateCards"][0]["rateValues"].append({"currency": "EUR", "rate": "31"})
        plan_id = (await call(updating, "create_price_plan", name="Growth", pricingCycleConfig=MONTHLY,
                              supportedCurrencies=["USD", "EUR"], rateCards=both))["id"]
        await call(updating, "create_customer", id="cust_acme", name="Acme", account={
            "id": "acme", "name": "acme", "pricePlanId": plan_id, "effectiveFrom": iso(2026, 1, 1)})
        clock.set(at(2026, 1, 16))
        await call(finalizing, "update_price_plan", pricePlanId=plan_id, supportedCurrencies=["USD"],
                   rateCards=cards(meter, "0.20", "62"))
        # held after its currency check, before the accounts' locks
        pid, release = held(monkeypatch, plan_versions, "lock_accounts")
        finalized = asyncio.create_task(call_error(finalizing, "finalize_price_plan", pricePlanId=plan_id,
                                                   migrationMode="IMMEDIATE"))
        try:
            await pid
            changed = await call(updating, "update_account", accountId="acme", invoiceCurrency="EUR")
            assert changed["invoiceCurrency"] == "EUR"
        finally:
            release.set()
        (error,) = await outcomes(finalized)
        assert "supportedCurrencies" in error and "acme (EUR)" in error, error
        # acme stays on version 1, its January DRAFT in EUR: the whole fee 31.00 (no usage)
        invoice = await call(updating, "get_invoice", accountId="acme")
        assert (invoice["status"], invoice["pricePlanVersion"], invoice["currency"], invoice["totalAmount"]) == (
            "DRAFT", 1, "EUR", "31.00")
