"""Time partitions of the raw `events` table (declarative RANGE partitioning on event_time).

Partitions are monthly, named events_pYYYYMM, and created ahead of time (a few months ahead when
the server starts and on every background billing run) and on demand, for an ingest batch whose
months have no partition yet. There is no DEFAULT partition: every instant an event can carry
gets a partition before its row is written.

How a partition is made without stopping ingestion: `CREATE TABLE ... (LIKE events)` and then
`ALTER TABLE events ATTACH PARTITION`, which locks the parent only SHARE UPDATE EXCLUSIVE (concurrent
inserts and reads go on; `CREATE TABLE ... PARTITION OF` would need ACCESS EXCLUSIVE and wait for
every open transaction that touched `events`). It runs in its own short transaction on its own
connection, under a transaction advisory lock, so concurrent creators do not race.

Instants far from now (outside [now - 5 years, now + 2 years)) get a yearly partition events_pYYYY
when nothing of that year is partitioned yet: a stray timestamp (year 1970 or 9999) costs one
partition per year, not twelve, and monthly and yearly ranges never overlap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

PARENT = "events"
PARTITION_NAME = re.compile(r"^events_p(\d{4})(\d{2})?$")
PARTITION_LOCK = (0x70617274, 0x65766E74)  # ("part", "evnt"): the advisory lock of partition changes
MONTHS_AHEAD = 3
MONTHLY_PAST_YEARS = 5
MONTHLY_FUTURE_YEARS = 2


def month_key(moment: datetime) -> int:
    """Months since year 0 (year * 12 + month - 1) of an instant, in UTC."""
    if moment.utcoffset():
        moment = moment.astimezone(UTC)
    return moment.year * 12 + moment.month - 1


def month_keys(instants: Iterable[datetime]) -> set[int]:
    """The month_key of each instant, as a set; a batch's thousand instants are UTC ones (parse_instant's), so
    only the others are converted, and the key is computed inline (a call per instant costs 2.5x as much)."""
    utc = (i if i.tzinfo is UTC or not i.utcoffset() else i.astimezone(UTC) for i in instants)
    return {m.year * 12 + m.month - 1 for m in utc}


def _bound(month: int) -> str:
    year, index = divmod(month, 12)
    return f"{year:04d}-{index + 1:02d}-01 00:00:00+00"


@dataclass
class Coverage:
    """The partitions of one database, as this process knows them. Partitions are never dropped
    by the engine, so a month once covered stays covered; a miss is checked against the catalog."""

    partitioned: bool | None = None  # None: not read yet
    months: set[int] = field(default_factory=set)
    years: set[int] = field(default_factory=set)

    def covers(self, month: int) -> bool:
        return self.partitioned is False or month in self.months or month // 12 in self.years

    def add(self, name: str) -> None:
        match = PARTITION_NAME.match(name)
        if match is None:
            return
        year = int(match.group(1))
        if match.group(2) is None:
            self.years.add(year)
        else:
            self.months.add(year * 12 + int(match.group(2)) - 1)


_coverage: dict[str, Coverage] = {}


def _coverage_of(engine: AsyncEngine) -> Coverage:
    key = engine.url.render_as_string(hide_password=False)
    found = _coverage.get(key)
    if found is None:
        found = _coverage[key] = Coverage()
    return found


def plan_partitions(coverage: Coverage, months: Iterable[int], now_month: int) -> list[tuple[str, int, int]]:
    """(name, first month, end month exclusive) of the partitions to create so every month is covered."""
    wanted: list[tuple[str, int, int]] = []
    planned = Coverage(coverage.partitioned, set(coverage.months), set(coverage.years))
    for month in sorted(set(months)):
        if planned.covers(month):
            continue
        year = month // 12
        near = now_month - 12 * MONTHLY_PAST_YEARS <= month < now_month + 12 * MONTHLY_FUTURE_YEARS
        if near or any(m // 12 == year for m in planned.months):
            name = f"events_p{year:04d}{month % 12 + 1:02d}"
            wanted.append((name, month, month + 1))
        else:
            name = f"events_p{year:04d}"
            wanted.append((name, year * 12, year * 12 + 12))
        planned.add(name)
    return wanted


def attach_statements(name: str, first: int, end: int) -> list[str]:
    """DDL that creates partition `name` for months [first, end) and attaches it to `events`.

    Names and bounds are made by this module from integers, never from input.
    """
    return [
        f'CREATE TABLE "{name}" (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
        f"ALTER TABLE {PARENT} ATTACH PARTITION \"{name}\" FOR VALUES FROM ('{_bound(first)}') TO ('{_bound(end)}')",
    ]


async def _create(conn: Any, coverage: Coverage, months: set[int], now_month: int) -> list[str]:
    """In the caller's (new, short) transaction on `conn`: reads the catalog, creates what is missing."""
    await conn.execute("SET LOCAL lock_timeout = '10s'")
    await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *PARTITION_LOCK)
    kind = await conn.fetchval("SELECT CAST(relkind AS text) FROM pg_class WHERE oid = to_regclass($1)", PARENT)
    coverage.partitioned = kind == "p"
    if not coverage.partitioned:
        return []
    for row in await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass",
        PARENT,
    ):
        coverage.add(row[0])
    created = []
    for name, first, end in plan_partitions(coverage, months, now_month):
        for statement in attach_statements(name, first, end):
            await conn.execute(statement)
        created.append(name)
    return created


async def ensure_months(engine: AsyncEngine, months: Iterable[int], now: datetime) -> list[str]:
    """Makes sure each month (see month_key) has a partition; returns the partitions created.

    Free when they are known to exist (no I/O); otherwise one short transaction on a connection
    of its own, committed before this returns.
    """
    coverage = _coverage_of(engine)
    needed = {m for m in months if not coverage.covers(m)}
    if not needed and coverage.partitioned is not None:
        return []
    async with engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        async with raw.transaction():
            created = await _create(raw, coverage, needed, month_key(now))
    for name in created:  # known to exist once committed
        coverage.add(name)
    return created


async def ensure_session_months(session: AsyncSession, months: Iterable[int], now: datetime) -> list[str]:
    """The partitions an ingest batch needs (months as month_key), made before it writes, on another
    connection of the session's engine (see ensure_months)."""
    engine = session.bind
    if not isinstance(engine, AsyncEngine):
        raise TypeError("the session must be bound to an AsyncEngine (togai_engine.store.database.Database)")
    return await ensure_months(engine, months, now)


async def ensure_ahead(engine: AsyncEngine, now: datetime, months_ahead: int = MONTHS_AHEAD) -> list[str]:
    """The current month and the next `months_ahead` ones (server start, background billing runs)."""
    first = month_key(now)
    return await ensure_months(engine, range(first, first + months_ahead + 1), now)


async def ensure_range(engine: AsyncEngine, start: datetime, end: datetime) -> list[str]:
    """Every month overlapping [start, end) (data loads and benchmarks)."""
    last = month_key(end - timedelta(microseconds=1))
    return await ensure_months(engine, range(month_key(start), last + 1), start)
