"""Closing cycles from the CLI (`togai-engine bill --as-of`) and in the server's background loop."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text

from helpers import call, ingest_in_two_stripes, rows_by_stripe
from mcp_server import serve
from mcp_server.serve import billing_pass
from test_scenarios import account, tiered, tokens_meter, usage
from togai_engine.billing.runs import run_bill

BIN = Path(sys.executable).parent / "togai-engine"


def env_for(database_url: str, **extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")} | {
        "TOGAI_DATABASE_URL": database_url, **extra}


async def invoice_rows(db) -> list[tuple[str, str, str]]:
    async with db.unit_of_work() as session:
        rows = await session.execute(text(
            "SELECT status, to_char(period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD'), total_amount::text "
            "FROM invoices ORDER BY period_start"))
        return [tuple(r) for r in rows]


async def setup_plan(client, since: str) -> None:
    meter = await tokens_meter(client)
    plan = await call(client, "create_price_plan", name="CLI", pricingCycleConfig={
        "interval": "MONTHLY", "startOffset": {"dayOffset": "1"}, "gracePeriod": 1},
        rateCards={"usageRateCards": [tiered(meter, ("0", "0.5"))]})
    await account(client, "acme", plan["id"], since)


async def test_bill_as_of_closes_due_cycles_and_is_idempotent(client, db, database_url):
    await setup_plan(client, "2026-01-01T00:00:00Z")
    await usage(client, "acme", "2026-01-10T00:00:00Z", "8", "e1")  # 8 x 0.5 = 4.00
    first = subprocess.run([str(BIN), "bill", "--as-of", "2026-02-02T00:00:00Z"], env=env_for(database_url),
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "1 invoice(s) became DUE" in first.stdout
    rows = await invoice_rows(db)
    assert ("DUE", "2026-01-01", "4.00") in rows
    again = subprocess.run([str(BIN), "bill", "--as-of", "2026-02-02T00:00:00Z"], env=env_for(database_url),
                           capture_output=True, text=True, timeout=120)
    assert "0 invoice(s) became DUE" in again.stdout
    assert await invoice_rows(db) == rows
    # the audit log finds a run by the accounts it billed, as it finds an advance_clock's (the second had no work)
    async with db.unit_of_work() as session:
        audited = (await session.execute(text(
            "SELECT changed_ids FROM audit_log WHERE tool = 'bill' ORDER BY id"))).scalars().all()
    assert audited == [["acme"], []]


async def test_bill_also_folds_past_rollup_stripes(client, db, clock, database_url):
    await ingest_in_two_stripes(client, db, clock)  # Jan 5 10:00 in stripes 0 and 1, 4 meters
    assert await rows_by_stripe(db) == {0: 8, 1: 4}
    run = subprocess.run([str(BIN), "bill"], env=env_for(database_url), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "4 rollup row(s) of past hours folded" in run.stdout
    assert await rows_by_stripe(db) == {0: 8}


async def test_server_bills_in_the_background_without_any_read(client, db, database_url):
    # Real time here: the plan started three months ago, so past cycles are due now.
    now = datetime.now(UTC)
    month = now.month - 3 if now.month > 3 else now.month + 9
    since = datetime(now.year if now.month > 3 else now.year - 1, month, 1, tzinfo=UTC)
    await setup_plan(client, since.isoformat())
    assert [r for r in await invoice_rows(db) if r[0] == "DUE"] == []
    server = await asyncio.create_subprocess_exec(
        str(BIN), "serve", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, env=env_for(database_url, TOGAI_BILLING_INTERVAL_SECONDS="1"))
    try:
        for _ in range(100):
            await asyncio.sleep(0.2)
            due = [r for r in await invoice_rows(db) if r[0] == "DUE"]
            if len(due) >= 2:
                break
        # at least the two whole months before last month (last month may still be in its 1-day grace)
        assert len(due) >= 2, await invoice_rows(db)
    finally:
        server.terminate()
        await server.wait()


async def test_an_account_the_run_cannot_bill_surfaces_in_bill_and_in_the_background(
        client, db, database_url, caplog) -> None:
    await setup_plan(client, "2026-01-01T00:00:00Z")
    # Data no policy covers: the account's currency changed under its plan behind the engine's back.
    async with db.unit_of_work() as session:
        await session.execute(text("UPDATE accounts SET invoice_currency = 'EUR' WHERE id = 'acme'"))
        await session.execute(text("UPDATE invoices SET currency = 'EUR' WHERE account_id = 'acme'"))
    run = subprocess.run([str(BIN), "bill", "--as-of", "2026-02-02T00:00:00Z"], env=env_for(database_url),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout
    assert "1 account(s) with work, 0 invoice(s) became DUE, 0 DRAFT(s) opened, 1 failed" in run.stdout
    assert 'failed: {"accountId":"acme","reason":"' in run.stderr and "does not support EUR" in run.stderr
    # the background pass logs it and returns it (the loop goes on); nothing was billed
    summary = await billing_pass(db, datetime(2026, 2, 2, tzinfo=UTC))
    assert [f.accountId for f in summary.failed] == ["acme"] and "does not support EUR" in summary.failed[0].reason
    assert any("cannot bill account acme" in r.getMessage() for r in caplog.records)
    assert [r[0] for r in await invoice_rows(db)] == ["DRAFT"]


def _acme_currency(db: Any) -> Callable[[str], Awaitable[None]]:
    """Sets acme's invoiceCurrency and its invoices' currency behind the engine's back, as above."""
    async def currency(code: str) -> None:
        async with db.unit_of_work() as session:
            await session.execute(text(f"UPDATE accounts SET invoice_currency = '{code}' WHERE id = 'acme'"))
            await session.execute(text(f"UPDATE invoices SET currency = '{code}' WHERE account_id = 'acme'"))
    return currency


def _acme_messages(caplog: Any) -> Callable[[], list[str]]:
    """The log messages about acme since the last call (each call clears the log)."""
    def logged() -> list[str]:
        found = [r.getMessage() for r in caplog.records if "acme" in r.getMessage()]
        caplog.clear()
        return found
    return logged


async def test_the_background_loop_logs_a_failing_account_when_it_fails_or_changes_and_hourly_meanwhile(
        client, db, caplog) -> None:
    """One account the run cannot bill for good must not flood the log: the loop's FailureLog logs it when it first
    fails, when its reason changes, at most hourly while it keeps failing, and once when it bills again."""
    caplog.set_level(logging.INFO, logger="togai_engine.serve")
    await setup_plan(client, "2026-01-01T00:00:00Z")

    currency, logged = _acme_currency(db), _acme_messages(caplog)

    await currency("EUR")
    failures = serve.FailureLog()
    first = datetime(2026, 2, 2, tzinfo=UTC)
    await billing_pass(db, first, failures)
    [message] = logged()
    assert message.startswith("cannot bill account acme: ") and "does not support EUR" in message, message
    for minutes in (1, 30, 59):  # the same reason within the hour: nothing more
        summary = await billing_pass(db, first.replace(minute=minutes), failures)
        assert [f.accountId for f in summary.failed] == ["acme"]  # the pass still returns it
        assert logged() == []
    # an hour after it was last logged: once more, saying since when
    await billing_pass(db, first.replace(hour=1), failures)
    [message] = logged()
    assert message.startswith("cannot bill account acme (failing since 2026-02-02T00:00:00+00:00): "), message
    await billing_pass(db, first.replace(hour=1, minute=5), failures)
    assert logged() == []
    # another reason: logged at once
    await currency("GBP")
    await billing_pass(db, first.replace(hour=1, minute=6), failures)
    [message] = logged()
    assert "does not support GBP" in message, message
    # it bills again: said once, and a later failure is a first failure again
    await currency("USD")
    await billing_pass(db, first.replace(hour=1, minute=7), failures)
    assert logged() == ["account acme bills again (it failed from 2026-02-02T00:00:00+00:00)"]
    assert [r[0] for r in await invoice_rows(db)] == ["DUE", "DRAFT"]
    await billing_pass(db, first.replace(hour=1, minute=8), failures)
    assert logged() == []


async def test_the_background_loop_forgets_a_failing_account_that_another_run_billed(client, db, caplog) -> None:
    """A failing account fixed and then billed by another run (a read's catch-up, `bill`) is no longer due, so the
    loop's passes no longer list it: the FailureLog must still take it as billing again, and a later failure, with
    the same reason, is a first failure again (logged at once, not 'failing since' the old one)."""
    caplog.set_level(logging.INFO, logger="togai_engine.serve")
    await setup_plan(client, "2026-01-01T00:00:00Z")

    currency, logged = _acme_currency(db), _acme_messages(caplog)

    await currency("EUR")
    failures = serve.FailureLog()
    first = datetime(2026, 2, 2, tzinfo=UTC)
    await billing_pass(db, first, failures)
    [message] = logged()
    assert message.startswith("cannot bill account acme: "), message
    # fixed, and billed by another run before the loop's next pass, which then has nothing due for it
    await currency("USD")
    assert (await run_bill(db, first.replace(minute=10))).failed == []
    summary = await billing_pass(db, first.replace(minute=20), failures)
    assert "acme" not in summary.accountIds
    assert logged() == ["account acme bills again (it failed from 2026-02-02T00:00:00+00:00)"]
    # broken again the same way when March's period is due (within the hour of the last warning would not matter):
    # a first failure, logged at once without the old 'since'
    await currency("EUR")
    await billing_pass(db, datetime(2026, 3, 2, tzinfo=UTC), failures)
    [message] = logged()
    assert message.startswith("cannot bill account acme: "), message


async def test_the_background_pass_bills_when_partitions_ahead_cannot_be_made(client, db, monkeypatch, caplog):
    # A background pass first keeps the event partitions ahead of the clock. Making one can fail for a while (its
    # DDL times out behind a long ANALYZE of the events table, as a month starts) or for good (a table of that
    # name left by an operator): no account's bill run may wait for that, ingest makes a missing month when needed.
    async def lock_timeout(*_: object, **__: object) -> list[str]:
        raise asyncpg.exceptions.LockNotAvailableError("canceling statement due to lock timeout")

    await setup_plan(client, "2026-01-01T00:00:00Z")
    await usage(client, "acme", "2026-01-10T00:00:00Z", "8", "e1")  # 8 x 0.5 = 4.00
    monkeypatch.setattr(serve, "ensure_ahead", lock_timeout)
    summary = await billing_pass(db, datetime(2026, 2, 2, tzinfo=UTC))  # January's one day of grace has ended
    assert (summary.invoicesDue, summary.draftsOpened, summary.failed) == (1, 1, [])
    assert await invoice_rows(db) == [("DUE", "2026-01-01", "4.00"), ("DRAFT", "2026-02-01", None)]
    assert any("partitions" in r.getMessage() for r in caplog.records)
