"""The sandbox: how fast a fresh scenario database is ready, and a scenario of many accounts over a year.

1. Start-up: a throwaway sandbox database, ready for its first tool call (cloned from the migrated template,
   made a sandbox, partitions ahead; togai_engine.store.throwaway + mcp_server.sandbox_engine). Baseline, same
   run: what a pipeline would do without it, a new database migrated with Alembic.
2. A year of billing: N accounts on a tiered plan with a fixed fee, usage every month, the sandbox clock
   advanced month by month through 12 cycles (advance_clock bills each close) through a real MCP client
   session. Baseline, same run: the same usage and bill runs on a plain database, driven as `bill --as-of`
   does at each month's instant (close_due_cycles on a server whose clock is set per step).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from dateutil.relativedelta import relativedelta
from mcp import Client
from sqlalchemy import text

from bench.common import SERVER_URL, Figure, report, scratch_database
from mcp_server.sandbox_engine import sandbox_engine, shared_sandbox_server
from mcp_server.server import build_server
from togai_engine.billing.runs import run_bill
from togai_engine.common.clock import FixedClock
from togai_engine.store.database import Database
from togai_engine.store.throwaway import ThrowawayServer

START = datetime(2026, 1, 1, tzinfo=UTC)
MONTHS = 12
EVENTS_PER_ACCOUNT_MONTH = 10

PLAN = {
    "name": "Bench API", "pricingCycleConfig": {"interval": "MONTHLY", "startOffset": {"dayOffset": "1"},
                                                "gracePeriod": 2},
    "supportedCurrencies": ["USD"],
    "rateCards": {
        "usageRateCards": [{
            "usageMeterId": "calls", "displayName": "Calls",
            "ratePlan": {"pricingModel": "TIERED", "slabs": [
                {"order": 1, "startAfter": 0, "priceType": "PER_UNIT"},
                {"order": 2, "startAfter": 5, "priceType": "PER_UNIT"}]},
            "rateValues": [{"currency": "USD", "slabRates": [{"order": 1, "rate": 1}, {"order": 2, "rate": 0.5}]}]}],
        "fixedFeeRateCards": [{"id": "base", "displayName": "Base fee", "rateValues": [{"currency": "USD",
                                                                                     "rate": 10}]}],
    },
}
METER = {"id": "calls", "name": "calls", "eventSchemaName": "call", "aggregation": "COUNT", "billableName": "Calls"}


async def _call(client: Client, tool: str, **arguments: Any) -> Any:
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        raise RuntimeError(f"{tool}: {result.content[0].text}")
    return result.structured_content


# --- 1. start-up --------------------------------------------------------------------------------------


async def _fresh_sandbox() -> None:
    async with sandbox_engine(SERVER_URL, START) as engine:
        await _call(engine.client, "get_clock")


def _migrated_database() -> None:
    with scratch_database("startup"):
        pass


def startup(runs: int) -> Figure:
    # Once per process, not per database: the template (once per schema) and the shared server's tool schemas.
    asyncio.run(ThrowawayServer(SERVER_URL).ensure_template())
    shared_sandbox_server()
    fresh, migrated = [], []
    for _ in range(runs):  # alternating, so load on the shared machine hits both
        started = time.perf_counter()
        asyncio.run(_fresh_sandbox())
        fresh.append(time.perf_counter() - started)
        started = time.perf_counter()
        _migrated_database()
        migrated.append(time.perf_counter() - started)
    return report(Figure(
        key="sandbox_startup", name="fresh scenario database, ready for its first tool call (and dropped)",
        unit="s", goal="<= 1", measured=statistics.median(fresh), baseline=statistics.median(migrated),
        baseline_label="a new database migrated with Alembic (and dropped)", runs=fresh, baseline_runs=migrated,
        notes=f"median of {runs}; fresh {min(fresh):.2f}..{max(fresh):.2f} s, "
              f"migrated {min(migrated):.2f}..{max(migrated):.2f} s"))


# --- 2. a year of billing ---------------------------------------------------------------------------


def _events(accounts: int, month: datetime) -> list[dict[str, Any]]:
    day = month + relativedelta(days=14)
    return [{"id": f"{month:%Y%m}-a{a}-{n}", "schemaName": "call", "accountId": f"a{a}",
             "timestamp": (day + relativedelta(minutes=n)).isoformat(), "attributes": {}}
            for a in range(accounts) for n in range(EVENTS_PER_ACCOUNT_MONTH)]


async def _set_up(client: Client, accounts: int) -> None:
    await _call(client, "create_usage_meter", **METER)
    plan = await _call(client, "create_price_plan", **PLAN)
    for a in range(accounts):
        await _call(client, "create_customer", id=f"c{a}", name=f"Customer {a}",
                    account={"id": f"a{a}", "name": f"Account {a}", "pricePlanId": plan["id"]})


# Each account-month: 10 calls = 5 x 1.00 + 5 x 0.50 = 7.50, plus the 10.00 fee: 17.50. The last move (January 4
# of the next year) is past December's 2-day grace: 12 DUE invoices per account.
INVOICE_TOTAL = Decimal("17.50")


async def _check_invoices(db: Database, accounts: int) -> None:
    """The year was billed, and right: a benchmark of a run that billed nothing would be no figure at all."""
    async with db.unit_of_work() as session:
        count, total = (await session.execute(text(
            "SELECT count(*), sum(total_amount) FROM invoices WHERE status = 'DUE'"))).one()
    expected = (accounts * MONTHS, INVOICE_TOTAL * accounts * MONTHS)
    if (count, total) != expected:
        raise RuntimeError(f"the year billed {count} DUE invoices totalling {total}; expected {expected}")


async def _year(client: Client, accounts: int, move_to: Callable[[datetime], Awaitable[None]]) -> None:
    await _set_up(client, accounts)
    month = START
    for _ in range(MONTHS):
        await move_to(month + relativedelta(days=15))  # the usage has happened (the sandbox refuses the future)
        for chunk in range(0, accounts * EVENTS_PER_ACCOUNT_MONTH, 1000):
            await _call(client, "ingest_batch_events", events=_events(accounts, month)[chunk:chunk + 1000])
        month += relativedelta(months=1)
        await move_to(month + relativedelta(days=3))


async def _sandbox_year(accounts: int) -> float:
    async with sandbox_engine(SERVER_URL, START) as engine:
        async def advance(to: datetime) -> None:
            await _call(engine.client, "advance_clock", to=to.isoformat())

        started = time.perf_counter()
        await _year(engine.client, accounts, advance)
        elapsed = time.perf_counter() - started
        await _check_invoices(engine.db, accounts)
        return elapsed


@asynccontextmanager
async def _plain_server(url: str, clock: FixedClock) -> AsyncIterator[tuple[Database, Client]]:
    db = Database(url, pool_size=4)
    try:
        async with Client(build_server(db, clock=clock), raise_exceptions=False) as client:
            yield db, client
    finally:
        await db.dispose()


async def _bill_as_of_year(url: str, accounts: int) -> float:
    clock = FixedClock(START)
    async with _plain_server(url, clock) as (db, client):
        async def bill_as_of(to: datetime) -> None:
            clock.set(to)
            await run_bill(db, to)

        started = time.perf_counter()
        await _year(client, accounts, bill_as_of)
        elapsed = time.perf_counter() - started
        await _check_invoices(db, accounts)
        return elapsed


def year(accounts: int, runs: int) -> Figure:
    sandboxed, stepped = [], []
    for _ in range(runs):
        sandboxed.append(asyncio.run(_sandbox_year(accounts)))
        with scratch_database("year") as url:
            stepped.append(asyncio.run(_bill_as_of_year(url, accounts)))
    return report(Figure(
        key="sandbox_year", name=f"scenario: {accounts} accounts x {MONTHS} monthly cycles on the sandbox clock "
                                 f"({EVENTS_PER_ACCOUNT_MONTH} events per account and month, through MCP)",
        unit="s", goal="<= 60", measured=statistics.median(sandboxed), baseline=statistics.median(stepped),
        baseline_label="the same calls on a plain database, billed as `bill --as-of` at each month",
        runs=sandboxed, baseline_runs=stepped,
        notes=f"median of {runs}; sandbox {min(sandboxed):.1f}..{max(sandboxed):.1f} s, "
              f"bill --as-of {min(stepped):.1f}..{max(stepped):.1f} s"))


def run(accounts: int = 100, startup_runs: int = 7, year_runs: int = 3) -> list[Figure]:
    print(f"sandbox: start-up x{startup_runs}; {accounts} accounts x {MONTHS} cycles x{year_runs}", flush=True)
    return [startup(startup_runs), year(accounts, year_runs)]


if __name__ == "__main__":
    run()
