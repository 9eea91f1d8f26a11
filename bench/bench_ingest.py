"""Engine batch ingest (1000 events per batch, dedupe + rollups) vs raw asyncpg COPY of the same rows.

Both sides run with the same batch size, the same concurrency (one connection per worker, each
batch its own transaction, synchronous_commit on) and the same events; the COPY side writes the
rows the engine stores (events' columns) into a bare table without indexes, prepared up front.
Each run uses fresh event ids (the tables grow across runs, on both sides alike).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from bench import dataset
from bench.common import Figure, libpq, report, scratch_database
from togai_engine.events.ingest import ingest_events
from togai_engine.store.database import Database

BATCH = 1000
RECEIVED = dataset.NOW  # live ingestion: the events are in the accounts' open cycle, received at NOW


STREAM_SPAN_PER_BATCH = timedelta(minutes=15)  # 10M events over 3 months: one batch of 1000 ~ 13 minutes


async def fetch_events(url: str, count: int, *, accounts: int, prefix: str,
                       start: datetime | None = None, end: datetime = dataset.NOW) -> list[dict[str, Any]]:
    """Generated events as the tools receive them (dicts parsed from JSON), in time order in
    [start, end) as a live stream arrives; by default the stream's density is the realistic set's
    (a batch of 1000 spans ~15 minutes), ending at NOW."""
    if start is None:
        start = max(dataset.CYCLE_START, end - STREAM_SPAN_PER_BATCH * (count / BATCH))
    select = dataset.events_sql(accounts=accounts, start=start, end=end, prefix=prefix)
    conn = await asyncpg.connect(libpq(url))
    try:
        rows = await conn.fetch(f"SELECT doc FROM ({dataset.event_json_sql(select)}) AS docs(doc)",
                                1, count)
    finally:
        await conn.close()
    return [json.loads(r[0]) for r in rows]


def copy_records(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The rows the engine would store, as COPY records (prepared before the clock starts)."""
    return [
        (e["accountId"], e["id"], e["schemaName"], datetime.fromisoformat(e["timestamp"]), RECEIVED,
         json.dumps(e["attributes"]), json.dumps(e["dimensions"]), None, "ACCEPTED")
        for e in events
    ]


async def run_batches(batches: list[Any], workers: int, one: Callable[[Any, Any], Awaitable[None]],
                      connect: Callable[[], Awaitable[Any]], close: Callable[[Any], Awaitable[None]]) -> float:
    """Seconds to push every batch through `one(connection, batch)` with `workers` connections."""
    queue = list(reversed(batches))
    connections = [await connect() for _ in range(workers)]

    async def worker(conn: Any) -> None:
        while queue:
            await one(conn, queue.pop())

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in connections))
        return time.perf_counter() - started
    finally:
        for conn in connections:
            await close(conn)


async def _engine_run(db: Database, events: list[dict[str, Any]], workers: int) -> float:
    batches = [events[i:i + BATCH] for i in range(0, len(events), BATCH)]

    async def one(_: Any, batch: list[dict[str, Any]]) -> None:
        async with db.unit_of_work() as session:
            report_ = await ingest_events(session, batch, RECEIVED)
        assert not report_.rejected, report_.rejected[:3]

    async def connect() -> None:
        return None

    async def close(_: Any) -> None:
        return None

    return await run_batches(batches, workers, one, connect, close)


COPY_COLUMNS = ["account_id", "id", "schema_name", "event_time", "received_at", "attributes", "dimensions", "units",
                "status"]


async def _asyncpg_run(url: str, records: list[tuple[Any, ...]], workers: int,
                       write: Callable[[Any, list[tuple[Any, ...]]], Awaitable[None]]) -> float:
    """Seconds to `write(connection, batch)` every batch of `records`, each in its own transaction."""
    batches = [records[i:i + BATCH] for i in range(0, len(records), BATCH)]

    async def one(conn: Any, batch: list[tuple[Any, ...]]) -> None:
        async with conn.transaction():
            await write(conn, batch)

    async def connect() -> Any:
        return await asyncpg.connect(libpq(url))

    async def close(conn: Any) -> None:
        await conn.close()

    return await run_batches(batches, workers, one, connect, close)


async def copy_run(url: str, records: list[tuple[Any, ...]], workers: int) -> float:
    async def write(conn: Any, batch: list[tuple[Any, ...]]) -> None:
        await conn.copy_records_to_table("bare_events", records=batch, columns=COPY_COLUMNS)

    return await _asyncpg_run(url, records, workers, write)


async def _floor_run(url: str, records: list[tuple[Any, ...]], workers: int) -> float:
    async def write(conn: Any, batch: list[tuple[Any, ...]]) -> None:
        await conn.copy_records_to_table("floor_event_ids", records=[(*r[:2], r[3]) for r in batch],
                                         columns=dataset.FLOOR_ID_COLUMNS)
        await conn.copy_records_to_table("floor_events", records=batch, columns=COPY_COLUMNS)

    return await _asyncpg_run(url, records, workers, write)


async def _bench(url: str, *, accounts: int, events: int, runs: int, workers: int) -> list[Figure]:
    db = Database(url, pool_size=workers + 1)
    try:
        await dataset.ready_for_ingest(db, accounts)  # RECEIVED is dataset.NOW: due cycles closed
        conn = await asyncpg.connect(libpq(url))
        await conn.execute("CREATE TABLE bare_events (LIKE events INCLUDING DEFAULTS)")  # no indexes
        await dataset.create_floor_tables(conn)
        await conn.close()
        sides = {"engine": lambda events, records: _engine_run(db, events, workers),
                 "copy": lambda events, records: copy_run(url, records, workers),
                 "floor": lambda events, records: _floor_run(url, records, workers)}
        # warm up every path (connections, statement and meter caches)
        warm = await fetch_events(url, 5 * BATCH, accounts=accounts, prefix="warm")
        for side in sides.values():
            await side(warm, copy_records(warm))

        rates: dict[str, list[float]] = {name: [] for name in sides}
        for run in range(runs):
            batch = await fetch_events(url, events, accounts=accounts, prefix=f"r{run}_")
            records = copy_records(batch)
            # rotate the order, so no side always runs on a warmer (or busier) machine
            names = list(sides)
            for name in names[run % 3:] + names[:run % 3]:
                rates[name].append(len(batch) / await sides[name](batch, records))
            print(f"    run {run + 1}: engine {rates['engine'][-1]:,.0f}/s, COPY {rates['copy'][-1]:,.0f}/s, "
                  f"storage floor {rates['floor'][-1]:,.0f}/s", flush=True)
        engine_rates, copy_rates, floor_rates = rates["engine"], rates["copy"], rates["floor"]
        floor = statistics.median(floor_rates)
        return [report(Figure(
            key=f"ingest_batch_w{workers}",
            name=f"batch ingest, 1000/batch, {workers} connection{'s' if workers > 1 else ''}",
            unit="events/s", goal=">= 100000", extra_goal="ratio >= 0.4",
            measured=statistics.median(engine_rates), baseline=statistics.median(copy_rates),
            baseline_label=f"raw asyncpg COPY, same rows, 1000/batch, {workers} conn., bare table",
            runs=engine_rates, baseline_runs=copy_rates,
            notes=(f"{events:,} events per run, {accounts} accounts, 5 meters; storage floor (COPY of the same rows "
                   f"into copies of event_ids and events with their indexes, no validation, no rollups) "
                   f"{floor:,.0f} events/s = {floor / statistics.median(copy_rates):.2f}x bare COPY "
                   f"(runs {', '.join(f'{r:,.0f}' for r in floor_rates)})")))]
    finally:
        await db.dispose()


def run(*, accounts: int, events: int, runs: int, workers: tuple[int, ...] = (1, 2)) -> list[Figure]:
    figures = []
    for count in workers:
        print(f"batch ingest with {count} connection(s): {runs} runs of {events:,} events", flush=True)
        with scratch_database("ingest") as url:
            figures += asyncio.run(_bench(url, accounts=accounts, events=events, runs=runs, workers=count))
    return figures


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    run(accounts=args.accounts, events=args.events, runs=args.runs,
        workers=tuple(int(w) for w in args.workers.split(",")))
