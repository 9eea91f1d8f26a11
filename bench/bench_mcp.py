"""The MCP server as a client sees it: `togai-engine serve` over stdio, driven by a real MCP client.

- trivial tool round trip: get_customer p50/p99, against two same-run baselines: an empty request
  (an empty MCP request: list_prompts) over the same stdio session (the transport and JSON-RPC floor) and `SELECT 1` over asyncpg;
- ingest_batch_events: 1000 events per call, events/s, against the engine called in-process
  (`ingest_events`, one unit of work per batch) on the same kind of events and concurrency.

The accounts are on a plan whose cycle is open at the server's real clock (SystemClock), and the
events are from the last hours before now, so every event is ACCEPTED and feeds rollups.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from mcp import Client, StdioServerParameters

import togai_engine
from bench import dataset
from bench.bench_ingest import BATCH, fetch_events
from bench.common import Figure, call_tool, latencies_ms, libpq, percentile, report, round_slices, scratch_database
from togai_engine.events.ingest import ingest_events
from togai_engine.store.database import Database
from togai_engine.store.partitions import ensure_range

# `togai-engine ...` of the engine this benchmark imports (so an older checkout can be measured the
# same way, by running the benchmarks with it first on PYTHONPATH).
ENGINE_ROOT = Path(togai_engine.__file__).resolve().parent.parent
CLI = [sys.executable, "-c", "from mcp_server.cli import main; main()"]
ROUNDS = 5


def cli_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")}
    env.update(TOGAI_DATABASE_URL=url, TOGAI_BILLING_INTERVAL_SECONDS="0", TOGAI_LOG_LEVEL="WARNING",
               PYTHONPATH=os.pathsep.join([str(ENGINE_ROOT), *filter(None, [env.get("PYTHONPATH")])]))
    return env


def server_params(url: str) -> StdioServerParameters:
    return StdioServerParameters(command=CLI[0], args=[*CLI[1:], "serve", "--transport", "stdio"], env=cli_env(url))


async def _setup(url: str, accounts: int, cycle_start: datetime) -> list[str]:
    db = Database(url, pool_size=2)
    try:
        await ensure_range(db.engine, cycle_start - timedelta(days=40), cycle_start + timedelta(days=40))
        meters = await dataset.create_meters(db)
        plans = await dataset.create_plans(db, meters)
        ids = dataset.account_ids(accounts)
        await dataset.create_accounts(db, [*ids, dataset.WHALE], dataset.plan_assignment(ids, plans),
                                      effective_from=cycle_start, now=cycle_start)
        return ids
    finally:
        await db.dispose()


async def _round_trips(url: str, client: Client, calls: int) -> list[Figure]:
    conn = await asyncpg.connect(libpq(url))
    engine, ping, select1 = [], [], []
    try:
        for _ in range(ROUNDS):  # interleaved rounds, so machine noise hits all three alike
            engine += await latencies_ms(lambda: call_tool(client, "get_customer", customerId="c_acc_00001"),
                                         calls // ROUNDS, warmup=20)
            ping += await latencies_ms(client.list_prompts, calls // ROUNDS, warmup=20)
            select1 += await latencies_ms(lambda: conn.fetchval("SELECT 1"), calls // ROUNDS, warmup=20)
    finally:
        await conn.close()
    p50, ping50, select50 = statistics.median(engine), statistics.median(ping), statistics.median(select1)
    print(f"    get_customer p50 {p50:.3f} ms p99 {percentile(engine, 0.99):.3f} ms; empty MCP request (list_prompts) p50 {ping50:.3f} ms; "
          f"SELECT 1 p50 {select50:.3f} ms", flush=True)
    return [
        report(Figure(key="mcp_round_trip", name="trivial tool round trip over stdio (get_customer), p50", unit="ms",
                      goal="<= 3", measured=p50, baseline=ping50, baseline_label="empty MCP request (list_prompts), same session",
                      runs=[statistics.median(block) for block in round_slices(engine, ROUNDS)],
                      notes=f"p99 {percentile(engine, 0.99):.2f} ms; SELECT 1 over asyncpg p50 {select50:.3f} ms; "
                            f"{len(engine)} calls")),
    ]


async def _ingest_mcp(client: Client, batches: list[list[dict[str, Any]]], concurrency: int) -> float:
    queue = list(reversed(batches))

    async def worker() -> None:
        while queue:
            result = await call_tool(client, "ingest_batch_events", events=queue.pop())
            assert result["rejected"] == 0, result

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def _ingest_direct(db: Database, batches: list[list[dict[str, Any]]], concurrency: int,
                         now: datetime) -> float:
    queue = list(reversed(batches))

    async def worker() -> None:
        while queue:
            batch = queue.pop()
            async with db.unit_of_work() as session:
                done = await ingest_events(session, batch, now)
            assert not done.rejected

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def _bench(url: str, *, accounts: int, events: int, runs: int, calls: int, concurrency: int) -> list[Figure]:
    now = datetime.now(UTC)
    cycle_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    await _setup(url, accounts, cycle_start)
    figures: list[Figure] = []
    db = Database(url, pool_size=concurrency + 1)
    try:
        async with Client(server_params(url)) as client:
            figures += await _round_trips(url, client, calls)
            warm = await fetch_events(url, 3 * BATCH, accounts=accounts, prefix="warm", start=cycle_start, end=now)
            await _ingest_mcp(client, [warm[i:i + BATCH] for i in range(0, len(warm), BATCH)], concurrency)
            mcp_rates, direct_rates = [], []
            for run in range(runs):
                # the same kind of stream for both sides, fresh ids for each
                end = datetime.now(UTC)
                for side in (("mcp", "direct") if run % 2 == 0 else ("direct", "mcp")):
                    stream = await fetch_events(url, events, accounts=accounts, prefix=f"{side}{run}_",
                                                start=max(cycle_start, end - timedelta(hours=12)), end=end)
                    batches = [stream[i:i + BATCH] for i in range(0, len(stream), BATCH)]
                    if side == "mcp":
                        mcp_rates.append(len(stream) / await _ingest_mcp(client, batches, concurrency))
                    else:
                        direct_rates.append(len(stream) / await _ingest_direct(db, batches, concurrency, end))
                print(f"    run {run + 1}: MCP {mcp_rates[-1]:,.0f}/s, in-process {direct_rates[-1]:,.0f}/s", flush=True)
        figures.append(report(Figure(
            key="mcp_ingest", name=f"ingest_batch_events over stdio MCP, 1000/call, {concurrency} in flight",
            unit="events/s", goal=">= 30000", measured=statistics.median(mcp_rates),
            baseline=statistics.median(direct_rates),
            baseline_label=f"engine ingest_events in-process, same events, {concurrency} connections",
            runs=mcp_rates, baseline_runs=direct_rates, notes=f"{events:,} events per run, {accounts} accounts")))
        return figures
    finally:
        await db.dispose()


def run(*, accounts: int, events: int, runs: int, calls: int, concurrency: int = 2) -> list[Figure]:
    print(f"MCP over stdio: {calls} round trips, {runs} runs of {events:,} events", flush=True)
    with scratch_database("mcp") as url:
        return asyncio.run(_bench(url, accounts=accounts, events=events, runs=runs, calls=calls,
                                  concurrency=concurrency))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    run(accounts=args.accounts, events=args.events, runs=args.runs, calls=args.calls, concurrency=args.concurrency)
