"""Folding rollup stripes of past hours into stripe 0.

Concurrent ingest transactions write a key (account, meter, hour) into different stripes
(meters/sql.py), so a busy hour can end with up to ROLLUP_STRIPES rows per key, and every reader
(invoices, entitlement checks, metrics) adds them up. Once an hour is past, its stripes serve no
purpose: this merges them into stripe 0 with the same merge the ingest upsert uses, in one statement
per stripe (DELETE .. RETURNING feeding the upsert), so a reader sees either the stripes or their
sum, never a part. usage_totals and the daily rollups are folded the same way (a day once it is
over).

It takes the stripe locks that ingestion takes (transaction advisory locks, tried, never waited
for): stripe 0 and the stripe being folded. An ingest transaction holding either is simply skipped
until the next run, and while compaction holds them, ingestion picks another free stripe. Run by
the server's background loop after each bill run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from togai_engine.meters.sql import (
    DAILY,
    HOURLY,
    ROLLUP_STRIPES,
    STRIPE_LOCK_CLASS,
    TOTALS_COLUMNS,
    RollupTable,
    merge_into_rollups,
    merge_into_totals,
)
from togai_engine.meters.usage import floor_hour
from togai_engine.store.database import Database, raw_connection

HOT_HOURS = timedelta(hours=1)  # the current hour (and the one before it) keep their stripes


def _fold_rollups(stripe: int, table: RollupTable = HOURLY) -> str:
    # the stripe is a literal, so the planner sees that the partial index (stripe <> 0) covers it
    moved = (f"DELETE FROM {table.name} WHERE stripe = {int(stripe)} AND {table.time_column} < $1 "
             f"RETURNING {table.columns}")
    return f"WITH moved AS ({moved}) " + merge_into_rollups(f"SELECT {table.columns} FROM moved", "0", table)


_FOLD_TOTALS = (
    f"WITH moved AS (DELETE FROM usage_totals WHERE stripe = $1 AND hour < $2 RETURNING {TOTALS_COLUMNS}) "
    + merge_into_totals(f"SELECT {TOTALS_COLUMNS} FROM moved", "0")
)


@dataclass
class CompactionSummary:
    rows_folded: int = 0  # rollup rows of stripes 1.. merged into stripe 0
    daily_rows_folded: int = 0  # daily rollup rows of stripes 1.. merged into stripe 0
    stripes_skipped: list[int] = field(default_factory=list)  # held by an ingest transaction: next run


async def compact_rollups(database: Database, now: datetime) -> CompactionSummary:
    """Folds every stripe of hours before the previous one into stripe 0; one transaction per stripe."""
    before = floor_hour(now) - HOT_HOURS  # a UTC hour: hours and days are UTC ones
    summary = CompactionSummary()
    for stripe in range(1, ROLLUP_STRIPES):
        async with database.unit_of_work() as session:
            conn = await raw_connection(session)
            locked = await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock($1, 0) AND pg_try_advisory_xact_lock($1, $2)",
                STRIPE_LOCK_CLASS, stripe)
            if not locked:
                summary.stripes_skipped.append(stripe)
                continue
            status = await conn.execute(_fold_rollups(stripe), before)
            summary.rows_folded += int(status.split()[-1])
            await conn.execute(_FOLD_TOTALS, stripe, before)
            # daily rows of the days before the one `before` falls in (that day may still be written)
            status = await conn.execute(_fold_rollups(stripe, DAILY), before.replace(hour=0))
            summary.daily_rows_folded += int(status.split()[-1])
    return summary
