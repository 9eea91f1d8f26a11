"""Calls that close cycles of different accounts at the same time (billing README, "Lock order"): an ingest or void
batch that closes one account's due cycle while it judges another account's events, against a read, a plan
change or a finalize that closes that other account. Each pair runs through two real MCP client sessions, the
batch held at a chosen step so that the other call reaches its locks meanwhile; neither may fail, and every
invoice, number and event comes out once."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from decimal import Decimal as D
from typing import Any

import pytest
from mcp import Client

from conftest import hosted
from helpers import at, call, iso, tokens_meter, wait_until_blocked_by
from mcp_server.server import build_server
from test_scenarios import account, fee, invoices, tiered, usage
from togai_engine.app import plan_changes
from togai_engine.billing import close
from togai_engine.billing.state import transaction_connection
from togai_engine.events import ingest, voids

T1 = at(2026, 2, 1, 12)  # acc_a's January is due (grace 0), acc_b's and acc_c's are not (grace 1: due 2 February)
T2 = at(2026, 2, 2)  # acc_b's and acc_c's January are due too


async def plan(client: Client, meter: str, name: str, grace: int) -> str:
    """31.00 a month (not prorated), tokens 0.01 each; monthly from the 1st, `grace` days of grace."""
    created = await call(client, "create_price_plan", name=name, pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": grace},
        rateCards={"usageRateCards": [tiered(meter, ("0", "0.01"))], "fixedFeeRateCards": [fee("base", "31",
                                                                                               prorate=False)]})
    return str(created["id"])


async def setup(client: Client, clock: Any, *, with_c: bool = False) -> str:
    """acc_a on a plan without grace, acc_b (and acc_c) on one with a day of grace, from 1 January: 100, 200 (and
    300) tokens in January, 5 in February each; at T1, acc_b's (and acc_c's) February DRAFT is open (a read), so
    only acc_a has a bill run due. -> the graced plan."""
    meter = await tokens_meter(client)
    now, graced = await plan(client, meter, "Now", 0), await plan(client, meter, "Graced", 1)
    names = ["acc_a", "acc_b", "acc_c"] if with_c else ["acc_a", "acc_b"]
    for n, name in enumerate(names, start=1):
        await account(client, name, now if name == "acc_a" else graced, iso(2026, 1, 1))
        await usage(client, name, "2026-01-10T00:00:00Z", str(100 * n), f"{name}-jan")
        await usage(client, name, "2026-02-01T06:00:00Z", "5", f"{name}-feb")
    clock.set(T1)
    for name in names[1:]:
        await call(client, "get_account", accountId=name)
    return graced


def hold(monkeypatch: Any, module: Any, name: str, pid_of: Any, when: Any = lambda *_: True) -> tuple[
        asyncio.Future[int], asyncio.Event]:
    """Holds the first call of `module.name` that `when` accepts until the returned event is set; the future gets
    the server process of its transaction (`pid_of` its arguments) as it stops."""
    original = getattr(module, name)
    stopped: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    release = asyncio.Event()

    async def held(*args: Any, **kwargs: Any) -> Any:
        if not stopped.done() and when(*args):
            stopped.set_result(pid_of(*args).get_server_pid())
            await release.wait()
        return await original(*args, **kwargs)

    monkeypatch.setattr(module, name, held)
    return stopped, release


async def batch(client: Client, kind: str, accounts: list[str]) -> dict[str, Any]:
    if kind == "ingest":
        return await call(client, "ingest_batch_events", events=[
            {"id": f"{a}-feb-2", "schemaName": "llm", "timestamp": "2026-02-01T07:00:00Z", "accountId": a,
             "attributes": {"tokens": "1"}} for a in accounts])
    return await call(client, "void_events", events=[{"accountId": a, "eventId": f"{a}-feb"} for a in accounts],
                      reason="sent twice")


async def read_b(client: Client, kind: str, plan_id: str) -> None:
    if kind == "get_account":
        await call(client, "get_account", accountId="acc_b")
    elif kind == "get_invoice":
        await call(client, "get_invoice", accountId="acc_b")
    elif kind == "list_invoices":
        await call(client, "list_invoices", accountId="acc_b")
    else:  # a plan change (here to the plan it is on: nothing changes), which closes the due cycle first
        await call(client, "update_account", accountId="acc_b", pricePlanId=plan_id)


async def outcomes(*tasks: asyncio.Task[Any]) -> list[Any]:
    """The tasks' results once all have ended (a failed one does not leave the others running on into the next
    test), raising the first failure."""
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def summary(invoice: dict[str, Any]) -> tuple[Any, ...]:
    return invoice["status"], invoice["sequenceId"], D(str(invoice["totalAmount"]))


@pytest.mark.parametrize(("kind", "read"), [("ingest", "get_account"), ("ingest", "list_invoices"),
                                           ("void", "get_invoice"), ("ingest", "update_account")])
async def test_a_batch_closing_one_account_never_deadlocks_with_a_read_closing_another(
        db, clock, database_url, monkeypatch, kind, read) -> None:
    async with AsyncExitStack() as stack:
        batching, reading = [await stack.enter_async_context(hosted(Client(build_server(db, clock=clock),
                                                                           raise_exceptions=False)))
                             for _ in range(2)]
        graced = await setup(batching, clock)
        # the batch stops where it reads the watermarks: it has closed acc_a's January by then
        pid, release = hold(monkeypatch, ingest if kind == "ingest" else voids, "lock_watermarks",
                            lambda conn, *_: conn)
        batched = asyncio.create_task(batch(batching, kind, ["acc_a", "acc_b"]))
        try:
            batch_pid = await pid
            clock.set(T2)
            reads = asyncio.create_task(read_b(reading, read, graced))
            await wait_until_blocked_by(database_url, batch_pid)  # the read waits for a lock the batch holds
        finally:
            release.set()
        result, _ = await outcomes(batched, reads)
        # January: 31.00 + tokens x 0.01: acc_a 100 -> 32.00 (numbered by the batch), acc_b 200 -> 33.00 (by the
        # read); February so far: 31.00 + 0.01 x (5, plus 1 from the batch, or 0 once voided)
        feb = D("31.06") if kind == "ingest" else D("31.00")
        assert [summary(i) for i in await invoices(reading, "acc_a")] == [
            ("DRAFT", None, feb), ("DUE", "INV-000001", D("32.00"))]
        assert [summary(i) for i in await invoices(reading, "acc_b")] == [
            ("DRAFT", None, feb), ("DUE", "INV-000002", D("33.00"))]
        if kind == "ingest":
            assert (result["accepted"], result["duplicates"]) == (2, 0)
        else:
            assert [e["status"] for e in result["data"]] == ["VOIDED", "VOIDED"]


async def test_a_finalize_never_deadlocks_with_a_batch_closing_another_account(db, clock, database_url,
                                                                               monkeypatch) -> None:
    """The finalize closes its accounts one by one (acc_b, then acc_c); the batch (acc_a due, acc_c not) holds acc_c's
    fence shared while it closes acc_a. Had the finalize taken the invoice counter with acc_b's close before it waits
    for acc_c's fence, the batch, needing the counter next, would close the cycle: the finalize takes every fence it
    may need before it closes anything."""
    async with AsyncExitStack() as stack:
        batching, finalizing = [await stack.enter_async_context(hosted(Client(build_server(db, clock=clock),
                                                                              raise_exceptions=False)))
                                for _ in range(2)]
        graced = await setup(batching, clock, with_c=True)
        meter = (await call(batching, "get_price_plan", pricePlanId=graced))["rateCards"]["usageRateCards"][0][
            "usageMeterId"]
        await call(batching, "update_price_plan", pricePlanId=graced, rateCards={
            "usageRateCards": [tiered(meter, ("0", "0.02"))], "fixedFeeRateCards": [fee("base", "31", prorate=False)]})
        # the batch stops in its close of acc_a, after the fences, before the counter
        pid, release = hold(monkeypatch, close, "load_states", lambda _s, _ids, conn: conn,
                            lambda _s, ids, _c: "acc_a" in ids)
        batched = asyncio.create_task(batch(batching, "ingest", ["acc_a", "acc_c"]))
        try:
            batch_pid = await pid
            clock.set(T2)
            finalized = asyncio.create_task(call(finalizing, "finalize_price_plan", pricePlanId=graced,
                                                 migrationMode="NEXT_CYCLE"))
            waiting = asyncio.create_task(wait_until_blocked_by(database_url, batch_pid))
            await asyncio.wait([finalized, waiting], return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
        finally:
            release.set()
        result, moved = await outcomes(batched, finalized)
        assert (result["accepted"], result["duplicates"]) == (2, 0)
        assert sorted(a["accountId"] for a in moved["migratedAccounts"]) == ["acc_b", "acc_c"]
        # January, DUE once each with its own number: 31.00 + tokens x 0.01 (100, 200, 300)
        january = {name: [summary(i) for i in await invoices(finalizing, name) if i["status"] == "DUE"]
                   for name in ("acc_a", "acc_b", "acc_c")}
        assert {name: [(s, total) for s, _, total in rows] for name, rows in january.items()} == {
            "acc_a": [("DUE", D("32.00"))], "acc_b": [("DUE", D("33.00"))], "acc_c": [("DUE", D("34.00"))]}
        assert sorted(number for rows in january.values() for _, number, _ in rows) == [
            "INV-000001", "INV-000002", "INV-000003"]


async def test_two_plan_changes_that_credit_advance_fees_never_deadlock_on_the_counters(
        db, clock, database_url, monkeypatch) -> None:
    """Both switch an account off a plan whose 31.00 fee is IN_ADVANCE (February's on January's invoice): each
    credits February's unused part (a credit note number) and invoices (an invoice number). acc_1's January is due
    when its change starts, so it takes the invoice counter first; acc_2's January is closed already, so its credit
    note comes first. Had the credit-note counter been taken before the invoice counter by one and after it by the
    other, PostgreSQL would abort one of the two (billing README, "Lock order")."""
    async with AsyncExitStack() as stack:
        first, second = [await stack.enter_async_context(hosted(Client(build_server(db, clock=clock),
                                                                       raise_exceptions=False)))
                         for _ in range(2)]
        monthly = {"interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0}
        ahead = (await call(first, "create_price_plan", name="Ahead", pricingCycleConfig=monthly, rateCards={
            "fixedFeeRateCards": [fee("base", "31", timing="IN_ADVANCE", prorate=False)]}))["id"]
        other = (await call(first, "create_price_plan", name="Other", pricingCycleConfig=monthly, rateCards={
            "fixedFeeRateCards": [fee("other", "28", prorate=False)]}))["id"]
        for name in ("acc_1", "acc_2"):
            await account(first, name, ahead, iso(2026, 1, 1))
        clock.set(at(2026, 2, 15))
        await call(first, "get_account", accountId="acc_2")  # acc_2's January closes now, acc_1's with its change

        reached: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        release = asyncio.Event()
        credit = plan_changes.credit_unused_advance_fees

        async def held(session: Any, account_id: str, *args: Any) -> Any:  # acc_1's, once it holds the counter
            if account_id == "acc_1" and not reached.done():
                reached.set_result((await transaction_connection(session)).get_server_pid())
                await release.wait()
            return await credit(session, account_id, *args)

        monkeypatch.setattr(plan_changes, "credit_unused_advance_fees", held)
        changed_1 = asyncio.create_task(call(first, "update_account", accountId="acc_1", pricePlanId=other))
        try:
            holder = await reached
            changed_2 = asyncio.create_task(call(second, "update_account", accountId="acc_2", pricePlanId=other))
            await wait_until_blocked_by(database_url, holder)  # acc_2's change waits for a counter acc_1's holds
        finally:
            release.set()
        await outcomes(changed_1, changed_2)
        for name in ("acc_1", "acc_2"):
            notes = (await call(first, "list_credit_notes", accountId=name))["data"]
            # February's advance fee, half unused from the 15th: 31.00 x 14/28 = 15.50
            assert [n["amount"] for n in notes] == ["15.50"], name
