"""Closing the billing cycles of many accounts at once: close_due_cycles for N accounts on a plan with
3 usage rate cards (TIERED, VOLUME, PACKAGE) and a minimum commitment.

The accounts start on February 1; their February usage is generated in PostgreSQL and rolled up by
the engine's rebuild (bench/dataset.py). One bill run as of March 3 (after the 2-day grace period)
makes every February invoice DUE (3 usage lines each, priced per slab, numbered, credits applied)
and opens every March DRAFT. It is timed inside a transaction that is rolled back, several times
(the run is idempotent: a committed run would leave nothing for the next one).
Baseline, same run: one plain SQL sum of the same rollup rows per account and meter.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bench import dataset
from bench.common import Figure, report, scratch_database
from togai_engine.billing.close import close_due_cycles
from togai_engine.meters.rollups import rebuild_rollups
from togai_engine.store.database import Database, raw_connection
from togai_engine.store.partitions import ensure_range

FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)
BILL_AT = datetime(2026, 3, 3, 1, tzinfo=UTC)


async def _build(url: str, accounts: int, events: int) -> tuple[Database, dataset.Meters, dict[str, float]]:
    db = Database(url, pool_size=3)
    timings: dict[str, float] = {}
    await ensure_range(db.engine, FEB, MAR)
    meters = await dataset.create_meters(db)
    plans = await dataset.create_plans(db, meters)
    ids = dataset.account_ids(accounts)
    timings["accounts"] = await dataset.create_accounts(db, ids, dict.fromkeys(ids, plans.scale), 1000,
                                                        effective_from=FEB, now=FEB)
    started = time.perf_counter()
    select = dataset.events_sql(accounts=accounts, start=FEB, end=MAR, prefix="f")
    columns = "account_id, id, schema_name, event_time, received_at, attributes, dimensions, units, status"
    async with db.unit_of_work() as session:
        conn = await raw_connection(session)
        await conn.execute(f"INSERT INTO events ({columns}) SELECT account_id, id, schema_name, event_time, "
                           f"event_time, attributes, dimensions, NULL, 'ACCEPTED' FROM ({select}) ev", 1, events)
        await conn.execute("INSERT INTO event_ids (account_id, id, event_time) SELECT account_id, id, event_time "
                           "FROM events")
        await rebuild_rollups(session)
        await conn.execute("ANALYZE")
    timings["events"] = time.perf_counter() - started
    return db, meters, timings


async def _bench(url: str, *, accounts: int, events: int, runs: int) -> Figure:
    db, meters, timings = await _build(url, accounts, events)
    print("  built in " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()), flush=True)
    usage_meters = [meters.api, meters.tokens, meters.gpu]
    try:
        engine, baseline, summary = [], [], None
        for _ in range(runs):
            async with db.engine.connect() as connection:
                # one transaction per run, rolled back: every run closes the same cycles
                transaction = await connection.begin()
                session = AsyncSession(bind=connection, expire_on_commit=False)
                started = time.perf_counter()
                summary = await close_due_cycles(session, BILL_AT)
                engine.append(time.perf_counter() - started)
                conn = await raw_connection(session)
                started = time.perf_counter()
                await conn.fetch(
                    "SELECT account_id, meter_id, sum(event_count), sum(value_sum) FROM usage_rollups "
                    "WHERE meter_id = ANY($1::text[]) AND hour >= $2 AND hour < $3 GROUP BY 1, 2",
                    usage_meters, FEB, MAR)
                baseline.append(time.perf_counter() - started)
                await session.close()
                await transaction.rollback()
            print(f"    run: close {engine[-1]:.2f} s, plain SQL sum {baseline[-1]:.3f} s", flush=True)
        assert summary is not None and summary.invoicesDue == accounts, summary
        return report(Figure(
            key="close_cycles", name=f"close cycles: {accounts:,} accounts x 3 usage rate cards", unit="s",
            goal="<= 20", measured=statistics.median(engine), baseline=statistics.median(baseline),
            baseline_label="plain SQL sum of the same rollup rows per account and meter",
            runs=engine, baseline_runs=baseline,
            notes=f"{summary.invoicesDue:,} invoices DUE + {summary.draftsOpened:,} drafts opened per run; "
                  f"{events:,} events in the closed cycle"))
    finally:
        await db.dispose()


def run(*, accounts: int, events: int, runs: int) -> list[Figure]:
    print(f"close cycles: {accounts:,} accounts, {events:,} events, {runs} runs", flush=True)
    with scratch_database("close") as url:
        return [asyncio.run(_bench(url, accounts=accounts, events=events, runs=runs))]


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    run(accounts=args.accounts, events=args.events, runs=args.runs)
