"""daily rollups of MAX and LATEST meters

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27

A series over all accounts of a MAX or LATEST meter sums each account's value per bucket; usage_totals
cannot hold that, so get_metrics read every hourly rollup row of those meters (~120k rows for a month
of the realistic data set). `usage_rollups_daily` holds the same aggregates per UTC day, maintained in
the ingest statement with the hourly rows. This migration fills it from the hourly rollups (stripes
merged), holding a SHARE lock on them so no ingest writes meanwhile. Stop servers of the previous
version before upgrading (`serve` migrates on start): they would go on writing hourly rows only, and
`togai-engine verify` would report the missing daily rows.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LATEST = ", ".join(
    f'(array_agg({c} ORDER BY latest_time DESC, latest_id COLLATE "C" DESC) FILTER (WHERE latest_time IS NOT NULL))[1]'
    for c in ("latest_time", "latest_id", "latest_value"))


def upgrade() -> None:
    op.create_table(
        "usage_rollups_daily",
        sa.Column("account_id", sa.String(length=50), nullable=False),
        sa.Column("meter_id", sa.String(length=50), nullable=False),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stripe", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("event_count", sa.BigInteger(), nullable=False),
        sa.Column("value_sum", sa.Numeric(), nullable=False),
        sa.Column("value_max", sa.Numeric(), nullable=True),
        sa.Column("latest_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("latest_id", sa.Text(), nullable=True),
        sa.Column("latest_value", sa.Numeric(), nullable=True),
        sa.PrimaryKeyConstraint("account_id", "meter_id", "day", "stripe", name=op.f("pk_usage_rollups_daily")),
    )
    op.execute("ALTER TABLE usage_rollups_daily SET (fillfactor = 70)")  # updated in place, as the hourly rows
    op.create_index("ix_usage_rollups_daily_meter_day", "usage_rollups_daily", ["meter_id", "day"], unique=False)
    op.execute("CREATE INDEX ix_usage_rollups_daily_striped_day ON usage_rollups_daily (stripe, day) "
               "WHERE stripe <> 0")
    op.execute("LOCK TABLE usage_rollups IN SHARE MODE")
    op.execute(
        "INSERT INTO usage_rollups_daily (account_id, meter_id, day, event_count, value_sum, value_max, "
        "latest_time, latest_id, latest_value) "
        "SELECT r.account_id, r.meter_id, date_trunc('day', r.hour, 'UTC') AS day, sum(r.event_count), "
        f"sum(r.value_sum), max(r.value_max), {_LATEST} FROM usage_rollups r "
        "JOIN usage_meters m ON m.id = r.meter_id WHERE m.aggregation IN ('MAX', 'LATEST') "
        "GROUP BY r.account_id, r.meter_id, day")


def downgrade() -> None:
    op.drop_table("usage_rollups_daily")
