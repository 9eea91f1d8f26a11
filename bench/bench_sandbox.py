"""The sandbox: how fast a fresh scenario database is ready, and a scenario of many accounts over a year.

1. Start-up: a throwaway sandbox database, ready for its first tool call (cloned from the migrated template,
   made a sandbox, partitions ahead; togai_engine.store.throwaway + mcp_server.sandbox_engine). Baseline, same
   run: what a pipeline would do without it, a new database migrated with Alembic.
2. A year of billing as a scenario file (`togai-engine scenario run`'s loader and runner, fresh database
   included): N accounts on a tiered plan with a fixed fee, usage every month, the sandbox clock moved month
   by month through 12 cycles (advance_clock bills each close), every invoice expected. Baseline, same run:
   the same calls on a plain database whose server clock is set to each step's instant and billed there as
   `bill --as-of` does, then the same invoices read and checked.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from dateutil.relativedelta import relativedelta
from mcp import Client

from bench.common import SERVER_URL, Figure, call_tool, report, scratch_database
from mcp_server.sandbox_engine import sandbox_engine, warm_sandbox_server
from mcp_server.scenarios.loader import load_scenario
from mcp_server.scenarios.runner import run_scenario
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


# --- 1. start-up --------------------------------------------------------------------------------------


async def _fresh_sandbox() -> None:
    async with sandbox_engine(SERVER_URL, START) as engine:
        await call_tool(engine.client, "get_clock")


def _migrated_database() -> None:
    with scratch_database("startup"):
        pass


def startup(runs: int) -> Figure:
    # Once per process, not per database: the template (once per schema) and the shared server's tool schemas.
    asyncio.run(ThrowawayServer(SERVER_URL).ensure_template())
    warm_sandbox_server()
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

# Each account-month: 10 calls = 5 x 1.00 + 5 x 0.50 = 7.50, plus the 10.00 fee: 17.50. The last step (January 4
# of the next year) is past December's 2-day grace: 12 DUE invoices per account.
INVOICE_TOTAL = Decimal("17.50")


def _months() -> list[datetime]:
    return [START + relativedelta(months=m) for m in range(MONTHS)]


def _events(accounts: int, month: datetime) -> list[dict[str, Any]]:
    day = month + relativedelta(days=14)
    return [{"id": f"{month:%Y%m}-a{a}-{n}", "schemaName": "call", "accountId": f"a{a}",
             "timestamp": (day + relativedelta(minutes=n)).isoformat(), "attributes": {}}
            for a in range(accounts) for n in range(EVENTS_PER_ACCOUNT_MONTH)]


def _customers(accounts: int, plan: str) -> list[dict[str, Any]]:
    return [{"id": f"c{a}", "name": f"Customer {a}", "account": {"id": f"a{a}", "name": f"Account {a}",
                                                                 "pricePlanId": plan}} for a in range(accounts)]


def scenario_file(folder: Path, accounts: int) -> Path:
    """The year as a scenario file: usage mid-month (the clock moved there first: the sandbox refuses the
    future), then past the last grace end; every account's 12 invoices expected DUE at 17.50, and the next
    year's first DRAFT with its fee."""
    steps: list[dict[str, Any]] = [{"at": (month + relativedelta(days=15)).isoformat(),
                                    "events": _events(accounts, month)} for month in _months()]
    steps.append({"at": (START + relativedelta(months=MONTHS, days=3)).isoformat()})
    closed = {f"{month:%Y-%m-%d}": {"status": "DUE", "total": str(INVOICE_TOTAL)} for month in _months()}
    opened = {f"{START + relativedelta(months=MONTHS):%Y-%m-%d}": {"status": "DRAFT", "total": "10.00"}}  # fee only
    expected = {f"a{a}": closed | opened for a in range(accounts)}
    file = folder / "year.yaml"
    file.write_text(yaml.safe_dump({
        "scenario": f"{accounts} accounts x {MONTHS} months", "start": START.isoformat(),
        "setup": {"meters": [METER], "plans": [PLAN], "customers": _customers(accounts, PLAN["name"])},
        "steps": steps, "expect": {"invoices": expected}}, sort_keys=False))
    return file


async def _scenario_year(file: Path) -> float:
    loaded = load_scenario(file)
    result = await run_scenario(loaded, SERVER_URL)
    if not result.passed:
        shown = result.failure.message if result.failure else "; ".join(str(d) for d in result.differences[:3])
        raise RuntimeError(f"the year's scenario did not pass: {shown}")
    return result.seconds


async def _bill_as_of_year(url: str, accounts: int) -> float:
    """The same calls on a plain database whose server clock is set to each step's instant, billed there as
    `bill --as-of` does; then each account's invoices read, as the scenario's expectations are."""
    clock = FixedClock(START)
    db = Database(url, pool_size=4)
    try:
        async with Client(build_server(db, clock=clock), raise_exceptions=False) as client:
            started = time.perf_counter()
            await call_tool(client, "create_usage_meter", **METER)
            plan = await call_tool(client, "create_price_plan", **PLAN)
            for customer in _customers(accounts, plan["id"]):
                await call_tool(client, "create_customer", **customer)
            instants = [(m + relativedelta(days=15), _events(accounts, m)) for m in _months()]
            for at, events in [*instants, (START + relativedelta(months=MONTHS, days=3), [])]:
                clock.set(at)
                await run_bill(db, at)
                if events:
                    await call_tool(client, "ingest_batch_events", events=events)
            for a in range(accounts):
                listed = await call_tool(client, "list_invoices", accountId=f"a{a}", status="DUE", pageSize=50)
                totals = {invoice["totalAmount"] for invoice in listed["data"]}
                if len(listed["data"]) != MONTHS or totals != {str(INVOICE_TOTAL)}:
                    raise RuntimeError(f"a{a}: {len(listed['data'])} DUE invoices, totals {totals}")
            return time.perf_counter() - started
    finally:
        await db.dispose()


def year(accounts: int, runs: int) -> Figure:
    sandboxed, stepped = [], []
    with tempfile.TemporaryDirectory(prefix="togai-bench-scenario-") as folder:
        file = scenario_file(Path(folder), accounts)
        for _ in range(runs):
            sandboxed.append(asyncio.run(_scenario_year(file)))
            with scratch_database("year") as url:
                stepped.append(asyncio.run(_bill_as_of_year(url, accounts)))
    return report(Figure(
        key="sandbox_year", name=f"scenario file: {accounts} accounts x {MONTHS} monthly cycles on the sandbox clock "
                                 f"({EVENTS_PER_ACCOUNT_MONTH} events per account and month; {accounts * MONTHS} "
                                 "invoices expected), fresh database included",
        unit="s", goal="<= 60", measured=statistics.median(sandboxed), baseline=statistics.median(stepped),
        baseline_label="the same calls on a plain database, billed as `bill --as-of` at each step's instant",
        runs=sandboxed, baseline_runs=stepped,
        notes=f"median of {runs}; scenario {min(sandboxed):.1f}..{max(sandboxed):.1f} s, "
              f"bill --as-of {min(stepped):.1f}..{max(stepped):.1f} s"))


def run(accounts: int = 100, startup_runs: int = 7, year_runs: int = 3) -> list[Figure]:
    print(f"sandbox: start-up x{startup_runs}; {accounts} accounts x {MONTHS} cycles x{year_runs}", flush=True)
    return [startup(startup_runs), year(accounts, year_runs)]


if __name__ == "__main__":
    run()
