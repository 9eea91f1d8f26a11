"""The realistic data set: accounts on 3 plans, 5 meters, events over 3 months.

How it is built (fast, and through the engine where it matters):
- meters, plans, customers and accounts (with their plan attached) through the engine's services;
- events are generated INSIDE PostgreSQL (`INSERT INTO events ... SELECT ... FROM generate_series`,
  pseudo-random but deterministic: every value is a hash of the event number), then the
  dedupe ledger `event_ids` from them, then the engine's own `rebuild_rollups` turns them into the
  hourly rollups. This is the same end state as ingesting them (tests prove rollups equal a raw
  recompute), without paying ingestion 10M times just to set up a read benchmark;
- the same SQL writes JSON Lines files for the bulk-import benchmark (COPY ... TO STDOUT).

Shape: accounts acc_00000..; usage is skewed (account = floor(u^3 * N): the top 1% of accounts
send ~20% of events); a "whale" account acc_whale has `whale_events` events in its current
cycle. Events: api_call 50% (COUNT), llm 30% (SUM of input+output tokens), compute 15%
(SUM of seconds, GPU only, by a matcher), storage 4% (MAX gb), seats 1% (LATEST count).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import libpq
from togai_engine.accounts.schemas import AccountCreate
from togai_engine.app.accounts import create_account
from togai_engine.billing.runs import run_bill
from togai_engine.customers.schemas import CustomerCreate
from togai_engine.customers.service import create_customer
from togai_engine.meters.rollups import rebuild_rollups
from togai_engine.meters.schemas import UsageMeterCreate
from togai_engine.meters.service import create_usage_meter
from togai_engine.plans.schemas import PricePlanCreate
from togai_engine.plans.service import create_plan
from togai_engine.store.database import Database
from togai_engine.store.partitions import ensure_range

START = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2026, 4, 1, tzinfo=UTC)  # 3 monthly cycles: January, February, March
NOW = datetime(2026, 3, 20, tzinfo=UTC)  # "now" for the read benchmarks: inside March
CYCLE_START = datetime(2026, 3, 1, tzinfo=UTC)
WHALE = "acc_whale"


@dataclass(frozen=True)
class Meters:
    api: str
    tokens: str
    gpu: str
    storage: str
    seats: str

    @property
    def all(self) -> list[str]:
        return [self.api, self.tokens, self.gpu, self.storage, self.seats]


@dataclass(frozen=True)
class Plans:
    starter: str  # TIERED api calls + tokens, fixed fee, entitlement, credits
    growth: str  # VOLUME tokens, PACKAGE gpu seconds, storage, fixed fee, entitlement, credits
    scale: str  # 3 usage cards (TIERED, VOLUME, PACKAGE) + seats, minimum commitment, entitlement


def account_ids(count: int) -> list[str]:
    return [f"acc_{n:05d}" for n in range(count)]


# --- meters and plans ---------------------------------------------------------------------------


async def create_meters(db: Database) -> Meters:
    specs = [
        ("api requests", "api_call", "COUNT", []),
        ("llm tokens", "llm", "SUM",
         [{"computation": {"+": [{"var": "attributes.input_tokens"}, {"var": "attributes.output_tokens"}]}}]),
        ("gpu seconds", "compute", "SUM",
         [{"matcher": {"==": [{"var": "dimensions.tier"}, "gpu"]}, "computation": "seconds"}]),
        ("storage gb", "storage", "MAX", [{"computation": "gb"}]),
        ("seats", "seats", "LATEST", [{"computation": "count"}]),
    ]
    ids = []
    async with db.unit_of_work() as session:
        for name, schema, aggregation, computations in specs:
            meter, _ = await create_usage_meter(session, UsageMeterCreate(
                name=name, eventSchemaName=schema, aggregation=aggregation, computations=computations), START)
            ids.append(meter.id)
    return Meters(*ids)


def _card(meter: str, model: str, *slabs: tuple[str, str, str, str | None]) -> dict[str, Any]:
    """slabs: (startAfter, priceType, rate, packageSize)."""
    return {
        "usageMeterId": meter,
        "ratePlan": {"pricingModel": model, "slabs": [
            {"order": i, "startAfter": start, "priceType": kind,
             **({"slabConfig": {"packageSize": size}} if size else {})}
            for i, (start, kind, _, size) in enumerate(slabs, 1)]},
        "rateValues": [{"currency": "USD", "slabRates": [
            {"order": i, "rate": rate} for i, (_, _, rate, _) in enumerate(slabs, 1)]}],
    }


def plan_specs(m: Meters) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    cycle = {"interval": "MONTHLY", "gracePeriod": 2}
    entitlement = {"featureId": "api", "usageMeterId": m.api, "featureConfigs": [{"featureCreditLimit": "1e9"}]}
    credits = {"id": "monthly", "type": "RECURRING",
               "rateDetails": {"currencySlabRateDetails": [{"currency": "USD", "creditAmount": "10"}]}}
    starter = {"name": "Starter", "pricingCycleConfig": cycle, "rateCards": {
        "usageRateCards": [
            _card(m.api, "TIERED", ("0", "PER_UNIT", "0", None), ("1000", "PER_UNIT", "0.002", None),
                  ("100000", "PER_UNIT", "0.001", None)),
            _card(m.tokens, "TIERED", ("0", "PER_UNIT", "0.00002", None), ("1000000", "PER_UNIT", "0.000012", None)),
        ],
        "fixedFeeRateCards": [{"id": "platform", "rateValues": [{"currency": "USD", "rate": "29"}]}],
        "billingEntitlementRateCards": [entitlement],
        "creditGrantRateCards": [credits]}}
    growth = {"name": "Growth", "pricingCycleConfig": cycle, "rateCards": {
        "usageRateCards": [
            _card(m.tokens, "VOLUME", ("0", "PER_UNIT", "0.000018", None), ("5000000", "PER_UNIT", "0.00001", None)),
            _card(m.gpu, "TIERED", ("0", "PACKAGE", "1.5", "3600")),
            _card(m.storage, "VOLUME", ("0", "PER_UNIT", "0.1", None), ("100", "PER_UNIT", "0.05", None)),
        ],
        "fixedFeeRateCards": [{"id": "platform", "rateValues": [{"currency": "USD", "rate": "99"}]}],
        "billingEntitlementRateCards": [entitlement],
        "creditGrantRateCards": [credits]}}
    scale = {"name": "Scale", "pricingCycleConfig": cycle, "rateCards": {
        "usageRateCards": [
            _card(m.api, "TIERED", ("0", "PER_UNIT", "0.0015", None), ("500000", "PER_UNIT", "0.0008", None)),
            _card(m.tokens, "VOLUME", ("0", "PER_UNIT", "0.000015", None), ("10000000", "PER_UNIT", "0.000008", None)),
            _card(m.gpu, "TIERED", ("0", "PACKAGE", "1.2", "3600")),
        ],
        "billingEntitlementRateCards": [entitlement],
        "minimumCommitment": {"rateValues": [{"currency": "USD", "rate": "500"}]}}}
    return starter, growth, scale


async def create_plans(db: Database, meters: Meters) -> Plans:
    ids = []
    async with db.unit_of_work() as session:
        for spec in plan_specs(meters):
            plan, _ = await create_plan(session, PricePlanCreate.model_validate(spec))
            ids.append(plan.id)
    return Plans(*ids)


async def create_accounts(db: Database, ids: Sequence[str], plan_of: dict[str, str] | None, chunk: int = 500, *,
                          effective_from: datetime = START, now: datetime = START) -> float:
    """One customer per account, with its plan attached from `effective_from` (no plan when
    `plan_of` is None); returns seconds taken."""
    started = time.perf_counter()
    for first in range(0, len(ids), chunk):
        async with db.unit_of_work() as session:
            for account_id in ids[first:first + chunk]:
                await create_customer(session, CustomerCreate(id=f"c_{account_id}", name=account_id))
                plan = {"pricePlanId": plan_of[account_id], "effectiveFrom": effective_from} if plan_of else {}
                await create_account(session, AccountCreate(
                    id=account_id, customerId=f"c_{account_id}", name=account_id, **plan), now)
    return time.perf_counter() - started


async def ready_for_ingest(db: Database, accounts: int) -> Meters:
    """The state the ingest benchmarks start from: partitions over the data set's months, the meters and plans,
    `accounts` accounts (and the whale) on them, and their January and February cycles closed at NOW, as the
    server's background bill run would have left them (so measured batches do not each catch billing up)."""
    await ensure_range(db.engine, START, END)
    meters = await create_meters(db)
    plans = await create_plans(db, meters)
    ids = account_ids(accounts)
    await create_accounts(db, [*ids, WHALE], plan_assignment(ids, plans))
    await run_bill(db, NOW)
    return meters


# --- events, generated in PostgreSQL ------------------------------------------------------------

# u(n, k): a deterministic uniform [0, 1) from the event number n and a stream k.
_U = "((hashint8extended(n, {k}) & 9007199254740991)::float8 / 9007199254740992.0)"


def events_sql(*, accounts: int, start: datetime, end: datetime, prefix: str, whale: bool = False) -> str:
    """SELECT of generated events for n in [$1, $2]: account_id, id, schema_name, event_time,
    attributes (jsonb), dimensions (jsonb). Literals only (no user input reaches this SQL)."""
    span = (end - start).total_seconds()
    u = [_U.format(k=k) for k in range(6)]
    account = f"'{WHALE}'" if whale else f"'acc_' || lpad(floor(pow({u[0]}, 3) * {accounts})::int::text, 5, '0')"
    return f"""
    SELECT account_id, id, schema_name, event_time,
      CASE schema_name
        WHEN 'api_call' THEN '{{}}'::jsonb
        WHEN 'llm' THEN jsonb_build_object('input_tokens', floor(u4 * 4000)::int::text,
                                           'output_tokens', floor(u5 * 1000)::int::text)
        WHEN 'compute' THEN jsonb_build_object('seconds', round((u4 * 600)::numeric, 3)::text)
        WHEN 'storage' THEN jsonb_build_object('gb', round((u4 * 500)::numeric, 2)::text)
        ELSE jsonb_build_object('count', (1 + floor(u4 * 50))::int::text)
      END AS attributes,
      CASE schema_name
        WHEN 'api_call' THEN jsonb_build_object('endpoint', (ARRAY['chat', 'embed', 'search', 'files'])[1 + floor(u4 * 4)::int],
                                                'region', CASE WHEN u5 < 0.6 THEN 'us' ELSE 'eu' END)
        WHEN 'llm' THEN jsonb_build_object('model', CASE WHEN u5 < 0.7 THEN 'small' ELSE 'large' END)
        WHEN 'compute' THEN jsonb_build_object('tier', CASE WHEN u5 < 0.4 THEN 'gpu' ELSE 'cpu' END)
        ELSE '{{}}'::jsonb
      END AS dimensions
    FROM (
      SELECT n, {account} AS account_id, '{prefix}' || n AS id,
        CASE WHEN {u[2]} < 0.5 THEN 'api_call' WHEN {u[2]} < 0.8 THEN 'llm' WHEN {u[2]} < 0.95 THEN 'compute'
             WHEN {u[2]} < 0.99 THEN 'storage' ELSE 'seats' END AS schema_name,
        timestamptz '{start.isoformat()}' + make_interval(secs => {u[1]} * {span}) AS event_time,
        {u[4]} AS u4, {u[5]} AS u5
      FROM generate_series($1::bigint, $2::bigint) AS n
    ) g"""


def event_json_sql(select: str) -> str:
    """One JSON document per generated event, in the shape of the ingest tools (for JSON Lines), in
    time order, as a live stream or an exported history arrives."""
    return (
        "SELECT json_build_object('id', id, 'schemaName', schema_name, "
        "'timestamp', to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
        f"'accountId', account_id, 'attributes', attributes, 'dimensions', dimensions)::text FROM ({select}) ev "
        "ORDER BY event_time"
    )


async def _parallel(url: str, jobs: list[tuple[str, list[Any]]]) -> None:
    """Runs the statements of `jobs` on 2 connections."""
    queue = list(jobs)

    async def worker() -> None:
        conn = await asyncpg.connect(libpq(url))
        try:
            while queue:
                sql, args = queue.pop(0)
                await conn.execute(sql, *args)
        finally:
            await conn.close()

    await asyncio.gather(worker(), worker())


async def load_events(url: str, *, accounts: int, events: int, whale_events: int) -> float:
    """Generates the events into `events` and `event_ids` (2 connections); returns seconds taken."""
    chunk = 500_000  # events per INSERT statement
    started = time.perf_counter()
    background = max(0, events - whale_events)
    jobs: list[tuple[str, list[Any]]] = []
    columns = "account_id, id, schema_name, event_time, received_at, attributes, dimensions, units, status"
    for select, total in (
        (events_sql(accounts=accounts, start=START, end=END, prefix="e"), background),
        (events_sql(accounts=accounts, start=CYCLE_START, end=NOW, prefix="w", whale=True), whale_events),
    ):
        for first in range(1, total + 1, chunk):
            jobs.append((
                f"INSERT INTO events ({columns}) SELECT account_id, id, schema_name, event_time, event_time, "
                f"attributes, dimensions, NULL, 'ACCEPTED' FROM ({select}) ev",
                [first, min(total, first + chunk - 1)]))
    await _parallel(url, jobs)
    # The dedupe ledger, one statement per account range so both connections work.
    conn = await asyncpg.connect(libpq(url))
    try:
        bounds = [r[0] for r in await conn.fetch("SELECT id FROM accounts ORDER BY id")]
    finally:
        await conn.close()
    step = max(1, len(bounds) // 8)
    ranges = [(bounds[i], bounds[i + step] if i + step < len(bounds) else None) for i in range(0, len(bounds), step)]
    await _parallel(url, [
        ("INSERT INTO event_ids (account_id, id, event_time) SELECT account_id, id, event_time FROM events "
         "WHERE account_id >= $1 AND ($2::text IS NULL OR account_id < $2)", [low, high]) for low, high in ranges])
    await _register_schemas(url)
    return time.perf_counter() - started


async def _register_schemas(url: str) -> None:
    """event_schemas as ingestion would have left them (attribute and dimension names)."""
    conn = await asyncpg.connect(libpq(url))
    try:
        await conn.execute("""
            UPDATE event_schemas s SET attributes = t.attributes, dimensions = t.dimensions
            FROM (VALUES
              ('api_call', '{}'::jsonb, '{"endpoint": true, "region": true}'::jsonb),
              ('llm', '{"input_tokens": null, "output_tokens": null}', '{"model": true}'),
              ('compute', '{"seconds": null}', '{"tier": true}'),
              ('storage', '{"gb": null}', '{}'),
              ('seats', '{"count": null}', '{}')) AS t(name, attributes, dimensions)
            WHERE s.name = t.name""")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def rebuild(db: Database) -> tuple[int, float]:
    """The engine's rollup rebuild from raw events: (rollup rows, seconds)."""
    started = time.perf_counter()
    async with db.unit_of_work() as session:
        rows = await rebuild_rollups(session)
    conn = await asyncpg.connect(libpq(db.url))
    try:
        await conn.execute("ANALYZE usage_rollups, usage_rollups_daily, usage_totals")
    finally:
        await conn.close()
    return rows, time.perf_counter() - started


async def write_jsonl(url: str, path: Path, lines: int, *, accounts: int) -> float:
    """`lines` generated events as JSON Lines (the import file format); returns seconds taken."""
    started = time.perf_counter()
    select = events_sql(accounts=accounts, start=START, end=END, prefix="f")
    conn = await asyncpg.connect(libpq(url))
    try:
        await conn.copy_from_query(event_json_sql(select), 1, lines, output=str(path), format="text")
    finally:
        await conn.close()
    return time.perf_counter() - started


@dataclass(frozen=True)
class Dataset:
    meters: Meters
    timings: dict[str, float]


def plan_assignment(ids: Sequence[str], plans: Plans) -> dict[str, str]:
    cycle = (plans.starter, plans.growth, plans.scale)
    assignment = {account_id: cycle[n % 3] for n, account_id in enumerate(ids)}
    assignment[WHALE] = plans.scale
    return assignment


async def build(url: str, *, accounts: int, events: int, whale_events: int) -> Dataset:
    """The realistic data set in a migrated, empty database at `url`."""
    timings: dict[str, float] = {}
    db = Database(url, pool_size=2)
    try:
        await ensure_range(db.engine, START, END)
        meters = await create_meters(db)
        plans = await create_plans(db, meters)
        ids = account_ids(accounts)
        timings["accounts"] = await create_accounts(db, [*ids, WHALE], plan_assignment(ids, plans))
        timings["events"] = await load_events(url, accounts=accounts, events=events, whale_events=whale_events)
        _, timings["rollups"] = await rebuild(db)
        return Dataset(meters, timings)
    finally:
        await db.dispose()


# --- the storage floor (bench_ingest, bench_import) -----------------------------------------------

FLOOR_ID_COLUMNS = ["account_id", "id", "event_time"]


def _floor_partitions() -> list[str]:
    """Monthly partitions of floor_events over the data set's months, as the engine partitions events."""
    statements, month = [], START  # the first of a month, 00:00 UTC
    while month < END:
        following = (month + timedelta(days=32)).replace(day=1)
        statements.append(f"CREATE TABLE floor_events_{month:%Y%m} PARTITION OF floor_events "
                          f"FOR VALUES FROM ('{month.isoformat()}') TO ('{following.isoformat()}')")
        month = following
    return statements


async def create_floor_tables(conn: Any) -> None:
    """The least any engine with the engine's guarantees must write per event: the permanent dedupe claim
    (a unique btree on (account_id, id)) and the event in a table partitioned by month like `events`,
    with its per-account time btree and BRIN. Same DDL as the engine's tables; no rollups."""
    for ddl in (
        "CREATE TABLE floor_event_ids (LIKE event_ids INCLUDING ALL)",
        "CREATE TABLE floor_events (LIKE events INCLUDING DEFAULTS) PARTITION BY RANGE (event_time)",
        *_floor_partitions(),
        "CREATE INDEX ON floor_events (account_id, event_time)",
        "CREATE INDEX ON floor_events USING brin (event_time)",
    ):
        await conn.execute(ddl)
