"""Reads on the realistic data set (bench/dataset.py), each against a plain SQL baseline over the same rows.

- get_metrics: USAGE, daily buckets over one month (March), all accounts: one meter's series (api
  requests, COUNT), and all 5 meters grouped by meter; baseline: one plain SQL `sum` over the same
  meters' hourly rollup rows grouped by meter and day.
- DRAFT invoice of the whale account (1M events in its open cycle): invoices.get_invoice(accountId);
  baseline: a plain SQL sum of that account's rollup rows of the cycle, per meter.
- check_entitlement for the whale (service call in an open transaction, and one unit of work per
  check as a tool pays it); baseline: `SELECT 1`.

Each figure is timed over many calls in interleaved rounds (median of per-round medians).
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from bench import dataset
from bench.common import Figure, latencies_ms, percentile, report, round_slices, scratch_database
from togai_engine.app.invoices import get_invoice
from togai_engine.entitlements.service import check_entitlement
from togai_engine.metrics.schemas import MetricFilter, MetricQuery
from togai_engine.metrics.service import get_metrics
from togai_engine.store.database import Database, raw_connection

ROUNDS = 5


async def _rounds(sides: dict[str, Callable[[], Awaitable[Any]]], calls: int) -> dict[str, list[float]]:
    """Latencies (ms) of each side, in ROUNDS interleaved rounds (machine noise hits every side alike)."""
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(ROUNDS):
        for name, once in sides.items():
            samples[name] += await latencies_ms(once, max(1, calls // ROUNDS), warmup=3)
    return samples


def _round_medians(samples: list[float]) -> list[float]:
    return [statistics.median(block) for block in round_slices(samples, ROUNDS)]


async def _metrics(db: Database, meters: dataset.Meters, calls: int) -> list[Figure]:
    """Two dashboards: one meter's daily series (api requests, COUNT), and every meter grouped by meter
    (MAX and LATEST meters are per account by nature: each account's value per day, then summed)."""
    one = [MetricQuery(id="api", name="USAGE", aggregationPeriod="DAY",
                       filters=[MetricFilter(fieldName="USAGE_METER_ID", fieldValues=[meters.api])])]
    every = [MetricQuery(id="usage", name="USAGE", aggregationPeriod="DAY", groupBy="USAGE_METER_ID")]
    figures = []
    async with db.unit_of_work() as session:
        conn = await raw_connection(session)
        for key, name, query, meter_ids in (
            ("get_metrics_month_daily", "get_metrics: one meter's daily series, one month, all accounts", one,
             [meters.api]),
            ("get_metrics_month_daily_all_meters", "get_metrics: 5 meters' daily series (incl. MAX, LATEST), "
             "one month, all accounts", every, meters.all),
        ):
            result = await get_metrics(session, dataset.CYCLE_START, dataset.END, query)
            points = sum(len(d.timestamps) for d in result.results[0].data)
            samples = await _rounds({
                "engine": lambda q=query: get_metrics(session, dataset.CYCLE_START, dataset.END, q),
                "baseline": lambda ids=meter_ids: conn.fetch(
                    "SELECT meter_id, date_trunc('day', hour, 'UTC') AS day, sum(event_count), sum(value_sum) "
                    "FROM usage_rollups WHERE meter_id = ANY($3::text[]) AND hour >= $1 AND hour < $2 GROUP BY 1, 2",
                    dataset.CYCLE_START, dataset.END, ids),
            }, calls)
            figures.append(report(Figure(
                key=key, name=name, unit="ms", goal="<= 50", measured=statistics.median(samples["engine"]),
                baseline=statistics.median(samples["baseline"]),
                # what a reader without usage_totals and daily rows would scan; for MAX and LATEST meters a
                # plain sum is a lower bound on that work (their right answer needs a per-account step)
                baseline_label="plain SQL sum(value_sum) over the same meters' hourly rollup rows, by meter and "
                               "day (no totals or daily rows; for MAX/LATEST less work than their answer)",
                runs=_round_medians(samples["engine"]), baseline_runs=_round_medians(samples["baseline"]),
                notes=f"{len(result.results[0].data)} series, {points} points; "
                      f"p99 {percentile(samples['engine'], 0.99):.1f} ms")))
    return figures


async def _draft(db: Database, calls: int) -> Figure:
    async with db.unit_of_work() as session:  # catch-up once: January and February become DUE
        await get_invoice(session, dataset.NOW, account_id=dataset.WHALE)
    async with db.unit_of_work() as session:
        conn = await raw_connection(session)
        draft = await get_invoice(session, dataset.NOW, account_id=dataset.WHALE)
        events = await conn.fetchval(
            "SELECT count(*) FROM events WHERE account_id = $1 AND event_time >= $2 AND event_time < $3",
            dataset.WHALE, dataset.CYCLE_START, dataset.END)
        samples = await _rounds({
            "engine": lambda: get_invoice(session, dataset.NOW, account_id=dataset.WHALE),
            "baseline": lambda: conn.fetch(
                "SELECT meter_id, sum(event_count), sum(value_sum), max(value_max) FROM usage_rollups "
                "WHERE account_id = $1 AND hour >= $2 AND hour < $3 GROUP BY 1",
                dataset.WHALE, dataset.CYCLE_START, dataset.END),
        }, calls)
    return report(Figure(
        key="draft_invoice", name="one account's DRAFT invoice (get_invoice accountId)", unit="ms", goal="<= 50",
        measured=statistics.median(samples["engine"]), baseline=statistics.median(samples["baseline"]),
        baseline_label="plain SQL sum of the account's rollup rows of the cycle",
        runs=_round_medians(samples["engine"]), baseline_runs=_round_medians(samples["baseline"]),
        notes=f"{events:,} events in the cycle, {len(draft.lineItems)} lines, total {draft.totalAmount} "
              f"{draft.currency}; p99 {percentile(samples['engine'], 0.99):.1f} ms"))


async def _entitlement(db: Database, calls: int) -> Figure:
    async with db.unit_of_work() as session:
        conn = await raw_connection(session)
        check = await check_entitlement(session, dataset.WHALE, "api", Decimal(1), dataset.NOW)
        samples = await _rounds({
            "engine": lambda: check_entitlement(session, dataset.WHALE, "api", Decimal(1), dataset.NOW),
            "baseline": lambda: conn.fetchval("SELECT 1"),
        }, calls)

    async def unit_of_work() -> None:
        async with db.unit_of_work() as s:
            await check_entitlement(s, dataset.WHALE, "api", Decimal(1), dataset.NOW)

    per_uow = await latencies_ms(unit_of_work, calls, warmup=20)
    p99 = percentile(samples["engine"], 0.99)
    return report(Figure(
        key="check_entitlement_whale", name="check_entitlement p99 (whale, realistic set)", unit="ms", goal="<= 2",
        measured=p99, baseline=percentile(samples["baseline"], 0.99), baseline_label="SELECT 1 round trip p99",
        runs=[percentile(block, 0.99) for block in round_slices(samples["engine"], ROUNDS)],
        notes=f"used {check.used} api calls this cycle; p50 {statistics.median(samples['engine']):.2f} ms; "
              f"with its own unit of work (BEGIN/COMMIT, as a tool call): p50 {statistics.median(per_uow):.2f} ms, "
              f"p99 {percentile(per_uow, 0.99):.2f} ms"))


async def measure(url: str, meters: dataset.Meters, *, calls: int) -> list[Figure]:
    db = Database(url, pool_size=3)
    try:
        return [*await _metrics(db, meters, calls), await _draft(db, calls), await _entitlement(db, calls * 10)]
    finally:
        await db.dispose()


def run(*, accounts: int, events: int, whale_events: int, calls: int) -> list[Figure]:
    with scratch_database("reads") as url:
        print(f"realistic set: {accounts} accounts, {events:,} events (whale: {whale_events:,} in its cycle)",
              flush=True)
        built = asyncio.run(dataset.build(url, accounts=accounts, events=events, whale_events=whale_events))
        print("  built in " + ", ".join(f"{k} {v:.1f} s" for k, v in built.timings.items()), flush=True)
        return asyncio.run(measure(url, built.meters, calls=calls))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--whale-events", type=int, default=200_000)
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    run(accounts=args.accounts, events=args.events, whale_events=args.whale_events, calls=args.calls)
