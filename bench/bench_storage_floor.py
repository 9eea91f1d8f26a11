"""Issue #18, the storage floor: COPY of the same rows into each candidate event storage design, in one run.

    .venv/bin/python -m bench.bench_storage_floor                      # 200,000 rows, 1 connection, 3 repetitions
    .venv/bin/python -m bench.bench_storage_floor --connections 2      # two loaders on disjoint accounts
    .venv/bin/python -m bench.bench_storage_floor --reads              # + the per-account reads on 1M rows

On a throwaway database (migrated to head, so "today's" tables are copied from the engine's own with
`LIKE ... INCLUDING ALL`, and dropped at the end), the same N realistic rows (bench/dataset.py's generator:
1,000 accounts, skewed usage, 5 event schemas with their attributes and dimensions JSON, in time order as a
live stream arrives) are COPYed (asyncpg `copy_records_to_table`: binary COPY) in batches of 1,000, each batch
its own transaction (synchronous commit), into every design below. Every repetition truncates the tables,
checkpoints, and runs the designs in a rotated order, so load on the shared machine hits all of them; each
design's ratio is taken against the bare-table baseline of the same repetition. Printed: rows/s (min/median),
the ratio (median), the server backend's CPU per row (/proc/<pid>/schedstat of the loading backends: a cost
that moves much less with the machine's noise than wall time), the client's CPU per row, and bytes on disk
per row (heap + indexes + TOAST after the last repetition).

`--reads` loads 1M rows of 1,000 accounts into the designs that could replace today's (INSERT ... SELECT from
one staging table: the time is the copy cost of a migration into that layout) and times the reads the
account-time btree serves today: partial-hour edges, a day's events by hour, list_events pages (newest
first, keyset), the hours a void recomputes, point lookups by (account, event_time, id), and a month of one
account's raw events (UNIQUE_COUNT).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from bench import dataset
from bench.common import backend_cpu_ns, libpq, machine, scratch_database, write_json

BATCH = 1000
ACCOUNTS = 1000
RECEIVED = dataset.NOW
MONTHS = ((2026, 1), (2026, 2), (2026, 3))
HASH_PARTS = 16  # design f: hash sub-partitions by account per month

Row = tuple[Any, ...]  # (account_id, id, schema_name, event_time, received_at, attributes, dimensions, units, status)
EVENT_COLUMNS = ("account_id", "id", "schema_name", "event_time", "received_at", "attributes", "dimensions",
                 "units", "status")
CLAIM_COLUMNS = ("account_id", "id", "event_time")


def _events_ddl(table: str, collate_c: bool, *, key: str = "", partition: str = "RANGE (event_time)") -> str:
    c = ' COLLATE "C"' if collate_c else ""
    return (f"CREATE TABLE {table} (account_id varchar(50){c} NOT NULL, id varchar(512){c} NOT NULL, "
            "schema_name varchar(50) NOT NULL, event_time timestamptz NOT NULL, received_at timestamptz NOT NULL, "
            "attributes jsonb NOT NULL, dimensions jsonb NOT NULL, units jsonb, status varchar(32) NOT NULL"
            f"{key})" + (f" PARTITION BY {partition}" if partition else ""))


def _claim_c(table: str) -> str:
    return (f'CREATE TABLE {table} (account_id varchar(50) COLLATE "C" NOT NULL, id varchar(512) COLLATE "C" '
            "NOT NULL, event_time timestamptz NOT NULL, PRIMARY KEY (account_id, id))")


def _months(parent: str, sub: str = "") -> list[str]:
    out = []
    for year, month in MONTHS:
        first = datetime(year, month, 1, tzinfo=UTC)
        following = (first + timedelta(days=32)).replace(day=1)
        out.append(f"CREATE TABLE {parent}_{first:%Y%m} PARTITION OF {parent} FOR VALUES FROM "
                   f"('{first.isoformat()}') TO ('{following.isoformat()}')" + (f" PARTITION BY {sub}" if sub else ""))
    return out


def _hash_parts(parent: str, parts: int) -> list[str]:
    return [f"CREATE TABLE {parent}_h{r} PARTITION OF {parent} FOR VALUES WITH (MODULUS {parts}, REMAINDER {r})"
            for r in range(parts)]


@dataclass(frozen=True)
class Design:
    key: str
    label: str
    ddl: tuple[str, ...]
    writes: tuple[tuple[str, tuple[str, ...], str], ...]  # (table, columns, record kind) COPYed per batch, in order
    events: str  # the table holding the events (for reads)
    account_column: str = "account_id"  # "account_key" (int4) in design g

    @property
    def tables(self) -> list[str]:
        return [table for table, _, _ in self.writes]


def designs() -> list[Design]:
    f_months = _months("f_events", "HASH (account_id)")
    f_subs = [s for year, month in MONTHS for s in _hash_parts(f"f_events_{year}{month:02d}", HASH_PARTS)]
    return [
        Design("a", "bare table, no index (baseline)",
               ("CREATE TABLE a_events (LIKE events INCLUDING DEFAULTS)",),
               (("a_events", EVENT_COLUMNS, "row"),), "a_events"),
        Design("b", "today: event_ids btree (account_id, id) + monthly events, btree (account_id, event_time) + BRIN",
               ("CREATE TABLE b_event_ids (LIKE event_ids INCLUDING ALL)",
                "CREATE TABLE b_events (LIKE events INCLUDING DEFAULTS) PARTITION BY RANGE (event_time)",
                *_months("b_events"),
                "CREATE INDEX ON b_events (account_id, event_time)",
                "CREATE INDEX ON b_events USING brin (event_time)"),
               (("b_event_ids", CLAIM_COLUMNS, "claim"), ("b_events", EVENT_COLUMNS, "row")), "b_events"),
        Design("c", 'today with COLLATE "C" on the key columns of both tables',
               (_claim_c("c_event_ids"), _events_ddl("c_events", True), *_months("c_events"),
                "CREATE INDEX ON c_events (account_id, event_time)",
                "CREATE INDEX ON c_events USING brin (event_time)"),
               (("c_event_ids", CLAIM_COLUMNS, "claim"), ("c_events", EVENT_COLUMNS, "row")), "c_events"),
        Design("d0", "today's event_ids as migrated + monthly events with BRIN only (drop the account-time btree)",
               ("CREATE TABLE d0_event_ids (LIKE event_ids INCLUDING ALL)",
                "CREATE TABLE d0_events (LIKE events INCLUDING DEFAULTS) PARTITION BY RANGE (event_time)",
                *_months("d0_events"),
                "CREATE INDEX ON d0_events USING brin (event_time)"),
               (("d0_event_ids", CLAIM_COLUMNS, "claim"), ("d0_events", EVENT_COLUMNS, "row")), "d0_events"),
        Design("d", 'dedupe btree COLLATE "C" + monthly events with BRIN only',
               (_claim_c("d_event_ids"), _events_ddl("d_events", True), *_months("d_events"),
                "CREATE INDEX ON d_events USING brin (event_time)"),
               (("d_event_ids", CLAIM_COLUMNS, "claim"), ("d_events", EVENT_COLUMNS, "row")), "d_events"),
        Design("e", 'one table: events with PRIMARY KEY (account_id, id) "C" + BRIN, not partitioned by time',
               (_events_ddl("e_events", True, key=", PRIMARY KEY (account_id, id)", partition=""),
                "CREATE INDEX ON e_events USING brin (event_time)"),
               (("e_events", EVENT_COLUMNS, "row"),), "e_events"),
        Design("e8", f"as e, hash-partitioned by account_id ({8} partitions)",
               (_events_ddl("e8_events", True, key=", PRIMARY KEY (account_id, id)", partition="HASH (account_id)"),
                *_hash_parts("e8_events", 8),
                "CREATE INDEX ON e8_events USING brin (event_time)"),
               (("e8_events", EVENT_COLUMNS, "row"),), "e8_events"),
        Design("ek", "as e8, plus the btree (account_id, event_time): one heap and one COPY, two btrees",
               (_events_ddl("ek_events", True, key=", PRIMARY KEY (account_id, id)", partition="HASH (account_id)"),
                *_hash_parts("ek_events", 8),
                "CREATE INDEX ON ek_events (account_id, event_time)",
                "CREATE INDEX ON ek_events USING brin (event_time)"),
               (("ek_events", EVENT_COLUMNS, "row"),), "ek_events"),
        Design("d16", "as d0, the BRIN with pages_per_range 16 (default 128): finer time ranges for the reads",
               ("CREATE TABLE d16_event_ids (LIKE event_ids INCLUDING ALL)",
                "CREATE TABLE d16_events (LIKE events INCLUDING DEFAULTS) PARTITION BY RANGE (event_time)",
                *_months("d16_events"),
                "CREATE INDEX ON d16_events USING brin (event_time) WITH (pages_per_range = 16)"),
               (("d16_event_ids", CLAIM_COLUMNS, "claim"), ("d16_events", EVENT_COLUMNS, "row")), "d16_events"),
        Design("f", f'as d, each month hash-partitioned by account_id ({HASH_PARTS}), BRIN only',
               (_claim_c("f_event_ids"), _events_ddl("f_events", True), *f_months, *f_subs,
                "CREATE INDEX ON f_events USING brin (event_time)"),
               (("f_event_ids", CLAIM_COLUMNS, "claim"), ("f_events", EVENT_COLUMNS, "row")), "f_events"),
        Design("g", "fixed-width account key (int4): claim (account_key, id \"C\"), monthly events with btree "
                    "(account_key, event_time) + BRIN",
               ('CREATE TABLE g_event_ids (account_key int4 NOT NULL, id varchar(512) COLLATE "C" NOT NULL, '
                "event_time timestamptz NOT NULL, PRIMARY KEY (account_key, id))",
                'CREATE TABLE g_events (account_key int4 NOT NULL, id varchar(512) COLLATE "C" NOT NULL, '
                "schema_name varchar(50) NOT NULL, event_time timestamptz NOT NULL, received_at timestamptz NOT NULL, "
                "attributes jsonb NOT NULL, dimensions jsonb NOT NULL, units jsonb, status varchar(32) NOT NULL) "
                "PARTITION BY RANGE (event_time)", *_months("g_events"),
                "CREATE INDEX ON g_events (account_key, event_time)",
                "CREATE INDEX ON g_events USING brin (event_time)"),
               (("g_event_ids", ("account_key", "id", "event_time"), "gclaim"),
                ("g_events", ("account_key", *EVENT_COLUMNS[1:]), "grow")), "g_events", "account_key"),
        Design("gk", "ek with the int4 account key: one table PRIMARY KEY (account_key, id \"C\"), btree "
                     "(account_key, event_time), BRIN, hash-partitioned by account_key (8)",
               ('CREATE TABLE gk_events (account_key int4 NOT NULL, id varchar(512) COLLATE "C" NOT NULL, '
                "schema_name varchar(50) NOT NULL, event_time timestamptz NOT NULL, received_at timestamptz NOT NULL, "
                "attributes jsonb NOT NULL, dimensions jsonb NOT NULL, units jsonb, status varchar(32) NOT NULL, "
                "PRIMARY KEY (account_key, id)) PARTITION BY HASH (account_key)", *_hash_parts("gk_events", 8),
                "CREATE INDEX ON gk_events (account_key, event_time)",
                "CREATE INDEX ON gk_events USING brin (event_time)"),
               (("gk_events", ("account_key", *EVENT_COLUMNS[1:]), "grow"),), "gk_events", "account_key"),
        Design("h", 'as d with a compact row: no JSONB (attributes numeric[], dimensions text[] in the schema\'s '
                    "order), schema and status smallint, no units column",
               (_claim_c("h_event_ids"),
                'CREATE TABLE h_events (account_id varchar(50) COLLATE "C" NOT NULL, id varchar(512) COLLATE "C" '
                "NOT NULL, schema_id int2 NOT NULL, event_time timestamptz NOT NULL, received_at timestamptz NOT NULL, "
                "status int2 NOT NULL, attributes numeric[] NOT NULL, dimensions text[] NOT NULL) "
                "PARTITION BY RANGE (event_time)", *_months("h_events"),
                "CREATE INDEX ON h_events USING brin (event_time)"),
               (("h_event_ids", CLAIM_COLUMNS, "claim"),
                ("h_events", ("account_id", "id", "schema_id", "event_time", "received_at", "status", "attributes",
                              "dimensions"), "hrow")), "h_events"),
    ]


# --- rows -----------------------------------------------------------------------------------------

async def fetch_rows(conn: Any, count: int, *, start: datetime, end: datetime, prefix: str) -> list[Row]:
    """`count` generated events in time order, as the engine stores them (attributes and dimensions as the
    JSON text of their jsonb values)."""
    select = dataset.events_sql(accounts=ACCOUNTS, start=start, end=end, prefix=prefix)
    records = await conn.fetch(
        f"SELECT account_id, id, schema_name, event_time, attributes::text, dimensions::text FROM ({select}) ev "
        "ORDER BY event_time", 1, count)
    return [(r[0], r[1], r[2], r[3], RECEIVED, r[4], r[5], None, "ACCEPTED") for r in records]


SCHEMAS = {  # schema -> (id, attribute order, dimension order): what design h stores positionally
    "api_call": (1, (), ("endpoint", "region")), "llm": (2, ("input_tokens", "output_tokens"), ("model",)),
    "compute": (3, ("seconds",), ("tier",)), "storage": (4, ("gb",), ()), "seats": (5, ("count",), ()),
}


def _account_key(account_id: str) -> int:
    return int(account_id[4:])  # acc_00042 -> 42 (a migration maps accounts to a sequence number)


def _h_row(r: Row) -> Row:
    schema, attributes, dimensions = SCHEMAS[r[2]]
    values, dims = json.loads(r[5]), json.loads(r[6])
    return (r[0], r[1], schema, r[3], r[4], 1, [Decimal(values[a]) for a in attributes],
            [dims.get(d) for d in dimensions])


KINDS: dict[str, Callable[[Row], Row]] = {
    "row": lambda r: r,
    "claim": lambda r: (r[0], r[1], r[3]),
    "gclaim": lambda r: (_account_key(r[0]), r[1], r[3]),
    "grow": lambda r: (_account_key(r[0]), *r[1:]),
    "hrow": _h_row,
}


def split_by_account(rows: list[Row], loaders: int) -> list[list[Row]]:
    """Disjoint accounts per loader, balanced by rows (the busiest account first to the lightest loader);
    each part keeps time order."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row[0]] = counts.get(row[0], 0) + 1
    load_of, owner = [0] * loaders, {}
    for account in sorted(counts, key=lambda a: (-counts[a], a)):
        lightest = load_of.index(min(load_of))
        owner[account] = lightest
        load_of[lightest] += counts[account]
    parts: list[list[Row]] = [[] for _ in range(loaders)]
    for row in rows:
        parts[owner[row[0]]].append(row)
    return parts


# --- measuring ------------------------------------------------------------------------------------

@dataclass
class Run:
    seconds: float
    server_ns: int
    client_s: float


async def load(conns: Sequence[Any], pids: Sequence[int], prepared: list[list[list[tuple[str, Sequence[str], list[Row]]]]]
               ) -> Run:
    """prepared[loader] = that loader's batches, each a list of (table, columns, records) COPYed in one
    transaction."""
    async def loader(conn: Any, batches: list[list[tuple[str, Sequence[str], list[Row]]]]) -> None:
        for batch in batches:
            async with conn.transaction():
                for table, columns, records in batch:
                    await conn.copy_records_to_table(table, records=records, columns=columns)

    server = [backend_cpu_ns(p) for p in pids]
    client = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(loader(c, b) for c, b in zip(conns, prepared, strict=True)))
    seconds = time.perf_counter() - started
    return Run(seconds, sum(backend_cpu_ns(p) - s for p, s in zip(pids, server, strict=True)),
               time.process_time() - client)


def prepare(design: Design, parts: list[list[Row]]) -> list[list[list[tuple[str, Sequence[str], list[Row]]]]]:
    out = []
    for part in parts:
        converted = {kind: [KINDS[kind](r) for r in part] for _, _, kind in design.writes}
        out.append([[(table, columns, converted[kind][i:i + BATCH]) for table, columns, kind in design.writes]
                    for i in range(0, len(part), BATCH)])
    return out


async def table_bytes(conn: Any, tables: list[str]) -> int:
    """Heap, TOAST and indexes of the tables (of their leaf partitions, for a partitioned one)."""
    return int(await conn.fetchval(
        "SELECT sum(pg_total_relation_size(coalesce(p.relid, t.name::regclass))) FROM unnest($1::text[]) AS t(name) "
        "LEFT JOIN LATERAL pg_partition_tree(t.name::regclass) AS p ON p.isleaf", tables) or 0)


def _fmt(values: list[float]) -> str:
    return f"{min(values):>9,.0f} {statistics.median(values):>9,.0f}"


async def floor(url: str, *, rows: int, connections: int, reps: int, only: set[str] | None) -> dict[str, Any]:
    chosen = [d for d in designs() if d.key == "a" or only is None or d.key in only]
    conn = await asyncpg.connect(libpq(url))
    for design in chosen:
        for ddl in design.ddl:
            await conn.execute(ddl)
    # a live stream: 1000 events per ~15 minutes, ending at NOW (bench_ingest's density)
    start = dataset.NOW - timedelta(minutes=15) * (rows / BATCH)
    data = await fetch_rows(conn, rows, start=start, end=dataset.NOW, prefix="f")
    parts = split_by_account(data, connections)
    print(f"{rows:,} rows, {len({r[0] for r in data})} accounts, batches of {BATCH}, {connections} connection(s) "
          f"({', '.join(f'{len(p):,}' for p in parts)} rows each, disjoint accounts), {reps} repetitions; "
          f"{machine()}", flush=True)
    prepared = {d.key: prepare(d, parts) for d in chosen}
    loaders = [await asyncpg.connect(libpq(url)) for _ in range(connections)]
    pids = [await c.fetchval("SELECT pg_backend_pid()") for c in loaders]
    runs: dict[str, list[Run]] = {d.key: [] for d in chosen}
    ratios: dict[str, list[float]] = {d.key: [] for d in chosen}
    try:
        # warm-up: statement caches and the first pages of every design, not timed
        for design in chosen:
            await load(loaders, pids, [p[:2] for p in prepared[design.key]])
        for rep in range(reps):
            order = chosen[rep % len(chosen):] + chosen[:rep % len(chosen)]
            for design in order:
                await conn.execute(f"TRUNCATE {', '.join(design.tables)}")
                await conn.execute("CHECKPOINT")
                runs[design.key].append(await load(loaders, pids, prepared[design.key]))
            base = rows / runs["a"][-1].seconds
            for design in chosen:
                ratios[design.key].append(rows / runs[design.key][-1].seconds / base)
            print(f"  repetition {rep + 1}: " + ", ".join(
                f"{d.key} {rows / runs[d.key][-1].seconds:,.0f}/s" for d in chosen), flush=True)
        sizes = {d.key: await table_bytes(conn, d.tables) for d in chosen}
    finally:
        for c in loaders:
            await c.close()
        await conn.close()

    print(f"\n{'design':<7}{'rows/s min':>10} {'median':>9} {'ratio':>6} {'server µs/row':>14} {'client µs/row':>14} "
          f"{'CPU ratio':>9} {'bytes/row':>10}  storage")
    results = {}

    def cpu(key: str) -> tuple[float, float]:
        """The least CPU per row over the repetitions (server, client): the least disturbed by other work."""
        return (min(r.server_ns / rows / 1000 for r in runs[key]), min(r.client_s / rows * 1e6 for r in runs[key]))

    base_cpu = sum(cpu("a"))
    for design in chosen:
        rates = [rows / r.seconds for r in runs[design.key]]
        server, client = cpu(design.key)
        ratio = statistics.median(ratios[design.key])
        print(f"{design.key:<7}{_fmt(rates)} {ratio:>5.2f}x {server:>14.2f} {client:>14.2f} "
              f"{base_cpu / (server + client):>8.2f}x {sizes[design.key] / rows:>10.0f}  {design.label}")
        results[design.key] = {"label": design.label, "rates": rates, "ratios": ratios[design.key],
                                "server_us_per_row": server, "client_us_per_row": client,
                                "cpu_ratio": base_cpu / (server + client), "bytes_per_row": sizes[design.key] / rows}
    print("ratio: the median over repetitions of (design rows/s) / (bare rows/s of the same repetition); server: "
          "CPU of the loading backends, client: this process (the least of the repetitions); CPU ratio: (server + client CPU per row of the bare table) / (the "
          "design's), the ratio a machine with nothing else running would show if CPU is what bounds it (WAL "
          "writer and checkpointer not counted)")
    return results


# --- reads ----------------------------------------------------------------------------------------

READ_DESIGNS = ("b", "d16", "e8", "ek", "g", "gk")
STAGING_COLUMNS = ", ".join(EVENT_COLUMNS)
METERED = "ARRAY['ACCEPTED', 'NOT_BILLED_NO_PLAN']"


def read_queries(design: Design) -> dict[str, str]:
    """The reads the account-time btree serves today, as the engine sends them (asyncpg, prepared: generic
    plans after 5 runs). $1 the account (text, or int4 in design g)."""
    ev, a = design.events, design.account_column
    one = "int4" if a == "account_key" else "text"
    arr = f"{one}[]"
    return {
        "edge: 40 min of an hour (account_usage's raw edge)":
            f"SELECT count(*), sum(CAST(e.attributes->>'input_tokens' AS numeric)) FROM {ev} e "
            f"WHERE e.event_time >= $2 AND e.event_time < $3 AND e.{a} = ANY($1::{arr}) AND e.status = ANY({METERED})",
        "one day by hour (get_metrics EVENTS, one account)":
            f"SELECT date_bin(interval '1 hour', e.event_time, timestamptz '2000-01-03'), count(*) FROM {ev} e "
            f"WHERE e.event_time >= $2::timestamptz AND e.event_time < $2::timestamptz + interval '1 day' AND e.{a} = ANY($1::{arr}) "
            "AND e.status <> 'VOIDED' GROUP BY 1",
        "list_events page 1 (20, newest first)":
            f"SELECT * FROM {ev} e WHERE e.{a} = $1 ORDER BY e.event_time DESC, e.{a} DESC, e.id DESC LIMIT 21",
        "list_events page 2 (keyset)":
            f"SELECT * FROM {ev} e WHERE e.{a} = $1 AND (e.event_time, e.{a}, e.id) < ($2, $1, $3) "
            f"ORDER BY e.event_time DESC, e.{a} DESC, e.id DESC LIMIT 21",
        "recompute 24 hours of an account (void, backfill by account and time)":
            f"SELECT count(*) FROM unnest(array_fill($1::{one}, ARRAY[24]), "
            "ARRAY(SELECT $2::timestamptz + n * interval '1 hour' FROM generate_series(0, 23) n)) AS k(account, hour) "
            f"CROSS JOIN LATERAL (SELECT * FROM {ev} e WHERE e.{a} = k.account AND e.event_time >= k.hour "
            "AND e.event_time < k.hour + interval '1 hour' OFFSET 0) e",
        "10 point lookups by (account, event_time, id) (void_events, consume)":
            f"SELECT count(*) FROM unnest(array_fill($1::{one}, ARRAY[10]), $2::timestamptz[], $3::text[]) AS k(account, t, id) "
            f"JOIN {ev} e ON e.{a} = k.account AND e.event_time = k.t AND e.id = k.id",
        "a month of one account, raw (UNIQUE_COUNT)":
            f"SELECT count(DISTINCT e.dimensions->>'endpoint') FROM {ev} e WHERE e.{a} = ANY($1::{arr}) "
            "AND e.event_time >= '2026-03-01' AND e.event_time < '2026-04-01' AND e.schema_name = 'api_call' "
            f"AND e.status = ANY({METERED})",
    }


SAMPLE_ACCOUNTS = (0, 1, 3, 10, 30, 100, 200, 400, 600, 800, 950, 999)  # acc_00000 sends ~10% of all events


async def _migrate_into(conn: Any, design: Design) -> float:
    """INSERT ... SELECT of the staging rows into the design's tables (indexes in place); seconds."""
    started = time.perf_counter()
    for table, columns, kind in design.writes:
        if kind == "claim":
            select = "SELECT account_id, id, event_time FROM staging"
        elif kind == "gclaim":
            select = "SELECT CAST(substr(account_id, 5) AS int4), id, event_time FROM staging"
        elif kind == "grow":
            select = f"SELECT CAST(substr(account_id, 5) AS int4), {STAGING_COLUMNS.split(', ', 1)[1]} FROM staging"
        else:
            select = f"SELECT {STAGING_COLUMNS} FROM staging"
        await conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) {select}")
    return time.perf_counter() - started


async def reads(url: str, *, rows: int, reps: int, only: set[str] | None) -> dict[str, Any]:
    chosen = [d for d in designs() if d.key in READ_DESIGNS and (only is None or d.key in only or d.key == "b")]
    conn = await asyncpg.connect(libpq(url))
    results: dict[str, Any] = {}
    try:
        select = dataset.events_sql(accounts=ACCOUNTS, start=dataset.START, end=dataset.END, prefix="r")
        await conn.execute("CREATE UNLOGGED TABLE staging (LIKE events INCLUDING DEFAULTS)")
        started = time.perf_counter()
        await conn.execute(
            f"INSERT INTO staging ({STAGING_COLUMNS}) SELECT account_id, id, schema_name, event_time, event_time, "
            f"attributes, dimensions, NULL, 'ACCEPTED' FROM ({select}) ev ORDER BY event_time", 1, rows)
        print(f"\nreads: {rows:,} events of {ACCOUNTS} accounts over {dataset.START:%Y-%m}..{dataset.END:%Y-%m} "
              f"generated in {time.perf_counter() - started:.1f} s", flush=True)
        print(f"{'design':<7}{'copy s':>8} {'s per 1M':>9}  (INSERT ... SELECT of the staging rows into the layout, "
              "indexes in place; then VACUUM ANALYZE, not counted)")
        for design in chosen:
            await conn.execute(f"DROP TABLE IF EXISTS {', '.join(design.tables)} CASCADE")
            for ddl in design.ddl:
                await conn.execute(ddl)
            seconds = await _migrate_into(conn, design)
            for table in design.tables:
                await conn.execute(f"VACUUM ANALYZE {table}")
            results[design.key] = {"copy_seconds": seconds}
            print(f"{design.key:<7}{seconds:>8.1f} {seconds / rows * 1e6:>9.1f}", flush=True)
        await conn.execute("CREATE INDEX ON staging (account_id, event_time)")  # to pick the samples
        samples = []  # (account, an hour start in March, a list_events page-2 key, 10 stored (time, id) of it)
        for n in SAMPLE_ACCOUNTS:
            account = f"acc_{n:05d}"
            page = await conn.fetch("SELECT event_time, id FROM staging WHERE account_id = $1 "
                                    "ORDER BY event_time DESC, id DESC LIMIT 21", account)
            points = await conn.fetch("SELECT event_time, id FROM staging WHERE account_id = $1 "
                                      "ORDER BY hashtext(id) LIMIT 10", account)
            hour = datetime(2026, 3, 1 + n % 28, n % 24, tzinfo=UTC)
            samples.append((account, hour, page[-1] if page else (dataset.NOW, ""),
                            [p[0] for p in points], [p[1] for p in points]))
        names = list(read_queries(chosen[0]))
        timings: dict[str, dict[str, list[float]]] = {d.key: {q: [] for q in names} for d in chosen}

        def arguments(design: Design, sample: tuple[Any, ...]) -> dict[str, tuple[Any, ...]]:
            account, hour, last, times, ids = sample
            acct = _account_key(account) if design.account_column == "account_key" else account
            day = hour.replace(hour=0)
            return dict(zip(names, (([acct], hour + timedelta(minutes=20), hour + timedelta(hours=1)), ([acct], day),
                                    (acct,), (acct, last[0], last[1]), (acct, day), (acct, times, ids), ([acct],)),
                            strict=True))

        for design in chosen:  # warm-up: 6 runs of each statement, so asyncpg's prepared plan has settled
            queries, args = read_queries(design), arguments(design, samples[0])
            for name in names:
                for _ in range(6):
                    await conn.fetch(queries[name], *args[name])
        for rep in range(reps):  # the designs in turn, in a rotated order each round
            for design in chosen[rep % len(chosen):] + chosen[:rep % len(chosen)]:
                queries = read_queries(design)
                for sample in samples:
                    args = arguments(design, sample)
                    for name in names:
                        began = time.perf_counter()
                        await conn.fetch(queries[name], *args[name])
                        timings[design.key][name].append((time.perf_counter() - began) * 1000)
        print(f"\nreads, ms: median over {len(SAMPLE_ACCOUNTS)} accounts x {reps} rounds / max (the max is "
              "usually acc_00000, ~10% of all events)")
        print(f"{'read':<72}" + "".join(f"{d.key:>16}" for d in chosen))
        for name in names:
            cells = []
            for design in chosen:
                values = timings[design.key][name]
                cells.append(f"{statistics.median(values):>8.2f}/{max(values):<7.1f}")
                results[design.key].setdefault("reads_ms", {})[name] = {
                    "median": statistics.median(values), "max": max(values)}
            print(f"{name:<72}" + "".join(f"{c:>16}" for c in cells))
    finally:
        await conn.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", default="", help="design keys to run besides the baseline, e.g. b,d,e")
    parser.add_argument("--reads", action="store_true", help="also time the per-account reads per design")
    parser.add_argument("--reads-only", action="store_true", help="only the reads")
    parser.add_argument("--read-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    only = {k.strip() for k in args.only.split(",") if k.strip()} or None
    out: dict[str, Any] = {"machine": machine(), "rows": args.rows, "connections": args.connections}
    with scratch_database("floor") as url:
        if not args.reads_only:
            out["floor"] = asyncio.run(floor(url, rows=args.rows, connections=args.connections, reps=args.reps,
                                             only=only))
        if args.reads or args.reads_only:
            out["reads"] = asyncio.run(reads(url, rows=args.read_rows, reps=args.reps, only=only))
    path = write_json(f"storage-floor-{datetime.now(UTC):%Y%m%dT%H%M%S}.json", out)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
