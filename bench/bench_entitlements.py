"""check_entitlement latency at engine level, for an account with many events in its cycle.

    TOGAI_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python -m bench.bench_entitlements [--events 1000000] [--checks 3000]

(TOGAI_BENCH_DATABASE_URL, when set, is used instead: the benchmark server of bench/common.py.)
Creates a throwaway database, sets up a plan with a metered feature (COUNT meter, limit 10^9) through
the MCP tools, loads the events with the engine's bulk import (rollups maintained as in production),
then times `entitlements.service.check_entitlement` and prints p50/p99 with the event count.

Side by side in the same run:
- engine, in one open transaction: the service call alone (the goal: p99 <= 2 ms);
- engine, one unit of work per check: what a tool call pays (adds BEGIN/COMMIT round trips);
- baseline: the same usage counted from raw events (no rollups) - what the rollups save;
- floor: `SELECT 1`, one round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from mcp import Client

from bench.common import Figure, call_tool, latencies_ms, percentile, report, scratch_database
from mcp_server.server import build_server
from togai_engine.common.clock import FixedClock
from togai_engine.entitlements.service import check_entitlement
from togai_engine.events.bulk import import_events
from togai_engine.store.database import Database, raw_connection

CYCLE_START = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 1, 31, tzinfo=UTC)


async def _setup(db: Database, clock: FixedClock) -> None:
    async with Client(build_server(db, clock=clock)) as client:
        meter = await call_tool(client, "create_usage_meter", name="api calls", eventSchemaName="api", aggregation="COUNT")
        plan = await call_tool(client, "create_price_plan", name="Bench", pricingCycleConfig={
            "interval": "MONTHLY", "startOffset": {"dayOffset": "1", "monthOffset": "NIL"}, "gracePeriod": 0},
            rateCards={"billingEntitlementRateCards": [
                {"featureId": "api", "usageMeterId": meter["id"], "featureConfigs": [{"featureCreditLimit": "1e9"}]}]})
        await call_tool(client, "create_customer", id="cust_bench", name="Bench", account={
            "id": "acc_bench", "name": "Bench", "pricePlanId": plan["id"],
            "effectiveFrom": CYCLE_START.isoformat()})


async def _events(count: int) -> AsyncIterator[dict[str, Any]]:
    span = (NOW - CYCLE_START).total_seconds()
    for n in range(count):
        moment = CYCLE_START + timedelta(seconds=span * n / count)
        yield {"id": f"e{n}", "schemaName": "api", "timestamp": moment.isoformat(), "accountId": "acc_bench",
               "attributes": {}}


async def _time(label: str, runs: int, once: Callable[[], Awaitable[Any]]) -> list[float]:
    # warm up: connection, statement caches, buffers
    samples = await latencies_ms(once, runs, warmup=min(200, runs))
    print(f"  {label:<46} p50 {statistics.median(samples):7.3f} ms   p99 {percentile(samples, 0.99):7.3f} ms   "
          f"({runs} runs)")
    return samples


async def _bench(url: str, events: int, checks: int) -> list[Figure]:
    db = Database(url, pool_size=4)
    clock = FixedClock(NOW)
    try:
        await _setup(db, clock)
        started = time.perf_counter()
        summary = await import_events(db, _events(events), clock=clock, concurrency=4)
        print(f"loaded {summary.accepted} events in {time.perf_counter() - started:.1f} s")
        async with db.unit_of_work() as session:
            conn = await raw_connection(session)
            stored = await conn.fetchval("SELECT count(*) FROM events WHERE account_id = 'acc_bench'")
            result = await check_entitlement(session, "acc_bench", "api", Decimal(1), NOW)
        assert result.used == Decimal(events) and result.entitled, result
        print(f"check_entitlement for an account with {stored} events in its cycle (used = {result.used}):")

        async with db.unit_of_work() as session:
            service = await _time("engine: service call (open transaction)", checks,
                                  lambda: check_entitlement(session, "acc_bench", "api", Decimal(1), NOW))

        async def unit_of_work() -> None:
            async with db.unit_of_work() as s:
                await check_entitlement(s, "acc_bench", "api", Decimal(1), NOW)

        per_uow = await _time("engine: one unit of work per check", checks, unit_of_work)
        async with db.unit_of_work() as session:
            conn = await raw_connection(session)
            raw = await _time("baseline: count raw events (no rollups)", max(20, checks // 100), lambda: conn.fetchval(
                "SELECT count(*) FROM events WHERE account_id = $1 AND schema_name = 'api' "
                "AND event_time >= $2 AND event_time < $3", "acc_bench", CYCLE_START, NOW))
            floor = await _time("floor: SELECT 1", checks, lambda: conn.fetchval("SELECT 1"))
        return [report(Figure(
            key="check_entitlement", name="check_entitlement p99, 1 account with N events in its cycle",
            unit="ms", goal="<= 2", measured=percentile(service, 0.99), baseline=percentile(floor, 0.99),
            baseline_label="SELECT 1 round trip p99",
            notes=f"{stored:,} events in the cycle; p50 {statistics.median(service):.2f} ms; one unit of work "
                  f"per check (BEGIN/COMMIT, as a tool pays it) p50 {statistics.median(per_uow):.2f} ms p99 "
                  f"{percentile(per_uow, 0.99):.2f} ms; counting the raw events instead of rollups p50 "
                  f"{statistics.median(raw):.1f} ms"))]
    finally:
        await db.dispose()


def run(*, events: int, checks: int) -> list[Figure]:
    """For bench/run_all.py: the figure, in a scratch database of its own."""
    with scratch_database("ent") as url:
        return asyncio.run(_bench(url, events, checks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--checks", type=int, default=3000)
    args = parser.parse_args()
    run(events=args.events, checks=args.checks)


if __name__ == "__main__":
    main()
