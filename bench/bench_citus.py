"""Engine batch ingest on a Citus cluster vs one node, and the time of `db distribute` on a populated database.

`python -m bench.bench_citus` with TOGAI_CITUS_BENCH_URL (the coordinator's maintenance database, whose
workers are added) and the single-node server of the other benchmarks (TOGAI_BENCH_DATABASE_URL). Both sides
get the same accounts, meters, plans and events, 1000 per batch, each batch its own transaction, with 1, 2 and
4 connections; the cluster's usage tables are distributed (default: 4 shards each). Indicative only when the
nodes share one machine: the workers then compete with the coordinator and the client for the same cores.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bench import dataset
from bench.bench_ingest import BATCH, _engine_run, fetch_events
from bench.common import scratch_database
from togai_engine.store import migrate
from togai_engine.store.citus_cluster import create_database, drop_database
from togai_engine.store.database import Database

CLUSTER_URL = os.environ.get("TOGAI_CITUS_BENCH_URL", "")


@contextmanager
def cluster_database(label: str) -> Iterator[str]:
    """A new database on the cluster, migrated (not distributed), dropped afterwards."""
    name = f"togai_bench_{label}_{os.getpid()}_{secrets.token_hex(3)}"
    url = asyncio.run(create_database(CLUSTER_URL, name))
    try:
        migrate.upgrade(url)
        yield url
    finally:
        asyncio.run(drop_database(CLUSTER_URL, name))


async def _prepare(url: str, accounts: int) -> None:
    db = Database(url)
    try:
        await dataset.ready_for_ingest(db, accounts)  # past cycles closed at RECEIVED (dataset.NOW)
    finally:
        await db.dispose()


async def _rates(url: str, *, accounts: int, events: int, runs: int, workers: int) -> list[float]:
    db = Database(url, pool_size=workers + 1)
    try:
        await _engine_run(db, await fetch_events(url, 5 * BATCH, accounts=accounts, prefix=f"warm{workers}_"), workers)
        rates = []
        for run in range(runs):
            batch = await fetch_events(url, events, accounts=accounts, prefix=f"w{workers}r{run}_")
            rates.append(len(batch) / await _engine_run(db, batch, workers))
        return rates
    finally:
        await db.dispose()


def ingest(*, accounts: int, events: int, runs: int, workers: tuple[int, ...], shards: int) -> None:
    with scratch_database("one_node") as single, cluster_database("citus") as cluster:
        migrate.distribute(cluster, shards)
        for url in (single, cluster):
            asyncio.run(_prepare(url, accounts))
        for count in workers:
            for side, url in (("one node", single), ("Citus", cluster)):
                rates = asyncio.run(_rates(url, accounts=accounts, events=events, runs=runs, workers=count))
                print(f"ingest {count} connection(s), {side}: median {statistics.median(rates):,.0f} events/s "
                      f"(runs {', '.join(f'{r:,.0f}' for r in rates)})", flush=True)


def distribute_time(*, accounts: int, events: int, shards: int) -> None:
    """Seconds of `db distribute` on a database holding `events` events (loaded before distribution)."""
    with cluster_database("populated") as url:
        asyncio.run(_prepare(url, accounts))

        async def load() -> None:
            db = Database(url)
            try:
                await _engine_run(db, await fetch_events(url, events, accounts=accounts, prefix="p"), 2)
            finally:
                await db.dispose()

        asyncio.run(load())
        started = time.perf_counter()
        migrate.distribute(url, shards)
        print(f"db distribute with {events:,} events of {accounts} accounts stored: "
              f"{time.perf_counter() - started:.1f} s ({shards} shards per table)", flush=True)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--populated-events", type=int, default=200_000)
    args = parser.parse_args()
    if not CLUSTER_URL:
        raise SystemExit("set TOGAI_CITUS_BENCH_URL to the Citus coordinator's maintenance database URL")
    ingest(accounts=args.accounts, events=args.events, runs=args.runs,
           workers=tuple(int(w) for w in args.workers.split(",")), shards=args.shards)
    distribute_time(accounts=args.accounts, events=args.populated_events, shards=args.shards)
