"""scale: events range-partitioned by month on event_time; striped usage rollups

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27

- `events` becomes a partitioned table (RANGE on event_time, monthly partitions events_pYYYYMM,
  see togai_engine/store/partitions.py). Rows are kept: the old table is renamed, the partitioned
  one created with partitions for every month that has events (plus the current month and the
  next three), the rows moved, the old table dropped. The engine creates later partitions ahead
  of time and on demand; there is no DEFAULT partition.
- ix_events_time becomes a BRIN index: time-range scans over all accounts need only block ranges,
  and BRIN costs almost nothing to maintain on the ingest path (a btree was one more index insert
  per event).
- `usage_rollups` gains `stripe` in its key: concurrent ingest transactions write the same
  (account, meter, hour) into different stripes, so they never wait for each other's row locks;
  readers add the stripes up (every rollup column merges associatively). Fillfactor 70 leaves
  room for in-place (HOT) updates of the current hours' counters. An index on (meter_id, hour)
  serves reads of some meters over all accounts.
- `usage_totals` (meter, hour, stripe): count and sum over all accounts, maintained with the
  rollups, so a month of a COUNT or SUM meter over all accounts is ~720 rows, not ~720 per account.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from togai_engine.store.partitions import MONTHS_AHEAD, Coverage, attach_statements, plan_partitions

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = "account_id, id, schema_name, event_time, received_at, attributes, dimensions, units, status"


def upgrade() -> None:
    bind = op.get_bind()
    op.execute("ALTER TABLE events RENAME TO events_unpartitioned")
    op.execute("ALTER INDEX ix_events_account_time RENAME TO ix_events_unpartitioned_account_time")
    op.execute("ALTER INDEX ix_events_time RENAME TO ix_events_unpartitioned_time")
    op.execute(
        "CREATE TABLE events ("
        " account_id VARCHAR(50) NOT NULL, id VARCHAR(512) NOT NULL, schema_name VARCHAR(50) NOT NULL,"
        " event_time TIMESTAMP WITH TIME ZONE NOT NULL, received_at TIMESTAMP WITH TIME ZONE NOT NULL,"
        " attributes JSONB NOT NULL, dimensions JSONB NOT NULL, units JSONB, status VARCHAR(32) NOT NULL"
        ") PARTITION BY RANGE (event_time)"
    )
    op.execute("CREATE INDEX ix_events_account_time ON events (account_id, event_time)")
    op.execute("CREATE INDEX ix_events_time ON events USING brin (event_time)")
    now_month = bind.exec_driver_sql("SELECT (extract(year FROM now() AT TIME ZONE 'UTC') * 12 "
                                     "+ extract(month FROM now() AT TIME ZONE 'UTC') - 1)::int").scalar_one()
    stored = [row[0] for row in bind.exec_driver_sql(
        "SELECT DISTINCT (extract(year FROM event_time AT TIME ZONE 'UTC') * 12 "
        "+ extract(month FROM event_time AT TIME ZONE 'UTC') - 1)::int FROM events_unpartitioned")]
    months = {*stored, *range(now_month, now_month + MONTHS_AHEAD + 1)}
    for name, first, end in plan_partitions(Coverage(partitioned=True), months, now_month):
        for statement in attach_statements(name, first, end):
            op.execute(statement)
    op.execute(f"INSERT INTO events ({COLUMNS}) SELECT {COLUMNS} FROM events_unpartitioned")
    op.execute("DROP TABLE events_unpartitioned")

    op.execute("ALTER TABLE usage_rollups ADD COLUMN stripe SMALLINT NOT NULL DEFAULT 0")
    op.execute("ALTER TABLE usage_rollups DROP CONSTRAINT pk_usage_rollups")
    op.execute("ALTER TABLE usage_rollups ADD CONSTRAINT pk_usage_rollups "
               "PRIMARY KEY (account_id, meter_id, hour, stripe)")
    # Room on each page for the rows' next versions: ingest updates the counters of the current hours
    # in place (HOT updates, no new index entry per update).
    op.execute("ALTER TABLE usage_rollups SET (fillfactor = 70)")
    op.create_index("ix_usage_rollups_meter_hour", "usage_rollups", ["meter_id", "hour"], unique=False)
    op.create_table(
        "usage_totals",
        sa.Column("meter_id", sa.String(length=50), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stripe", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("event_count", sa.BigInteger(), nullable=False),
        sa.Column("value_sum", sa.Numeric(), nullable=False),
        sa.PrimaryKeyConstraint("meter_id", "hour", "stripe", name=op.f("pk_usage_totals")),
    )
    op.execute("ALTER TABLE usage_totals SET (fillfactor = 70)")
    op.execute("INSERT INTO usage_totals (meter_id, hour, event_count, value_sum) "
               "SELECT meter_id, hour, sum(event_count), sum(value_sum) FROM usage_rollups GROUP BY meter_id, hour")


def downgrade() -> None:
    op.drop_table("usage_totals")
    op.drop_index("ix_usage_rollups_meter_hour", table_name="usage_rollups")
    # Rollups: one row per key again, the stripes merged as readers merge them.
    op.execute("""
        CREATE TABLE usage_rollups_merged AS
        SELECT account_id, meter_id, hour, sum(event_count)::bigint AS event_count, sum(value_sum) AS value_sum,
               max(value_max) AS value_max,
               (array_agg(latest_time ORDER BY latest_time DESC, latest_id COLLATE "C" DESC)
                  FILTER (WHERE latest_time IS NOT NULL))[1] AS latest_time,
               (array_agg(latest_id ORDER BY latest_time DESC, latest_id COLLATE "C" DESC)
                  FILTER (WHERE latest_time IS NOT NULL))[1] AS latest_id,
               (array_agg(latest_value ORDER BY latest_time DESC, latest_id COLLATE "C" DESC)
                  FILTER (WHERE latest_time IS NOT NULL))[1] AS latest_value
        FROM usage_rollups GROUP BY account_id, meter_id, hour""")
    op.execute("DELETE FROM usage_rollups")
    op.execute("ALTER TABLE usage_rollups RESET (fillfactor)")
    op.execute("ALTER TABLE usage_rollups DROP CONSTRAINT pk_usage_rollups")
    op.execute("ALTER TABLE usage_rollups DROP COLUMN stripe")
    op.execute("ALTER TABLE usage_rollups ADD CONSTRAINT pk_usage_rollups PRIMARY KEY (account_id, meter_id, hour)")
    op.execute("INSERT INTO usage_rollups (account_id, meter_id, hour, event_count, value_sum, value_max, "
               "latest_time, latest_id, latest_value) SELECT * FROM usage_rollups_merged")
    op.execute("DROP TABLE usage_rollups_merged")

    op.execute("ALTER TABLE events RENAME TO events_partitioned")
    op.execute("ALTER INDEX ix_events_account_time RENAME TO ix_events_partitioned_account_time")
    op.execute("ALTER INDEX ix_events_time RENAME TO ix_events_partitioned_time")
    op.execute(
        "CREATE TABLE events ("
        " account_id VARCHAR(50) NOT NULL, id VARCHAR(512) NOT NULL, schema_name VARCHAR(50) NOT NULL,"
        " event_time TIMESTAMP WITH TIME ZONE NOT NULL, received_at TIMESTAMP WITH TIME ZONE NOT NULL,"
        " attributes JSONB NOT NULL, dimensions JSONB NOT NULL, units JSONB, status VARCHAR(32) NOT NULL)"
    )
    op.execute(f"INSERT INTO events ({COLUMNS}) SELECT {COLUMNS} FROM events_partitioned")
    op.execute("DROP TABLE events_partitioned")  # and its partitions
    op.execute("CREATE INDEX ix_events_account_time ON events (account_id, event_time)")
    op.execute("CREATE INDEX ix_events_time ON events (event_time)")
