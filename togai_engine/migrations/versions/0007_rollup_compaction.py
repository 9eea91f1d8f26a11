"""rollup compaction: an index of the rows outside stripe 0

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27

Ingestion now tries stripe 0 first (most rollup rows live there), and the server folds the other
stripes of past hours into stripe 0 (togai_engine/meters/compaction.py). The partial index on
`hour` holds only the rows outside stripe 0, so finding them does not scan the table.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE INDEX ix_usage_rollups_striped_hour ON usage_rollups (stripe, hour) WHERE stripe <> 0")


def downgrade() -> None:
    op.drop_index("ix_usage_rollups_striped_hour", table_name="usage_rollups")
