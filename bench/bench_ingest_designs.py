"""Issue #18: the engine's own batch ingest on today's event storage and on "ek", in the same run.

    .venv/bin/python -m bench.bench_ingest_designs             # 100,000 events per run, 3 runs, 1 connection
    .venv/bin/python -m bench.bench_ingest_designs --workers 2
    .venv/bin/python -m bench.bench_ingest_designs --designs b,b0,ek0     # the engine without its rollups, too

bench_storage_floor.py measures the designs' floors (COPY of the rows, nothing else); this measures what the
engine itself would run at on the best of them, as the issue asks when a goal cannot be met.

Two scratch databases set up alike (bench_ingest's: 1,000 accounts on 3 plans, 5 meters, due cycles closed):
- "b", today's storage as migrated: `event_ids` (PRIMARY KEY (account_id, id)) and `events` range-partitioned by
  month, btree (account_id, event_time) and BRIN (event_time);
- "ek": `event_ids` dropped, `events` hash-partitioned by account_id (8), PRIMARY KEY (account_id, id "C"),
  btree (account_id, event_time), BRIN (event_time): the dedupe claim is the event's own primary key.
The engine runs unchanged on b. On ek this process swaps two things of the ingest module while ek's batches
run: the fast storing statement's claim (`INSERT INTO event_ids`) becomes nothing (the events insert is the
claim), and no monthly partition is ensured (ek has none). Only the fast path is exercised: every id is new.
The reads and the duplicate path on ek are bench_storage_floor's `--reads-only` and the migration's business.
"b0" and "ek0" are b and ek with the storing statement's rollups left out (no meter values, hourly, daily or
total rollups written): not a design the engine may run (its rollups are exact and written in the event's own
transaction), but the bound on what any rollup scheme outside that transaction could give the ingest call.

Baseline in the same run: asyncpg COPY of the same rows into a bare table (no index). Printed per design:
events/s (median of the runs), ratio to the baseline, and CPU per event of this process and of the backends.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import asyncpg

from bench import dataset
from bench.bench_ingest import BATCH, RECEIVED, copy_records, copy_run, fetch_events, run_batches
from bench.common import backend_cpu_ns, libpq, machine, scratch_database, write_json
from togai_engine.events import ingest
from togai_engine.store.database import Database, raw_connection

EK_PARTITIONS = 8


def ek_ddl() -> list[str]:
    """Today's events and event_ids replaced by the ek layout (empty tables: nothing to carry)."""
    return [
        "DROP TABLE events CASCADE",
        "DROP TABLE event_ids",
        "CREATE TABLE events (account_id varchar(50) NOT NULL, id varchar(512) COLLATE \"C\" NOT NULL, "
        "schema_name varchar(50) NOT NULL, event_time timestamptz NOT NULL, received_at timestamptz NOT NULL, "
        "attributes jsonb NOT NULL, dimensions jsonb NOT NULL, units jsonb, status varchar(32) NOT NULL, "
        "voided_at timestamptz, void_reason varchar(255), CONSTRAINT pk_events PRIMARY KEY (account_id, id)) "
        "PARTITION BY HASH (account_id)",
        *(f"CREATE TABLE events_h{i} PARTITION OF events FOR VALUES WITH (MODULUS {EK_PARTITIONS}, REMAINDER {i})"
          for i in range(EK_PARTITIONS)),
        "CREATE INDEX ix_events_account_time ON events (account_id, event_time)",
        "CREATE INDEX ix_events_time ON events USING brin (event_time)",
    ]


async def _no_months(*_: Any, **__: Any) -> None:
    return None


DESIGNS = {"b": "engine on today's storage (b)", "ek": "engine on ek",
           "b0": "b without rollups (a bound)", "ek0": "ek without rollups (a bound)"}


def _store_without_rollups(store: Any) -> Any:
    async def without(conn: Any, meters: Any, *args: Any) -> Any:
        return await store(conn, (), *args)  # no meters: the statement claims and inserts, nothing else
    return without


@contextmanager
def engine_on(design: str) -> Iterator[None]:
    """The ingest module as it runs on `design` (see the module docstring), restored afterwards."""
    claim, months, store = ingest._CLAIMED_ALL, ingest.ensure_session_months, ingest._store
    if design.startswith("ek"):
        ingest._CLAIMED_ALL = "claimed AS (SELECT 1)"  # unreferenced, so never run: the events insert claims
        ingest.ensure_session_months = _no_months
    if design.endswith("0"):
        ingest._store = _store_without_rollups(store)
    ingest._statement.cache_clear()
    try:
        yield
    finally:
        ingest._CLAIMED_ALL, ingest.ensure_session_months, ingest._store = claim, months, store
        ingest._statement.cache_clear()


def backends_cpu_ns(pids: list[int]) -> int:
    return sum(backend_cpu_ns(pid) for pid in pids)


class EngineSide:
    """The engine on one database, its connections' backend pids known (pool of `workers`)."""

    def __init__(self, url: str, design: str, workers: int) -> None:
        self.url, self.design, self.workers = url, design, workers
        self.db = Database(url, pool_size=workers)
        self.pids: set[int] = set()

    async def run(self, events: list[dict[str, Any]]) -> tuple[float, float, float]:
        """(seconds, client CPU s, backend CPU s) to ingest `events` in batches."""
        batches = [events[i:i + BATCH] for i in range(0, len(events), BATCH)]

        async def one(_: Any, batch: list[dict[str, Any]]) -> None:
            async with self.db.unit_of_work() as session:
                conn = await raw_connection(session)
                self.pids.add(conn.get_server_pid())
                result = await ingest.ingest_events(session, batch, RECEIVED)
            assert not result.rejected, result.rejected[:3]

        async def nothing(*_: Any) -> None:
            return None

        with engine_on(self.design):
            pids = sorted(self.pids)
            server_before, client_before = backends_cpu_ns(pids), time.process_time()
            seconds = await run_batches(batches, self.workers, one, nothing, nothing)
            client = time.process_time() - client_before
            server = (backends_cpu_ns(pids) - server_before) / 1e9 if pids == sorted(self.pids) else float("nan")
        return seconds, client, server


async def _bench(urls: dict[str, str], *, accounts: int, events: int, runs: int, workers: int) -> dict[str, Any]:
    sides = {design: EngineSide(url, design, workers) for design, url in urls.items()}
    try:
        for design, side in sides.items():
            await dataset.ready_for_ingest(side.db, accounts)
            conn = await asyncpg.connect(libpq(side.url))
            try:
                if design.startswith("ek"):
                    for ddl in ek_ddl():
                        await conn.execute(ddl)
                else:
                    await conn.execute("CREATE TABLE bare_events (LIKE events INCLUDING DEFAULTS)")  # no index
            finally:
                await conn.close()
        b_url = urls["b"]
        warm = await fetch_events(b_url, 5 * BATCH, accounts=accounts, prefix="warm")
        for side in sides.values():  # connections, statement and meter caches, and the backends' pids
            await side.run(warm)
        await copy_run(b_url, copy_records(warm), workers)
        rates: dict[str, list[float]] = {name: [] for name in [*sides, "copy"]}
        cpu: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
        for run in range(runs):
            batch = await fetch_events(b_url, events, accounts=accounts, prefix=f"r{run}_")
            records = copy_records(batch)
            order = [*sides, "copy"]
            order = order[run % len(order):] + order[:run % len(order)]
            for name in order:
                if name == "copy":
                    rates[name].append(len(batch) / await copy_run(b_url, records, workers))
                    continue
                seconds, client, server = await sides[name].run(batch)
                rates[name].append(len(batch) / seconds)
                cpu[name].append((client / len(batch) * 1e6, server / len(batch) * 1e6))
            print(f"    run {run + 1}: " + ", ".join(f"{n} {rates[n][-1]:,.0f}/s" for n in rates), flush=True)
        baseline = statistics.median(rates["copy"])
        result: dict[str, Any] = {"copy": {"median": baseline, "runs": rates["copy"]}}
        for name in sides:
            median = statistics.median(rates[name])
            client = min(c for c, _ in cpu[name])
            server = min(s for _, s in cpu[name])
            result[name] = {"median": median, "runs": rates[name], "ratio": median / baseline,
                            "client_us": client, "server_us": server}
        return result
    finally:
        for side in sides.values():
            await side.db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--designs", default="b,ek", help=f"some of {', '.join(DESIGNS)}; b always runs")
    args = parser.parse_args()
    designs = ["b", *(d for d in args.designs.split(",") if d != "b")]
    unknown = [d for d in designs if d not in DESIGNS]
    if unknown:
        parser.error(f"--designs: {', '.join(unknown)} unknown; choose among {', '.join(DESIGNS)}")
    with ExitStack() as stack:
        urls = {d: stack.enter_context(scratch_database(f"designs_{d}")) for d in designs}
        result = asyncio.run(_bench(urls, accounts=args.accounts, events=args.events, runs=args.runs,
                                    workers=args.workers))
    print(f"\n{args.events:,} events per run, {args.accounts} accounts, {args.runs} runs, {args.workers} "
          f"connection(s), 1000 per batch; {machine()}")
    print(f"bare COPY (baseline): {result['copy']['median']:,.0f} rows/s")
    for name in designs:
        r, label = result[name], DESIGNS[name]
        print(f"  {label:32} {r['median']:>9,.0f} events/s  {r['ratio']:.2f}x  CPU µs per event: "
              f"client {r['client_us']:.1f}, server {r['server_us']:.1f} (least of the runs)")
    path = write_json(f"ingest-designs-{time.strftime('%Y%m%dT%H%M%S')}.json", {"args": vars(args), "result": result})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
